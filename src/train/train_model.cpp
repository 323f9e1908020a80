// The training skeleton's forward with saved activations, the loss, and the backward.
#include "train/train_model.hpp"

#include <algorithm>
#include <cmath>

#include "core/checked.hpp"
#include "core/errors.hpp"
#include "ops/kernels.hpp"

namespace bsbr::train {

TrainModel::TrainModel(ops::Context& ctx, Model& model)
    : model_(&model), cfg_(model.config()), grads_(ctx, model.params()) {
  const SkeletonOptions& o = model.options();
  if (o.ffn_activation != ops::Eltwise::kGeluErf && o.ffn_activation != ops::Eltwise::kGeluTanh)
    throw UserError("training: the FFN activation must be GELU (exact or tanh); model " + model.name() + " uses another");
  activation_ = o.ffn_activation;
  tied_ = o.tied_lm_head;
  ParamStore& P = model.params();
  embed_ = &P.find("embed.weight")->value;
  if (o.positions == SkeletonOptions::Positions::kLearned) {
    Param* pos = P.find("pos_embed.weight");
    BSBR_CHECK(pos != nullptr, "training: learned positions without pos_embed.weight");
    pos_embed_ = &pos->value;
  }
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const std::string p = "layers." + std::to_string(l);
    Block b;
    b.ln1 = find_layer_norm(P, p + ".ln1");
    b.ln2 = find_layer_norm(P, p + ".ln2");
    b.ff1 = find_linear(P, p + ".ff1");
    b.ff2 = find_linear(P, p + ".ff2");
    b.mixer = make_trainable_mixer(model.name(), cfg_, P, p + ".attn");
    if (!b.mixer) throw UserError("training: no backward pass for architecture " + model.name() + " yet");
    blocks_.push_back(std::move(b));
  }
  final_ln_ = find_layer_norm(P, "final_ln");
  if (!tied_) head_ = find_linear(P, "lm_head");
}

std::vector<std::string> TrainModel::faults() const {
  std::vector<std::string> f;
  if (tied_) f.push_back("skeleton.drop_tied_head_grad");
  if (pos_embed_) f.push_back("skeleton.first_sequence_position_grad");
  if (activation_ == ops::Eltwise::kGeluTanh) f.push_back("skeleton.erf_gelu_backward");
  return f;
}

bool TrainModel::inject_fault(std::string_view name) {
  const std::vector<std::string> known = faults();
  if (std::find(known.begin(), known.end(), name) == known.end()) return false;
  fault_ = name == "skeleton.drop_tied_head_grad"            ? Fault::kDropTiedHeadGrad
           : name == "skeleton.first_sequence_position_grad" ? Fault::kFirstSequencePositionGrad
                                                              : Fault::kErfGeluBackward;
  return true;
}

void TrainModel::prepare(ops::Context& ctx, int64_t batch, int64_t n, bool recompute) {
  BSBR_CHECK(batch >= 1 && n >= 2, "training needs batch >= 1 and n >= 2 (a next token to predict)");
  if (pos_embed_ && n > pos_embed_->dim(0))
    throw UserError("training length " + std::to_string(n) + " exceeds the model's " + std::to_string(pos_embed_->dim(0)) +
                    " learned positions (n_positions)");
  release();
  batch_ = batch;
  n_ = n;
  recompute_ = recompute;
  const int64_t rows = batch * n, d = cfg_.hidden_dim, ff = cfg_.ff_dim, V = cfg_.vocab_size;
  const float eps = static_cast<float>(cfg_.layer_norm_eps);
  auto act = [&](Shape s) { return ctx.tensor(MemCategory::kActivations, std::move(s)); };
  auto saved = [&](Shape s) { return ctx.tensor(MemCategory::kSaved, std::move(s)); };
  ln_ = ops::LayerNormTrainOp(ctx, rows, d, eps);
  ln_back_ = ops::LayerNormBackwardOp(ctx, rows, d, eps);
  const ops::MatLayout fl = ops::MatLayout::dense(rows, ff);
  gelu_ = ops::EltwiseOp(ctx, fl, fl, {activation_});
  // (The mutation test's fault differentiates the exact GELU of a tanh-GELU model: set before prepare.)
  gelu_back_ = ops::EltwiseBackwardOp(ctx, rows, ff, {fault_ == Fault::kErfGeluBackward ? ops::Eltwise::kGeluErf : activation_});
  softmax_ = ops::SoftmaxOp(ctx, ops::MatLayout::dense(rows, V));
  for (Block& b : blocks_) {
    ff1_.emplace_back(ctx, b.ff1, rows, d, ff);
    ff2_.emplace_back(ctx, b.ff2, rows, ff, d, /*accumulate=*/true);
    b.x_in = saved({rows, d});  // the block's input: saved in both modes
    // The rest of the block's activations: its own, or (recompute) the blocks' shared set, taken
    // in the same order by every block.
    shared_saved_.rewind();
    shared_work_.rewind();
    MixerBuffers buffers(ctx, recompute ? &shared_saved_ : nullptr, &shared_work_);
    for (Tensor* t : {&b.h1, &b.x_mid, &b.h2}) *t = buffers.saved({rows, d});
    for (Tensor* t : {&b.u, &b.g}) *t = buffers.saved({rows, ff});
    for (Tensor* t : {&b.mean1, &b.var1, &b.mean2, &b.var2}) *t = buffers.saved({rows});
    b.mixer->prepare(ctx, buffers, batch, n);
  }
  if (tied_) {
    const ops::MatLayout h = ops::MatLayout::dense(rows, d), z = ops::MatLayout::dense(rows, V), e = ops::MatLayout::dense(V, d);
    tied_fwd_ = ops::MatMul(ctx, {h, e.transposed(), z, false, 1.f, {}});  // [rows, d].[d, V]
    tied_dx_ = ops::MatMul(ctx, {z, e, h, false, 1.f, {}});                // [rows, V].[V, d]
    tied_dw_ = ops::MatMul(ctx, {z.transposed(), h, e, false, 1.f, {}});   // [V, rows].[rows, d]
  } else {
    head_op_ = LinearTrain(ctx, head_, rows, d, V);
  }
  if (!pos_embed_) {
    positions_ = act({n, d});
    ops::sinusoidal_positions(0, n, d, positions_.data());
  }
  // The final residual (LN input), LN output and statistics and the probabilities: kept from the
  // forward for the backward.
  for (Tensor* t : {&x_, &hf_}) *t = saved({rows, d});
  meanf_ = saved({rows});
  varf_ = saved({rows});
  probs_ = saved({rows, V});
  for (Tensor* t : {&dres_, &dh_, &dtmp_}) *t = act({rows, d});
  df_ = act({rows, ff});
}

TrainModel::Footprint TrainModel::footprint(const ModelConfig& cfg, const std::string& arch, int64_t batch, int64_t n, bool recompute,
                                            int threads, const SkeletonOptions& skeleton) {
  // In double (see MixerFloats), checked against 2^60 bytes before converting.
  const double rows = static_cast<double>(batch) * static_cast<double>(n), d = static_cast<double>(cfg.hidden_dim);
  const double ff = static_cast<double>(cfg.ff_dim), V = static_cast<double>(cfg.vocab_size), L = static_cast<double>(cfg.num_layers);
  const MixerFloats m = trainable_mixer_floats(arch, cfg, batch, n, threads);
  // Per block: h1, x_mid, h2 [rows, d], u, g [rows, ff], four LN statistics [rows] and the mixer's
  // saved buffers: the block's own, or one set the blocks share when recomputing.
  const double block = rows * (3 * d + 2 * ff + 4) + m.saved;
  // Saved: every block's input, the blocks' activations (without recomputation), the final
  // residual and LN output [rows, d], its statistics and the probabilities [rows, V].
  const double saved = L * rows * d + (recompute ? 0 : L * block) + rows * (2 * d + 2 + V);
  // Working: the mixers' shared work buffers, per block the Linear ops' ones rows (the mixer's and
  // the FFN's two), the sinusoidal position table [n, d] (learned positions are a parameter), the
  // untied head's ones row, the gradients dres, dh, dtmp [rows, d] and df [rows, ff]; the shared
  // block activations when recomputing.
  const double positions = skeleton.positions == SkeletonOptions::Positions::kSinusoidal ? static_cast<double>(n) * d : 0;
  const double head_ones = skeleton.tied_lm_head ? 0 : rows;
  const double working = m.work + L * (m.owned + 2 * rows) + positions + head_ones + rows * (3 * d + ff) + (recompute ? block : 0);
  const auto bytes = [](double floats) {
    if (!(floats * 4 <= 0x1p60)) size_overflow("the training buffers");
    return static_cast<std::size_t>(floats) * sizeof(float);
  };
  return {bytes(saved), bytes(working)};
}

double TrainModel::step_flops_model(int64_t batch, int64_t n) const {
  const double d = static_cast<double>(cfg_.hidden_dim), ff = static_cast<double>(cfg_.ff_dim), V = static_cast<double>(cfg_.vocab_size);
  double forward = 2.0 * static_cast<double>(n) * d * V;  // LM head on every position
  for (int l = 0; l < cfg_.num_layers; ++l) forward += 2.0 * 2.0 * static_cast<double>(n) * d * ff + model_->mixer(l).prefill_flops(n);
  return 3.0 * static_cast<double>(batch) * forward;
}

void TrainModel::release() {
  for (Block& b : blocks_) {
    b.mixer->release();
    for (Tensor* t : {&b.x_in, &b.h1, &b.x_mid, &b.h2, &b.u, &b.g, &b.mean1, &b.var1, &b.mean2, &b.var2}) t->reset();
  }
  ff1_.clear();
  ff2_.clear();
  ln_ = {};
  ln_back_ = {};
  gelu_ = {};
  gelu_back_ = {};
  softmax_ = {};
  head_op_ = {};
  for (ops::MatMul* m : {&tied_fwd_, &tied_dx_, &tied_dw_}) *m = ops::MatMul();
  for (Tensor* t : {&positions_, &x_, &hf_, &meanf_, &varf_, &probs_, &dres_, &dh_, &dtmp_, &df_}) t->reset();
  shared_saved_.clear();  // after the views of them (above) are gone
  shared_work_.clear();
  batch_ = n_ = 0;
  recompute_ = false;
}

void TrainModel::embed(const int32_t* tokens) {
  const int64_t d = cfg_.hidden_dim;
  for (int64_t i = 0; i < batch_ * n_; ++i)
    BSBR_CHECK(tokens[i] >= 0 && tokens[i] < cfg_.vocab_size, "token id out of range: " + std::to_string(tokens[i]));
  const float* pos = pos_embed_ ? pos_embed_->data() : positions_.data();  // rows 0..n-1 (n <= P checked in prepare)
  for (int64_t b = 0; b < batch_; ++b) ops::embed_tokens(tokens + b * n_, n_, embed_->data(), d, pos, 0, x_.data() + b * n_ * d, d);
}

double TrainModel::forward(ops::Context& ctx, const int32_t* tokens) {
  BSBR_CHECK(n_ >= 2, "TrainModel used before prepare()");
  const int64_t rows = batch_ * n_, d = cfg_.hidden_dim;
  embed(tokens);
  float* x = x_.data();
  for (std::size_t l = 0; l < blocks_.size(); ++l) {
    std::copy(x, x + rows * d, blocks_[l].x_in.data());
    block_forward(ctx, l, x);                            // x = x_mid
    ff2_[l].forward(ctx, blocks_[l].g.data(), x);        // x += W2.GELU(u) + b2
  }
  ln_.run(ctx, x, final_ln_.gamma->data(), final_ln_.beta->data(), hf_.data(), meanf_.data(), varf_.data());
  if (tied_)
    tied_fwd_.run(ctx, hf_.data(), embed_->data(), probs_.data());  // logits = hf.E^T
  else
    head_op_.forward(ctx, hf_.data(), probs_.data());  // logits, turned into probabilities below
  return loss_and_dlogits(ctx, tokens);
}

void TrainModel::block_forward(ops::Context& ctx, std::size_t l, float* res) {
  Block& b = blocks_[l];
  const int64_t rows = batch_ * n_, d = cfg_.hidden_dim;
  ln_.run(ctx, b.x_in.data(), b.ln1.gamma->data(), b.ln1.beta->data(), b.h1.data(), b.mean1.data(), b.var1.data());
  b.mixer->forward(ctx, b.h1.data(), res);
  if (res != b.x_mid.data()) std::copy(res, res + rows * d, b.x_mid.data());
  ln_.run(ctx, b.x_mid.data(), b.ln2.gamma->data(), b.ln2.beta->data(), b.h2.data(), b.mean2.data(), b.var2.data());
  ff1_[l].forward(ctx, b.h2.data(), b.u.data());
  gelu_.run(ctx, b.u.data(), b.g.data());
}

// Loss = mean over predicted positions of (logsumexp(logits) - logit[target]) (double); then in
// place: probabilities by oneDNN's softmax, and dL/dlogits = (p - onehot(target)) / count, 0 on each
// sequence's last position (it predicts nothing).
double TrainModel::loss_and_dlogits(ops::Context& ctx, const int32_t* tokens) {
  const int64_t V = cfg_.vocab_size, count = batch_ * (n_ - 1);
  float* z = probs_.data();
  double loss = 0;
  for (int64_t b = 0; b < batch_; ++b)
    for (int64_t t = 0; t + 1 < n_; ++t) {
      const float* row = z + (b * n_ + t) * V;
      const double mx = *std::max_element(row, row + V);
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(row[j] - mx);
      loss += mx + std::log(sum) - row[tokens[b * n_ + t + 1]];
    }
  softmax_.run(ctx, z, z);
  const float inv = 1.f / static_cast<float>(count);
  for (int64_t b = 0; b < batch_; ++b)
    for (int64_t t = 0; t < n_; ++t) {
      float* row = z + (b * n_ + t) * V;
      if (t + 1 == n_) {
        std::fill(row, row + V, 0.f);
        continue;
      }
      row[tokens[b * n_ + t + 1]] -= 1.f;
      for (int64_t j = 0; j < V; ++j) row[j] *= inv;
    }
  return loss / static_cast<double>(count);
}

double TrainModel::forward_backward(ops::Context& ctx, const int32_t* tokens) {
  const double loss = forward(ctx, tokens);
  const int64_t rows = batch_ * n_, d = cfg_.hidden_dim;
  // LM head and final LN: dres = dL/dx_L. A tied head's weight gradient dE = dlogits^T.hf starts
  // the embedding's gradient (the input side adds into it below).
  Tensor& de = grads_.of(*embed_);
  if (tied_) {
    tied_dx_.run(ctx, probs_.data(), embed_->data(), dh_.data());
    tied_dw_.run(ctx, probs_.data(), hf_.data(), de.data());
    if (fault_ == Fault::kDropTiedHeadGrad) std::fill(de.data(), de.data() + de.size(), 0.f);
  } else {
    head_op_.backward(ctx, hf_.data(), probs_.data(), grads_, dh_.data());
    std::fill(de.data(), de.data() + de.size(), 0.f);
  }
  ln_back_.run(ctx, x_.data(), meanf_.data(), varf_.data(), dh_.data(), final_ln_.gamma->data(), final_ln_.beta->data(), dres_.data(),
               grads_.of(*final_ln_.gamma).data(), grads_.of(*final_ln_.beta).data());
  for (std::size_t li = blocks_.size(); li-- > 0;) {
    Block& b = blocks_[li];
    if (recompute_ && li + 1 < blocks_.size()) {  // the shared buffers hold the last block's forward
      std::copy(b.x_in.data(), b.x_in.data() + rows * d, b.x_mid.data());
      block_forward(ctx, li, b.x_mid.data());
    }
    // FFN branch: x_out = x_mid + W2.GELU(W1.LN2(x_mid) + b1) + b2.
    ff2_[li].backward(ctx, b.g.data(), dres_.data(), grads_, df_.data());
    gelu_back_.run(ctx, b.u.data(), df_.data(), df_.data());
    ff1_[li].backward(ctx, b.h2.data(), df_.data(), grads_, dh_.data());
    ln_back_.run(ctx, b.x_mid.data(), b.mean2.data(), b.var2.data(), dh_.data(), b.ln2.gamma->data(), b.ln2.beta->data(), dtmp_.data(),
                 grads_.of(*b.ln2.gamma).data(), grads_.of(*b.ln2.beta).data());
    add_into(dres_.data(), dtmp_.data(), rows * d);
    // Attention branch: x_mid = x_in + Attn(LN1(x_in)).
    b.mixer->backward(ctx, b.h1.data(), dres_.data(), dh_.data(), grads_);
    ln_back_.run(ctx, b.x_in.data(), b.mean1.data(), b.var1.data(), dh_.data(), b.ln1.gamma->data(), b.ln1.beta->data(), dtmp_.data(),
                 grads_.of(*b.ln1.gamma).data(), grads_.of(*b.ln1.beta).data());
    add_into(dres_.data(), dtmp_.data(), rows * d);
  }
  // dres = dL/d(input embeddings); the token table gathers it row by row; learned positions get
  // the sum over sequences in rows 0..n-1 (rows n..P-1 are unused: gradient 0).
  for (int64_t r = 0; r < rows; ++r) add_into(de.data() + static_cast<int64_t>(tokens[r]) * d, dres_.data() + r * d, d);
  if (pos_embed_) {
    Tensor& dp = grads_.of(*pos_embed_);
    std::fill(dp.data(), dp.data() + dp.size(), 0.f);
    const int64_t sequences = fault_ == Fault::kFirstSequencePositionGrad ? 1 : batch_;
    for (int64_t b = 0; b < sequences; ++b) add_into(dp.data(), dres_.data() + b * n_ * d, n_ * d);
  }
  return loss;
}

}  // namespace bsbr::train

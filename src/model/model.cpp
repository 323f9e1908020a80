// The shared skeleton: embedding, positions, pre-LN blocks with a GELU FFN, final LN, LM head.
#include "model/model.hpp"

#include <algorithm>

#include "core/checked.hpp"
#include "core/errors.hpp"
#include "ops/gemv.hpp"
#include "ops/kernels.hpp"

namespace bsbr {

using ops::MatLayout;
using ops::MatMul;
using ops::MatMulSpec;
using ops::PostOp;

int64_t RunShape::max_prefill() const {
  int64_t m = 0;
  for (int64_t n : prefill_lengths) m = std::max(m, n);
  return m;
}

Model::Model(ops::Context& ctx, const ModelConfig& cfg, const Architecture& arch, SkeletonOptions opts)
    : name_(arch.name), cfg_(cfg), opts_(opts), params_(ctx.memory(), !opts.shapes_only) {
  cfg_.validate("model " + name_);
  const int64_t d = cfg.hidden_dim, V = cfg.vocab_size;
  embed_ = &params_.add("embed.weight", {V, d}, Init::kNormal);
  if (opts_.positions == SkeletonOptions::Positions::kLearned) {
    BSBR_CHECK(opts_.learned_positions > 0, "learned positions need a table size");
    pos_embed_ = &params_.add("pos_embed.weight", {opts_.learned_positions, d}, Init::kNormal);
  }
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    std::string p = "layers." + std::to_string(i);
    Block b;
    b.ln1 = params_.add_layer_norm(p + ".ln1", d);
    b.mixer = arch.make(cfg_, params_, p + ".attn");
    b.ln2 = params_.add_layer_norm(p + ".ln2", d);
    b.ff1 = params_.add_linear(p + ".ff1", d, cfg.ff_dim);
    b.ff2 = params_.add_linear(p + ".ff2", cfg.ff_dim, d);
    blocks_.push_back(std::move(b));
  }
  final_ln_ = params_.add_layer_norm("final_ln", d);
  if (!opts_.tied_lm_head) lm_head_ = params_.add_linear("lm_head", d, V, /*in_head=*/true);
  if (!opts_.shapes_only) params_.initialize(cfg.seed, cfg.init_std);
}

std::size_t Model::weight_bytes(ops::Context& ctx, const ModelConfig& cfg, const Architecture& arch, SkeletonOptions opts) {
  opts.shapes_only = true;
  const Model dry(ctx, cfg, arch, opts);
  std::size_t bytes = 0;
  for (const Param& p : dry.params_.all())
    bytes = checked_add(bytes, checked_mul(static_cast<std::size_t>(numel(p.value.shape())), sizeof(float), "the weights"), "the weights");
  return bytes;
}

const float* Model::head_weight() const { return opts_.tied_lm_head ? embed_->data() : lm_head_.weight->data(); }

Model::RowOps Model::make_row_ops(ops::Context& ctx, int64_t n, bool head_all_rows, bool step) const {
  const int64_t b = batch_, d = cfg_.hidden_dim, ff = cfg_.ff_dim, V = cfg_.vocab_size;
  const int64_t rows = step ? b : b * n;
  RowOps ro;
  ro.ln = ops::LayerNormOp(ctx, MatLayout::dense(rows, d), MatLayout::dense(rows, d), static_cast<float>(cfg_.layer_norm_eps));
  MatMulSpec s1{MatLayout::dense(rows, d), MatLayout::dense(d, ff), MatLayout::dense(rows, ff), true, 1.f,
                {PostOp::eltwise_op(opts_.ffn_activation)}};
  MatMulSpec s2{MatLayout::dense(rows, ff), MatLayout::dense(ff, d), MatLayout::dense(rows, d), true, 1.f, {PostOp::accumulate()}};
  // LM head: every row, or the last position of each sequence (row stride n*d).
  MatLayout hin = (step || head_all_rows) ? MatLayout::dense(rows, d) : MatLayout::strided(b, d, n * d);
  MatLayout w = opts_.tied_lm_head ? MatLayout::dense(V, d).transposed() : MatLayout::dense(d, V);
  MatMulSpec sh{hin, w, MatLayout::dense(hin.rows, V), !opts_.tied_lm_head, 1.f, {}};
  if (step) {
    for (const Block& blk : blocks_) {
      ro.step_ff1.emplace_back(ctx, s1, blk.ff1.weight->data());
      ro.step_ff2.emplace_back(ctx, s2, blk.ff2.weight->data());
    }
    ro.head = MatMul(ctx, sh, head_weight());
  } else {
    ro.ff1 = MatMul(ctx, s1);
    ro.ff2 = MatMul(ctx, s2);
    ro.head = MatMul(ctx, sh);
  }
  return ro;
}

void Model::ensure_positions(ops::Context& ctx, int64_t positions) {
  if (opts_.positions != SkeletonOptions::Positions::kSinusoidal) return;
  // Exactly the point's positions: a table that grows with n ([P, d], 64 MiB at P = 65,536), so it
  // is part of the run's working memory (activations), not of the weights.
  positions_ = ctx.tensor(MemCategory::kActivations, {positions, cfg_.hidden_dim});
  ops::sinusoidal_positions(0, positions, cfg_.hidden_dim, positions_.data());
}

void Model::prepare(ops::Context& ctx, const RunShape& shape, LogitsMode logits) {
  BSBR_CHECK(!shape.prefill_lengths.empty(), "RunShape without a prefill length");
  release(ctx);
  batch_ = shape.batch;
  logits_mode_ = logits;
  const int64_t b = batch_, d = cfg_.hidden_dim, ff = cfg_.ff_dim, V = cfg_.vocab_size;
  const int64_t maxn = shape.max_prefill();
  ensure_positions(ctx, std::max(maxn, shape.capacity));
  x_ = ctx.tensor(MemCategory::kActivations, {b, maxn, d});
  h_ = ctx.tensor(MemCategory::kActivations, {b, maxn, d});
  f_ = ctx.tensor(MemCategory::kActivations, {b, maxn, ff});
  logits_ = ctx.tensor(MemCategory::kActivations, logits == LogitsMode::kAll ? Shape{b, maxn, V} : Shape{b, V});
  for (int64_t n : shape.prefill_lengths)
    if (!prefill_ops_.count(n)) prefill_ops_.emplace(n, make_row_ops(ctx, n, logits == LogitsMode::kAll, false));
  has_step_ = shape.capacity > 0;
  if (has_step_) {
    xs_ = ctx.tensor(MemCategory::kActivations, {b, d});
    hs_ = ctx.tensor(MemCategory::kActivations, {b, d});
    fs_ = ctx.tensor(MemCategory::kActivations, {b, ff});
    step_ops_ = make_row_ops(ctx, 1, false, true);
  }
  for (Block& blk : blocks_) blk.mixer->prepare(ctx, shape);
  if (shape.snapshot && has_step_)
    for (Block& blk : blocks_)
      for (Tensor* t : blk.mixer->overwritten_state())
        if (!t->empty()) snapshot_.emplace_back(t, ctx.tensor(MemCategory::kSnapshot, t->shape()));
}

void Model::save_state() {
  BSBR_CHECK(has_step_, "save_state() on a model prepared without decode capacity");
  for (auto& [state, copy] : snapshot_) std::copy(state->data(), state->data() + state->size(), copy.data());
}

void Model::restore_state() {
  BSBR_CHECK(has_step_, "restore_state() on a model prepared without decode capacity");
  for (auto& [state, copy] : snapshot_) std::copy(copy.data(), copy.data() + copy.size(), state->data());
}

void Model::release(ops::Context& ctx) {
  snapshot_.clear();
  for (Block& blk : blocks_) blk.mixer->release();
  prefill_ops_.clear();
  positions_.reset();
  step_ops_ = RowOps{};
  has_step_ = false;
  for (Tensor* t : {&x_, &h_, &f_, &logits_, &xs_, &hs_, &fs_}) t->reset();
}

void Model::embed(const int32_t* tokens, int64_t count, int64_t first_pos, float* out) const {
  const int64_t d = cfg_.hidden_dim;
  for (int64_t i = 0; i < count; ++i)
    BSBR_CHECK(tokens[i] >= 0 && tokens[i] < cfg_.vocab_size, "token id out of range: " + std::to_string(tokens[i]));
  if (pos_embed_) {
    // Learned positions: positions past the table wrap around (speed sweeps past n_positions only;
    // the conversion study refuses such lengths for quality metrics and says so).
    const int64_t P = pos_embed_->dim(0);
    for (int64_t i = 0; i < count; ++i) {
      int64_t p = (first_pos + i) % P;
      ops::embed_tokens(tokens + i, 1, embed_->data(), d, pos_embed_->data() + p * d, 0, out + i * d, d);
    }
  } else {
    ops::embed_tokens(tokens, count, embed_->data(), d, positions_.data(), first_pos, out, d);
  }
}

void Model::run_blocks(ops::Context& ctx, const RowOps& ro, float* x, float* h, float* f, int64_t n, bool step, int64_t pos) {
  const int64_t rows = batch_ * n, d = cfg_.hidden_dim;
  const bool capture = !step && (capture_.mixer_inputs || capture_.residuals);
  if (capture) BSBR_CHECK(rows <= capture_.capacity_rows, "capture buffers hold " + std::to_string(capture_.capacity_rows) + " rows, prefill has " + std::to_string(rows));
  for (std::size_t l = 0; l < blocks_.size(); ++l) {
    Block& blk = blocks_[l];
    const std::size_t layer_offset = l * static_cast<std::size_t>(capture_.capacity_rows * d);
    ro.ln.run(ctx, x, blk.ln1.gamma->data(), blk.ln1.beta->data(), h);
    if (capture && capture_.mixer_inputs) std::copy(h, h + rows * d, capture_.mixer_inputs + layer_offset);
    if (step)
      blk.mixer->step(ctx, h, x, pos);
    else
      blk.mixer->prefill(ctx, h, x, n);
    ro.ln.run(ctx, x, blk.ln2.gamma->data(), blk.ln2.beta->data(), h);
    (step ? ro.step_ff1[l] : ro.ff1).run(ctx, h, blk.ff1.weight->data(), f, blk.ff1.bias->data());
    (step ? ro.step_ff2[l] : ro.ff2).run(ctx, f, blk.ff2.weight->data(), x, blk.ff2.bias->data());
    if (capture && capture_.residuals) std::copy(x, x + rows * d, capture_.residuals + layer_offset);
  }
  ro.ln.run(ctx, x, final_ln_.gamma->data(), final_ln_.beta->data(), h);
}

void Model::prefill(ops::Context& ctx, const int32_t* tokens, int64_t n) {
  auto it = prefill_ops_.find(n);
  BSBR_CHECK(it != prefill_ops_.end(), "prefill length " + std::to_string(n) + " was not prepared; add it to RunShape");
  const RowOps& ro = it->second;
  const int64_t d = cfg_.hidden_dim;
  for (int64_t b = 0; b < batch_; ++b) embed(tokens + b * n, n, 0, x_.data() + b * n * d);
  run_blocks(ctx, ro, x_.data(), h_.data(), f_.data(), n, false, 0);
  // Head input: the final hidden states of every row, or (row stride n*d) each sequence's last.
  const float* hin = logits_mode_ == LogitsMode::kAll ? h_.data() : h_.data() + (n - 1) * d;
  ro.head.run(ctx, hin, head_weight(), logits_.data(), opts_.tied_lm_head ? nullptr : lm_head_.bias->data());
  last_n_ = n;
}

void Model::step(ops::Context& ctx, const int32_t* tokens, int64_t pos) {
  BSBR_CHECK(has_step_, "step() on a model prepared without decode capacity");
  const int64_t d = cfg_.hidden_dim;
  // One held team for the whole step (ops/team.hpp): its dozen dependent products hand their parts
  // to threads that wait between them, instead of opening an OpenMP region each. A caller that
  // already holds it (the runner holds it across a sample's steps) keeps it: this hold then runs inline.
  ctx.hold_team([&] {
    for (int64_t b = 0; b < batch_; ++b) embed(tokens + b, 1, pos, xs_.data() + b * d);
    run_blocks(ctx, step_ops_, xs_.data(), hs_.data(), fs_.data(), 1, true, pos);
    step_ops_.head.run(ctx, hs_.data(), head_weight(), logits_.data(), opts_.tied_lm_head ? nullptr : lm_head_.bias->data());
  });
}

void Model::argmax(int32_t* out) const { ops::argmax_rows(logits_.data(), batch_, cfg_.vocab_size, cfg_.vocab_size, out); }

double Model::prefill_flops(int64_t n) const {
  const double b = static_cast<double>(batch_), d = cfg_.hidden_dim, ff = cfg_.ff_dim, V = cfg_.vocab_size;
  double per_layer_ffn = 2.0 * n * d * ff * 2.0;  // W1 and W2
  double total = 0;
  for (const Block& blk : blocks_) total += per_layer_ffn + blk.mixer->prefill_flops(n);
  return b * (total + 2.0 * d * V);  // LM head on the last position
}

double Model::step_flops(int64_t pos) const {
  const double b = static_cast<double>(batch_), d = cfg_.hidden_dim, ff = cfg_.ff_dim, V = cfg_.vocab_size;
  double total = 0;
  for (const Block& blk : blocks_) total += 2.0 * d * ff * 2.0 + blk.mixer->step_flops(pos);
  return b * (total + 2.0 * d * V);
}

std::size_t Model::state_bytes(int64_t n) const {
  std::size_t s = 0;
  for (const Block& blk : blocks_) s += blk.mixer->state_bytes(n);
  return s * static_cast<std::size_t>(batch_);
}

StepReads Model::step_reads(int64_t pos) const {
  StepReads total;
  for (const Block& blk : blocks_) {
    const StepReads r = blk.mixer->step_reads(pos);
    total.state_bytes += r.state_bytes * static_cast<double>(batch_);
    total.unread_param_bytes += r.unread_param_bytes;
  }
  return total;
}

std::size_t Model::estimate_bytes(const RunShape& shape, int threads, LogitsMode logits) const {
  // Checked: the validated ranges keep each term below 2^60, but the sum over layers may not fit.
  const char* what = "the memory estimate";
  const int64_t f = sizeof(float), b = shape.batch, d = cfg_.hidden_dim, ff = cfg_.ff_dim, V = cfg_.vocab_size;
  const int64_t n = shape.max_prefill();
  int64_t bytes = checked_add(checked_product(what, f, b, n, 2 * d + ff),
                              checked_product(what, f, b, logits == LogitsMode::kAll ? checked_mul(n, V, what) : V), what);
  if (opts_.positions == SkeletonOptions::Positions::kSinusoidal)  // the point's position table
    bytes = checked_add(bytes, checked_product(what, f, std::max(n, shape.capacity), d), what);
  if (shape.capacity > 0) {
    bytes = checked_add(bytes, checked_product(what, f, b, 2 * d + ff), what);
    // The step's packed weights (ops::MatMul's bound_weights), at most every matrix [K, N] once with
    // N rounded up to whole 16-column panels: the position table never, the embedding as a tied head.
    for (const Param& p : params_.all()) {
      if (p.value.shape().size() != 2 || &p.value == pos_embed_ || (&p.value == embed_ && !opts_.tied_lm_head)) continue;
      const int64_t K = &p.value == embed_ ? d : p.value.dim(0), N = &p.value == embed_ ? V : p.value.dim(1);
      bytes = checked_add(bytes, checked_mul(f, ops::gemv_packed_floats(K, N), what), what);
    }
  }
  std::size_t total = static_cast<std::size_t>(bytes);
  for (const Block& blk : blocks_) total = checked_add(total, blk.mixer->estimate_bytes(shape, threads), what);
  return total;
}

}  // namespace bsbr

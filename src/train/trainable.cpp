// LinearTrain and the training registry.
#include "train/trainable.hpp"

#include "core/errors.hpp"
#include "train/bsbr_grad.hpp"
#include "train/deltanet_grad.hpp"
#include "train/gau_grad.hpp"
#include "train/linear_attention_grad.hpp"
#include "train/softmax_attention_grad.hpp"

namespace bsbr::train {

using ops::MatLayout;
using ops::MatMul;
using ops::PostOp;

Tensor SharedBuffers::take(ops::Context& ctx, const Shape& shape) {
  if (next_ == slots_.size()) slots_.push_back(ctx.tensor(category_, shape));
  Tensor& slot = slots_[next_++];
  BSBR_CHECK(numel(shape) <= slot.size(), "shared training buffer " + std::to_string(next_ - 1) + ": " + shape_str(shape) +
                                              " requested where an earlier block had " + shape_str(slot.shape()));
  return Tensor::view(slot, shape);
}

void SharedBuffers::clear() {
  slots_.clear();
  next_ = 0;
}

LinearTrain::LinearTrain(ops::Context& ctx, const ParamStore::LinearRef& lin, int64_t rows, int64_t in, int64_t out, bool accumulate)
    : lin_(lin) {
  const MatLayout x = MatLayout::dense(rows, in), y = MatLayout::dense(rows, out), w = MatLayout::dense(in, out);
  std::vector<PostOp> post;
  if (accumulate) post.push_back(PostOp::accumulate());
  fwd_ = MatMul(ctx, {x, w, y, true, 1.f, post});
  dw_ = MatMul(ctx, {x.transposed(), y, w, false, 1.f, {}});                         // [in, rows].[rows, out]
  dx_ = MatMul(ctx, {y, w.transposed(), x, false, 1.f, {}});                         // [rows, out].[out, in]
  dx_acc_ = MatMul(ctx, {y, w.transposed(), x, false, 1.f, {PostOp::accumulate()}});
  db_ = ops::ColumnSumOp(ctx, rows, out);
}

void LinearTrain::forward(ops::Context& ctx, const float* x, float* y) const { fwd_.run(ctx, x, lin_.weight->data(), y, lin_.bias->data()); }

void LinearTrain::backward(ops::Context& ctx, const float* x, const float* dy, Grads& grads, float* dx, bool accumulate_dx) const {
  dw_.run(ctx, x, dy, grads.of(*lin_.weight).data());
  db_.run(ctx, dy, grads.of(*lin_.bias).data());
  if (dx) (accumulate_dx ? dx_acc_ : dx_).run(ctx, dy, lin_.weight->data(), dx);
}

namespace {
Tensor* required(ParamStore& params, const std::string& name) {
  Param* p = params.find(name);
  BSBR_CHECK(p != nullptr, "training: parameter not registered: " + name);
  return &p->value;
}
}  // namespace

ParamStore::LinearRef find_linear(ParamStore& params, const std::string& prefix) {
  return {required(params, prefix + ".weight"), required(params, prefix + ".bias")};
}

ParamStore::LayerNormRef find_layer_norm(ParamStore& params, const std::string& prefix) {
  return {required(params, prefix + ".weight"), required(params, prefix + ".bias")};
}

ProjectedAttentionTrain::ProjectedAttentionTrain(const ModelConfig& cfg, ParamStore& params, const std::string& prefix)
    : cfg_(cfg),
      q_(find_linear(params, prefix + ".q_proj")),
      k_(find_linear(params, prefix + ".k_proj")),
      v_(find_linear(params, prefix + ".v_proj")),
      out_(find_linear(params, prefix + ".out_proj")) {}

void ProjectedAttentionTrain::prepare(ops::Context& ctx, MixerBuffers& buffers, int64_t batch, int64_t n) {
  release();
  const int64_t rows = batch * n, d = cfg_.hidden_dim;
  ops_ = {LinearTrain(ctx, q_, rows, d, d), LinearTrain(ctx, k_, rows, d, d), LinearTrain(ctx, v_, rows, d, d),
          LinearTrain(ctx, out_, rows, d, d, /*accumulate=*/true)};
  for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_}) *t = buffers.saved({rows, d});
  stat_ = buffers.saved({batch, cfg_.num_heads, n});
  for (Tensor* t : {&dq_, &dk_, &dv_, &do_}) *t = buffers.work({rows, d});
  saved_ = 4 * rows * d + batch * cfg_.num_heads * n;
  prepare_kernel(ctx, buffers, batch, n);
}

MixerFloats ProjectedAttentionTrain::floats(const ModelConfig& cfg, int64_t batch, int64_t n) {
  const double rows = static_cast<double>(batch) * static_cast<double>(n), d = static_cast<double>(cfg.hidden_dim);
  return {4 * rows * d + rows * static_cast<double>(cfg.num_heads), 4 * rows * d, 4 * rows};  // owned: 4 Linear ops' ones rows
}

void ProjectedAttentionTrain::release() {
  ops_ = Ops{};
  release_kernel();
  for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_, &dq_, &dk_, &dv_, &do_, &stat_}) t->reset();
  saved_ = 0;
}

void ProjectedAttentionTrain::forward(ops::Context& ctx, const float* x, float* out) {
  ops_.q.forward(ctx, x, q_buf_.data());
  ops_.k.forward(ctx, x, k_buf_.data());
  ops_.v.forward(ctx, x, v_buf_.data());
  kernel_forward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), o_buf_.data(), stat_.data());
  ops_.out.forward(ctx, o_buf_.data(), out);
}

void ProjectedAttentionTrain::backward(ops::Context& ctx, const float* x, const float* dout, float* dx, Grads& grads) {
  ops_.out.backward(ctx, o_buf_.data(), dout, grads, do_.data());
  kernel_backward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), o_buf_.data(), stat_.data(), do_.data(), dq_.data(), dk_.data(),
                  dv_.data());
  ops_.q.backward(ctx, x, dq_.data(), grads, dx);
  ops_.k.backward(ctx, x, dk_.data(), grads, dx, /*accumulate_dx=*/true);
  ops_.v.backward(ctx, x, dv_.data(), grads, dx, /*accumulate_dx=*/true);
}

void add_into(float* y, const float* x, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] += x[i];
}

std::unique_ptr<TrainableMixer> make_trainable_mixer(const std::string& arch, const ModelConfig& cfg, ParamStore& params,
                                                     const std::string& prefix) {
  if (arch == "Standard" || arch == "Hopfield" || arch == "SlidingWindow") return make_softmax_attention_train(arch, cfg, params, prefix);
  if (arch == "Linear") return make_linear_attention_train(cfg, params, prefix);
  if (arch == "GAU") return make_gau_train(cfg, params, prefix);
  if (arch == "BSBR") return make_bsbr_train(cfg, params, prefix);
  if (arch == "DeltaNet") return make_deltanet_train(cfg, params, prefix);
  return nullptr;
}

MixerFloats trainable_mixer_floats(const std::string& arch, const ModelConfig& cfg, int64_t batch, int64_t n, int threads) {
  if (arch == "Standard" || arch == "Hopfield" || arch == "SlidingWindow" || arch == "Linear") {
    MixerFloats f = ProjectedAttentionTrain::floats(cfg, batch, n);
    f.work += arch == "Linear" ? linear_attention_workspace_floats(cfg, threads) : softmax_attention_workspace_floats(cfg.head_dim(), threads);
    return f;
  }
  if (arch == "GAU") return gau_train_floats(cfg, batch, n, threads);
  if (arch == "BSBR") return bsbr_train_floats(cfg, batch, n, threads);
  if (arch == "DeltaNet") return deltanet_train_floats(cfg, batch, n, threads);
  throw UserError("training: no backward pass for architecture " + arch + " yet");
}

std::vector<std::string> trainable_architectures() { return {"BSBR", "Linear", "DeltaNet", "Standard", "SlidingWindow", "Hopfield", "GAU"}; }

}  // namespace bsbr::train

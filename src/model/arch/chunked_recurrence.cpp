// ChunkedRecurrence: projections, padded buffers, causal chunk mask and the block walk shared by
// Linear and DeltaNet.
#include "model/arch/chunked_recurrence.hpp"

#include <algorithm>
#include <cstring>

#include "core/errors.hpp"

namespace bsbr {

using ops::MatLayout;
using ops::MatMul;
using ops::MatMulSpec;
using ops::PostOp;

ChunkedRecurrence::ChunkedRecurrence(const ModelConfig& cfg, ParamStore& params, const std::string& prefix,
                                     std::vector<PostOp> qk_post_ops)
    : d_(cfg.hidden_dim), heads_(cfg.num_heads), dh_(cfg.head_dim()), chunk_(cfg.linear_chunk_size),
      qk_post_ops_(std::move(qk_post_ops)) {
  q_ = params.add_linear(prefix + ".q_proj", d_, d_);
  k_ = params.add_linear(prefix + ".k_proj", d_, d_);
  v_ = params.add_linear(prefix + ".v_proj", d_, d_);
  o_ = params.add_linear(prefix + ".out_proj", d_, d_);
}

std::vector<int64_t> ChunkedRecurrence::block_sizes(const RunShape& shape) const {
  std::vector<int64_t> sizes;
  auto add = [&](int64_t count) {
    if (count > 0 && std::find(sizes.begin(), sizes.end(), count) == sizes.end()) sizes.push_back(count);
  };
  for (int64_t n : shape.prefill_lengths) {
    const int64_t chunks = chunk_count(n);
    add(std::min(chunks, kChunksPerBlock));
    if (chunks > kChunksPerBlock) add(chunks % kChunksPerBlock);
  }
  return sizes;
}

int64_t ChunkedRecurrence::max_block(const RunShape& shape) const { return std::min(chunk_count(shape.max_prefill()), kChunksPerBlock); }

void ChunkedRecurrence::load_running_state(float* slot0, const float* running, int64_t size, bool first) {
  if (first)
    std::memset(slot0, 0, sizeof(float) * size);
  else
    std::memcpy(slot0, running, sizeof(float) * size);
}

ChunkedRecurrence::StepLayouts ChunkedRecurrence::step_layouts() const {
  const int64_t pairs = batch_ * heads_;
  return {MatLayout::batched(pairs, 1, dh_), MatLayout{pairs, dh_, 1, dh_, 1, 1}, MatLayout::batched(pairs, dh_, dh_)};
}

ops::BinaryOp ChunkedRecurrence::make_mask_op(ops::Context& ctx, int64_t count) const {
  const int64_t cc = chunk_ * chunk_;
  return ops::BinaryOp(ctx, ops::BinaryOp::Kind::kMul, MatLayout::dense(count, cc), MatLayout::dense(1, cc), MatLayout::dense(count, cc));
}

void ChunkedRecurrence::prepare(ops::Context& ctx, const RunShape& shape) {
  release();
  batch_ = shape.batch;
  const int64_t b = batch_, d = d_;
  rows_cap_ = buffer_rows(shape);
  for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_}) *t = ctx.tensor(MemCategory::kActivations, {b, rows_cap_, d});
  for (Tensor* t : {&q1_, &k1_, &v1_, &o1_}) *t = ctx.tensor(MemCategory::kActivations, {b, d});
  causal_mask_ = ctx.tensor(MemCategory::kActivations, {chunk_, chunk_});
  for (int64_t t = 0; t < chunk_; ++t)
    for (int64_t s = 0; s <= t; ++s) causal_mask_[t * chunk_ + s] = 1.0f;

  const MatLayout w = MatLayout::dense(d, d);
  for (int64_t n : shape.prefill_lengths) {
    if (by_length_.count(n)) continue;
    // x [b, n, d] (batch stride n*d) <-> buffers [b, rows_cap, d].
    const MatLayout x = MatLayout::dense(n, d).with_batch(b, n * d), buf = MatLayout::dense(n, d).with_batch(b, rows_cap_ * d);
    LengthOps lo;
    lo.q = MatMul(ctx, {x, w, buf, true, 1.f, qk_post_ops_});
    lo.k = MatMul(ctx, {x, w, buf, true, 1.f, qk_post_ops_});
    lo.v = MatMul(ctx, {x, w, buf, true, 1.f, {}});
    lo.out = MatMul(ctx, {buf, w, x, true, 1.f, {PostOp::accumulate()}});  // residual += o.Wo + bo
    by_length_.emplace(n, std::move(lo));
  }
  if (shape.capacity > 0) {
    const MatLayout x1 = MatLayout::dense(b, d);
    q1_op_ = MatMul(ctx, {x1, w, x1, true, 1.f, qk_post_ops_});
    k1_op_ = MatMul(ctx, {x1, w, x1, true, 1.f, qk_post_ops_});
    v1_op_ = MatMul(ctx, {x1, w, x1, true, 1.f, {}});
    out1_op_ = MatMul(ctx, {x1, w, x1, true, 1.f, {PostOp::accumulate()}});
  }
  prepare_core(ctx, shape);
}

void ChunkedRecurrence::release() {
  release_core();
  by_length_.clear();
  q1_op_ = k1_op_ = v1_op_ = out1_op_ = MatMul();
  for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_, &q1_, &k1_, &v1_, &o1_, &causal_mask_}) t->reset();
}

std::size_t ChunkedRecurrence::base_bytes(const RunShape& shape) const {
  const std::size_t f = sizeof(float), b = shape.batch;
  const std::size_t rows = buffer_rows(shape);
  return f * (4 * b * rows * d_ + 4 * b * d_ + chunk_ * chunk_);
}

void ChunkedRecurrence::prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) {
  auto it = by_length_.find(n);
  BSBR_CHECK(it != by_length_.end(), "prefill length " + std::to_string(n) + " not prepared");
  const LengthOps& lo = it->second;
  lo.q.run(ctx, x, q_.weight->data(), q_buf_.data(), q_.bias->data());
  lo.k.run(ctx, x, k_.weight->data(), k_buf_.data(), k_.bias->data());
  lo.v.run(ctx, x, v_.weight->data(), v_buf_.data(), v_.bias->data());
  // Zero the partial last chunk's padding rows (a longer earlier prefill may have left values there).
  const int64_t pad_rows = chunk_count(n) * chunk_ - n;
  if (pad_rows > 0)
    for (int64_t s = 0; s < batch_; ++s)
      for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_}) std::memset(t->data() + (s * rows_cap_ + n) * d_, 0, sizeof(float) * pad_rows * d_);
  prefill_core(ctx, x, n);
  lo.out.run(ctx, o_buf_.data(), o_.weight->data(), residual, o_.bias->data());
}

void ChunkedRecurrence::step(ops::Context& ctx, const float* x, float* residual, int64_t pos) {
  BSBR_CHECK(out1_op_.valid(), "step() without decode capacity");
  q1_op_.run(ctx, x, q_.weight->data(), q1_.data(), q_.bias->data());
  k1_op_.run(ctx, x, k_.weight->data(), k1_.data(), k_.bias->data());
  v1_op_.run(ctx, x, v_.weight->data(), v1_.data(), v_.bias->data());
  step_core(ctx, x);
  out1_op_.run(ctx, o1_.data(), o_.weight->data(), residual, o_.bias->data());
}

}  // namespace bsbr

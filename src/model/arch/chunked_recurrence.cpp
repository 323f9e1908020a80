// ChunkedRecurrence: projections, padded slab buffers, causal chunk mask, and the slab and block
// walk shared by Linear and DeltaNet.
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
                                     std::vector<PostOp> qk_post_ops, const chunked::PrefillTiling& tiling)
    : d_(cfg.hidden_dim), heads_(cfg.num_heads), dh_(cfg.head_dim()), chunk_(cfg.linear_chunk_size),
      tiling_slab_chunks_(std::max<int64_t>(1, tiling.slab_rows / cfg.linear_chunk_size)),
      qk_post_ops_(std::move(qk_post_ops)) {
  q_ = params.add_linear(prefix + ".q_proj", d_, d_);
  k_ = params.add_linear(prefix + ".k_proj", d_, d_);
  v_ = params.add_linear(prefix + ".v_proj", d_, d_);
  o_ = params.add_linear(prefix + ".out_proj", d_, d_);
  // A slab that spans a block holds whole blocks (no short block mid-sequence).
  if (tiling_slab_chunks_ > kChunksPerBlock) tiling_slab_chunks_ -= tiling_slab_chunks_ % kChunksPerBlock;
}

int64_t ChunkedRecurrence::slab_chunks(const RunShape& shape) const {
  return chunked::point_slab_chunks(tiling_slab_chunks_, shape.max_prefill(), chunk_);
}

std::set<std::pair<int64_t, int64_t>> ChunkedRecurrence::slab_shapes(const RunShape& shape) const {
  std::set<std::pair<int64_t, int64_t>> shapes;
  for (int64_t n : shape.prefill_lengths)
    for (const chunked::Slab& slab : chunked::plan_slabs(n, chunk_, slab_chunks(shape))) shapes.emplace(n, slab.rows);
  return shapes;
}

int64_t ChunkedRecurrence::block_chunks(const RunShape& shape, int threads) const {
  const int64_t slab = slab_chunks(shape), items = shape.batch * heads_ * slab;
  return std::clamp<int64_t>(items / (2 * std::max(1, threads)), 1, std::min(slab, kChunksPerBlock));
}

std::vector<int64_t> ChunkedRecurrence::block_sizes(const RunShape& shape) const {
  std::vector<int64_t> sizes;
  auto add = [&](int64_t count) {
    if (count > 0 && std::find(sizes.begin(), sizes.end(), count) == sizes.end()) sizes.push_back(count);
  };
  for (int64_t n : shape.prefill_lengths)
    for (const chunked::Slab& slab : chunked::plan_slabs(n, chunk_, slab_chunks(shape)))
      for (const auto& [offset, count] : chunked::split(slab.chunks, block_chunks_)) add(count);
  return sizes;
}

void ChunkedRecurrence::load_running_state(float* slot0, const float* running, int64_t size, bool first) {
  if (first)
    std::memset(slot0, 0, sizeof(float) * size);
  else
    std::memcpy(slot0, running, sizeof(float) * size);
}

ops::BinaryOp ChunkedRecurrence::make_mask_op(ops::Context& ctx, int64_t count) const {
  const int64_t cc = chunk_ * chunk_;
  return ops::BinaryOp(ctx, ops::BinaryOp::Kind::kMul, MatLayout::dense(count, cc), MatLayout::dense(1, cc), MatLayout::dense(count, cc));
}

void ChunkedRecurrence::prepare(ops::Context& ctx, const RunShape& shape) {
  release();
  batch_ = shape.batch;
  const int64_t b = batch_, d = d_;
  slab_chunks_ = slab_chunks(shape);
  slab_rows_ = slab_chunks_ * chunk_;
  block_chunks_ = block_chunks(shape, ctx.threads());
  for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_}) *t = ctx.tensor(MemCategory::kActivations, {b, slab_rows_, d});
  chunk_states_ = ctx.tensor(MemCategory::kActivations, {b * heads_, slab_chunks_ + 1, dh_, dh_});
  for (Tensor* t : {&q1_, &k1_, &v1_, &o1_}) *t = ctx.tensor(MemCategory::kActivations, {b, d});
  causal_mask_ = ctx.tensor(MemCategory::kActivations, {chunk_, chunk_});
  for (int64_t t = 0; t < chunk_; ++t)
    for (int64_t s = 0; s <= t; ++s) causal_mask_[t * chunk_ + s] = 1.0f;

  const MatLayout w = MatLayout::dense(d, d);
  for (const auto& [n, rows] : slab_shapes(shape)) {
    // A slab's rows of x [b, n, d] (batch stride n*d) <-> buffers [b, slab_rows, d].
    const MatLayout x = MatLayout::dense(rows, d).with_batch(b, n * d), buf = MatLayout::dense(rows, d).with_batch(b, slab_rows_ * d);
    SlabOps so;
    so.q = MatMul(ctx, {x, w, buf, true, 1.f, qk_post_ops_});
    so.k = MatMul(ctx, {x, w, buf, true, 1.f, qk_post_ops_});
    so.v = MatMul(ctx, {x, w, buf, true, 1.f, {}});
    so.out = MatMul(ctx, {buf, w, x, true, 1.f, {PostOp::accumulate()}});  // residual += o.Wo + bo
    by_slab_.emplace(std::make_pair(n, rows), std::move(so));
  }
  if (shape.capacity > 0) {
    const MatLayout x1 = MatLayout::dense(b, d);
    // A step's products are bound to their weights (ops::MatMul's bound_weights: packed for the hand GEMV).
    q1_op_ = MatMul(ctx, {x1, w, x1, true, 1.f, qk_post_ops_}, q_.weight->data());
    k1_op_ = MatMul(ctx, {x1, w, x1, true, 1.f, qk_post_ops_}, k_.weight->data());
    v1_op_ = MatMul(ctx, {x1, w, x1, true, 1.f, {}}, v_.weight->data());
    out1_op_ = MatMul(ctx, {x1, w, x1, true, 1.f, {PostOp::accumulate()}}, o_.weight->data());
  }
  prepare_core(ctx, shape);
}

void ChunkedRecurrence::release() {
  release_core();
  by_slab_.clear();
  for (MatMul* m : {&q1_op_, &k1_op_, &v1_op_, &out1_op_}) *m = MatMul();
  for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_, &chunk_states_, &q1_, &k1_, &v1_, &o1_, &causal_mask_}) t->reset();
}

std::size_t ChunkedRecurrence::base_bytes(const RunShape& shape) const {
  const std::size_t f = sizeof(float), b = shape.batch;
  const std::size_t rows = buffer_rows(shape), slots = slab_chunks(shape) + 1;
  return f * (4 * b * rows * d_ + b * heads_ * slots * dh_ * dh_ + 4 * b * d_ + chunk_ * chunk_);
}

void ChunkedRecurrence::prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) {
  for (const chunked::Slab& slab : slabs(n)) {
    auto it = by_slab_.find({n, slab.rows});
    BSBR_CHECK(it != by_slab_.end(), "prefill length " + std::to_string(n) + " not prepared");
    const SlabOps& so = it->second;
    const float* xs = x + slab.row0 * d_;  // the slab's first row of sequence 0
    so.q.run(ctx, xs, q_.weight->data(), q_buf_.data(), q_.bias->data());
    so.k.run(ctx, xs, k_.weight->data(), k_buf_.data(), k_.bias->data());
    so.v.run(ctx, xs, v_.weight->data(), v_buf_.data(), v_.bias->data());
    // Zero a partial last chunk's padding rows (an earlier slab or prefill may have left values there).
    const int64_t pad_rows = slab.chunks * chunk_ - slab.rows;
    if (pad_rows > 0)
      for (int64_t s = 0; s < batch_; ++s)
        for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_})
          std::memset(t->data() + (s * slab_rows_ + slab.rows) * d_, 0, sizeof(float) * pad_rows * d_);
    prefill_slab(ctx, xs, n, slab);
    so.out.run(ctx, o_buf_.data(), o_.weight->data(), residual + slab.row0 * d_, o_.bias->data());
  }
}

void ChunkedRecurrence::step(ops::Context& ctx, const float* x, float* residual, int64_t pos) {
  BSBR_CHECK(out1_op_.valid(), "step() without decode capacity");
  ops::MatMul::run_together(ctx, {{q1_op_, x, q_.weight->data(), q1_.data(), q_.bias->data()},
                                  {k1_op_, x, k_.weight->data(), k1_.data(), k_.bias->data()},
                                  {v1_op_, x, v_.weight->data(), v1_.data(), v_.bias->data()}});
  step_core(ctx, x);
  out1_op_.run(ctx, o1_.data(), o_.weight->data(), residual, o_.bias->data());
}

}  // namespace bsbr

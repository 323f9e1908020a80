// SoftmaxAttention: projections, tiled causal attention, KV-cache decode.
#include "model/arch/softmax_attention.hpp"

#include <algorithm>

#include "core/errors.hpp"

namespace bsbr {

using ops::MatLayout;

SoftmaxAttention::SoftmaxAttention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, float scale)
    : d_(cfg.hidden_dim), heads_(cfg.num_heads), dh_(cfg.head_dim()), scale_(scale), proj_(params, prefix, cfg.hidden_dim) {}

SoftmaxAttention::LengthOps SoftmaxAttention::make_length_ops(ops::Context& ctx, int64_t n) const {
  const int64_t b = batch_, d = d_;
  // x [b, n, d] -> q [b, n, d]; k, v written straight into the caches [b, cache_rows, d].
  LengthOps lo;
  lo.proj = proj_.make_ops(ctx, MatLayout::dense(n, d).with_batch(b, n * d), MatLayout::dense(n, d).with_batch(b, cache_rows_ * d));
  ops::AttentionGeometry g = ops::AttentionGeometry::packed_heads(b, heads_, dh_, scale_);
  g.q_batch_stride = g.o_batch_stride = n * d;
  g.kv_batch_stride = cache_rows_ * d;
  g.q_tile = g.k_tile = tile_for(n, kPrefillTile);
  g.k_block = key_block(n);
  lo.attn = ops::CausalAttention(ctx, g, n);
  return lo;
}

void SoftmaxAttention::prepare(ops::Context& ctx, const RunShape& shape) {
  release();
  batch_ = shape.batch;
  const int64_t b = batch_, maxn = shape.max_prefill();
  cache_rows_ = cache_rows(shape);
  decode_tile_ = tile_for(shape.capacity, kDecodeKeyTile);
  k_cache_ = ctx.tensor(MemCategory::kState, {b, cache_rows_, d_});
  v_cache_ = ctx.tensor(MemCategory::kState, {b, cache_rows_, d_});
  q_buf_ = ctx.tensor(MemCategory::kActivations, {b, maxn, d_});
  o_buf_ = ctx.tensor(MemCategory::kActivations, {b, maxn, d_});
  for (int64_t n : shape.prefill_lengths) by_length_.emplace(n, make_length_ops(ctx, n));
  if (shape.capacity > 0) {
    // One new row per sequence, written at the cache row of its position (row stride = batch stride).
    proj1_ = proj_.make_step_ops(ctx, MatLayout::dense(b, d_), MatLayout::strided(b, d_, cache_rows_ * d_));
    ops::AttentionGeometry g = ops::AttentionGeometry::packed_heads(b, heads_, dh_, scale_);
    g.q_batch_stride = g.o_batch_stride = d_;
    g.kv_batch_stride = cache_rows_ * d_;
    g.q_tile = 1;
    g.k_tile = decode_tile_;
    decode_attn_ = ops::CausalAttention(ctx, g, 1);
    q1_buf_ = ctx.tensor(MemCategory::kActivations, {b, d_});
    o1_buf_ = ctx.tensor(MemCategory::kActivations, {b, d_});
  }
}

void SoftmaxAttention::release() {
  by_length_.clear();
  proj1_ = AttentionProjections::Ops{};
  decode_attn_ = ops::CausalAttention();
  for (Tensor* t : {&q_buf_, &o_buf_, &k_cache_, &v_cache_, &q1_buf_, &o1_buf_}) t->reset();
}

void SoftmaxAttention::prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) {
  auto it = by_length_.find(n);
  BSBR_CHECK(it != by_length_.end(), "prefill length " + std::to_string(n) + " not prepared");
  const LengthOps& lo = it->second;
  proj_.project(ctx, lo.proj, x, q_buf_.data(), k_cache_.data(), v_cache_.data());
  lo.attn.run(ctx, q_buf_.data(), k_cache_.data(), v_cache_.data(), o_buf_.data(), 0, n);
  proj_.output(ctx, lo.proj, o_buf_.data(), residual);
}

void SoftmaxAttention::step(ops::Context& ctx, const float* x, float* residual, int64_t pos) {
  BSBR_CHECK(decode_attn_.geometry().q_tile == 1, "step() without decode capacity");
  BSBR_CHECK(pos < cache_rows_, "KV cache full: position " + std::to_string(pos) + " >= " + std::to_string(cache_rows_));
  proj_.project(ctx, proj1_, x, q1_buf_.data(), k_cache_.data() + pos * d_, v_cache_.data() + pos * d_);
  decode_attn_.run(ctx, q1_buf_.data(), k_cache_.data(), v_cache_.data(), o1_buf_.data(), pos, 1);
  proj_.output(ctx, proj1_, o1_buf_.data(), residual);
}

// State: K and V rows for every position seen (the cache is allocated with padding up to kCachePad
// rows beyond that; this is the formula's live size).
std::size_t SoftmaxAttention::state_bytes(int64_t n) const { return 2 * sizeof(float) * static_cast<std::size_t>(n * d_); }

std::size_t SoftmaxAttention::estimate_bytes(const RunShape& shape, int threads) const {
  const std::size_t f = sizeof(float), b = shape.batch, maxn = shape.max_prefill();
  const std::size_t rows = cache_rows(shape);
  // The attention ops' workspaces, as prepare() creates them: one per prefill length, one for decode.
  ops::AttentionGeometry g = ops::AttentionGeometry::packed_heads(shape.batch, heads_, dh_, scale_);
  int64_t tiles = 0;
  for (int64_t n : shape.prefill_lengths) {
    g.q_tile = g.k_tile = tile_for(n, kPrefillTile);
    g.k_block = key_block(n);
    tiles += ops::CausalAttention::workspace_floats(g, n, threads);
  }
  if (shape.capacity > 0) {
    g.q_tile = 1;
    g.k_tile = tile_for(shape.capacity, kDecodeKeyTile);
    g.k_block = 0;
    tiles += ops::CausalAttention::workspace_floats(g, 1, threads);
  }
  return f * (b * (2 * rows * d_ + 2 * maxn * d_ + 2 * d_) + static_cast<std::size_t>(tiles));
}

// Projections 4 * n * d^2 MACs; scores and weighted sum over the n(n+1)/2 causal pairs per head,
// dh MACs each.
double SoftmaxAttention::prefill_flops(int64_t n) const {
  const double N = static_cast<double>(n), d = static_cast<double>(d_);
  return 2.0 * (4.0 * N * d * d + 2.0 * (N * (N + 1) / 2.0) * d);
}

double SoftmaxAttention::step_flops(int64_t pos) const {
  const double d = static_cast<double>(d_), keys = static_cast<double>(pos + 1);
  return 2.0 * (4.0 * d * d + 2.0 * keys * d);
}

}  // namespace bsbr

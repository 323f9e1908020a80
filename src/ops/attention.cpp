// Attention ops: tiled causal attention with an online softmax; chunk-local attention.
#include "ops/attention.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/errors.hpp"
#include "ops/kernels.hpp"

namespace bsbr::ops {

CausalAttention::CausalAttention(Context& ctx, const AttentionGeometry& g, int64_t max_queries) : g_(g) {
  BSBR_CHECK(max_queries > 0 && g.head_dim > 0 && g.q_tile > 0 && g.k_tile > 0, "bad attention geometry");
  q_tile_ = std::min(g.q_tile, max_queries);
  value_dim_ = g.value_dim > 0 ? g.value_dim : g.head_dim;
  const int64_t dh = g.head_dim, dv = value_dim_, kt = g.k_tile;
  MatMulSpec qk;
  qk.a = MatLayout::dense(q_tile_, dh);
  qk.b = MatLayout::strided(kt, dh, g.kv_row_stride).transposed();  // K tile read as [dh, k_tile]
  qk.c = MatLayout::dense(q_tile_, kt);
  qk.scale = g.scale;
  qk_ = MatMul(ctx, qk);
  MatMulSpec pv;
  pv.a = MatLayout::dense(q_tile_, kt);
  pv.b = MatLayout::strided(kt, dv, g.kv_row_stride);
  pv.c = MatLayout::dense(q_tile_, dv);
  pv.post_ops = {PostOp::accumulate()};
  pv_ = MatMul(ctx, pv);
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    w.q = ctx.tensor(MemCategory::kActivations, {q_tile_, dh});
    w.s = ctx.tensor(MemCategory::kActivations, {q_tile_, kt});
    w.o = ctx.tensor(MemCategory::kActivations, {q_tile_, dv});
    w.m = ctx.tensor(MemCategory::kActivations, {q_tile_});
    w.l = ctx.tensor(MemCategory::kActivations, {q_tile_});
    w.lo.resize(q_tile_);
    w.hi.resize(q_tile_);
  }
}

void CausalAttention::run(Context& ctx, const float* q, const float* k, const float* v, float* o, int64_t q_pos,
                          int64_t q_count) const {
  BSBR_CHECK(qk_.valid(), "attention used before prepare()");
  const int64_t dh = g_.head_dim, dv = value_dim_, kt = g_.k_tile, qt = q_tile_;
  const int64_t n_qtiles = (q_count + qt - 1) / qt;
  const int64_t items = g_.batch * g_.heads * n_qtiles;
  const int64_t last_pos = q_pos + q_count - 1;
  // Items are ordered so the most expensive (latest) query tiles start first. Tiny calls (a decode
  // step over a short cache, or over a chunk of 32 keys) run on the calling thread: a fork/join
  // would cost more than the work. Work bound: every query against at most last_pos + 1 (or
  // window + 1) keys, dh multiply-adds per score and dv per weighted value.
  const int64_t max_keys = g_.window < 0 ? last_pos + 1 : std::min(g_.window + 1, last_pos + 1);
  const double work = 2.0 * static_cast<double>(g_.batch * g_.heads * q_count) * static_cast<double>(max_keys) * (dh + dv);
  const bool parallel = items > 1 && work >= kSerialWorkThreshold;
  parallel_items(ctx, items, parallel, [&](int64_t item) {
    Workspace& w = ws_[Context::thread_id()];
    const int64_t qi = n_qtiles - 1 - item / (g_.batch * g_.heads);
    const int64_t bh = item % (g_.batch * g_.heads);
    const int64_t b = bh / g_.heads, h = bh % g_.heads;
    const int64_t row0 = qi * qt;                       // first query row of the tile (relative)
    const int64_t rows = std::min(qt, q_count - row0);  // valid rows
    const float* qb = q + b * g_.q_batch_stride + h * dh;
    const float* kb = k + b * g_.kv_batch_stride + h * dh;
    const float* vb = v + b * g_.kv_batch_stride + h * dv;
    float* ob = o + b * g_.o_batch_stride + h * dv;

    // Dense copy of the query tile; padded rows repeat the last valid query (finite, discarded).
    for (int64_t r = 0; r < qt; ++r) {
      int64_t src = row0 + std::min(r, rows - 1);
      std::memcpy(w.q.data() + r * dh, qb + src * g_.q_row_stride, sizeof(float) * dh);
      int64_t t = q_pos + src;
      w.hi[r] = t;
      w.lo[r] = g_.window < 0 ? 0 : std::max<int64_t>(0, t - g_.window);
    }
    std::fill(w.m.data(), w.m.data() + qt, kNegInf);
    std::fill(w.l.data(), w.l.data() + qt, 0.0f);
    std::fill(w.o.data(), w.o.data() + qt * dv, 0.0f);

    const int64_t first_t = q_pos + row0, tile_last_t = std::min(q_pos + row0 + rows - 1, last_pos);
    const int64_t key_lo = g_.window < 0 ? 0 : std::max<int64_t>(0, first_t - g_.window);
    for (int64_t k0 = key_lo / kt * kt; k0 <= tile_last_t; k0 += kt) {
      qk_.run(ctx, w.q.data(), kb + k0 * g_.kv_row_stride, w.s.data());
      // Mask only where some row cannot see the whole tile.
      bool full = (k0 + kt - 1 <= first_t) && (g_.window < 0 || k0 >= tile_last_t - g_.window);
      online_softmax_update(w.s.data(), qt, kt, k0, full ? nullptr : w.lo.data(), full ? nullptr : w.hi.data(),
                            w.m.data(), w.l.data(), w.o.data(), dv);
      pv_.run(ctx, w.s.data(), vb + k0 * g_.kv_row_stride, w.o.data());
    }
    for (int64_t r = 0; r < rows; ++r) {
      float inv = 1.0f / w.l[r];
      const float* src = w.o.data() + r * dv;
      float* dst = ob + (row0 + r) * g_.o_row_stride;
      for (int64_t i = 0; i < dv; ++i) dst[i] = src[i] * inv;
    }
  });
}

int64_t CausalAttention::workspace_floats(const AttentionGeometry& g, int64_t max_queries, int threads) {
  const int64_t qt = std::min(g.q_tile, max_queries), dv = g.value_dim > 0 ? g.value_dim : g.head_dim;
  return static_cast<int64_t>(threads) * qt * (g.head_dim + g.k_tile + dv + 2);
}

// ---------------------------------------------------------------------------------------------
DecodeAttention::DecodeAttention(Context& ctx, const DecodeAttentionGeometry& g) : g_(g) {
  BSBR_CHECK(g.batch > 0 && g.heads > 0 && g.head_dim > 0 && g.capacity > 0, "bad decode attention geometry");
  const int64_t h = g.heads, dh = g.head_dim, dv = g.value_dim > 0 ? g.value_dim : g.head_dim, cap = g.capacity;
  g_.value_dim = dv;
  // One sequence, every head as a batch entry: q head h at column h*dh, key/value head h at
  // column h*dh / h*dv of rows with stride kv_row_stride.
  const MatLayout q = MatLayout::dense(1, dh).with_batch(h, dh);
  const MatLayout keys = MatLayout::strided(cap, dh, g.kv_row_stride).with_batch(h, dh);
  const MatLayout values = MatLayout::strided(cap, dv, g.kv_row_stride).with_batch(h, dv);
  const MatLayout scores = MatLayout::batched(h, 1, cap), out = MatLayout::dense(1, dv).with_batch(h, dv);
  qk_ = MatMul(ctx, {q, keys.transposed(), scores, false, g.scale, {}});
  softmax_ = SoftmaxOp(ctx, MatLayout::dense(g.batch * h, cap));
  pv_ = MatMul(ctx, {scores, values, out, false, 1.f, {}});
  scores_ = ctx.tensor(MemCategory::kActivations, {g.batch, h, cap});
}

void DecodeAttention::run(Context& ctx, const float* q, const float* k, const float* v, float* o, int64_t len) const {
  BSBR_CHECK(qk_.valid(), "decode attention used before prepare()");
  BSBR_CHECK(len >= 1 && len <= g_.capacity, "decode attention: " + std::to_string(len) + " keys, capacity " + std::to_string(g_.capacity));
  const int64_t rows = g_.batch * g_.heads, cap = g_.capacity;
  float* scores = scores_.data();
  for (int64_t b = 0; b < g_.batch; ++b) qk_.run(ctx, q + b * g_.q_batch_stride, k + b * g_.kv_batch_stride, scores + b * g_.heads * cap);
  for (int64_t r = 0; r < rows; ++r) std::fill(scores + r * cap + len, scores + (r + 1) * cap, kNegInf);
  softmax_.run(ctx, scores, scores);
  for (int64_t b = 0; b < g_.batch; ++b) pv_.run(ctx, scores + b * g_.heads * cap, v + b * g_.kv_batch_stride, o + b * g_.o_batch_stride);
}

// ---------------------------------------------------------------------------------------------
ChunkLocalAttention::ChunkLocalAttention(Context& ctx, const ChunkAttentionGeometry& g, int64_t chunks) : g_(g) {
  BSBR_CHECK(chunks > 0 && g.chunk > 0 && g.heads > 0 && g.head_dim > 0, "bad chunk attention geometry");
  const int64_t B = g.chunk, dh = g.head_dim;
  // Chunk c of head h: rows [c*B, (c+1)*B), columns [h*dh, (h+1)*dh) (the head offset is applied
  // to the pointers in run()).
  const MatLayout rows = MatLayout::chunks(chunks, B, dh, g.row_stride);
  const MatLayout scores = MatLayout::batched(chunks, B, B);
  mask_ = ctx.tensor(MemCategory::kActivations, {chunks, B, B});
  scores_ = ctx.tensor(MemCategory::kActivations, {chunks, B, B});
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t r = 0; r < B; ++r)
      for (int64_t s = 0; s < B; ++s) mask_[(c * B + r) * B + s] = s <= r ? 0.0f : kNegInf;
  qk_ = MatMul(ctx, {rows, rows.transposed(), scores, false, g.scale, {PostOp::add(scores)}});
  softmax_ = SoftmaxOp(ctx, MatLayout::dense(chunks * B, B));
  pv_ = MatMul(ctx, {scores, rows, rows, false, 1.f, {}});
}

void ChunkLocalAttention::run(Context& ctx, const float* q, const float* k, const float* v, float* o) const {
  BSBR_CHECK(qk_.valid(), "chunk attention used before prepare()");
  for (int64_t h = 0; h < g_.heads; ++h) {
    const int64_t col = h * g_.head_dim;
    qk_.run(ctx, q + col, k + col, scores_.data(), nullptr, {mask_.data()});
    softmax_.run(ctx, scores_.data(), scores_.data());
    pv_.run(ctx, scores_.data(), v + col, o + col);
  }
}

}  // namespace bsbr::ops

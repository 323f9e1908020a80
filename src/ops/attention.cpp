// Attention ops: tiled causal attention with an online softmax; chunk-local attention.
#include "ops/attention.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/errors.hpp"
#include "ops/gemv.hpp"
#include "ops/kernels.hpp"

namespace bsbr::ops {

namespace {

// Merges the key segments of one (sequence, head): `segments` slots of [qt, dv] outputs, then m [qt]
// and l [qt], each rescaled to the common max (a segment with no visible key for a row has
// m = -inf and weighs 0); writes o rows r < rows = acc / l (row stride o_row_stride).
void merge_segments(const float* base, int64_t segments, int64_t qt, int64_t rows, int64_t dv, float* o, int64_t o_row_stride) {
  const int64_t part = qt * (dv + 2);
  for (int64_t r = 0; r < rows; ++r) {
    float m = kNegInf;
    for (int64_t seg = 0; seg < segments; ++seg) m = std::max(m, base[seg * part + qt * dv + r]);
    float* out = o + r * o_row_stride;
    const float w0 = std::exp(base[qt * dv + r] - m);
    float l = base[qt * dv + qt + r] * w0;
    for (int64_t i = 0; i < dv; ++i) out[i] = base[r * dv + i] * w0;
    for (int64_t seg = 1; seg < segments; ++seg) {
      const float* p = base + seg * part;
      const float ws = std::exp(p[qt * dv + r] - m);
      l += ws * p[qt * dv + qt + r];
      for (int64_t i = 0; i < dv; ++i) out[i] += ws * p[r * dv + i];
    }
    const float inv = 1.0f / l;
    for (int64_t i = 0; i < dv; ++i) out[i] *= inv;
  }
}

// Floats of a workspace's score row: a key block's scores, or every head's scores of a
// single-query pass ([heads, kDecodeSpan]) when that path can run.
int64_t score_floats(const AttentionGeometry& g, int64_t q_tile, int64_t key_block) {
  return q_tile == 1 ? std::max(key_block, g.heads * CausalAttention::kDecodeSpan) : key_block;
}

// Key segments per sequence of the single-query path (0: the path is off for this geometry).
int64_t single_query_segments(const AttentionGeometry& g, int64_t max_queries, int threads) {
  if (std::min(g.q_tile, max_queries) != 1 || g.k_tile % CausalAttention::kDecodeKeys != 0) return 0;
  return std::max(CausalAttention::max_segments(g, max_queries, threads) * g.heads, static_cast<int64_t>(threads));
}

}  // namespace

CausalAttention::CausalAttention(Context& ctx, const AttentionGeometry& g, int64_t max_queries) : g_(g) {
  BSBR_CHECK(max_queries > 0 && g.head_dim > 0 && g.q_tile > 0 && g.k_tile > 0, "bad attention geometry");
  q_tile_ = std::min(g.q_tile, max_queries);
  value_dim_ = g.value_dim > 0 ? g.value_dim : g.head_dim;
  const int64_t dh = g.head_dim, dv = value_dim_, kt = g.k_tile;
  k_block_ = g.k_block > 0 ? g.k_block : kt;
  BSBR_CHECK(k_block_ % kt == 0, "attention key block " + std::to_string(k_block_) + " is not a multiple of the key tile " + std::to_string(kt));
  SingleThreadOps single(ctx);  // one tile product per worker thread, inside parallel_items
  // S[q_tile, keys] = scale * Q . K^T (the K rows read as [dh, keys]); O[q_tile, dv] += P . V.
  auto products = [&](int64_t keys, MatMul& qk, MatMul& pv) {
    qk = MatMul(ctx, {MatLayout::dense(q_tile_, dh), MatLayout::strided(keys, dh, g.kv_row_stride).transposed(), MatLayout::dense(q_tile_, keys),
                      false, g.scale, {}});
    pv = MatMul(ctx, {MatLayout::dense(q_tile_, keys), MatLayout::strided(keys, dv, g.kv_row_stride), MatLayout::dense(q_tile_, dv), false, 1.f,
                      {PostOp::accumulate()}});
  };
  products(kt, qk_, pv_);
  if (k_block_ > kt) products(k_block_, qk_block_, pv_block_);
  single_segments_ = single_query_segments(g, max_queries, ctx.threads());
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    w.q = ctx.tensor(MemCategory::kActivations, {q_tile_, dh});
    w.s = ctx.tensor(MemCategory::kActivations, {q_tile_, score_floats(g, q_tile_, k_block_)});
    w.o = ctx.tensor(MemCategory::kActivations, {q_tile_, dv});
    w.m = ctx.tensor(MemCategory::kActivations, {q_tile_});
    w.l = ctx.tensor(MemCategory::kActivations, {q_tile_});
    w.lo.resize(q_tile_);
    w.hi.resize(q_tile_);
  }
  segments_ = max_segments(g, max_queries, ctx.threads());
  const int64_t slots = std::max(segments_ > 1 ? segments_ : 0, single_segments_);
  if (slots > 0) partials_ = ctx.tensor(MemCategory::kActivations, {partial_floats(g, q_tile_, slots)});
}

int64_t CausalAttention::partial_floats(const AttentionGeometry& g, int64_t q_tile, int64_t segments) {
  return g.batch * g.heads * segments * q_tile * ((g.value_dim > 0 ? g.value_dim : g.head_dim) + 2);
}

int64_t CausalAttention::max_segments(const AttentionGeometry& g, int64_t max_queries, int threads) {
  const int64_t pairs = g.batch * g.heads;
  if (std::min(g.q_tile, max_queries) > kSplitMaxQueries || threads <= 1 || pairs >= 2 * threads) return 1;
  return (2 * static_cast<int64_t>(threads) + pairs - 1) / pairs;
}

std::pair<int64_t, int64_t> CausalAttention::key_tiles(int64_t q_pos, int64_t last_pos, const Tile& t) const {
  const int64_t first_t = q_pos + t.row0, tile_last_t = std::min(q_pos + t.row0 + t.rows - 1, last_pos);
  const int64_t key_lo = g_.window < 0 ? 0 : std::max<int64_t>(0, first_t - g_.window);
  return {key_lo / g_.k_tile, tile_last_t / g_.k_tile};
}

void CausalAttention::attend(Context& ctx, Workspace& w, const float* q, const float* k, const float* v, int64_t q_pos,
                             int64_t last_pos, const Tile& t, int64_t tile_begin, int64_t tile_end) const {
  const int64_t dh = g_.head_dim, dv = value_dim_, kt = g_.k_tile, qt = q_tile_;
  const float* qb = q + t.b * g_.q_batch_stride + t.h * dh;
  const float* kb = k + t.b * g_.kv_batch_stride + t.h * dh;
  const float* vb = v + t.b * g_.kv_batch_stride + t.h * dv;
  // Dense copy of the query tile; padded rows repeat the last valid query (finite, discarded).
  for (int64_t r = 0; r < qt; ++r) {
    int64_t src = t.row0 + std::min(r, t.rows - 1);
    std::memcpy(w.q.data() + r * dh, qb + src * g_.q_row_stride, sizeof(float) * dh);
    int64_t pos = q_pos + src;
    w.hi[r] = pos;
    w.lo[r] = g_.window < 0 ? 0 : std::max<int64_t>(0, pos - g_.window);
  }
  std::fill(w.m.data(), w.m.data() + qt, kNegInf);
  std::fill(w.l.data(), w.l.data() + qt, 0.0f);
  std::fill(w.o.data(), w.o.data() + qt * dv, 0.0f);
  const int64_t first_t = q_pos + t.row0, tile_last_t = std::min(q_pos + t.row0 + t.rows - 1, last_pos);
  // Every row of the tile sees keys [k0, k0 + keys) whole.
  auto visible = [&](int64_t k0, int64_t keys) { return k0 + keys - 1 <= first_t && (g_.window < 0 || k0 >= tile_last_t - g_.window); };
  const int64_t span = k_block_ / kt;  // key tiles per block
  for (int64_t kti = tile_begin; kti < tile_end;) {
    const int64_t k0 = kti * kt;
    if (span > 1 && kti + span <= tile_end && visible(k0, k_block_)) {
      qk_block_.run(ctx, w.q.data(), kb + k0 * g_.kv_row_stride, w.s.data());
      online_softmax_update(w.s.data(), qt, k_block_, k0, nullptr, nullptr, w.m.data(), w.l.data(), w.o.data(), dv);
      pv_block_.run(ctx, w.s.data(), vb + k0 * g_.kv_row_stride, w.o.data());
      kti += span;
      continue;
    }
    qk_.run(ctx, w.q.data(), kb + k0 * g_.kv_row_stride, w.s.data());
    // Mask only where some row cannot see the whole tile.
    const bool full = visible(k0, kt);
    online_softmax_update(w.s.data(), qt, kt, k0, full ? nullptr : w.lo.data(), full ? nullptr : w.hi.data(), w.m.data(), w.l.data(),
                          w.o.data(), dv);
    pv_.run(ctx, w.s.data(), vb + k0 * g_.kv_row_stride, w.o.data());
    ++kti;
  }
}

void CausalAttention::run(Context& ctx, const float* q, const float* k, const float* v, float* o, int64_t q_pos,
                          int64_t q_count) const {
  BSBR_CHECK(qk_.valid(), "attention used before prepare()");
  const int64_t dh = g_.head_dim, dv = value_dim_, qt = q_tile_;
  const int64_t n_qtiles = (q_count + qt - 1) / qt;
  const int64_t pairs = g_.batch * g_.heads, items = pairs * n_qtiles;
  const int64_t last_pos = q_pos + q_count - 1;
  // Tiny calls (a decode step over a short cache, or over a chunk of 32 keys) run on the calling
  // thread: a fork/join would cost more than the work. Work bound: every query against at most
  // last_pos + 1 (or window + 1) keys, dh multiply-adds per score and dv per weighted value.
  const int64_t max_keys = g_.window < 0 ? last_pos + 1 : std::min(g_.window + 1, last_pos + 1);
  const double work = 2.0 * static_cast<double>(pairs * q_count) * static_cast<double>(max_keys) * (dh + dv);
  const bool parallel = work >= kSerialWorkThreshold;
  // o rows of a tile = acc / l.
  auto write_out = [&](const float* acc, const float* l, const Tile& t) {
    float* ob = o + t.b * g_.o_batch_stride + t.h * dv;
    for (int64_t r = 0; r < t.rows; ++r) {
      const float inv = 1.0f / l[r];
      const float* src = acc + r * dv;
      float* dst = ob + (t.row0 + r) * g_.o_row_stride;
      for (int64_t i = 0; i < dv; ++i) dst[i] = src[i] * inv;
    }
  };

  if (q_count == 1 && single_segments_ > 0) {
    run_single_query(ctx, q, k, v, o, q_pos);
    return;
  }
  // Key segments: one query tile per pair and fewer pairs than threads (decode over a long cache).
  int64_t segments = 1;
  if (parallel && n_qtiles == 1 && segments_ > 1) {
    const auto [first, last] = key_tiles(q_pos, last_pos, Tile{0, 0, 0, q_count});
    segments = std::min(segments_, last - first + 1);
  }
  if (segments > 1) {
    const int64_t part = qt * (dv + 2);  // floats of one segment: o [qt, dv], m [qt], l [qt]
    parallel_items(ctx, pairs * segments, true, [&](int64_t item) {
      Workspace& w = ws_[Context::thread_id()];
      const int64_t bh = item / segments, seg = item % segments;
      const Tile t{bh / g_.heads, bh % g_.heads, 0, q_count};
      const auto [first, last] = key_tiles(q_pos, last_pos, t);
      const int64_t count = last - first + 1;
      attend(ctx, w, q, k, v, q_pos, last_pos, t, first + seg * count / segments, first + (seg + 1) * count / segments);
      float* p = partials_.data() + item * part;
      std::memcpy(p, w.o.data(), sizeof(float) * qt * dv);
      std::memcpy(p + qt * dv, w.m.data(), sizeof(float) * qt);
      std::memcpy(p + qt * dv + qt, w.l.data(), sizeof(float) * qt);
    });
    for (int64_t bh = 0; bh < pairs; ++bh)
      merge_segments(partials_.data() + bh * segments * part, segments, qt, q_count, dv,
                     o + (bh / g_.heads) * g_.o_batch_stride + (bh % g_.heads) * dv, g_.o_row_stride);
    return;
  }

  // Items are ordered so the most expensive (latest) query tiles start first.
  parallel_items(ctx, items, parallel && items > 1, [&](int64_t item) {
    Workspace& w = ws_[Context::thread_id()];
    const int64_t qi = n_qtiles - 1 - item / pairs, bh = item % pairs;
    const int64_t row0 = qi * qt;
    const Tile t{bh / g_.heads, bh % g_.heads, row0, std::min(qt, q_count - row0)};
    const auto [first, last] = key_tiles(q_pos, last_pos, t);
    attend(ctx, w, q, k, v, q_pos, last_pos, t, first, last + 1);
    write_out(w.o.data(), w.l.data(), t);
  });
}

int64_t CausalAttention::workspace_floats(const AttentionGeometry& g, int64_t max_queries, int threads) {
  const int64_t qt = std::min(g.q_tile, max_queries), dv = g.value_dim > 0 ? g.value_dim : g.head_dim;
  const int64_t segments = max_segments(g, max_queries, threads);
  const int64_t slots = std::max(segments > 1 ? segments : 0, single_query_segments(g, max_queries, threads));
  return static_cast<int64_t>(threads) * qt * (g.head_dim + score_floats(g, qt, std::max(g.k_tile, g.k_block)) + dv + 2) +
         (slots > 0 ? partial_floats(g, qt, slots) : 0);
}

void CausalAttention::run_single_query(Context& ctx, const float* q, const float* k, const float* v, float* o, int64_t pos) const {
  const int64_t dh = g_.head_dim, dv = value_dim_, H = g_.heads, B = kDecodeKeys;
  const int64_t lo = g_.window < 0 ? 0 : std::max<int64_t>(0, pos - g_.window);
  const int64_t first = lo / B, blocks = pos / B - first + 1;  // key blocks [first, first + blocks)
  const double work = 2.0 * static_cast<double>(g_.batch * H) * static_cast<double>(pos - lo + 1) * (dh + dv);
  const bool parallel = work >= kSerialWorkThreshold;
  const int64_t segments = parallel ? std::min(single_segments_, blocks) : 1;
  const int64_t part = dv + 2;  // floats of one (sequence, head, segment) slot: o [dv], m, l
  // Item (sequence b, segment seg): its blocks, every head inside each block.
  parallel_items(ctx, g_.batch * segments, parallel, [&](int64_t item) {
    Workspace& w = ws_[Context::thread_id()];
    const int64_t b = item / segments, seg = item % segments;
    const float* qb = q + b * g_.q_batch_stride;
    const float* kb = k + b * g_.kv_batch_stride;
    const float* vb = v + b * g_.kv_batch_stride;
    float* head0 = partials_.data() + (b * H * segments + seg) * part;  // head h's slot [o, m, l]: head0 + h * head_stride
    const int64_t head_stride = segments * part;
    for (int64_t h = 0; h < H; ++h) {
      float* p = head0 + h * head_stride;
      std::fill(p, p + dv, 0.0f);
      p[dv] = kNegInf;
      p[dv + 1] = 0.0f;
    }
    w.lo[0] = lo;
    w.hi[0] = pos;
    const int64_t blk_begin = first + seg * blocks / segments, blk_end = first + (seg + 1) * blocks / segments;
    // A pass takes up to kDecodeSpan keys (whole blocks): their key rows front to back for every
    // head's scores, the softmax update of each head, then their value rows front to back. Long
    // contiguous runs of K and of V are what the hardware prefetchers follow; 32-key passes with a
    // software prefetch of the next block read the cache about 12 % slower on the 2-core box.
    const int64_t span_blocks = kDecodeSpan / B;
    for (int64_t blk = blk_begin; blk < blk_end; blk += span_blocks) {
      const int64_t k0 = blk * B, keys = std::min(span_blocks, blk_end - blk) * B;
      const bool full = k0 >= lo && k0 + keys - 1 <= pos;
      float* s = w.s.data();  // [H, keys]
      multihead_scores(qb, kb + k0 * g_.kv_row_stride, g_.kv_row_stride, keys, H, dh, g_.scale, s);
      for (int64_t h = 0; h < H; ++h) {
        float* p = head0 + h * head_stride;
        online_softmax_update(s + h * keys, 1, keys, k0, full ? nullptr : w.lo.data(), full ? nullptr : w.hi.data(), p + dv, p + dv + 1, p, dv);
      }
      multihead_weighted_sum(s, vb + k0 * g_.kv_row_stride, g_.kv_row_stride, keys, H, dv, head0, head_stride);
    }
    // Executed work: 2 (dh + dv) FLOPs per key read and head, the scores' and the weighted sum's
    // multiply-adds (what a MatMul of those shapes counts).
    ctx.count_flops(2.0 * static_cast<double>((blk_end - blk_begin) * B * H * (dh + dv)));
  });
  for (int64_t bh = 0; bh < g_.batch * H; ++bh)
    merge_segments(partials_.data() + bh * segments * part, segments, 1, 1, dv, o + (bh / H) * g_.o_batch_stride + (bh % H) * dv, 0);
}

// ---------------------------------------------------------------------------------------------
DecodeAttention::DecodeAttention(Context& ctx, const DecodeAttentionGeometry& g) : g_(g) {
  BSBR_CHECK(g.batch > 0 && g.heads > 0 && g.head_dim > 0 && g.capacity > 0, "bad decode attention geometry");
  g_.value_dim = g.value_dim > 0 ? g.value_dim : g.head_dim;
  scores_ = ctx.tensor(MemCategory::kActivations, {g.batch, g.heads, g.capacity});
  stats_ = ctx.tensor(MemCategory::kActivations, {2, g.heads});
}

void DecodeAttention::run(Context& ctx, const float* q, const float* k, const float* v, float* o, int64_t len) const {
  BSBR_CHECK(valid(), "decode attention used before prepare()");
  BSBR_CHECK(len >= 1 && len <= g_.capacity, "decode attention: " + std::to_string(len) + " keys, capacity " + std::to_string(g_.capacity));
  const int64_t H = g_.heads, dh = g_.head_dim, dv = g_.value_dim;
  float* m = stats_.data();      // [H] running max
  float* l = stats_.data() + H;  // [H] softmax denominators
  for (int64_t b = 0; b < g_.batch; ++b) {
    float* s = scores_.data() + b * H * g_.capacity;  // [H, len]
    float* ob = o + b * g_.o_batch_stride;           // [H, dv]: accumulated in place
    const float* kb = k + b * g_.kv_batch_stride;
    multihead_scores(q + b * g_.q_batch_stride, kb, g_.kv_row_stride, len, H, dh, g_.scale, s);
    std::fill(ob, ob + H * dv, 0.0f);
    std::fill(m, m + H, kNegInf);
    std::fill(l, l + H, 0.0f);
    online_softmax_update(s, H, len, 0, nullptr, nullptr, m, l, ob, dv);  // s becomes exp(s - max)
    multihead_weighted_sum(s, v + b * g_.kv_batch_stride, g_.kv_row_stride, len, H, dv, ob, dv);
    for (int64_t h = 0; h < H; ++h) {
      const float inv = 1.0f / l[h];
      for (int64_t i = 0; i < dv; ++i) ob[h * dv + i] *= inv;
    }
  }
  // Executed work: the len keys' scores and weighted sums, 2 (dh + dv) FLOPs per key and head.
  ctx.count_flops(2.0 * static_cast<double>(g_.batch * H * len * (dh + dv)));
}

// ---------------------------------------------------------------------------------------------
int64_t ChunkLocalAttention::group_chunks(int64_t chunk, int64_t chunks, int64_t heads, int threads) {
  const int64_t by_cache = std::max<int64_t>(1, kGroupScoreFloats / (chunk * chunk));
  const int64_t by_threads = std::max<int64_t>(1, heads * chunks / (2 * std::max(1, threads)));
  return std::max<int64_t>(1, std::min({chunks, by_cache, by_threads}));
}

ChunkLocalAttention::GroupOps ChunkLocalAttention::make_group_ops(Context& ctx, int64_t count) const {
  const int64_t B = g_.chunk;
  // Chunk c of the group: rows [c*B, (c+1)*B), the head's columns (the offsets are applied to the
  // pointers in run()).
  const MatLayout rows = MatLayout::chunks(count, B, g_.head_dim, g_.row_stride);
  const MatLayout scores = MatLayout::batched(count, B, B);
  SingleThreadOps single(ctx);  // run inside parallel_items
  GroupOps group;
  group.qk = MatMul(ctx, {rows, rows.transposed(), scores, false, g_.scale, {PostOp::add(scores)}});
  group.softmax = SoftmaxOp(ctx, MatLayout::dense(count * B, B));
  group.pv = MatMul(ctx, {scores, rows, rows, false, 1.f, {}});
  return group;
}

ChunkLocalAttention::ChunkLocalAttention(Context& ctx, const ChunkAttentionGeometry& g, int64_t chunks) : g_(g), chunks_(chunks) {
  BSBR_CHECK(chunks > 0 && g.chunk > 0 && g.heads > 0 && g.head_dim > 0, "bad chunk attention geometry");
  const int64_t B = g.chunk;
  group_ = group_chunks(B, chunks, g.heads, ctx.threads());
  mask_ = ctx.tensor(MemCategory::kActivations, {group_, B, B});
  for (int64_t c = 0; c < group_; ++c)
    for (int64_t r = 0; r < B; ++r)
      for (int64_t s = 0; s < B; ++s) mask_[(c * B + r) * B + s] = s <= r ? 0.0f : kNegInf;
  scores_.reserve(ctx.threads());
  for (int t = 0; t < ctx.threads(); ++t) scores_.push_back(ctx.tensor(MemCategory::kActivations, {group_, B, B}));
  full_ = make_group_ops(ctx, group_);
  if (chunks % group_ != 0) tail_ = make_group_ops(ctx, chunks % group_);
}

void ChunkLocalAttention::run(Context& ctx, const float* q, const float* k, const float* v, float* o) const {
  BSBR_CHECK(full_.qk.valid(), "chunk attention used before prepare()");
  const int64_t B = g_.chunk, heads = g_.heads, groups = (chunks_ + group_ - 1) / group_;
  // Scores and weighted sums: 2 products of B x B x head_dim per chunk and head.
  const double work = 4.0 * static_cast<double>(heads * chunks_) * static_cast<double>(B * B * g_.head_dim);
  parallel_items(ctx, heads * groups, work >= kSerialWorkThreshold, [&](int64_t item) {
    const int64_t h = item % heads, c0 = item / heads * group_;
    const GroupOps& group = chunks_ - c0 >= group_ ? full_ : tail_;
    const int64_t offset = c0 * B * g_.row_stride + h * g_.head_dim;
    float* s = scores_[Context::thread_id()].data();
    group.qk.run(ctx, q + offset, k + offset, s, nullptr, {mask_.data()});
    group.softmax.run(ctx, s, s);
    group.pv.run(ctx, s, v + offset, o + offset);
  });
}

}  // namespace bsbr::ops

// SlidingWindow (SPEC §2): causal softmax attention restricted to the last w+1 keys,
//   o_t = Σ_{s ∈ [max(0, t−w), t]} softmax_s(q_t·k_s / sqrt(dh)) v_s, per head, then out_proj,
// with w = config window_size. Parameters q_proj, k_proj, v_proj, out_proj (Linear(d, d) each).
//
// Prefill is banded, O(n·w·dh): ops::CausalAttention with AttentionGeometry::window = w visits only
// the key tiles that intersect [t−w, t] of each query tile. Tiles are sized from w (see
// prefill_tile()): small enough that little work is spent outside the band, large enough that the
// per-tile oneDNN call overhead stays small.
//
// Prefill runs in slabs of S rows (chunked::PrefillTiling::slab_rows, rounded to whole tiles T; the
// slab plan is chunked::plan_slabs with "chunks" of T rows), so its buffers are O(S + w) rows, not
// O(n). Slab [s, s+S) needs keys [s−w, s+S): the history rows [h, s), h = (s−w) rounded down to a
// tile (0 at the start), are recomputed from x together with the slab's own rows — ceil(w/T)·T extra
// projected rows per slab, a few percent of the projections at S = 2048 — rather than carried over
// from the previous slab, which would need a copy of the history inside the buffers and tie each slab
// to the one before it. Tile-aligned h keeps every key tile where the unslabbed op has it, so the
// attention visits the same tiles in the same order as one pass over [0, n). Per slab:
//   q, k, v[b, h .. s+S) = x[b, h .. s+S) · W{q,k,v} + b{q,k,v};
//   o[b, s .. s+S)       = banded attention of queries s.. over keys h.. (positions relative to h);
//   residual[b, s .. s+S) += o · Wo + bo.
// (A batched banded formulation was tried and dropped:
// oneDNN 2.6 rejects the overlapping strided K/V views it needs — "could not construct a memory
// descriptor using strides" — and the split prev/current-block variant has to mask a
// [n, 2·tile] score matrix, which oneDNN only does on its reference path (binary add broadcast
// over the batch), so it streams O(n·w) scores through memory several times and was not faster.)
//
// Decode keeps a ring buffer of the last R = w+1 keys and values per layer (fewer when the run
// never holds that many positions): position p lives in slot p mod R, so the state is O(w),
// independent of n — unlike Standard's full KV cache. Softmax is order-independent, so a step
// attends over the occupied slots 0 .. min(pos, R−1) as they lie in the ring.
//
// FLOPs (multiply-add = 2), the arithmetic of the SPEC §2 algorithm (the oracle's):
//   keys(t) = min(t, w) + 1 visible keys at position t;
//   step_flops(t)    = 2·(4·d² + 2·d·keys(t))      projections q,k,v,out; scores and weighted sum
//                                                  (dh MACs per key and head, h heads: d per key);
//   prefill_flops(n) = Σ_{t<n} step_flops(t) = 2·(4·n·d² + 2·d·K(n)),
//   K(n) = Σ_{t<n} keys(t) = n(n+1)/2 if n ≤ w+1, else (w+1)(w+2)/2 + (n−w−1)(w+1).
// Work on key-tile padding outside the band is implementation overhead and is not counted.
#include <algorithm>
#include <bit>
#include <cmath>
#include <map>

#include "core/errors.hpp"
#include "model/arch/attention_projections.hpp"
#include "model/arch/chunked.hpp"
#include "model/mixer.hpp"
#include "ops/attention.hpp"

namespace bsbr {

namespace {

using ops::MatLayout;

class SlidingWindowAttention : public Mixer {
 public:
  SlidingWindowAttention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling)
      : d_(cfg.hidden_dim), heads_(cfg.num_heads), dh_(cfg.head_dim()), window_(cfg.window_size),
        scale_(static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg.head_dim())))), tiling_(tiling),
        proj_(params, prefix, cfg.hidden_dim) {}

  void prepare(ops::Context& ctx, const RunShape& shape) override;
  void release() override;
  void prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) override;
  void step(ops::Context& ctx, const float* x, float* residual, int64_t pos) override;
  // A step at position p overwrites the ring slot of position p - R, which a replay from an earlier
  // position still reads.
  std::vector<Tensor*> overwritten_state() override { return {&k_ring_, &v_ring_}; }
  std::size_t state_bytes(int64_t n) const override;
  std::size_t estimate_bytes(const RunShape& shape, int threads) const override;
  double prefill_flops(int64_t n) const override;
  double step_flops(int64_t pos) const override;

 private:
  // Prefill query/key tile: the largest power of two <= w, clamped to [16, 128]. A query tile of
  // T rows needs keys [r0−w, r0+T), i.e. about w+T keys per row in ceil(w/T)+1 key tiles. At the
  // upper clamp (w >= 128) this is Standard's tile, so w >= n reproduces Standard exactly.
  int64_t prefill_tile() const {
    const auto largest_pow2 = static_cast<int64_t>(std::bit_floor(static_cast<uint64_t>(std::max<int64_t>(window_, 1))));
    return std::clamp<int64_t>(largest_pow2, 16, 128);
  }
  // Ring slots R: the w+1 keys a step can see, or fewer when the run never holds that many positions.
  static int64_t ring_slots(int64_t window, const RunShape& shape) { return std::min(window + 1, std::max(shape.capacity, shape.max_prefill())); }
  // Decode reads the ring in one key tile of up to 256 rows (several for larger windows), a whole
  // number of the single-query path's key blocks (CausalAttention::kDecodeKeys): with another tile
  // (48 rows for the default w = 32) a step's attention took the tile path, two oneDNN calls per
  // head, 6-10 us against about one of work (step profile of the 16-core host, issue 14).
  static int64_t decode_key_tile(int64_t slots) {
    constexpr int64_t B = ops::CausalAttention::kDecodeKeys;
    return std::min<int64_t>((slots + B - 1) / B * B, 256);
  }
  // Keys visible at position t.
  int64_t keys_at(int64_t t) const { return std::min(t, window_) + 1; }

  // Prefill slabs of a point: S rows per slab (whole tiles, no more than the longest prefill needs).
  int64_t point_slab_rows(const RunShape& shape) const {
    const int64_t tile = prefill_tile();
    return chunked::point_slab_chunks(std::max<int64_t>(1, tiling_.slab_rows / tile), shape.max_prefill(), tile) * tile;
  }
  // One slab: queries at positions [row0, row0 + rows), keys and values from position `history`
  // (the first tile holding a key that row0 sees), so the slab projects rows [history, row0 + rows).
  struct SlabRows {
    int64_t history = 0, row0 = 0, rows = 0;
    int64_t kv_count() const { return row0 + rows - history; }
  };
  std::vector<SlabRows> plan(int64_t n, int64_t slab_rows) const {
    const int64_t tile = prefill_tile();
    std::vector<SlabRows> slabs;
    for (const chunked::Slab& s : chunked::plan_slabs(n, tile, slab_rows / tile))
      slabs.push_back({std::max<int64_t>(0, s.row0 - window_) / tile * tile, s.row0, s.rows});
    return slabs;
  }
  // Rows of the prefill q buffer (projected rows of the largest slab) and of the k/v buffers (the
  // same, padded to a key tile) for a point.
  struct Buffers {
    int64_t slab = 0, q_rows = 0, kv_rows = 0;
  };
  Buffers buffers(const RunShape& shape) const {
    Buffers buf;
    buf.slab = point_slab_rows(shape);
    for (int64_t n : shape.prefill_lengths)
      for (const SlabRows& s : plan(n, buf.slab)) buf.q_rows = std::max(buf.q_rows, s.kv_count());
    buf.kv_rows = ops::CausalAttention::padded_kv_rows(buf.q_rows, prefill_tile());
    return buf;
  }

  // One contiguous run of positions copied into the ring after a prefill (the last R positions
  // wrap around the ring's end at most once, so there are one or two runs).
  struct RingCopy {
    ops::ReorderOp copy;  // [b, count, d]: prefill K/V rows -> ring slots
    int64_t first_row = 0, first_slot = 0;  // first_row: in the last slab's k/v buffers
  };
  struct SlabOps {
    SlabRows rows;
    const AttentionProjections::Ops* proj = nullptr;  // in LengthOps::proj
  };
  struct LengthOps {  // ops for one prefill length n
    // Projections per slab shape (kv_count, rows): x [b, n, d] rows [history, row0+rows) -> q, k, v
    // buffer rows [0, kv_count); o rows [0, rows) -> residual rows [row0, row0+rows).
    std::map<std::pair<int64_t, int64_t>, AttentionProjections::Ops> proj;
    std::vector<SlabOps> slabs;
    ops::CausalAttention attn;      // queries of one slab (at most S rows)
    std::vector<RingCopy> to_ring;  // from the last slab's k/v rows; empty when the run has no decode
  };
  LengthOps make_length_ops(ops::Context& ctx, int64_t n) const;

  int64_t d_, heads_, dh_, window_;
  float scale_;
  chunked::PrefillTiling tiling_;
  AttentionProjections proj_;
  // Prepared state.
  int64_t batch_ = 1, ring_slots_ = 0, ring_rows_ = 0;
  Buffers buf_;
  std::map<int64_t, LengthOps> by_length_;
  AttentionProjections::Ops proj1_;  // decode projections (rows = b)
  ops::CausalAttention decode_attn_;
  Tensor q_buf_;                // [b, q_rows, d] one slab's queries (from its history row on)
  Tensor o_buf_;                // [b, S, d] one slab's attention output
  Tensor k_buf_, v_buf_;        // [b, kv_rows, d] one slab's keys/values (q_rows padded to the tile)
  Tensor k_ring_, v_ring_;      // [b, ring_rows, d] decode state: slot p mod R holds position p
  Tensor q1_buf_, o1_buf_;      // [b, d]
};

SlidingWindowAttention::LengthOps SlidingWindowAttention::make_length_ops(ops::Context& ctx, int64_t n) const {
  const int64_t b = batch_, d = d_, q_stride = buf_.q_rows * d, kv_stride = buf_.kv_rows * d, o_stride = buf_.slab * d;
  LengthOps lo;
  for (const SlabRows& s : plan(n, buf_.slab)) {
    const int64_t count = s.kv_count();
    auto [it, added] = lo.proj.try_emplace({count, s.rows});
    if (added)  // x, residual: [b, n, d]; q: [b, q_rows, d]; k, v: [b, kv_rows, d]; o: [b, S, d]
      it->second = proj_.make_ops(ctx, MatLayout::dense(count, d).with_batch(b, n * d), MatLayout::dense(count, d).with_batch(b, q_stride),
                                  MatLayout::dense(count, d).with_batch(b, kv_stride), MatLayout::dense(s.rows, d).with_batch(b, o_stride),
                                  MatLayout::dense(s.rows, d).with_batch(b, n * d));
    lo.slabs.push_back({s, &it->second});
  }
  ops::AttentionGeometry g = ops::AttentionGeometry::packed_heads(b, heads_, dh_, scale_);
  g.q_batch_stride = q_stride;
  g.o_batch_stride = o_stride;
  g.kv_batch_stride = kv_stride;
  g.window = window_;
  g.q_tile = g.k_tile = prefill_tile();
  lo.attn = ops::CausalAttention(ctx, g, std::min(n, buf_.slab));
  if (ring_slots_ > 0) {
    // Positions [first, n) go to slots p mod R: up to the ring's end, then from slot 0.
    // The last slab's buffers hold positions [history, n) ⊇ [n − w − 1, n) ⊇ [first, n).
    const int64_t first = std::max<int64_t>(0, n - ring_slots_), history = lo.slabs.back().rows.history;
    const int64_t slot = first % ring_slots_;
    const int64_t head_count = std::min(n - first, ring_slots_ - slot), tail_count = n - first - head_count;
    auto segment = [&](int64_t row, int64_t to_slot, int64_t count) {
      MatLayout src = MatLayout::dense(count, d).with_batch(b, kv_stride);
      MatLayout dst = MatLayout::dense(count, d).with_batch(b, ring_rows_ * d);
      lo.to_ring.push_back({ops::ReorderOp(ctx, src, dst), row - history, to_slot});
    };
    segment(first, slot, head_count);
    if (tail_count > 0) segment(first + head_count, 0, tail_count);
  }
  return lo;
}

void SlidingWindowAttention::prepare(ops::Context& ctx, const RunShape& shape) {
  release();
  batch_ = shape.batch;
  const int64_t b = batch_;
  buf_ = buffers(shape);
  q_buf_ = ctx.tensor(MemCategory::kActivations, {b, buf_.q_rows, d_});
  o_buf_ = ctx.tensor(MemCategory::kActivations, {b, buf_.slab, d_});
  k_buf_ = ctx.tensor(MemCategory::kActivations, {b, buf_.kv_rows, d_});
  v_buf_ = ctx.tensor(MemCategory::kActivations, {b, buf_.kv_rows, d_});
  ring_slots_ = shape.capacity > 0 ? ring_slots(window_, shape) : 0;
  if (ring_slots_ > 0) {
    const int64_t key_tile = decode_key_tile(ring_slots_);
    ring_rows_ = ops::CausalAttention::padded_kv_rows(ring_slots_, key_tile);
    k_ring_ = ctx.tensor(MemCategory::kState, {b, ring_rows_, d_});
    v_ring_ = ctx.tensor(MemCategory::kState, {b, ring_rows_, d_});
    // One new row per sequence, written at its ring slot (row stride = the ring's batch stride).
    proj1_ = proj_.make_step_ops(ctx, MatLayout::dense(b, d_), MatLayout::strided(b, d_, ring_rows_ * d_));
    ops::AttentionGeometry g = ops::AttentionGeometry::packed_heads(b, heads_, dh_, scale_);
    g.q_batch_stride = g.o_batch_stride = d_;
    g.kv_batch_stride = ring_rows_ * d_;
    g.q_tile = 1;
    g.k_tile = key_tile;  // window -1: every occupied slot is visible (see step())
    decode_attn_ = ops::CausalAttention(ctx, g, 1);
    q1_buf_ = ctx.tensor(MemCategory::kActivations, {b, d_});
    o1_buf_ = ctx.tensor(MemCategory::kActivations, {b, d_});
  }
  for (int64_t n : shape.prefill_lengths)
    if (!by_length_.count(n)) by_length_.emplace(n, make_length_ops(ctx, n));
}

void SlidingWindowAttention::release() {
  by_length_.clear();
  proj1_ = AttentionProjections::Ops{};
  decode_attn_ = ops::CausalAttention();
  ring_slots_ = ring_rows_ = 0;
  for (Tensor* t : {&q_buf_, &o_buf_, &k_buf_, &v_buf_, &k_ring_, &v_ring_, &q1_buf_, &o1_buf_}) t->reset();
}

void SlidingWindowAttention::prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) {
  auto it = by_length_.find(n);
  BSBR_CHECK(it != by_length_.end(), "prefill length " + std::to_string(n) + " not prepared");
  const LengthOps& lo = it->second;
  for (const SlabOps& slab : lo.slabs) {
    const SlabRows& s = slab.rows;
    // Buffer row r holds position history + r; the attention sees positions relative to history.
    proj_.project(ctx, *slab.proj, x + s.history * d_, q_buf_.data(), k_buf_.data(), v_buf_.data());
    const int64_t q_row = s.row0 - s.history;
    lo.attn.run(ctx, q_buf_.data() + q_row * d_, k_buf_.data(), v_buf_.data(), o_buf_.data(), q_row, s.rows);
    proj_.output(ctx, *slab.proj, o_buf_.data(), residual + s.row0 * d_);
  }
  // Decode state: the last min(n, R) keys and values, each at slot (position mod R).
  for (const RingCopy& rc : lo.to_ring) {
    rc.copy.run(ctx, k_buf_.data() + rc.first_row * d_, k_ring_.data() + rc.first_slot * d_);
    rc.copy.run(ctx, v_buf_.data() + rc.first_row * d_, v_ring_.data() + rc.first_slot * d_);
  }
}

void SlidingWindowAttention::step(ops::Context& ctx, const float* x, float* residual, int64_t pos) {
  BSBR_CHECK(ring_slots_ > 0, "step() without decode capacity");
  BSBR_CHECK(pos < ring_slots_ || ring_slots_ == window_ + 1,
             "position " + std::to_string(pos) + " is beyond the prepared decode capacity");
  const int64_t slot = pos % ring_slots_;
  proj_.project(ctx, proj1_, x, q1_buf_.data(), k_ring_.data() + slot * d_, v_ring_.data() + slot * d_);
  // Occupied slots 0 .. min(pos, R-1) hold exactly the positions [max(0, pos-w), pos] (R = w+1;
  // when R is smaller, the run never reaches position R, so no slot is ever overwritten). The
  // attention op's causal range over "positions" 0..q_pos is used as a range over slots.
  decode_attn_.run(ctx, q1_buf_.data(), k_ring_.data(), v_ring_.data(), o1_buf_.data(), std::min(pos, ring_slots_ - 1), 1);
  proj_.output(ctx, proj1_, o1_buf_.data(), residual);
}

// State: K and V rows of the last min(n, w+1) positions — O(w), independent of n once n > w.
std::size_t SlidingWindowAttention::state_bytes(int64_t n) const {
  return 2 * sizeof(float) * static_cast<std::size_t>(std::min(n, window_ + 1) * d_);
}

std::size_t SlidingWindowAttention::estimate_bytes(const RunShape& shape, int threads) const {
  const std::size_t f = sizeof(float), b = shape.batch, dh = dh_;
  const Buffers buf = buffers(shape);
  const std::size_t tile = prefill_tile(), slab = buf.slab;
  // Per worker thread and attention op: q, o tiles [q_tile, dh], scores [q_tile, k_tile], m, l.
  auto workspace = [&](std::size_t q_tile, std::size_t k_tile) { return f * threads * (q_tile * (2 * dh + k_tile + 2)); };
  // q [b, q_rows, d], o [b, S, d], k and v [b, kv_rows, d]; one attention op per length.
  std::size_t bytes = f * b * d_ * (buf.q_rows + slab + 2 * buf.kv_rows);
  for (int64_t n : shape.prefill_lengths) bytes += workspace(std::min<std::size_t>({tile, slab, static_cast<std::size_t>(n)}), tile);
  if (shape.capacity > 0) {
    const int64_t slots = ring_slots(window_, shape), key_tile = decode_key_tile(slots);
    const std::size_t ring_rows = ops::CausalAttention::padded_kv_rows(slots, key_tile);
    ops::AttentionGeometry g = ops::AttentionGeometry::packed_heads(b, heads_, dh_, scale_);  // as prepare()'s decode op
    g.q_tile = 1;
    g.k_tile = key_tile;
    bytes += f * b * (2 * ring_rows * d_ + 2 * d_) + f * static_cast<std::size_t>(ops::CausalAttention::workspace_floats(g, 1, threads));
  }
  return bytes;
}

double SlidingWindowAttention::prefill_flops(int64_t n) const {
  const double N = static_cast<double>(n), d = static_cast<double>(d_), R = static_cast<double>(window_ + 1);
  // K(n) = Σ_{t<n} (min(t, w) + 1): a triangle up to the full window, then w+1 keys per position.
  const double keys = n <= window_ + 1 ? N * (N + 1) / 2.0 : R * (R + 1) / 2.0 + (N - R) * R;
  return 2.0 * (4.0 * N * d * d + 2.0 * keys * d);
}

double SlidingWindowAttention::step_flops(int64_t pos) const {
  const double d = static_cast<double>(d_);
  return 2.0 * (4.0 * d * d + 2.0 * static_cast<double>(keys_at(pos)) * d);
}

}  // namespace

std::unique_ptr<Mixer> make_sliding_window(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling) {
  return std::make_unique<SlidingWindowAttention>(cfg, params, prefix, tiling);
}

std::unique_ptr<Mixer> make_sliding_window(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return make_sliding_window(cfg, params, prefix, chunked::PrefillTiling{});
}

}  // namespace bsbr

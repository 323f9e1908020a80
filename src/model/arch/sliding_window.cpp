// SlidingWindow (SPEC §2): causal softmax attention restricted to the last w+1 keys,
//   o_t = Σ_{s ∈ [max(0, t−w), t]} softmax_s(q_t·k_s / sqrt(dh)) v_s, per head, then out_proj,
// with w = config window_size. Parameters q_proj, k_proj, v_proj, out_proj (Linear(d, d) each).
//
// Prefill is banded, O(n·w·dh): ops::CausalAttention with AttentionGeometry::window = w visits only
// the key tiles that intersect [t−w, t] of each query tile. Tiles are sized from w (see
// prefill_tile()): small enough that little work is spent outside the band, large enough that the
// per-tile oneDNN call overhead stays small. (A batched banded formulation was tried and dropped:
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
#include "model/mixer.hpp"
#include "ops/attention.hpp"

namespace bsbr {

namespace {

using ops::MatLayout;

class SlidingWindowAttention : public Mixer {
 public:
  SlidingWindowAttention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix)
      : d_(cfg.hidden_dim), heads_(cfg.num_heads), dh_(cfg.head_dim()), window_(cfg.window_size),
        scale_(static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg.head_dim())))), proj_(params, prefix, cfg.hidden_dim) {}

  void prepare(ops::Context& ctx, const RunShape& shape) override;
  void release() override;
  void prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) override;
  void step(ops::Context& ctx, const float* x, float* residual, int64_t pos) override;
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
  // Decode reads the ring in one key tile of up to 256 rows (several for larger windows).
  static int64_t decode_key_tile(int64_t slots) { return std::min<int64_t>((slots + 15) / 16 * 16, 256); }
  // Keys visible at position t.
  int64_t keys_at(int64_t t) const { return std::min(t, window_) + 1; }

  // One contiguous run of positions copied into the ring after a prefill (the last R positions
  // wrap around the ring's end at most once, so there are one or two runs).
  struct RingCopy {
    ops::ReorderOp copy;  // [b, count, d]: prefill K/V rows -> ring slots
    int64_t first_row = 0, first_slot = 0;
  };
  struct LengthOps {  // ops for one prefill length n (rows = b*n)
    AttentionProjections::Ops proj;
    ops::CausalAttention attn;
    std::vector<RingCopy> to_ring;  // empty when the run has no decode
  };
  LengthOps make_length_ops(ops::Context& ctx, int64_t n) const;

  int64_t d_, heads_, dh_, window_;
  float scale_;
  AttentionProjections proj_;
  // Prepared state.
  int64_t batch_ = 1, kv_rows_ = 0, ring_slots_ = 0, ring_rows_ = 0;
  std::map<int64_t, LengthOps> by_length_;
  AttentionProjections::Ops proj1_;  // decode projections (rows = b)
  ops::CausalAttention decode_attn_;
  Tensor q_buf_, o_buf_;        // [b, n, d] prefill queries and attention output
  Tensor k_buf_, v_buf_;        // [b, kv_rows, d] prefill keys/values (kv_rows: n padded to the tile)
  Tensor k_ring_, v_ring_;      // [b, ring_rows, d] decode state: slot p mod R holds position p
  Tensor q1_buf_, o1_buf_;      // [b, d]
};

SlidingWindowAttention::LengthOps SlidingWindowAttention::make_length_ops(ops::Context& ctx, int64_t n) const {
  const int64_t b = batch_, d = d_;
  LengthOps lo;
  // x, q, o: [b, n, d]; k, v: [b, kv_rows, d].
  lo.proj = proj_.make_ops(ctx, MatLayout::dense(n, d).with_batch(b, n * d), MatLayout::dense(n, d).with_batch(b, kv_rows_ * d));
  ops::AttentionGeometry g = ops::AttentionGeometry::packed_heads(b, heads_, dh_, scale_);
  g.q_batch_stride = g.o_batch_stride = n * d;
  g.kv_batch_stride = kv_rows_ * d;
  g.window = window_;
  g.q_tile = g.k_tile = prefill_tile();
  lo.attn = ops::CausalAttention(ctx, g, n);
  if (ring_slots_ > 0) {
    // Positions [first, n) go to slots p mod R: up to the ring's end, then from slot 0.
    const int64_t first = std::max<int64_t>(0, n - ring_slots_);
    const int64_t slot = first % ring_slots_;
    const int64_t head_count = std::min(n - first, ring_slots_ - slot), tail_count = n - first - head_count;
    auto segment = [&](int64_t row, int64_t to_slot, int64_t count) {
      MatLayout src = MatLayout::dense(count, d).with_batch(b, kv_rows_ * d);
      MatLayout dst = MatLayout::dense(count, d).with_batch(b, ring_rows_ * d);
      lo.to_ring.push_back({ops::ReorderOp(ctx, src, dst), row, to_slot});
    };
    segment(first, slot, head_count);
    if (tail_count > 0) segment(first + head_count, 0, tail_count);
  }
  return lo;
}

void SlidingWindowAttention::prepare(ops::Context& ctx, const RunShape& shape) {
  release();
  batch_ = shape.batch;
  const int64_t b = batch_, maxn = shape.max_prefill();
  kv_rows_ = ops::CausalAttention::padded_kv_rows(maxn, prefill_tile());
  q_buf_ = ctx.tensor(MemCategory::kActivations, {b, maxn, d_});
  o_buf_ = ctx.tensor(MemCategory::kActivations, {b, maxn, d_});
  k_buf_ = ctx.tensor(MemCategory::kActivations, {b, kv_rows_, d_});
  v_buf_ = ctx.tensor(MemCategory::kActivations, {b, kv_rows_, d_});
  ring_slots_ = shape.capacity > 0 ? ring_slots(window_, shape) : 0;
  if (ring_slots_ > 0) {
    const int64_t key_tile = decode_key_tile(ring_slots_);
    ring_rows_ = ops::CausalAttention::padded_kv_rows(ring_slots_, key_tile);
    k_ring_ = ctx.tensor(MemCategory::kState, {b, ring_rows_, d_});
    v_ring_ = ctx.tensor(MemCategory::kState, {b, ring_rows_, d_});
    // One new row per sequence, written at its ring slot (row stride = the ring's batch stride).
    proj1_ = proj_.make_ops(ctx, MatLayout::dense(b, d_), MatLayout::strided(b, d_, ring_rows_ * d_));
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
  proj_.project(ctx, lo.proj, x, q_buf_.data(), k_buf_.data(), v_buf_.data());
  lo.attn.run(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), o_buf_.data(), 0, n);
  proj_.output(ctx, lo.proj, o_buf_.data(), residual);
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
  const std::size_t f = sizeof(float), b = shape.batch, maxn = shape.max_prefill(), dh = dh_;
  const std::size_t tile = prefill_tile(), kv_rows = ops::CausalAttention::padded_kv_rows(maxn, tile);
  // Per worker thread and attention op: q, o tiles [q_tile, dh], scores [q_tile, k_tile], m, l.
  auto workspace = [&](std::size_t q_tile, std::size_t k_tile) { return f * threads * (q_tile * (2 * dh + k_tile + 2)); };
  std::size_t bytes = f * b * (2 * maxn * d_ + 2 * kv_rows * d_);
  for (int64_t n : shape.prefill_lengths) bytes += workspace(std::min<std::size_t>(tile, n), tile);
  if (shape.capacity > 0) {
    const int64_t slots = ring_slots(window_, shape), key_tile = decode_key_tile(slots);
    const std::size_t ring_rows = ops::CausalAttention::padded_kv_rows(slots, key_tile);
    bytes += f * b * (2 * ring_rows * d_ + 2 * d_) + workspace(1, key_tile);
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

std::unique_ptr<Mixer> make_sliding_window(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return std::make_unique<SlidingWindowAttention>(cfg, params, prefix);
}

}  // namespace bsbr

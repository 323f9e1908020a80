// Causal multi-head softmax attention, tiled with an online softmax (flash-attention style), so no
// [n, n] score matrix is ever allocated: each worker thread holds one [q_tile, k_tile] score tile.
// Used by Standard, Hopfield and SlidingWindow prefill and by their decode steps (q_count = 1).
//
// For query position t the visible keys are s in [lo(t), t], lo(t) = 0 (full causal) or
// max(0, t - window) (sliding window: up to window+1 keys). Output o_t = softmax(scale q_t.k_s) v_s.
// Work is split over (batch, head, query tile) items across worker threads; inside a worker the
// oneDNN matmuls run single-threaded.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.hpp"
#include "ops/ops.hpp"

namespace bsbr::ops {

struct AttentionGeometry {
  int64_t batch = 1, heads = 1, head_dim = 64;
  // Row strides (floats) of q, k, v, o; head h occupies columns [h*head_dim, (h+1)*head_dim).
  int64_t q_row_stride = 0, kv_row_stride = 0, o_row_stride = 0;
  // Batch strides (floats) of q, k/v and o.
  int64_t q_batch_stride = 0, kv_batch_stride = 0, o_batch_stride = 0;
  float scale = 1.0f;
  int64_t window = -1;  // -1: all earlier keys; w >= 0: keys t-w .. t
  int64_t q_tile = 128, k_tile = 128;

  // Heads side by side in row-major [rows, heads * head_dim] q, k/v and o; the caller sets the
  // batch strides, window and tiles.
  static AttentionGeometry packed_heads(int64_t batch, int64_t heads, int64_t head_dim, float scale) {
    AttentionGeometry g;
    g.batch = batch;
    g.heads = heads;
    g.head_dim = head_dim;
    g.q_row_stride = g.kv_row_stride = g.o_row_stride = heads * head_dim;
    g.scale = scale;
    return g;
  }
};

class CausalAttention {
 public:
  CausalAttention() = default;
  // max_queries: the most query rows one run() processes (sizes the tiles; decode passes 1).
  CausalAttention(Context& ctx, const AttentionGeometry& g, int64_t max_queries);

  // Rows of K/V a caller must provide for keys 0..len-1: whole key tiles are read, so the buffer
  // holds len rounded up to k_tile (padding rows must be finite; Buffers are zero-filled).
  static int64_t padded_kv_rows(int64_t len, int64_t k_tile) { return (len + k_tile - 1) / k_tile * k_tile; }

  // Queries at absolute positions [q_pos, q_pos + q_count): q and o point at the row of q_pos;
  // k and v point at position 0 and cover positions 0 .. q_pos+q_count-1 (padded as above).
  void run(Context& ctx, const float* q, const float* k, const float* v, float* o, int64_t q_pos, int64_t q_count) const;

  const AttentionGeometry& geometry() const { return g_; }

 private:
  AttentionGeometry g_;
  int64_t q_tile_ = 0;
  MatMul qk_;  // S[q_tile, k_tile] = scale * Q[q_tile, dh] . K^T[dh, k_tile]
  MatMul pv_;  // O[q_tile, dh] += P[q_tile, k_tile] . V[k_tile, dh]
  struct Workspace {
    Tensor q, s, o, m, l;  // [q_tile, dh], [q_tile, k_tile], [q_tile, dh], [q_tile], [q_tile]
    std::vector<int64_t> lo, hi;  // visible key range per tile row
  };
  mutable std::vector<Workspace> ws_;  // one per worker thread
};

}  // namespace bsbr::ops

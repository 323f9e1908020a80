// Full causal softmax attention with a KV cache, shared by Standard (scale 1/sqrt(dh)) and
// Hopfield (energy scaled by 1/(T sqrt(dh))): SPEC §2. Prefill is tiled with an online softmax
// (ops::CausalAttention), so memory is O(n); decode appends to the KV cache and attends over it.
#pragma once
#include <algorithm>
#include <map>

#include "model/arch/attention_projections.hpp"
#include "model/mixer.hpp"
#include "ops/attention.hpp"

namespace bsbr {

class SoftmaxAttention : public Mixer {
 public:
  // scale: multiplies q.k before the softmax.
  SoftmaxAttention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, float scale);

  void prepare(ops::Context& ctx, const RunShape& shape) override;
  void release() override;
  void prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) override;
  void step(ops::Context& ctx, const float* x, float* residual, int64_t pos) override;
  // The KV cache is written at the step's own position before it is read: nothing to restore.
  std::vector<Tensor*> overwritten_state() override { return {}; }
  std::size_t state_bytes(int64_t n) const override;
  std::size_t estimate_bytes(const RunShape& shape, int threads) const override;
  double prefill_flops(int64_t n) const override;
  double step_flops(int64_t pos) const override;

  // Tile sizes: prefill [kPrefillTile x kPrefillTile] score tiles; decode reads the cache in
  // kDecodeKeyTile rows; shorter lengths use one tile of the length rounded up to 8 rows. Whole key
  // tiles are read, so the KV cache holds the prefill's rows padded to its tile and the decode
  // capacity padded to the decode tile (state_allocated_bytes; state_bytes is the formula's live
  // size; the two are equal when both are multiples of 8 and at most one tile).
  static int64_t tile_for(int64_t rows, int64_t tile) { return std::min(tile, (rows + 7) / 8 * 8); }
  static int64_t cache_rows(const RunShape& shape) {
    const int64_t maxn = shape.max_prefill();
    int64_t rows = ops::CausalAttention::padded_kv_rows(maxn, tile_for(maxn, kPrefillTile));
    if (shape.capacity > 0)
      rows = std::max(rows, ops::CausalAttention::padded_kv_rows(shape.capacity, tile_for(shape.capacity, kDecodeKeyTile)));
    return rows;
  }
  static constexpr int64_t kPrefillTile = 128, kDecodeKeyTile = 256, kCachePad = 256;
  // Prefill keys per product where a query tile sees them all (AttentionGeometry::k_block), for
  // lengths of at least two such blocks; a multiple of kPrefillTile.
  static constexpr int64_t kPrefillKeyBlock = 512;
  static int64_t key_block(int64_t n) { return n >= 2 * kPrefillKeyBlock ? kPrefillKeyBlock : tile_for(n, kPrefillTile); }

 private:
  struct LengthOps {  // ops for one prefill length n (rows = b*n)
    AttentionProjections::Ops proj;
    ops::CausalAttention attn;
  };
  LengthOps make_length_ops(ops::Context& ctx, int64_t n) const;

  int64_t d_, heads_, dh_;
  float scale_;
  AttentionProjections proj_;
  // Prepared state.
  int64_t batch_ = 1, cache_rows_ = 0, decode_tile_ = kDecodeKeyTile;
  std::map<int64_t, LengthOps> by_length_;
  AttentionProjections::Ops proj1_;  // decode projections (rows = b)
  ops::CausalAttention decode_attn_;
  Tensor q_buf_, o_buf_;       // [b, n, d]
  Tensor k_cache_, v_cache_;   // [b, cache_rows, d]: KV cache (prefill writes into it directly)
  Tensor q1_buf_, o1_buf_;     // [b, d]
};

}  // namespace bsbr

// Attention maps and attention density for the conversion study (SPEC §6), recomputed with the op
// layer from one block's mixer input (its LN1 output, captured during prefill). Only for quality
// lengths (<= GPT-2's n_positions), where an [n, n] map per head is the point of the exercise.
//
//   softmax map (the original GPT-2 / Standard):  A[t, s] = softmax_{s<=t}(q_t.k_s / sqrt(dh)).
//   BSBR effective map (SPEC §2 BSBR, no compression): the weight each value v_s gets in output_t:
//       s in t's chunk i:      softmax_{s in [iB, t]}(q_t.k_s / sqrt(dh))            (local, exact);
//       s in an earlier chunk j: p_ij (q_t.k_s), p_ij = softmax_{j<i}(R_i.H_j / sqrt(dh)),
//       because q_t.G_i = Σ_j p_ij Σ_{s in j} (q_t.k_s) v_s. Not a probability (it can be negative);
//       with compression the retrieval is no longer a per-key weight, so maps are drawn uncompressed.
// Density: the share of causal query-key pairs BSBR computes exactly (within-chunk pairs), the
// share of the original's attention weights above a threshold, and the share of the original's
// attention mass that falls on within-chunk pairs.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "model/model.hpp"
#include "ops/ops.hpp"

namespace bsbr {

class AttentionProbe {
 public:
  // d: model width; heads: h; n: rows of the mixer input (and of the maps).
  AttentionProbe(ops::Context& ctx, int64_t d, int64_t heads, int64_t n);

  // out: [n, n], zeros above the diagonal. x: [n, d] mixer input of block `prefix` ("layers.i.attn").
  void softmax_map(ops::Context& ctx, const ParamStore& params, const std::string& prefix, int64_t head, const float* x, float* out);
  void bsbr_map(ops::Context& ctx, const ParamStore& params, const std::string& prefix, int64_t head, int64_t chunk_size, const float* x,
                float* out);

 private:
  // q = x W[:, head] + b[head] for a Linear "<prefix>.<name>": [n, dh]
  void project(ops::Context& ctx, const ParamStore& params, const std::string& linear, int64_t head, const float* x, float* out) const;
  void fill_mask(int64_t chunk_size);  // 0 where s in [lo(t), t], -inf elsewhere; chunk 0 = full causal
  int64_t d_, heads_, dh_, n_;
  float scale_;
  ops::MatMul project_;      // [n, d] . [d, dh] (+ bias) -> [n, dh]
  ops::MatMul masked_scores_;  // scale q.kᵀ + mask -> [n, n]
  ops::MatMul raw_scores_;   // q.kᵀ -> [n, n]
  ops::SoftmaxOp softmax_;   // rows of [n, n]
  Tensor q_, k_, r_, h_, mask_, raw_;
  int64_t mask_chunk_ = -1;
};

// Within-chunk (exactly computed) causal pairs over all causal pairs n(n+1)/2, chunk size B.
double exact_pair_share(int64_t n, int64_t chunk_size);

struct AttentionDensity {
  double threshold = 0;
  std::vector<double> above_threshold_by_layer;  // share of causal pairs with weight > threshold, mean over heads
  double above_threshold = 0;                    // mean over layers
  std::map<int64_t, double> local_mass;          // chunk size -> mean over layers, heads, rows of the within-chunk mass
};

// The original (softmax) model's density over every layer and head. mixer_inputs: [L, n, d].
AttentionDensity attention_density(ops::Context& ctx, const Model& original, const float* mixer_inputs, int64_t n, double threshold,
                                   const std::vector<int64_t>& chunk_sizes);

}  // namespace bsbr

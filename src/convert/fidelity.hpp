// How much of the original model's behaviour a converted model preserves, on the same tokens
// (SPEC §6). All metrics are over positions 0..n-1 of one sequence, in double precision:
//   cosine(l)  mean over positions t of cos(h_orig[l, t], h_conv[l, t]): residual stream after block l
//              (ideal 1);
//   mse(l)     mean over positions and features of (h_orig - h_conv)² (ideal 0);
//   kl         mean over t of KL(P_orig,t || P_conv,t) = Σ_v p_orig log(p_orig / p_conv), P = softmax(logits),
//              in nats (ideal 0);
//   top-k      mean over t of |top_k(orig) ∩ top_k(conv)| / k: the share of the original's k most
//              likely next tokens the converted model also ranks in its top k (k = 1: argmax agreement; ideal 1);
//   perplexity exp(-1/(n-1) Σ_{t<n-1} log P_t(token_{t+1})) of each model on the input itself.
#pragma once
#include <cstdint>
#include <vector>

namespace bsbr {

struct LayerFidelity {
  double cosine = 0, mse = 0;
};

struct Fidelity {
  std::vector<LayerFidelity> layers;  // residual stream after each block
  LayerFidelity final_hidden;         // the final LayerNorm's output (what the LM head reads)
  double kl = 0;
  double top1 = 0, top5 = 0, top10 = 0;
  double perplexity_original = 0, perplexity_converted = 0;
  int64_t positions = 0;
};

// Per-position comparison of two [rows, d] activations.
LayerFidelity compare_hidden(const float* original, const float* converted, int64_t rows, int64_t d);
// Share of the top k entries of `a` that are also among the top k of `b` (rows of length V).
double topk_agreement(const float* a, const float* b, int64_t V, int k);
// KL(softmax(p_logits) || softmax(q_logits)) in nats.
double kl_divergence(const float* p_logits, const float* q_logits, int64_t V);
// Perplexity of next-token predictions: logits [n, V], tokens [n]; needs n >= 2.
double perplexity(const float* logits, const int32_t* tokens, int64_t n, int64_t V);

// Everything above. residuals_*: [L, n, d]; hidden_*: [n, d]; logits_*: [n, V].
Fidelity compare_models(const float* residuals_orig, const float* residuals_conv, int64_t layers, const float* hidden_orig,
                        const float* hidden_conv, const float* logits_orig, const float* logits_conv, const int32_t* tokens, int64_t n,
                        int64_t d, int64_t V);

}  // namespace bsbr

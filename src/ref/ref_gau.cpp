// Oracle for GAU (SPEC §2, the study's chunked gated attention unit), per-token loops with double
// accumulation. One head of width E = e*d; Q, K, V, G = x.W + b; G <- sigmoid(G); chunk i:
//   out_t = (softmax over u in [iB, t] of q_t.k_u / sqrt(E), times v_u  +  q_t.S_i) ⊙ g_t
//   S_i = Σ_{j<i} K_j^T V_j (a running prefix sum, updated after each complete chunk)
// then out_proj (E -> d).
#include <cmath>

#include "ref/ref_model.hpp"

namespace bsbr::ref {

Mat gau_attention(const ModelConfig& cfg, ParamStore& P, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
                   const OracleOptions& opt) {
  const int64_t d = cfg.hidden_dim, E = cfg.expansion_factor * d, B = cfg.chunk_size;
  const double scale = 1.0 / std::sqrt(static_cast<double>(E));
  Mat q = linear_param(x, n, P, prefix + ".q_proj", d, E, macs);
  Mat k = linear_param(x, n, P, prefix + ".k_proj", d, E, macs);
  Mat v = linear_param(x, n, P, prefix + ".v_proj", d, E, macs);
  Mat g = linear_param(x, n, P, prefix + ".gate_proj", d, E, macs);

  Mat o(n * E);
  std::vector<double> S(E * E, 0.0);  // Σ_{j<i} K_j^T V_j
  const int64_t cur = (n - 1) / B;
  for (int64_t i = 0; i <= cur; ++i) {
    for (int64_t t = i * B; t < std::min((i + 1) * B, n); ++t) {
      float* out = &o[t * E];
      attend(&q[t * E], k, v, E, 0, E, i * B, t, scale, out, macs);
      if (i > 0) {
        for (int64_t b = 0; b < E; ++b) {
          double acc = 0;
          for (int64_t a = 0; a < E; ++a) acc += static_cast<double>(q[t * E + a]) * S[a * E + b];
          out[b] += static_cast<float>(acc);
        }
        macs.macs += static_cast<double>(E) * E;
      }
      if (opt.mutation != Mutation::kGauNoGate)
        for (int64_t b = 0; b < E; ++b) out[b] = static_cast<float>(out[b] * sigmoid(g[t * E + b]));
    }
    if (i < cur) {  // chunk i is complete: fold it into the prefix sum
      for (int64_t u = i * B; u < (i + 1) * B; ++u)
        for (int64_t a = 0; a < E; ++a)
          for (int64_t b = 0; b < E; ++b) S[a * E + b] += static_cast<double>(k[u * E + a]) * v[u * E + b];
      macs.macs += static_cast<double>(B) * E * E;
    }
  }
  return linear_param(o, n, P, prefix + ".out_proj", E, d, macs);
}

}  // namespace bsbr::ref

// Oracle for DeltaNet (SPEC §2), the delta-rule recurrence token by token, per head, in double,
// in the SPEC's own convention S [dv, dk] with o = S q:
//   q_t, k_t L2-normalised per head; beta_t = config beta, or sigmoid(x_t W_beta + b_beta)[head];
//   S_t = S_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T,   o_t = S_t q_t;
// then the output projection. No clamping.
#include <cmath>

#include "ref/ref_model.hpp"

namespace bsbr::ref {

Mat deltanet_attention(const ModelConfig& cfg, ParamStore& P, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
                   const OracleOptions& opt) {
  const int64_t d = cfg.hidden_dim, h = cfg.num_heads, dh = cfg.head_dim();
  const auto [q, k, v] = qkv_projections(cfg, P, prefix, x, n, macs);
  const bool learned = cfg.beta_mode == BetaMode::kLearned;
  Mat beta_logits;
  if (learned) beta_logits = linear_param(x, n, P, prefix + ".beta_proj", d, h, macs);
  auto unit = [dh](const float* a, std::vector<double>& out) {
    double norm = 0;
    for (int64_t i = 0; i < dh; ++i) norm += static_cast<double>(a[i]) * a[i];
    norm = std::sqrt(norm);
    for (int64_t i = 0; i < dh; ++i) out[i] = a[i] / norm;
  };
  Mat o(n * d, 0.f);
  for (int64_t head = 0; head < h; ++head) {
    std::vector<double> S(dh * dh, 0.0), qn(dh), kn(dh), r(dh);  // S [dv, dk]
    for (int64_t t = 0; t < n; ++t) {
      unit(head_row(q, t, d, head, dh), qn);
      unit(head_row(k, t, d, head, dh), kn);
      const float* vt = head_row(v, t, d, head, dh);
      const double beta = opt.mutation == Mutation::kDeltaNetNoBeta ? 1.0 : learned ? sigmoid(beta_logits[t * h + head]) : cfg.beta;
      macs.macs += 3.0 * static_cast<double>(dh * dh);  // S k, the rank-1 update, S q
      for (int64_t i = 0; i < dh; ++i) {
        r[i] = 0;
        for (int64_t j = 0; j < dh; ++j) r[i] += S[i * dh + j] * kn[j];
      }
      for (int64_t i = 0; i < dh; ++i)
        for (int64_t j = 0; j < dh; ++j) S[i * dh + j] += beta * (vt[i] - r[i]) * kn[j];
      for (int64_t i = 0; i < dh; ++i) {
        double acc = 0;
        for (int64_t j = 0; j < dh; ++j) acc += S[i * dh + j] * qn[j];
        o[t * d + head * dh + i] = static_cast<float>(acc);
      }
    }
  }
  return linear_param(o, n, P, prefix + ".out_proj", d, d, macs);
}

}  // namespace bsbr::ref

// Oracle for Linear (SPEC §2), the recurrent form token by token, per head, in double:
//   S_t = S_{t-1} + phi(k_t) v_t^T,  z_t = z_{t-1} + phi(k_t),
//   o_t = phi(q_t)^T S_t / (phi(q_t).z_t + 1e-6)   (or phi(q_t)^T S_t without normalize),
// phi(x) = elu(x) + 1 (feature_map: elu1) or x (identity); then the output projection.
#include <cmath>

#include "ref/ref_model.hpp"

namespace bsbr::ref {

Mat linear_attention(const ModelConfig& cfg, ParamStore& P, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
                   const OracleOptions& opt) {
  const int64_t d = cfg.hidden_dim, h = cfg.num_heads, dh = cfg.head_dim();
  const auto [q, k, v] = qkv_projections(cfg, P, prefix, x, n, macs);
  auto phi = [&](double a) { return cfg.feature_map == FeatureMap::kElu1 ? (a > 0 ? a + 1.0 : std::exp(a)) : a; };
  Mat o(n * d, 0.f);
  for (int64_t head = 0; head < h; ++head) {
    std::vector<double> S(dh * dh, 0.0), z(dh, 0.0), fq(dh), fk(dh);  // S [dk, dv]
    for (int64_t t = 0; t < n; ++t) {
      const float *qt = head_row(q, t, d, head, dh), *kt = head_row(k, t, d, head, dh), *vt = head_row(v, t, d, head, dh);
      for (int64_t i = 0; i < dh; ++i) {
        fq[i] = phi(qt[i]);
        fk[i] = phi(kt[i]);
        z[i] += fk[i];
      }
      macs.macs += static_cast<double>(dh * dh);  // S += phi(k) v^T
      for (int64_t i = 0; i < dh; ++i)
        for (int64_t j = 0; j < dh; ++j) S[i * dh + j] += fk[i] * vt[j];
      double den = 1.0;
      if (cfg.normalize && opt.mutation != Mutation::kLinearNoNormalizer) {
        macs.macs += static_cast<double>(dh);  // phi(q).z
        den = 1e-6;
        for (int64_t i = 0; i < dh; ++i) den += fq[i] * z[i];
      }
      macs.macs += static_cast<double>(dh * dh);  // phi(q)^T S
      for (int64_t j = 0; j < dh; ++j) {
        double num = 0;
        for (int64_t i = 0; i < dh; ++i) num += fq[i] * S[i * dh + j];
        o[t * d + head * dh + j] = static_cast<float>(num / den);
      }
    }
  }
  return linear_param(o, n, P, prefix + ".out_proj", d, d, macs);
}

}  // namespace bsbr::ref

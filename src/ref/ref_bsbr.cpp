// Oracle for BSBR (SPEC §2, causal form), straight from the formulas with per-token loops and
// double accumulation. Per head h (dh = d/h, s = 1/sqrt(dh)), chunk i = positions [iB, (i+1)B):
//   local_t = softmax over u in [iB, t] of s q_t.k_u, times v_u
//   F_j = K_j^T V_j for the complete chunks j < cur = (n-1)/B; compressed f_j = vec(F_j).W_c + b_c
//   H_j = x_last(j).W_h + b_h, R_i = x_last(i-1).W_r + b_r, last(j) = (j+1)B - 1
//   p_ij = softmax_{j<i}(s R_i^h.H_j^h); G_i = Σ p_ij F_j or unvec((Σ p_ij f_j).W_d + b_d); G_0 = 0
//   out_t = local_t + q_t.G_i, heads concatenated, then out_proj.
#include <cmath>

#include "ref/ref_model.hpp"

namespace bsbr::ref {

Mat bsbr_attention(const ModelConfig& cfg, ParamStore& P, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
                   const OracleOptions& opt) {
  const int64_t d = cfg.hidden_dim, heads = cfg.num_heads, dh = cfg.head_dim(), dd = dh * dh, B = cfg.chunk_size;
  const int64_t coded = cfg.compression_factor > 0 ? d / cfg.compression_factor : 0;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  auto w = [&](const std::string& name) { return param(P, prefix + "." + name); };
  const auto [q, k, v] = qkv_projections(cfg, P, prefix, x, n, macs);

  // Local attention inside each chunk.
  Mat o(n * d);
  for (int64_t head = 0; head < heads; ++head)
    for (int64_t t = 0; t < n; ++t) attend(&q[t * d + head * dh], k, v, d, head * dh, dh, t / B * B, t, scale, &o[t * d + head * dh], macs);

  // Complete chunks j < cur: chunk states (F_j, or compressed f_j) and meta keys H_j.
  const int64_t cur = (n - 1) / B;
  auto last = [&](int64_t j) { return (j + 1) * B - 1; };
  std::vector<std::vector<double>> state(cur * heads);  // [j * heads + head]: F_j (dh²) or f_j (d/c)
  std::vector<Mat> meta_key(cur);
  for (int64_t j = 0; j < cur; ++j) {
    for (int64_t head = 0; head < heads; ++head) {
      std::vector<double> F(dd, 0.0);
      for (int64_t u = j * B; u < (j + 1) * B; ++u)
        for (int64_t a = 0; a < dh; ++a)
          for (int64_t b = 0; b < dh; ++b) F[a * dh + b] += static_cast<double>(k[u * d + head * dh + a]) * v[u * d + head * dh + b];
      macs.macs += static_cast<double>(B) * dd;
      if (coded > 0) {
        std::vector<double> f(coded);
        const float *Wc = w("compress_proj.weight"), *bc = w("compress_proj.bias");
        for (int64_t c = 0; c < coded; ++c) {
          double acc = bc[c];
          for (int64_t e = 0; e < dd; ++e) acc += F[e] * Wc[e * coded + c];
          f[c] = acc;
        }
        macs.macs += static_cast<double>(dd) * coded;
        F = f;
      }
      state[j * heads + head] = F;
    }
    meta_key[j] = linear_param(row_of(x, last(j), d), 1, P, prefix + ".meta_h_proj", d, d, macs);
  }

  // Chunks i >= 1 retrieve G_i from the chunks before them; every token of chunk i adds q_t.G_i.
  const int64_t retrieving = opt.mutation == Mutation::kBsbrNoRetrieval ? 0 : cur;
  for (int64_t i = 1; i <= retrieving; ++i) {
    Mat R = linear_param(row_of(x, last(i - 1), d), 1, P, prefix + ".meta_r_proj", d, d, macs);
    for (int64_t head = 0; head < heads; ++head) {
      std::vector<double> p(i);
      for (int64_t j = 0; j < i; ++j) p[j] = scale * dot(&R[head * dh], &meta_key[j][head * dh], dh, &macs);
      softmax(p);
      const int64_t width = coded > 0 ? coded : dd;
      std::vector<double> mixed(width, 0.0);
      for (int64_t j = 0; j < i; ++j)
        for (int64_t e = 0; e < width; ++e) mixed[e] += p[j] * state[j * heads + head][e];
      macs.macs += static_cast<double>(i) * width;
      std::vector<double> G = mixed;
      if (coded > 0) {
        const float *Wd = w("decompress_proj.weight"), *bd = w("decompress_proj.bias");
        G.assign(dd, 0.0);
        for (int64_t e = 0; e < dd; ++e) {
          double acc = bd[e];
          for (int64_t c = 0; c < coded; ++c) acc += mixed[c] * Wd[c * dd + e];
          G[e] = acc;
        }
        macs.macs += static_cast<double>(coded) * dd;
      }
      for (int64_t t = i * B; t < std::min((i + 1) * B, n); ++t) {
        for (int64_t b = 0; b < dh; ++b) {
          double acc = 0;
          for (int64_t a = 0; a < dh; ++a) acc += static_cast<double>(q[t * d + head * dh + a]) * G[a * dh + b];
          o[t * d + head * dh + b] += static_cast<float>(acc);
        }
        macs.macs += static_cast<double>(dd);
      }
    }
  }
  return linear_param(o, n, P, prefix + ".out_proj", d, d, macs);
}

}  // namespace bsbr::ref

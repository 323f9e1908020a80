// Oracles for Standard and Hopfield (SPEC §2): for every t, softmax over s <= t of
// (q_t . k_s) * scale, times v_s; per head; then the output projection. O(n^2) loops. The same
// loop with a window (keys s >= t - w only) is the SlidingWindow oracle (ref_sliding_window.cpp).
#include <algorithm>
#include <cmath>

#include "ref/ref_model.hpp"

namespace bsbr::ref {

Mat causal_softmax_attention(const ModelConfig& cfg, ParamStore& P, const std::string& prefix, const Mat& x, int64_t n,
                             double scale, int64_t window, MacCounter& macs, bool causal) {
  const int64_t d = cfg.hidden_dim, h = cfg.num_heads, dh = cfg.head_dim();
  const auto [q, k, v] = qkv_projections(cfg, P, prefix, x, n, macs);
  Mat o(n * d, 0.f);
  for (int64_t head = 0; head < h; ++head)
    for (int64_t t = 0; t < n; ++t) {
      const int64_t first = window < 0 ? 0 : std::max<int64_t>(0, t - window);  // visible keys: first .. last
      const int64_t last = causal ? t : n - 1;
      attend(head_row(q, t, d, head, dh), k, v, d, head * dh, dh, first, last, scale, &o[t * d + head * dh], macs);
    }
  return linear_param(o, n, P, prefix + ".out_proj", d, d, macs);
}

Mat standard_attention(const ModelConfig& cfg, ParamStore& P, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
                       const OracleOptions& opt) {
  const double scale = opt.mutation == Mutation::kStandardNoScale ? 1.0 : 1.0 / std::sqrt(static_cast<double>(cfg.head_dim()));
  return causal_softmax_attention(cfg, P, prefix, x, n, scale, -1, macs, opt.mutation != Mutation::kStandardNoCausalMask);
}

Mat hopfield_attention(const ModelConfig& cfg, ParamStore& P, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
                       const OracleOptions& opt) {
  const double T = opt.mutation == Mutation::kHopfieldNoTemperature ? 1.0 : cfg.temperature;
  return causal_softmax_attention(cfg, P, prefix, x, n, 1.0 / (T * std::sqrt(static_cast<double>(cfg.head_dim()))), -1, macs);
}

}  // namespace bsbr::ref

// Oracle for SlidingWindow (SPEC §2): for every t, softmax over s in [max(0, t-w), t] of
// (q_t . k_s) / sqrt(dh), times v_s; per head; then the output projection. The per-token loop is
// the windowed form of Standard's oracle (causal_softmax_attention in ref_standard.cpp).
#include <cmath>

#include "ref/ref_model.hpp"

namespace bsbr::ref {

Mat sliding_window_attention(const ModelConfig& cfg, ParamStore& P, const std::string& prefix, const Mat& x, int64_t n,
                             MacCounter& macs, const OracleOptions& opt) {
  const int64_t window = opt.mutation == Mutation::kWindowUnbounded ? -1 : cfg.window_size;
  return causal_softmax_attention(cfg, P, prefix, x, n, 1.0 / std::sqrt(static_cast<double>(cfg.head_dim())), window, macs);
}

}  // namespace bsbr::ref

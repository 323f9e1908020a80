// Fidelity metrics: plain double-precision loops over a few output rows, outside any timed region
// (analysis of results, not model arithmetic; oneDNN's f32 reductions would lose the small
// differences these metrics exist to measure).
#include "convert/fidelity.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/errors.hpp"

namespace bsbr {

namespace {

// log-softmax of one row, in double.
std::vector<double> log_softmax(const float* x, int64_t V) {
  double m = -INFINITY;
  for (int64_t v = 0; v < V; ++v) m = std::max(m, static_cast<double>(x[v]));
  double s = 0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(x[v] - m);
  const double lse = m + std::log(s);
  std::vector<double> out(V);
  for (int64_t v = 0; v < V; ++v) out[v] = x[v] - lse;
  return out;
}

// The k largest entries' ids, largest first (ties: the lower id first, so rankings are deterministic).
std::vector<int32_t> ranked_top_k(const float* x, int64_t V, int k) {
  std::vector<int32_t> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  const int64_t kk = std::min<int64_t>(k, V);
  std::partial_sort(idx.begin(), idx.begin() + kk, idx.end(), [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  idx.resize(kk);
  return idx;
}

// |first k of a ∩ first k of b| / k for ranked lists.
double overlap(const std::vector<int32_t>& a, const std::vector<int32_t>& b, std::size_t k) {
  k = std::min({k, a.size(), b.size()});
  std::vector<int32_t> sa(a.begin(), a.begin() + k), sb(b.begin(), b.begin() + k), both;
  std::sort(sa.begin(), sa.end());
  std::sort(sb.begin(), sb.end());
  std::set_intersection(sa.begin(), sa.end(), sb.begin(), sb.end(), std::back_inserter(both));
  return static_cast<double>(both.size()) / static_cast<double>(k);
}

}  // namespace

LayerFidelity compare_hidden(const float* a, const float* b, int64_t rows, int64_t d) {
  LayerFidelity f;
  for (int64_t t = 0; t < rows; ++t) {
    double ab = 0, aa = 0, bb = 0, se = 0;
    for (int64_t i = 0; i < d; ++i) {
      const double x = a[t * d + i], y = b[t * d + i];
      ab += x * y;
      aa += x * x;
      bb += y * y;
      se += (x - y) * (x - y);
    }
    // Two zero vectors are identical (cosine 1); one zero vector against another is orthogonal.
    f.cosine += (aa == 0 && bb == 0) ? 1.0 : (aa == 0 || bb == 0) ? 0.0 : ab / std::sqrt(aa * bb);
    f.mse += se;
  }
  f.cosine /= static_cast<double>(rows);
  f.mse /= static_cast<double>(rows * d);
  return f;
}

double topk_agreement(const float* a, const float* b, int64_t V, int k) {
  return overlap(ranked_top_k(a, V, k), ranked_top_k(b, V, k), static_cast<std::size_t>(k));
}

double kl_divergence(const float* p_logits, const float* q_logits, int64_t V) {
  std::vector<double> lp = log_softmax(p_logits, V), lq = log_softmax(q_logits, V);
  double kl = 0;
  for (int64_t v = 0; v < V; ++v) kl += std::exp(lp[v]) * (lp[v] - lq[v]);
  return std::max(kl, 0.0);  // rounding can leave -1e-17 for identical rows
}

double perplexity(const float* logits, const int32_t* tokens, int64_t n, int64_t V) {
  BSBR_CHECK(n >= 2, "perplexity needs at least two tokens");
  double nll = 0;
  for (int64_t t = 0; t + 1 < n; ++t) nll -= log_softmax(logits + t * V, V)[tokens[t + 1]];
  return std::exp(nll / static_cast<double>(n - 1));
}

Fidelity compare_models(const float* residuals_orig, const float* residuals_conv, int64_t layers, const float* hidden_orig,
                        const float* hidden_conv, const float* logits_orig, const float* logits_conv, const int32_t* tokens, int64_t n,
                        int64_t d, int64_t V) {
  Fidelity f;
  f.positions = n;
  for (int64_t l = 0; l < layers; ++l) f.layers.push_back(compare_hidden(residuals_orig + l * n * d, residuals_conv + l * n * d, n, d));
  f.final_hidden = compare_hidden(hidden_orig, hidden_conv, n, d);
  for (int64_t t = 0; t < n; ++t) {
    const float* a = logits_orig + t * V;
    const float* b = logits_conv + t * V;
    f.kl += kl_divergence(a, b, V);
    const std::vector<int32_t> ra = ranked_top_k(a, V, 10), rb = ranked_top_k(b, V, 10);  // top-1 and top-5 are their prefixes
    f.top1 += overlap(ra, rb, 1);
    f.top5 += overlap(ra, rb, 5);
    f.top10 += overlap(ra, rb, 10);
  }
  for (double* m : {&f.kl, &f.top1, &f.top5, &f.top10}) *m /= static_cast<double>(n);
  f.perplexity_original = perplexity(logits_orig, tokens, n, V);
  f.perplexity_converted = perplexity(logits_conv, tokens, n, V);
  return f;
}

}  // namespace bsbr

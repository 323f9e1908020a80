// One-sided Mann-Whitney U test (see mann_whitney.hpp).
#include "analysis/mann_whitney.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "analysis/distributions.hpp"
#include "core/errors.hpp"

namespace bsbr::analysis {

// Counts c(i, j, ·) built up from c(0, j) = c(i, 0) = δ(u).
std::vector<double> mann_whitney_null_counts(int m, int n) {
  BSBR_CHECK(m >= 0 && n >= 0, "sample sizes are non-negative");
  // counts[i][j][u]: arrangements of i x's and j y's with U = u.
  std::vector<std::vector<std::vector<double>>> counts(m + 1, std::vector<std::vector<double>>(n + 1));
  for (int i = 0; i <= m; ++i)
    for (int j = 0; j <= n; ++j) {
      std::vector<double>& c = counts[i][j];
      c.assign(i * j + 1, 0.0);
      if (i == 0 || j == 0) {
        c[0] = 1;
        continue;
      }
      const std::vector<double>& x_largest = counts[i - 1][j];  // shifted by j
      const std::vector<double>& y_largest = counts[i][j - 1];
      for (std::size_t u = 0; u < x_largest.size(); ++u) c[u + j] += x_largest[u];
      for (std::size_t u = 0; u < y_largest.size(); ++u) c[u] += y_largest[u];
    }
  return counts[m][n];
}

namespace {

// P(U >= u) for sizes m, n with no ties.
double exact_upper_tail(int m, int n, double u_observed) {
  const std::vector<double> dist = mann_whitney_null_counts(m, n);
  double total = 0, tail = 0;
  const int from = static_cast<int>(std::ceil(u_observed - 1e-9));
  for (int u = 0; u <= m * n; ++u) {
    total += dist[u];
    if (u >= from) tail += dist[u];
  }
  return tail / total;
}

}  // namespace

MannWhitneyResult mann_whitney_greater(const std::vector<double>& current, const std::vector<double>& baseline) {
  BSBR_CHECK(!current.empty() && !baseline.empty(), "Mann-Whitney needs samples on both sides");
  const int m = static_cast<int>(current.size()), n = static_cast<int>(baseline.size());
  MannWhitneyResult r;
  for (double x : current)
    for (double y : baseline) r.u += x > y ? 1.0 : (x == y ? 0.5 : 0.0);

  // Tie groups over the pooled sample.
  std::vector<double> pooled(current);
  pooled.insert(pooled.end(), baseline.begin(), baseline.end());
  std::sort(pooled.begin(), pooled.end());
  double tie_sum = 0;  // Σ (t³ - t)
  for (std::size_t i = 0; i < pooled.size();) {
    std::size_t j = i;
    while (j < pooled.size() && pooled[j] == pooled[i]) ++j;
    const double t = static_cast<double>(j - i);
    tie_sum += t * t * t - t;
    i = j;
  }

  if (tie_sum == 0 && m <= kExactMaxSamples && n <= kExactMaxSamples) {
    r.exact = true;
    r.p_value = exact_upper_tail(m, n, r.u);
    return r;
  }
  const double big_n = static_cast<double>(m + n);
  const double mean = 0.5 * m * n;
  const double var = static_cast<double>(m) * n / 12.0 * ((big_n + 1) - tie_sum / (big_n * (big_n - 1)));
  if (var <= 0) {  // every value tied: no evidence either way
    r.p_value = 1;
    return r;
  }
  const double z = (r.u - mean - 0.5) / std::sqrt(var);  // continuity correction toward the null
  r.p_value = 1 - normal_cdf(z);
  return r;
}

}  // namespace bsbr::analysis

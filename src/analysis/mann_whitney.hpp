// One-sided Mann-Whitney U test: are the `current` samples stochastically larger (slower) than the
// `baseline` samples? check uses it to tell a real slowdown from timing noise.
#pragma once
#include <vector>

namespace bsbr::analysis {

struct MannWhitneyResult {
  // U = #{(x, y): x > y} + #{(x, y): x == y} / 2 over x in current, y in baseline; 0 .. m·n.
  double u = 0;
  double p_value = 1;  // P(U >= u_observed) under H0 (both samples from one distribution)
  bool exact = false;  // exact null distribution (small samples, no ties) vs normal approximation
};

// Sample sizes up to this (each side) without ties use the exact null distribution.
inline constexpr int kExactMaxSamples = 20;

// The exact null distribution of U for sizes m, n without ties: element u (0 .. m·n) is the number
// of the C(m + n, m) equally likely arrangements with U = u. (ab's Hodges-Lehmann interval.)
std::vector<double> mann_whitney_null_counts(int m, int n);

// Exact: the count of arrangements with U = u follows c(m, n, u) = c(m-1, n, u-n) + c(m, n-1, u)
// (the largest of all m + n values is either an x, beating all n y's, or a y, beating nothing).
// Otherwise: normal approximation with continuity correction and tie-corrected variance
// σ² = m n / 12 · ((N + 1) - Σ (t³ - t) / (N (N - 1))), N = m + n, t = size of each tie group.
// Both samples must be non-empty.
MannWhitneyResult mann_whitney_greater(const std::vector<double>& current, const std::vector<double>& baseline);

}  // namespace bsbr::analysis

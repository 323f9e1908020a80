// Summary statistics of timing samples (SPEC §3): every sample is kept; these summarise them.
#pragma once
#include <vector>

namespace bsbr {

struct SampleStats {
  int count = 0;
  double min = 0, max = 0, median = 0, mean = 0;
  double stddev = 0;  // sample standard deviation (n - 1); 0 for one sample
  double q1 = 0, q3 = 0, iqr = 0;  // quartiles by linear interpolation (numpy's default)
  double cv = 0;      // stddev / mean
};

SampleStats compute_stats(std::vector<double> samples);
// Quantile q in [0, 1] of sorted data, linear interpolation between order statistics.
double quantile_sorted(const std::vector<double>& sorted, double q);

// A point is flagged noisy above this coefficient of variation.
inline constexpr double kNoisyCv = 0.10;

}  // namespace bsbr

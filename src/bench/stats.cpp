// Sample statistics.
#include "bench/stats.hpp"

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"

namespace bsbr {

double quantile_sorted(const std::vector<double>& s, double q) {
  BSBR_CHECK(!s.empty(), "quantile of no samples");
  double pos = q * static_cast<double>(s.size() - 1);
  std::size_t lo = static_cast<std::size_t>(std::floor(pos));
  std::size_t hi = std::min(lo + 1, s.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return s[lo] + (s[hi] - s[lo]) * frac;
}

SampleStats compute_stats(std::vector<double> samples) {
  SampleStats st;
  if (samples.empty()) return st;
  std::sort(samples.begin(), samples.end());
  st.count = static_cast<int>(samples.size());
  st.min = samples.front();
  st.max = samples.back();
  st.median = quantile_sorted(samples, 0.5);
  st.q1 = quantile_sorted(samples, 0.25);
  st.q3 = quantile_sorted(samples, 0.75);
  st.iqr = st.q3 - st.q1;
  double sum = 0;
  for (double x : samples) sum += x;
  st.mean = sum / st.count;
  if (st.count > 1) {
    double ss = 0;
    for (double x : samples) ss += (x - st.mean) * (x - st.mean);
    st.stddev = std::sqrt(ss / (st.count - 1));
  }
  st.cv = st.mean > 0 ? st.stddev / st.mean : 0;
  return st;
}

}  // namespace bsbr

// Mean and 95 % interval over seeds (Student's t with k - 1 degrees of freedom) for every quality
// figure of the lm study, filled into each ModelResult's summary.
#pragma once
#include <vector>

#include "lm/results.hpp"

namespace bsbr::lm {

// Mean of `values` and the half-width t_{0.975, k-1} s / sqrt(k), s the sample standard deviation
// (k - 1 in the denominator). Non-finite values are left out (n counts the rest); one value gives
// half = 0 (no spread known), none gives n = 0 and NaN.
Interval t_interval(const std::vector<double>& values, double confidence = 0.95);

// Fills m.summary from m.seeds (every seed's figures; the contexts and buckets by index).
void summarize(ModelResult& m);

}  // namespace bsbr::lm

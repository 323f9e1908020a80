// Calibration: a large f32 matmul timed in the same run as the benchmark, giving the machine's
// attainable GFLOP/s. Results from different machines then compare as ratios (SPEC §3), and
// `check` normalises timings by it.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "ops/context.hpp"

namespace bsbr {

struct Calibration {
  int64_t m = 0, n = 0, k = 0;
  int threads = 0;
  std::vector<double> samples_s;
  double median_s = 0;
  double gflops = 0;  // 2mnk / median
  std::string impl;
};

// Times C[size, size] = A . B with oneDNN (warm-up, then `repeats` samples).
Calibration calibrate(ops::Context& ctx, int64_t size = 2048, int repeats = 5);
nlohmann::json to_json(const Calibration& c);

}  // namespace bsbr

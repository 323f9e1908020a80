// Thread scaling (README "bsbr-bench analyze", issue 14): from a results file whose points ran at
// several thread counts, per (model, workload, n) the median time at each count, the speed-up over
// the base count (1 thread when the file has it, else its smallest count) and the parallel
// efficiency: that speed-up over the calibration matmul's own speed-up between the same counts.
// Pure computation; report/analysis_report and report/plots format it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "report/results.hpp"

namespace bsbr::analysis {

// speed-up = t_base / t; calibration speed-up = g / g_base; parallel efficiency = their ratio.
double speedup(double t_base, double t);
double parallel_efficiency(double t_base, double t, double calibration_gflops_base, double calibration_gflops);

struct CalibrationScaling {
  int64_t threads = 0;
  std::optional<double> gflops;   // the matmul at this count (nullopt: not calibrated)
  std::optional<double> speedup;  // gflops / gflops at the base count
};

struct SpeedupCell {
  int64_t threads = 0;
  std::optional<double> median_s;              // nullopt: no ok run at this count
  std::optional<double> speedup;               // over the base count's time
  std::optional<double> parallel_efficiency;   // speedup / calibration's speed-up
};

struct SpeedupRow {
  std::string model;
  Workload workload = Workload::kPrefill;
  int64_t n = 0;
  std::vector<SpeedupCell> cells;  // one per ScalingAnalysis::threads, in that order
};

struct ScalingAnalysis {
  std::vector<int64_t> threads;  // ascending
  int64_t base_threads = 0;      // 1 when present, else the smallest count
  std::vector<CalibrationScaling> calibration;  // aligned with threads
  std::vector<SpeedupRow> rows;  // the file's model order, then workload, then n
  bool empty() const { return threads.size() < 2; }
};

// Empty (threads.size() < 2) when the file's runs have one thread count.
ScalingAnalysis analyze_scaling(const Results& r);

}  // namespace bsbr::analysis

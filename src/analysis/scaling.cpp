// Thread scaling (see scaling.hpp).
#include "analysis/scaling.hpp"

#include <algorithm>

namespace bsbr::analysis {

double speedup(double t_base, double t) { return t_base / t; }

double parallel_efficiency(double t_base, double t, double calibration_gflops_base, double calibration_gflops) {
  return speedup(t_base, t) / (calibration_gflops / calibration_gflops_base);
}

ScalingAnalysis analyze_scaling(const Results& r) {
  ScalingAnalysis s;
  s.threads = r.thread_counts();
  std::sort(s.threads.begin(), s.threads.end());
  if (s.empty()) return s;
  s.base_threads = std::find(s.threads.begin(), s.threads.end(), 1) != s.threads.end() ? 1 : s.threads.front();
  const std::optional<double> g_base = r.calibration_gflops_at(s.base_threads);
  for (int64_t t : s.threads) {
    CalibrationScaling c{t, r.calibration_gflops_at(t), std::nullopt};
    if (c.gflops && g_base) c.speedup = *c.gflops / *g_base;
    s.calibration.push_back(c);
  }
  for (const std::string& m : r.models)
    for (Workload w : {Workload::kPrefill, Workload::kDecode, Workload::kGenerate, Workload::kRecompute}) {
      std::vector<int64_t> lengths;
      for (const RunRecord& run : r.runs)
        if (run.problem.model == m && run.problem.workload == w && std::find(lengths.begin(), lengths.end(), run.problem.n) == lengths.end())
          lengths.push_back(run.problem.n);
      std::sort(lengths.begin(), lengths.end());
      for (int64_t n : lengths) {
        SpeedupRow row{m, w, n, {}};
        const RunRecord* base = r.find_at(m, w, n, s.base_threads);
        for (std::size_t i = 0; i < s.threads.size(); ++i) {
          SpeedupCell cell{s.threads[i], std::nullopt, std::nullopt, std::nullopt};
          if (const RunRecord* run = r.find_at(m, w, n, s.threads[i])) {
            cell.median_s = run->stats.median;
            if (base) {
              cell.speedup = speedup(base->stats.median, run->stats.median);
              if (g_base && s.calibration[i].gflops)
                cell.parallel_efficiency = parallel_efficiency(base->stats.median, run->stats.median, *g_base, *s.calibration[i].gflops);
            }
          }
          row.cells.push_back(cell);
        }
        s.rows.push_back(std::move(row));
      }
    }
  return s;
}

}  // namespace bsbr::analysis

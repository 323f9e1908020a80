// The analysis pass (SPEC §5): from a Results value to fits, relative performance and memory
// figures. Pure computation: reporters (report/analysis_report.hpp, report/plots.hpp) only
// consume an Analysis.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/scaling.hpp"
#include "analysis/fit.hpp"
#include "report/results.hpp"

namespace bsbr::analysis {

struct AnalyzeOptions {
  std::optional<std::string> baseline;  // relative performance vs this model (default: fastest at the largest n)
  std::optional<Workload> workload;     // analyse only this workload (default: every workload in the file)
};

// R² below this earns a note: one power law describes the series poorly.
inline constexpr double kPoorFitRSquared = 0.95;

// One model's series under one workload: medians per length and their fits.
struct SeriesAnalysis {
  FitRecord fit;                 // model, workload, lengths, fits, label, notes
  std::vector<double> median_s;  // aligned with fit.seq_lengths (per token for decode)
  std::vector<double> q1_s, q3_s; // quartiles of the samples (the plots' error bars)
  std::vector<bool> noisy;       // cv > 10 % (bench/stats.hpp)
  std::optional<double> median_at(int64_t n) const;
};

// Slowdown of one model vs the baseline: t_model(n) / t_baseline(n) over their common lengths.
struct Slowdown {
  std::string model;
  int points = 0;
  double mean = 0, min = 0, max = 0;
  std::optional<double> at_largest_n;  // nullopt if either lacks the largest length
};

struct WorkloadAnalysis {
  Workload workload = Workload::kGenerate;
  std::string unit = "s";
  std::vector<SeriesAnalysis> series;  // models with >= 2 ok lengths, in the file's model order
  std::vector<std::string> unfitted;   // "Model: why" for models that could not be fitted
  int64_t largest_n = 0;               // largest length any series has
  std::string baseline;                // the model others are compared with
  bool baseline_named = false;         // true: --baseline; false: fastest at largest_n
  std::vector<Slowdown> relative;      // every other model
};

// Memory of one model at one length, from its memory_workload point (like memory_results).
struct MemoryPoint {
  int64_t n = 0;
  double peak_working_bytes = 0;  // activations + state + scratchpad
  double state_bytes = 0;         // decode state after a prefill of n (0 if unknown)
  double peak_rss_bytes = 0;      // process VmHWM (0 if unknown)
};
struct MemorySeries {
  std::string model;
  std::vector<MemoryPoint> points;  // ascending n
};

// Decode cost per generated token vs context length.
struct DecodeSeries {
  std::string model;
  std::vector<int64_t> n;
  std::vector<double> seconds_per_token;
};

// Training memory vs n (README "train"): per train workload and model with >= 2 ok lengths, the
// memory figures of each point and the power-law fit of its peak working memory (saved
// activations included), the same estimator as the time fits.
struct TrainMemorySeries {
  std::string model;
  Workload workload = Workload::kTrain;
  std::vector<int64_t> n;
  std::vector<double> peak_working_bytes, saved_activation_bytes;
  double weights_bytes = 0, gradient_bytes = 0, optimizer_bytes = 0;  // parameter-sized: the same at every n
  PowerLawFit peak_fit, saved_fit;
  std::string peak_complexity;
};

struct Analysis {
  std::string source;  // the results file (for titles)
  bool study_schema = false;
  std::vector<WorkloadAnalysis> workloads;  // in Workload order
  Workload primary = Workload::kGenerate;   // the workload the complexity plots show
  std::vector<MemorySeries> memory;         // every model with memory figures
  int64_t memory_largest_n = 0;
  std::string memory_workload;              // the workload the memory figures come from
  // From decode runs if present; else estimated as (generate - prefill) / n_tokens when both exist
  // (decode_estimated = true); empty if neither.
  std::vector<DecodeSeries> decode;
  bool decode_estimated = false;
  // A thread sweep: the per-n analyses above use the runs of its first count (`threads`); the
  // speed-up over the counts is `scaling` (empty with one count).
  int64_t threads = 0;
  ScalingAnalysis scaling;
  std::vector<TrainMemorySeries> train_memory;  // train workloads only
  const WorkloadAnalysis* find(Workload w) const;
};

// Throws UserError when nothing can be analysed: fewer than 2 sequence lengths, no model with ok
// timings at >= 2 lengths (under the selected workload), or an unknown --baseline.
Analysis analyze(const Results& results, const AnalyzeOptions& options, const std::string& source);

// The fits block for the results file (Results::fits).
std::vector<FitRecord> fit_records(const Analysis& a);

}  // namespace bsbr::analysis

// comparison_results.json (SPEC §4): a superset of the study's schema. The study's keys
// (time_results, memory_results, param_counts, seq_lengths) are kept so its analysis script still
// reads our files; the rest (schema_version, environment, config, calibration, runs, fits) is ours.
// This is the only place that knows the file's layout: reporters, analyze and check go through it.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "analysis/fit.hpp"
#include "bench/runner.hpp"

namespace bsbr {

// 2: decode samples all measure context n (positions), flops_model / flops_executed, allocation
// counts, memory_results from one workload. check refuses to compare files of different versions.
inline constexpr int kSchemaVersion = 2;

struct ModelInfo {
  std::string name;
  int64_t params = 0;            // without LM head (study's convention)
  int64_t params_with_head = 0;
};

// One entry of the `fits` block, written by analyze (and by compare, which ends with the analysis):
// the scaling fits of one model's median times under one workload.
struct FitRecord {
  std::string model;
  Workload workload = Workload::kGenerate;
  std::string unit = "s";            // "s" per workload run, "s/token" for decode
  std::vector<int64_t> seq_lengths;  // the lengths fitted (ok points only), ascending
  analysis::ScalingFit fit;
  std::string complexity;            // the study's label, e.g. "O(n^0.81) ≈ O(n)"
  std::vector<std::string> notes;    // R² < 0.95, noisy points
};

// Everything a results file holds, in memory.
struct Results {
  int schema_version = kSchemaVersion;
  bool study_schema = false;  // read from the study's plain file (no runs, one sample per point)
  std::vector<std::string> models;  // in run order
  std::vector<int64_t> seq_lengths;
  std::map<std::string, ModelInfo> model_info;
  std::vector<RunRecord> runs;
  nlohmann::json environment = nlohmann::json::object();
  nlohmann::json config = nlohmann::json::object();
  nlohmann::json calibration = nlohmann::json::object();  // {"gflops": ..., ...}; empty if absent
  nlohmann::json calibration_end = nlohmann::json::object();  // the calibration repeated after the last point
  std::vector<std::string> warnings;  // sweep-level warnings (a busy machine, calibration drift)
  std::vector<FitRecord> fits;  // set by analyze; empty if the file has none
  // Non-empty: the sweep stopped early (interrupted, or a later point threw) and `runs` holds the
  // points measured until then; written as "partial": true and "partial_reason".
  std::string partial_reason;
  std::optional<double> calibration_gflops() const;
  // The machine's attainable GFLOP/s, for normalising times between files (check): 2mnk over the
  // fastest calibration sample when the samples are recorded (a passing load on a shared machine
  // slows some of the samples, rarely all, and moves their median by up to 1.6x, as measured on the
  // 2-core dev box), else calibration_gflops().
  std::optional<double> calibration_attainable_gflops() const;
  // The run of (model, workload, n) with status ok, or nullptr.
  const RunRecord* find(const std::string& model, Workload w, int64_t n) const;

  // Thread sweeps (README "Results file": calibration.per_threads). The calibration at one thread
  // count: its per_threads entry; a file without per_threads (older files) has one count, and its
  // top-level figures are used whatever `threads` is. nullopt when per_threads lacks the count.
  std::optional<double> calibration_gflops_at(int64_t threads) const;
  std::optional<double> calibration_attainable_gflops_at(int64_t threads) const;
  // The read bandwidth (GB/s) at `threads` for a working set of `bytes`: the ladder's figure for the
  // largest buffer of at most `bytes` (its smallest buffer when all are larger); in files without a
  // ladder, the larger-than-LLC figure when bytes exceed llc_bytes, else the smaller-than-LLC one.
  std::optional<double> bandwidth_gbps_for(int64_t threads, double bytes) const;
  // The distinct thread counts of the runs, in the order they first appear (the sweep's order).
  std::vector<int64_t> thread_counts() const;
  // The ok run of (model, workload, n, threads), or nullptr.
  const RunRecord* find_at(const std::string& model, Workload w, int64_t n, int64_t threads) const;
  // A copy holding only the runs at `threads` (the per-(model, workload, n) analyses use one count).
  Results at_threads(int64_t threads) const;
};

// Executed GFLOP/s over the calibration at the run's own thread count (`efficiency`).
std::optional<double> efficiency(const Results& r, const RunRecord& run);
// Decode: (bytes_per_token / bandwidth) / median time per token, the bandwidth for that working set
// at the run's thread count (`roofline_fraction`); nullopt for other workloads or without figures.
std::optional<double> roofline_fraction(const Results& r, const RunRecord& run);

nlohmann::json to_json(const RunRecord& r);
nlohmann::json to_json(const FitRecord& f);
RunRecord run_from_json(const nlohmann::json& j, const std::string& where);  // throws UserError

// The workload memory_results (and the memory table and plot) are taken from: the first of
// prefill, generate, decode, recompute with an ok run; nullopt when no run has memory figures.
std::optional<Workload> memory_workload(const Results& r);

// Builds the file: study keys (time_results = generate medians in seconds; memory_results = peak
// working memory in MB of the memory_workload points) plus our blocks.
nlohmann::json to_json(const Results& r);
// Reads a bsbr-bench file or the study's plain schema. Throws UserError (one line, naming the
// file and the problem) for a missing file, non-JSON, missing keys or bad values.
// Every value is type- and range-checked (times in [1e-12, 1e9] s, lengths and counts <= 2^40,
// one record per (model, workload, n)), nesting is bounded: bad input is never a crash or exit 3.
Results load_results(const std::string& path);
// The same from the file's text (`path` names it in errors); the fuzz target's entry point.
Results parse_results(const std::string& text, const std::string& path);
// Writes atomically (temp file + rename).
void save_results(const Results& r, const std::string& path);

}  // namespace bsbr

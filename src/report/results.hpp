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

#include "bench/runner.hpp"

namespace bsbr {

inline constexpr int kSchemaVersion = 1;

struct ModelInfo {
  std::string name;
  int64_t params = 0;            // without LM head (study's convention)
  int64_t params_with_head = 0;
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
  nlohmann::json fits = nlohmann::json();                // set by analyze; null if absent
  std::optional<double> calibration_gflops() const;
  // The run of (model, workload, n) with status ok, or nullptr.
  const RunRecord* find(const std::string& model, Workload w, int64_t n) const;
};

nlohmann::json to_json(const RunRecord& r);
RunRecord run_from_json(const nlohmann::json& j, const std::string& where);  // throws UserError

// Builds the file: study keys (time_results = generate medians in seconds; memory_results = peak
// working memory in MB, the max over the point's workloads) plus our blocks.
nlohmann::json to_json(const Results& r);
// Reads a bsbr-bench file or the study's plain schema. Throws UserError (one line, naming the
// file and the problem) for a missing file, non-JSON, missing keys or bad values.
Results load_results(const std::string& path);
// Writes atomically (temp file + rename).
void save_results(const Results& r, const std::string& path);

}  // namespace bsbr

// Shared test helpers: error metrics, random data, running the CLI as a subprocess.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "report/results.hpp"

namespace bsbr::test {

// max_i |a_i - b_i| / max(max_i |b_i|, floor): error relative to the reference's scale.
double max_rel_error(const float* a, const float* b, int64_t n, double floor = 1e-6);
double max_rel_error(const std::vector<float>& a, const std::vector<float>& b);

std::vector<float> random_vector(int64_t n, uint64_t seed, float scale = 1.0f);

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs the built bsbr-bench with the given argument string (shell-quoted by the caller).
CliResult run_cli(const std::string& args);

// A synthetic results file in memory: every model x workload x n, status ok, with `repeats`
// samples from time(model, workload, n, sample) seconds, memory figures growing with n, and a
// calibration whose every sample runs at `gflops` (so the file's machine speed is exactly that).
using SampleTime = std::function<double(const std::string& model, Workload w, int64_t n, int sample)>;
Results synthetic_results(const std::vector<std::string>& models, const std::vector<Workload>& workloads,
                          const std::vector<int64_t>& lengths, int repeats, const SampleTime& time, double gflops = 100.0);
// Writes `r` to dir/name and returns the path.
std::string save_synthetic(const Results& r, const std::string& dir, const std::string& name);

// A fresh empty temp directory for one test (removed by the OS's tmp cleaning, not by us).
std::string temp_dir(const std::string& tag);

}  // namespace bsbr::test

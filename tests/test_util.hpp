// Shared test helpers: closeness checks, random data, running the CLI as a subprocess.
#pragma once
#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/compare.hpp"
#include "core/config.hpp"
#include "model/model.hpp"
#include "report/results.hpp"

namespace bsbr::test {

// Per element |a_i - b_i| <= atol + rtol |b_i|, both finite (core/compare.hpp, the same check
// `compare --verify` runs). b is the reference. On failure the message names the first and the
// worst violating element with both values. Use EXPECT_TRUE(is_close(...)) << context, and
// EXPECT_FALSE(is_close(...)) where two tensors must differ.
::testing::AssertionResult is_close(const float* a, const float* b, int64_t n, Tolerance tol);
::testing::AssertionResult is_close(const std::vector<float>& a, const std::vector<float>& b, Tolerance tol);
// atol = rtol = t: for values of order 1 (layer-normed hidden states, logits of the test models),
// about the old "max error relative to the tensor's largest value" bound t, but per element.
constexpr Tolerance within(double t) { return {t, t}; }
// Bitwise-equal values (any difference fails).
constexpr Tolerance exact() { return {0, 0}; }
// The fast f32 model against the double-precision plain-loop oracle (hidden states and logits):
// the bound every model meets at the tested lengths (hundreds of tokens, 2 layers).
inline constexpr Tolerance kOracleTol{1e-4, 1e-4};

std::vector<float> random_vector(int64_t n, uint64_t seed, float scale = 1.0f);

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs the built bsbr-bench with the given argument string (shell-quoted by the caller).
CliResult run_cli(const std::string& args);
// Starts bsbr-bench with `args` (no shell), stdout to /dev/null, stderr into err_path; returns its
// pid (the caller signals and waits for it).
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& err_path);

// A synthetic results file in memory: every model x workload x n, status ok, with `repeats`
// samples from time(model, workload, n, sample) seconds, memory figures growing with n, and a
// calibration whose every sample runs at `gflops` (so the file's machine speed is exactly that).
using SampleTime = std::function<double(const std::string& model, Workload w, int64_t n, int sample)>;
Results synthetic_results(const std::vector<std::string>& models, const std::vector<Workload>& workloads,
                          const std::vector<int64_t>& lengths, int repeats, const SampleTime& time, double gflops = 100.0);
// Writes `r` to dir/name and returns the path.
std::string save_synthetic(const Results& r, const std::string& dir, const std::string& name);

// A runner config on a small model, every structural size distinct (head_dim 8, chunk 8, window 6,
// Linear chunk 8), the memory guard off: the runner tests' model (test_measure, test_recompute).
Config small_run_config(int64_t n_tokens, int64_t repeats);

// A fresh empty temp directory for one test (removed by the OS's tmp cleaning, not by us).
std::string temp_dir(const std::string& tag);

// The logits of every position [n, V] of one prefill of `tokens` (batch 1); releases the model after.
std::vector<float> logits_all(ops::Context& ctx, Model& model, const std::vector<int32_t>& tokens);

}  // namespace bsbr::test

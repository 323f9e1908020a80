// Shared test helpers: error metrics, random data, running the CLI as a subprocess.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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

// A fresh empty temp directory for one test (removed by the OS's tmp cleaning, not by us).
std::string temp_dir(const std::string& tag);

}  // namespace bsbr::test

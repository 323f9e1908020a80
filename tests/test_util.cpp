// Test helpers.
#include "test_util.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/rng.hpp"

#ifndef BSBR_BENCH_EXE
#define BSBR_BENCH_EXE "bsbr-bench"
#endif

namespace bsbr::test {

double max_rel_error(const float* a, const float* b, int64_t n, double floor) {
  double scale = floor, err = 0;
  for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  for (int64_t i = 0; i < n; ++i) {
    double e = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (!std::isfinite(a[i])) return INFINITY;
    err = std::max(err, e);
  }
  return err / scale;
}

double max_rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  return max_rel_error(a.data(), b.data(), static_cast<int64_t>(a.size()));
}

std::vector<float> random_vector(int64_t n, uint64_t seed, float scale) {
  CounterRng rng(seed, 7);
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(scale * rng.normal(i));
  return v;
}

std::string temp_dir(const std::string& tag) {
  namespace fs = std::filesystem;
  fs::path p = fs::temp_directory_path() / ("bsbr_test_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

CliResult run_cli(const std::string& args) {
  std::string dir = temp_dir("cli");
  std::string out = dir + "/out.txt", err = dir + "/err.txt";
  std::string cmd = std::string("'") + BSBR_BENCH_EXE + "' " + args + " >'" + out + "' 2>'" + err + "'";
  int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out);
  r.err = slurp(err);
  std::filesystem::remove_all(dir);
  return r;
}

}  // namespace bsbr::test

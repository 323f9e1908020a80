// Test helpers.
#include "test_util.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/rng.hpp"

extern char** environ;

#ifndef BSBR_BENCH_EXE
#define BSBR_BENCH_EXE "bsbr-bench"
#endif

namespace bsbr::test {

::testing::AssertionResult is_close(const float* a, const float* b, int64_t n, Tolerance tol) {
  const Closeness c = compare_close(a, b, n, tol);
  if (c.ok()) return ::testing::AssertionSuccess() << "all " << n << " within |a-b| <= " << tol.atol << " + " << tol.rtol << "|b|; worst ["
                                                   << c.worst << "] " << c.worst_a << " vs " << c.worst_b << " (" << c.worst_ratio
                                                   << "x the tolerance)";
  auto r = ::testing::AssertionFailure() << c.describe();
  if (c.first != c.worst) r << "; first [" << c.first << "]: " << a[c.first] << " vs reference " << b[c.first];
  return r;
}

::testing::AssertionResult is_close(const std::vector<float>& a, const std::vector<float>& b, Tolerance tol) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes differ: " << a.size() << " vs reference " << b.size();
  return is_close(a.data(), b.data(), static_cast<int64_t>(a.size()), tol);
}

std::vector<float> random_vector(int64_t n, uint64_t seed, float scale) {
  CounterRng rng(seed, 7);
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(scale * rng.normal(i));
  return v;
}

Results synthetic_results(const std::vector<std::string>& models, const std::vector<Workload>& workloads,
                          const std::vector<int64_t>& lengths, int repeats, const SampleTime& time, double gflops) {
  Results r;
  r.models = models;
  r.seq_lengths = lengths;
  const int64_t size = 2048;
  const double calibration_s = 2.0 * size * size * size / (gflops * 1e9);
  r.calibration = {{"kind", "matmul_f32"}, {"m", size}, {"n", size}, {"k", size}, {"threads", 1},
                   {"samples_s", std::vector<double>(5, calibration_s)}, {"median_s", calibration_s}, {"gflops", gflops}};
  for (const std::string& m : models) {
    r.model_info[m] = ModelInfo{m, 1000, 2000};
    for (int64_t n : lengths)
      for (Workload w : workloads) {
        RunRecord run;
        run.problem = {m, w, n};
        run.repeats = repeats;
        run.n_tokens = 8;
        run.unit = w == Workload::kDecode ? "s/token" : "s";
        for (int i = 0; i < repeats; ++i) run.samples_s.push_back(time(m, w, n, i));
        run.stats = compute_stats(run.samples_s);
        run.noisy = run.stats.cv > kNoisyCv;
        run.memory.peak_working_bytes = static_cast<std::size_t>(n) * 4096 + 1'000'000;
        run.memory.state_bytes = static_cast<std::size_t>(n) * 2048;
        run.memory.peak_rss_bytes = 50'000'000;
        r.runs.push_back(run);
      }
  }
  return r;
}

std::string save_synthetic(const Results& r, const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  save_results(r, path);
  return path;
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

pid_t spawn_cli(const std::vector<std::string>& args, const std::string& err_path) {
  std::vector<std::string> all{BSBR_BENCH_EXE};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

Config small_run_config(int64_t n_tokens, int64_t repeats) {
  Config cfg;
  ModelConfig& c = cfg.model;
  c.vocab_size = 61;
  c.hidden_dim = 32;
  c.num_layers = 2;
  c.num_heads = 4;
  c.ff_dim = 48;
  c.chunk_size = 8;
  c.window_size = 6;
  c.linear_chunk_size = 8;
  c.compression_factor = 2;
  c.init_std = 0.2;
  c.seed = 5;
  cfg.bench.n_tokens = n_tokens;
  cfg.bench.warmup = 1;
  cfg.bench.repeats = repeats;
  cfg.bench.memory_guard = false;
  return cfg;
}

std::vector<float> logits_all(ops::Context& ctx, Model& model, const std::vector<int32_t>& tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  RunShape s;
  s.prefill_lengths = {n};
  model.prepare(ctx, s, LogitsMode::kAll);
  model.prefill(ctx, tokens.data(), n);
  std::vector<float> out(model.logits(), model.logits() + n * model.config().vocab_size);
  model.release(ctx);
  return out;
}

}  // namespace bsbr::test

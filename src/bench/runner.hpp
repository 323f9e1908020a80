// Runs single benchmark problems (model x workload x n), benchdnn-style: create primitives and
// buffers -> verify -> warm up -> time. Setup is never inside a timed region (the Context is
// frozen while timing). A point that cannot run (would not fit in memory, out of memory,
// non-finite output) is recorded as skipped/failed with its reason; the sweep goes on.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/stats.hpp"
#include "core/config.hpp"
#include "model/model.hpp"

namespace bsbr {

struct Problem {
  std::string model;
  Workload workload = Workload::kPrefill;
  int64_t n = 0;
};

// Expands a config into its problems: for each model, each n, each workload (the order they run).
std::vector<Problem> expand(const BenchConfig& bench, const std::vector<std::string>& models);

struct MemoryFigures {
  std::size_t peak_working_bytes = 0;     // peak of activations + state + scratchpad during the point
  std::size_t peak_activation_bytes = 0;  // peak of activations alone
  std::size_t scratchpad_bytes = 0;       // oneDNN user scratchpad (all worker threads)
  std::size_t state_bytes = 0;            // decode state after a prefill of n, by the mixer's formula
  std::size_t state_allocated_bytes = 0;  // state buffers as allocated (capacity n + n_tokens, padded)
  std::size_t params_bytes = 0;           // weights and constant tables
  std::size_t peak_rss_bytes = 0;         // process VmHWM during the point (0 if unavailable)
  std::size_t estimate_bytes = 0;         // the memory guard's estimate
};

struct RunRecord {
  Problem problem;
  int64_t batch = 1, n_tokens = 0, threads = 0, warmup = 0, repeats = 0;
  std::string status = "ok";  // ok | skipped | failed
  std::string reason;
  std::string unit = "s";     // "s" per workload, "s/token" for decode
  std::vector<double> samples_s;
  SampleStats stats;
  bool noisy = false;
  int64_t tokens_generated = 0;
  double flops = 0;   // per sample (decode: per token)
  double gflops = 0;  // flops / median
  MemoryFigures memory;
  std::vector<int32_t> generated;  // greedy tokens (decode, generate, recompute)
  std::string repro;               // command line that re-runs exactly this point
};

class Runner {
 public:
  Runner(ops::Context& ctx, const Config& cfg) : ctx_(ctx), cfg_(cfg) {}
  RunRecord run(Model& model, const Problem& p);

  // The deterministic input tokens for length n (same for every model): [batch, n].
  static std::vector<int32_t> input_tokens(const ModelConfig& m, int64_t batch, int64_t n);
  // samples: warm-up + timed samples (decode steps on through all of them after one prefill).
  static RunShape shape_for(const Problem& p, int64_t batch, int64_t n_tokens, int64_t samples);

 private:
  double time_once(Model& model, const Problem& p, RunRecord& rec, bool record_tokens);
  ops::Context& ctx_;
  const Config& cfg_;
  // Token buffers sized before timing and reused by every sample.
  std::vector<int32_t> prompt_, next_, seq_, packed_;
  int64_t decode_pos_ = 0;  // next position of the decode workload's sequence
};

// The memory guard for a model's weights, asked before they are allocated (Model::weight_bytes):
// "" if they fit in the available memory (or it is unknown), else the reason, naming the model and
// the settings that size them.
std::string weights_guard(ops::Context& ctx, const ModelConfig& cfg, const Architecture& arch);

}  // namespace bsbr

// Runs single benchmark problems (model x workload x n), benchdnn-style: create primitives and
// buffers -> verify -> warm up -> time. Setup is never inside a timed region (the Context is
// frozen while timing). A point that cannot run (would not fit in memory, out of memory,
// non-finite output) is recorded as skipped/failed with its reason; the sweep goes on.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bench/contention.hpp"
#include "bench/stats.hpp"
#include "bench/verify.hpp"
#include "core/config.hpp"
#include "model/model.hpp"

namespace bsbr {

struct Problem {
  std::string model;
  Workload workload = Workload::kPrefill;
  int64_t n = 0;
  int64_t threads = 0;  // the sweep's thread count this point runs at (expand_sweep; 0 = the context's)
};

// Expands a config into its problems: for each model, each n, each workload (the order they run).
std::vector<Problem> expand(const BenchConfig& bench, const std::vector<std::string>& models);
// A thread sweep: for each count of `threads` (resolved: 0 = all cores already replaced), the
// problems of expand() at that count. compare runs the counts in this order, one context each.
std::vector<Problem> expand_sweep(const BenchConfig& bench, const std::vector<std::string>& models, const std::vector<int64_t>& threads);

struct MemoryFigures {
  std::size_t peak_working_bytes = 0;     // peak of activations + state + scratchpad during the point
  std::size_t peak_activation_bytes = 0;  // peak of activations alone
  std::size_t scratchpad_bytes = 0;       // oneDNN user scratchpad (all worker threads)
  std::size_t state_bytes = 0;            // decode state after a prefill of n, by the mixer's formula
  std::size_t state_allocated_bytes = 0;  // state buffers as allocated (capacity n + n_tokens, padded to tiles)
  std::size_t params_bytes = 0;           // weights
  std::size_t packed_params_bytes = 0;    // decode: the step's packed copies of weights (read instead of them)
  std::size_t snapshot_bytes = 0;         // decode: the copy of the state restored before each sample (harness)
  std::size_t peak_rss_bytes = 0;         // process VmHWM during the point (0 if unavailable)
  std::size_t estimate_bytes = 0;         // the memory guard's estimate
  // Training (train workloads; 0 otherwise). peak_working_bytes includes the saved activations.
  std::size_t saved_activation_bytes = 0;  // activations kept from the forward for the backward
  std::size_t gradient_bytes = 0;          // parameter gradients
  std::size_t optimizer_bytes = 0;         // AdamW's moments
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
  // Per sample (decode: per token; README "How it measures"): the architecture's arithmetic by its
  // formula (one convention for all), and what the kernels executed (counted in the verify pass).
  double flops_model = 0, flops_executed = 0;
  double gflops = 0;        // flops_executed / median: the machine's attained throughput
  double model_gflops = 0;  // flops_model / median
  // Decode: the positions every sample steps through, [n, n + n_tokens - 1] (empty otherwise).
  std::vector<int64_t> positions;
  // Decode: bytes one step reads, averaged over the timed steps (decode_bytes_per_token); 0 for other workloads.
  double bytes_per_token = 0;
  // Heap allocations inside the timed region (warm-up and samples), the tool's own (must be 0), and
  // oneDNN's inside its execute calls (its argument maps; core/alloc_count.hpp); -1 = not countable.
  int64_t allocations = -1;
  int64_t library_allocations = -1;
  MemoryFigures memory;
  std::vector<int32_t> generated;  // greedy tokens (decode, generate, recompute)
  std::string repro;               // command line that re-runs exactly this point
  VerifyRecord verify;             // the check against the oracle before timing (ran false: --no-verify)
  ContentionRecord contention;     // machine load before and after the point
  // Train workloads: batch x n / median, and the loss of the untimed first step.
  double tokens_per_second = 0;
  double train_loss = 0;
};

class Runner {
 public:
  Runner(ops::Context& ctx, const Config& cfg) : ctx_(ctx), cfg_(cfg), verifier_(cfg.bench.verify_length) {}
  RunRecord run(Model& model, const Problem& p);

  // The deterministic input tokens for length n (same for every model): [batch, n].
  static std::vector<int32_t> input_tokens(const ModelConfig& m, int64_t batch, int64_t n);
  // Decode: capacity n + n_tokens exactly (every sample restores the state after the prefill).
  // Recompute: its longest forward, n + n_tokens (each length is prepared in turn, prepare_length).
  static RunShape shape_for(const Problem& p, int64_t batch, int64_t n_tokens);

 private:
  // The train workloads (README "train"): their own path (no decode state, no generated tokens).
  RunRecord run_train(Model& model, const Problem& p);
  // The verify pass of a point as workload w at length n (before its memory peaks are reset):
  // false, with the point failed and why, on a mismatch, out of memory or a oneDNN error.
  bool verify_point(Model& model, Workload w, int64_t n, RunRecord& rec, const std::string& setting, const std::string& out_of_memory);
  // Untimed set-up of the decode workload: prefill of n, first token, save_state().
  void prefill_for_decode(Model& model, const Problem& p);
  // Recompute: prepares the model for one forward of length L (batch b), inside a sample but
  // untimed, with the context thawed and allocations uncounted.
  void prepare_length(Model& model, int64_t batch, int64_t L);
  // One sample; returns seconds (decode: per token). Its tokens go to tokens_ (preallocated).
  double time_once(Model& model, const Problem& p, const RunRecord& rec);
  void flops_by_formula(const Model& model, const Problem& p, RunRecord& rec) const;
  ops::Context& ctx_;
  const Config& cfg_;
  Verifier verifier_;  // caches the oracle's outputs of the current model
  // Token buffers sized before timing and reused by every sample.
  std::vector<int32_t> prompt_, next_, seq_, packed_;
  std::vector<int32_t> first_;   // decode: the token after the prefill, [b]
  std::vector<int32_t> tokens_;  // the latest sample's generated tokens
  int64_t token_count_ = 0;      // valid entries of tokens_
};

// Decode roofline (README "How it measures"): what a decode sample's steps at positions
// first .. first+steps-1 read (Model::step_reads), averaged over those steps.
StepReads mean_step_reads(const Model& model, int64_t first, int64_t steps);
// The bytes one decode step (one token per sequence) reads, averaged over the timed steps (`reads`,
// from mean_step_reads): every parameter but those the steps leave unread -- of the embedding table
// one row per sequence ((V - batch) * d * 4 unread), and reads.unread_param_bytes -- plus the decode
// state the steps read (reads.state_bytes, for the whole batch).
double decode_bytes_per_token(const ModelConfig& cfg, std::size_t params_bytes, const StepReads& reads, int64_t batch);

// The memory guard for a model's weights, asked before they are allocated (Model::weight_bytes):
// "" if they fit in the available memory (or it is unknown), else the reason, naming the model and
// the settings that size them.
std::string weights_guard(ops::Context& ctx, const ModelConfig& cfg, const Architecture& arch);

}  // namespace bsbr

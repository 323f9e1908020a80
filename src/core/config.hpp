// Model and benchmark configuration (SPEC §1, §3), loaded from YAML or JSON with strict checks:
// an unknown key, a wrong type, a non-positive size or an inconsistent shape is a UserError
// naming the file and the key. Nothing falls back to a silent default.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bsbr {

enum class FeatureMap { kElu1, kIdentity };
enum class BetaMode { kConstant, kLearned };

// Architecture hyper-parameters. Defaults are the study's defaults (SPEC §1).
struct ModelConfig {
  int64_t vocab_size = 10000;
  int64_t hidden_dim = 256;    // d
  int64_t num_layers = 2;      // L
  int64_t num_heads = 4;       // h
  int64_t ff_dim = 512;
  int64_t chunk_size = 32;     // B (BSBR, GAU; also the Linear/DeltaNet prefill chunk unless overridden)
  int64_t window_size = 32;    // w (SlidingWindow)
  double beta = 0.9;           // DeltaNet constant β
  double temperature = 1.0;    // T (Hopfield)
  int64_t expansion_factor = 2;  // e (GAU)
  int64_t compression_factor = 2;  // c (BSBR); 0 = no compression ("none" in a config)
  int64_t batch_size = 1;
  FeatureMap feature_map = FeatureMap::kElu1;  // Linear
  bool normalize = true;                       // Linear
  BetaMode beta_mode = BetaMode::kConstant;    // DeltaNet
  int64_t linear_chunk_size = 64;  // prefill chunk of Linear / DeltaNet (an implementation choice)
  double layer_norm_eps = 1e-5;
  double init_std = 0.02;      // weights ~ N(0, init_std²), biases 0, LayerNorm (1, 0)
  uint64_t seed = 0;           // weights and input tokens

  int64_t head_dim() const { return hidden_dim / num_heads; }
  void validate(const std::string& origin) const;  // throws UserError
};

// kTrain / kTrainRecompute: one training step (forward, backward, AdamW update) without and with
// activation recomputation per block (src/train, README "train"). Two workloads, not a flag, so
// every table, fit, check and ab pairs and fits the two separately.
enum class Workload { kPrefill, kDecode, kGenerate, kRecompute, kTrain, kTrainRecompute };
const char* to_string(Workload w);
// The workloads that generate tokens (decode, generate, recompute: they use n_tokens).
bool generates_tokens(Workload w);
bool is_train(Workload w);
Workload parse_workload(const std::string& s);  // throws UserError

// What to run and how to time it (SPEC §3).
struct BenchConfig {
  std::vector<std::string> models;  // empty = all registered, in the study's order
  std::vector<int64_t> seq_lengths{64, 128, 256, 512, 1024};
  std::vector<Workload> workloads{Workload::kPrefill, Workload::kGenerate};
  int64_t n_tokens = 50;
  int64_t repeats = 5;
  int64_t warmup = 1;
  int64_t threads = 0;  // 0 = all cores; with a sweep, its first count
  // The thread-count sweep (benchmark.threads as a list, compare --threads T ...): every point runs
  // at each count, in this order. Empty: the single count `threads`. thread_sweep() is the list.
  std::vector<int64_t> thread_counts;
  std::vector<int64_t> thread_sweep() const { return thread_counts.empty() ? std::vector<int64_t>{threads} : thread_counts; }
  bool memory_guard = true;
  // Check every point against the plain-loop oracle before timing it (bench/verify.hpp), at
  // min(n, verify_length) tokens. 64 crosses a chunk boundary at the default chunk size (32) and
  // keeps the oracle's cost (its O(L^2) attention and L x V logits, once per model) to well under a
  // second per model.
  bool verify = true;
  int64_t verify_length = 64;
  void validate(const std::string& origin) const;  // throws UserError
};

struct Config {
  ModelConfig model;
  BenchConfig bench;
  std::string source;  // file it was loaded from ("" = built-in defaults)
};

// Loads a config file (.yaml, .yml or .json). Missing keys keep the SPEC defaults; unknown keys,
// wrong types and invalid values throw UserError naming the problem.
// Every yaml-cpp error, a key that is a list or mapping, and nesting deeper than a config needs
// are UserErrors naming the file (and the line where yaml-cpp gives one).
Config load_config(const std::string& path);
// The same from the file's text (`path` names it in errors); the fuzz target's entry point.
Config parse_config(const std::string& text, const std::string& path);
// Applies one "section.key=value" override (the CLI's --set): the key and the value's type are
// checked; the ranges and the joint constraints are not, since a later override may complete
// them (hidden_dim=250 then num_heads=5): call validate_overridden after the last one.
void apply_override(Config& cfg, const std::string& assignment);
// Validates the end state after every override (model and benchmark sections); the error names
// the config file and says --set values were applied.
void validate_overridden(const Config& cfg, const std::vector<std::string>& overrides);
// The model section as "key: value" pairs, for results files.
std::vector<std::pair<std::string, std::string>> describe(const ModelConfig& m);

}  // namespace bsbr

// Settings of the language-modelling study (`bsbr-bench lm`, README "bsbr-bench lm"): the model
// section (the skeleton's sizes, ModelConfig; model.vocab_size is the compact vocabulary's size)
// and the `lm:` section (training, evaluation and cost). Loaded from YAML / JSON with the config
// loader's strictness: unknown keys, duplicates, wrong types and values outside their range are a
// UserError naming the file (or flag) and the key, before anything is allocated.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.hpp"

namespace bsbr::lm {

// The study's skeleton by default: d 128, 2 layers, 4 heads, ff 512, the compact vocabulary of
// 16,384 ids; every other key as SPEC §1 (chunk 32, window 32, ...), as in configs/default.yaml.
ModelConfig default_lm_model();
// The seven architectures in the registry's order (the study's skeleton).
std::vector<std::string> all_models();
// "GPT-2": the Standard mixer in GPT-2's skeleton (learned positions, tanh GELU, LM head tied to
// the embedding), n_positions = LmSettings::gpt2_positions(); what `--export-gpt2` saves.
inline constexpr const char* kGpt2Model = "GPT-2";

struct LmSettings {
  ModelConfig model = default_lm_model();  // seed: the first seed; seed i of the study is model.seed + i
  std::vector<std::string> models = all_models();
  int64_t seeds = 3;                // each seed changes the initial weights and the data order together
  int64_t tokens = 262144;          // training tokens per run (batch x train_length per step)
  double time_budget = 0;           // seconds of training per run (eval excluded); 0 = off
  int64_t train_length = 512;
  int64_t batch = 2;
  // AdamW and the schedule (train/optimizer.hpp): warm-up, then cosine to min_lr_ratio x lr at the
  // token budget's last step.
  double lr = 6e-3, beta1 = 0.9, beta2 = 0.95, weight_decay = 0.01, clip_norm = 1.0, min_lr_ratio = 0.1;
  int64_t warmup_steps = 20;
  int64_t log_every = 16;   // steps per point of the train-loss curve (the interval's mean)
  int64_t eval_every = 32;  // steps between validation-loss evaluations (and after the last step)
  int64_t val_windows = 16; // fixed validation windows of train_length tokens
  double target_val_loss = 7.0;  // convergence speed: first validation at or below it
  std::vector<int64_t> eval_contexts{128, 256, 512, 1024, 2048};
  std::vector<int64_t> position_buckets{0, 128, 256, 512, 1024};  // bucket starts; the last runs to the largest context
  int64_t eval_docs = 10; // test documents evaluated (corpus order); 0 = all
  std::vector<int64_t> cost_lengths{512, 2048};  // n of the prefill / decode measurements; empty = none
  int64_t cost_repeats = 3, cost_warmup = 1, decode_tokens = 16;
  int64_t threads = 0;  // 0 = all cores
  std::string source;   // config file ("" = built-in defaults)

  int64_t steps() const { return (tokens + batch * train_length - 1) / (batch * train_length); }
  int64_t max_context() const;
  // GPT-2's learned-position table: the longest sequence the study runs (training, evaluation, cost).
  int64_t gpt2_positions() const;
  // Every joint constraint and range; `origin` names the file / flags in the error.
  void validate(const std::string& origin) const;
};

// Loads configs/lm.yaml-style files: sections `model` (the keys of core/config) and `lm`.
LmSettings load_lm_settings(const std::string& path);
LmSettings parse_lm_settings(const std::string& text, const std::string& path);
// One "section.key=value" override (lm.tokens=100000, model.hidden_dim=64). Validate after the last.
void apply_lm_override(LmSettings& s, const std::string& assignment);
// Every setting as JSON (the results file's settings.config).
nlohmann::json to_json(const LmSettings& s);

}  // namespace bsbr::lm

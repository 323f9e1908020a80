// The language-modelling study's results (lm_results.json, README "bsbr-bench lm"): plain data,
// depending on nothing above core, written and read back by to_json / lm_results_from_json.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace bsbr::lm {

inline constexpr int kLmSchemaVersion = 1;

struct LossPoint {
  int64_t step = 0;            // steps done when it was taken (train: the interval's last step)
  int64_t tokens = 0;          // training tokens consumed by then (batch x train_length per step)
  double seconds = 0;          // training time by then (evaluation excluded)
  double loss = 0;             // mean next-token cross-entropy, nats
};

// Negative log-likelihood sums (nats, double) over positions [lo, hi) of the evaluation windows.
struct BucketNll {
  int64_t lo = 0, hi = 0;
  double nll = 0;
  int64_t tokens = 0;
  double perplexity() const;  // exp(nll / tokens); NaN without tokens
};

struct ContextEval {
  int64_t context = 0;
  double nll = 0;      // over every scored token
  int64_t tokens = 0;  // scored tokens (each text token of the evaluated documents once)
  int64_t windows = 0;
  std::vector<BucketNll> buckets;
  double perplexity() const;
};

struct SeedRun {
  uint64_t seed = 0;
  int64_t steps = 0, tokens = 0;  // trained
  double train_seconds = 0;       // wall time of the training steps alone
  double eval_seconds = 0;        // validation during training + the context evaluation
  double tokens_per_second = 0;   // tokens / train_seconds
  std::vector<LossPoint> train_curve, val_curve;
  bool target_reached = false;
  int64_t target_step = 0, target_tokens = 0;
  double target_seconds = 0;      // training time (evaluation excluded) up to that validation
  double final_val_loss = 0;
  double test_perplexity = 0;     // at context = train_length (the context evaluation's row)
  std::vector<ContextEval> contexts;
  bool stopped_by_time = false;   // the time budget ended the run before the token budget
  bool diverged = false;          // a non-finite training loss ended the run: no evaluation, NaN figures
};

// A cost measurement from the benchmark Runner (bench/runner.hpp): one workload at one n.
struct CostPoint {
  std::string workload;  // "prefill" | "decode"
  int64_t n = 0;
  std::string status = "ok", reason;
  double median_s = 0;   // prefill: seconds per forward over n tokens; decode: seconds per token at context n
  double cv = 0;
  std::vector<double> samples_s;
  uint64_t peak_working_bytes = 0, state_bytes = 0, params_bytes = 0;
  bool contended = false;
  std::string contention_reason;
};

// Mean and 95 % interval over seeds (Student's t, k - 1 degrees of freedom): [mean - half, mean + half].
struct Interval {
  int64_t n = 0;         // values (seeds)
  double mean = 0, half = 0;  // half = t_{0.975, n-1} s / sqrt(n); 0 with one value (no spread known)
};

struct ModelSummary {
  Interval test_perplexity, final_val_loss, tokens_per_second, target_steps, target_seconds;
  int64_t target_reached = 0;                    // seeds that reached target_val_loss
  std::vector<Interval> context_perplexity;      // per evaluation context
  std::vector<std::vector<Interval>> bucket_perplexity;  // [context][bucket]
};

struct ModelResult {
  std::string name;
  int64_t params = 0, params_with_head = 0;
  std::vector<SeedRun> seeds;
  std::vector<CostPoint> cost;
  ModelSummary summary;
};

struct SplitInfo {
  std::string name;
  int64_t documents = 0, text_tokens = 0;
  double unk_share = 0;
};

struct LmResults {
  nlohmann::json settings = nlohmann::json::object();  // the full config and the flags
  std::string repro;                                    // the command line that re-runs the study
  int64_t vocab_size = 0;
  std::vector<SplitInfo> splits;                        // train, validation, test
  int64_t eval_documents = 0, eval_text_tokens = 0;     // of the test split, as evaluated
  std::vector<ModelResult> models;
  nlohmann::json environment = nlohmann::json::object(), calibration = nlohmann::json::object();
  std::vector<std::string> warnings;
  std::string partial_reason;  // non-empty: the study stopped early ("partial": true)
  double wall_seconds = 0;
};

nlohmann::json to_json(const LmResults& r);
// Validates the layout (UserError naming `what` and the field).
LmResults lm_results_from_json(const nlohmann::json& j, const std::string& what);

}  // namespace bsbr::lm

// convert --finetune: test perplexity on Brown windows and the fine-tuning loop.
#include "convert/finetune.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>

#include "core/errors.hpp"
#include "core/interrupt.hpp"
#include "report/console.hpp"
#include "train/optimizer.hpp"

namespace bsbr {

namespace {
// "42 s", "3 min 05 s", "2 h 07 min": an ETA a reader takes in at a glance.
std::string duration(double seconds) {
  const long long s = std::llround(std::max(0.0, seconds));
  char buf[48];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%lld s", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lld min %02lld s", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld h %02lld min", s / 3600, s % 3600 / 60);
  return buf;
}
}  // namespace

void FinetuneOptions::validate() const {
  if (steps < 0) throw UserError("--finetune must be a non-negative number of steps");
  if (!(lr > 0 && lr <= 1)) throw UserError("--finetune-lr must be in (0, 1]");
  if (batch < 1) throw UserError("--finetune-batch must be at least 1");
  if (length < 0 || length == 1) throw UserError("--finetune-length must be at least 2 (or 0 for the default)");
  if (eval_context < 0) throw UserError("--finetune-eval-context must be positive (or 0 for the fine-tuning length)");
  if (eval_tokens < 0) throw UserError("--finetune-eval-tokens must be non-negative (0 = the whole test split)");
  if (steps > 0 && (corpus_dir.empty() || gpt2_vocab_dir.empty())) throw UserError("--corpus and --gpt2-vocab must name directories");
}

PerplexitySet perplexity_set(const TokenSplit& test, int64_t context, int64_t max_targets) {
  PerplexitySet s;
  s.split = &test;
  s.context = context;
  for (const EvalWindow& w : eval_windows(test, context)) {
    if (max_targets > 0 && s.targets >= max_targets) break;
    s.windows.push_back(w);
    s.targets += w.length;
  }
  if (s.targets == 0) throw UserError("the Brown test split has no tokens to evaluate");
  return s;
}

double mean_nll(ops::Context& ctx, Model& model, const PerplexitySet& set) {
  const int64_t V = model.config().vocab_size;
  const std::vector<int32_t>& tok = set.split->tokens;
  // Windows grouped by length: one prepare per distinct length (a document's last window is shorter).
  std::map<int64_t, std::vector<const EvalWindow*>> by_length;
  for (const EvalWindow& w : set.windows) by_length[w.length].push_back(&w);
  double nll = 0;
  for (const auto& [n, windows] : by_length) {
    RunShape shape;
    shape.prefill_lengths = {n};
    model.prepare(ctx, shape, LogitsMode::kAll);
    for (const EvalWindow* w : windows) {
      throw_if_interrupted();
      model.prefill(ctx, tok.data() + w->begin, n);
      for (int64_t t = 0; t < n; ++t) {  // position t predicts tokens[begin + t + 1]
        const float* z = model.logits() + t * V;
        const double mx = *std::max_element(z, z + V);
        double sum = 0;
        for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(z[j]) - mx);
        nll += mx + std::log(sum) - z[tok[static_cast<std::size_t>(w->begin + t + 1)]];
      }
    }
    model.release(ctx);
  }
  return nll / static_cast<double>(set.targets);
}

void finetune_model(ops::Context& ctx, Model& model, const TokenSplit& train, const FinetuneOptions& opts, int64_t length, FinetuneRow& row,
                    const FinetuneProgress& progress) {
  train::TrainModel tm(ctx, model);
  train::AdamWConfig ac;
  ac.lr = opts.lr;
  ac.warmup_steps = opts.steps / 10;
  ac.total_steps = opts.steps;
  train::AdamW adam(ctx, model.params(), ac);
  tm.prepare(ctx, opts.batch, length);
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  Clock::time_point last_report = start;
  for (int64_t s = 0; s < opts.steps; ++s) {
    throw_if_interrupted();  // between steps: the caller keeps the losses so far
    const TokenBatch batch = train_batch(train, opts.batch, length, opts.seed, s);
    const train::StepInfo info = train::train_step(ctx, tm, adam, batch.inputs.data());
    row.losses.push_back(info.loss);
    row.steps_done = s + 1;
    const Clock::time_point now = Clock::now();
    row.seconds = std::chrono::duration<double>(now - start).count();
    if (progress && (s + 1 == opts.steps || s == 0 || now - last_report >= std::chrono::seconds(5))) {
      last_report = now;
      const double per_step = row.seconds / static_cast<double>(s + 1);
      char line[200];
      std::snprintf(line, sizeof line, "  fine-tune %s: step %lld/%lld, loss %.4f, %s/step, ETA %s", row.conversion.label().c_str(),
                    static_cast<long long>(s + 1), static_cast<long long>(opts.steps), info.loss, format_seconds(per_step).c_str(),
                    duration(per_step * static_cast<double>(opts.steps - s - 1)).c_str());
      progress(line);
    }
  }
  tm.release();
}

}  // namespace bsbr

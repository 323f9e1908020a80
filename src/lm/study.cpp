// The lm study: training runs, validation, context evaluation, cost measurement.
#include "lm/study.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "bench/calibration.hpp"
#include "bench/environment.hpp"
#include "bench/runner.hpp"
#include "core/errors.hpp"
#include "core/interrupt.hpp"
#include "core/rng.hpp"
#include "io/gpt2_checkpoint.hpp"
#include "lm/aggregate.hpp"
#include "lm/evaluate.hpp"
#include "train/optimizer.hpp"
#include "train/train_model.hpp"

namespace bsbr::lm {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// "45s", "3m05s", "1h02m".
std::string duration(double s) {
  char b[32];
  const long t = std::lround(std::max(0.0, s));
  if (t < 60) std::snprintf(b, sizeof b, "%lds", t);
  else if (t < 3600) std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  return b;
}

// The fixed validation windows' seed: a constant of the study, not of a run.
const uint64_t kValidationSeed = hash_name("lm.validation_windows");

// Mean validation loss over the fixed windows (TrainModel::forward: the training forward, the same
// mean cross-entropy as training, no update).
double validation_loss(ops::Context& ctx, train::TrainModel& tm, const std::vector<TokenBatch>& val) {
  double sum = 0;
  for (const TokenBatch& b : val) sum += tm.forward(ctx, b.inputs.data());
  return sum / static_cast<double>(val.size());
}

}  // namespace

StudyClock::StudyClock(int64_t runs, int64_t steps_per_run, double time_budget)
    : start_(Clock::now()), runs_(runs), steps_(steps_per_run), budget_(time_budget) {}

double StudyClock::elapsed() const { return since(start_); }

void StudyClock::run_done(double train_seconds, double eval_seconds) {
  ++done_;
  train_s_ += train_seconds;
  eval_s_ += eval_seconds;
}

std::string StudyClock::status(int64_t run, int64_t step, double train_seconds) const {
  // This run's training time at its current pace (at most the time budget); a later run's: the
  // mean of the completed runs (else this one's). Evaluation: the completed runs' share of
  // training time (before any run completed, a third of it: the forward passes of 5 contexts).
  double this_run = step > 0 ? train_seconds / static_cast<double>(step) * static_cast<double>(steps_) : 0;
  if (budget_ > 0) this_run = std::min(this_run, budget_);
  const double per_run = done_ > 0 ? train_s_ / static_cast<double>(done_) : this_run;
  const double eval_ratio = done_ > 0 && train_s_ > 0 ? eval_s_ / train_s_ : 1.0 / 3;
  const double remaining = std::max(0.0, this_run - train_seconds) + eval_ratio * this_run +
                           static_cast<double>(runs_ - run - 1) * per_run * (1 + eval_ratio);
  return "elapsed " + duration(elapsed()) + ", remaining " + (step > 0 || done_ > 0 ? "~" + duration(remaining) : std::string("?"));
}

std::vector<TokenBatch> validation_batches(const TokenSplit& validation, const LmSettings& s) {
  std::vector<TokenBatch> v;
  const int64_t count = (s.val_windows + s.batch - 1) / s.batch;
  for (int64_t i = 0; i < count; ++i) v.push_back(train_batch(validation, s.batch, s.train_length, kValidationSeed, i));
  return v;
}

std::unique_ptr<Model> make_lm_model(ops::Context& ctx, const LmSettings& s, const std::string& name, uint64_t seed) {
  ModelConfig mc = s.model;
  mc.seed = seed;
  if (name == kGpt2Model) return std::make_unique<Model>(ctx, mc, find_architecture("Standard"), gpt2_skeleton(s.gpt2_positions()));
  return std::make_unique<Model>(ctx, mc, find_architecture(name));
}

SeedRun train_and_evaluate(ops::Context& ctx, Model& model, const LmSettings& s, const LmData& data, const std::vector<TokenBatch>& validation,
                           uint64_t seed, const std::string& label, StudyClock& clock, int64_t run_index, const Say& say) {
  SeedRun run;
  run.seed = seed;
  const int64_t steps = s.steps(), tokens_per_step = s.batch * s.train_length;
  double eval_s = 0;
  {
    train::TrainModel tm(ctx, model);
    tm.prepare(ctx, s.batch, s.train_length);
    train::AdamWConfig oc;
    oc.lr = s.lr;
    oc.beta1 = s.beta1;
    oc.beta2 = s.beta2;
    oc.weight_decay = s.weight_decay;
    oc.clip_norm = s.clip_norm;
    oc.warmup_steps = s.warmup_steps;
    oc.total_steps = steps;
    oc.min_lr_ratio = s.min_lr_ratio;
    train::AdamW opt(ctx, model.params(), oc);
    double interval_sum = 0;
    int64_t interval_n = 0;
    auto validate = [&](int64_t step) {
      const Clock::time_point t = Clock::now();
      const double v = validation_loss(ctx, tm, validation);
      eval_s += since(t);
      run.val_curve.push_back({step, step * tokens_per_step, run.train_seconds, v});
      run.final_val_loss = v;
      if (!run.target_reached && v <= s.target_val_loss) {
        run.target_reached = true;
        run.target_step = step;
        run.target_tokens = step * tokens_per_step;
        run.target_seconds = run.train_seconds;
      }
      return v;
    };
    for (int64_t step = 0; step < steps; ++step) {
      throw_if_interrupted();
      const TokenBatch batch = train_batch(data.tokens.train, s.batch, s.train_length, seed, step);
      const Clock::time_point t = Clock::now();
      // train::train_step's three parts, with the loss checked before the update: a non-finite loss
      // (a diverged run) is recorded, not fatal, and the study goes on with the other runs.
      train::StepInfo info;
      info.lr = train::learning_rate(opt.config(), opt.steps());
      info.loss = tm.forward_backward(ctx, batch.inputs.data());
      if (std::isfinite(info.loss)) info.grad_norm = opt.step(tm.grads(), info.lr);
      run.train_seconds += since(t);
      if (!std::isfinite(info.loss)) {
        say("  " + label + " diverged: the training loss is " + std::to_string(info.loss) + " at step " + std::to_string(step + 1) +
            "; the run is recorded without evaluation (lower lm.lr or raise lm.warmup_steps)");
        run.diverged = true;
        break;
      }
      run.steps = step + 1;
      run.tokens = run.steps * tokens_per_step;
      interval_sum += info.loss;
      ++interval_n;
      const bool stop_by_time = s.time_budget > 0 && run.train_seconds >= s.time_budget && run.steps < steps;
      const bool last = run.steps == steps || stop_by_time;
      if (run.steps % s.log_every == 0 || last) {
        run.train_curve.push_back({run.steps, run.tokens, run.train_seconds, interval_sum / static_cast<double>(interval_n)});
        interval_sum = 0;
        interval_n = 0;
      }
      std::string val;
      if (run.steps % s.eval_every == 0 || last) {
        char b[32];
        std::snprintf(b, sizeof b, "  val %.3f", validate(run.steps));
        val = b;
      }
      if (run.steps % s.log_every == 0 || last) {
        char line[256];
        std::snprintf(line, sizeof line, "  %-22s step %5lld/%lld  loss %.3f%s  %.0f tok/s  lr %.2e  %s", label.c_str(),
                      static_cast<long long>(run.steps), static_cast<long long>(steps), run.train_curve.back().loss, val.c_str(),
                      static_cast<double>(run.tokens) / run.train_seconds, info.lr, clock.status(run_index, run.steps, run.train_seconds).c_str());
        say(line);
      }
      if (stop_by_time) {
        run.stopped_by_time = true;
        break;
      }
    }
    run.tokens_per_second = run.train_seconds > 0 ? static_cast<double>(run.tokens) / run.train_seconds : 0;
  }  // the training buffers, gradients and moments are freed here
  if (run.diverged) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    run.final_val_loss = run.test_perplexity = nan;
    for (int64_t c : s.eval_contexts) {  // every context and bucket present, without tokens (NaN perplexity)
      ContextEval e;
      e.context = c;
      e.buckets = make_buckets(s.position_buckets, s.max_context());
      run.contexts.push_back(e);
    }
    run.eval_seconds = eval_s;
    clock.run_done(run.train_seconds, run.eval_seconds);
    return run;
  }
  // Perplexity against evaluation context on the test split.
  const Clock::time_point t = Clock::now();
  for (int64_t c : s.eval_contexts) {
    run.contexts.push_back(evaluate_context(ctx, model, data.tokens.test, c, s.position_buckets, s.max_context(), s.eval_docs));
    char line[160];
    std::snprintf(line, sizeof line, "  %-22s test perplexity at context %5lld: %.2f", label.c_str(), static_cast<long long>(c),
                  run.contexts.back().perplexity());
    say(line);
  }
  eval_s += since(t);
  run.eval_seconds = eval_s;
  for (const ContextEval& c : run.contexts)
    if (c.context == s.train_length) run.test_perplexity = c.perplexity();
  if (run.test_perplexity == 0) {  // train_length not among the contexts: evaluate it apart
    run.test_perplexity = evaluate_context(ctx, model, data.tokens.test, s.train_length, s.position_buckets, std::max(s.max_context(), s.train_length),
                                           s.eval_docs)
                              .perplexity();
  }
  clock.run_done(run.train_seconds, run.eval_seconds);
  return run;
}

std::vector<CostPoint> measure_cost(ops::Context& ctx, Model& model, const LmSettings& s) {
  Config cfg;
  cfg.model = model.config();
  cfg.bench.repeats = s.cost_repeats;
  cfg.bench.warmup = s.cost_warmup;
  cfg.bench.n_tokens = s.decode_tokens;
  cfg.bench.threads = s.threads;
  Runner runner(ctx, cfg);
  std::vector<CostPoint> out;
  for (int64_t n : s.cost_lengths)
    for (Workload w : {Workload::kPrefill, Workload::kDecode}) {
      throw_if_interrupted();
      const RunRecord rec = runner.run(model, {model.name(), w, n, ctx.threads()});
      CostPoint p;
      p.workload = to_string(w);
      p.n = n;
      p.status = rec.status;
      p.reason = rec.reason;
      p.median_s = rec.stats.median;
      p.cv = rec.stats.cv;
      p.samples_s = rec.samples_s;
      p.peak_working_bytes = rec.memory.peak_working_bytes;
      p.state_bytes = rec.memory.state_bytes;
      p.params_bytes = rec.memory.params_bytes;
      p.contended = rec.contention.contended;
      p.contention_reason = rec.contention.reason;
      out.push_back(std::move(p));
    }
  return out;
}

void describe_data(const LmData& data, const LmSettings& s, LmResults& r) {
  r.vocab_size = data.vocab.size();
  r.splits = {{"train", data.tokens.train.documents(), data.tokens.train.text_tokens(), data.unk_train},
              {"validation", data.tokens.validation.documents(), data.tokens.validation.text_tokens(), data.unk_validation},
              {"test", data.tokens.test.documents(), data.tokens.test.text_tokens(), data.unk_test}};
  r.eval_documents = s.eval_docs > 0 ? std::min(s.eval_docs, data.tokens.test.documents()) : data.tokens.test.documents();
  r.eval_text_tokens = text_tokens_of(data.tokens.test, s.eval_docs);
}

void run_lm_study(const LmSettings& s, const LmData& data, LmResults& r, const Say& say,
                  const std::function<void(const std::string& name, Model& seed0)>& after_model) {
  if (data.vocab.size() != s.model.vocab_size)
    throw UserError("lm: the vocabulary has " + std::to_string(data.vocab.size()) + " ids but model.vocab_size is " + std::to_string(s.model.vocab_size));
  ops::Context ctx(static_cast<int>(s.threads));
  describe_data(data, s, r);
  r.environment = to_json(collect_environment(ctx.threads()));
  if (!s.cost_lengths.empty()) {
    say("calibrating: 2048x2048x2048 f32 matmul on " + std::to_string(ctx.threads()) + " threads");
    r.calibration = to_json(calibrate(ctx));
    ctx.release_scratchpad();
  }
  const std::vector<TokenBatch> validation = validation_batches(data.tokens.validation, s);
  const std::vector<std::string>& names = s.models;
  StudyClock clock(static_cast<int64_t>(names.size()) * s.seeds, s.steps(), s.time_budget);
  int64_t run_index = 0;
  for (const std::string& name : names) {
    // The model's entry is in `r` from its first completed seed on, so an interrupted study keeps
    // every completed run.
    std::unique_ptr<Model> seed0;
    for (int64_t i = 0; i < s.seeds; ++i, ++run_index) {
      const uint64_t seed = s.model.seed + static_cast<uint64_t>(i);
      const std::string label = name + " seed " + std::to_string(i + 1) + "/" + std::to_string(s.seeds);
      say("[" + std::to_string(run_index + 1) + "/" + std::to_string(static_cast<int64_t>(names.size()) * s.seeds) + "] " + label + ": training " +
          std::to_string(s.steps()) + " steps of " + std::to_string(s.batch) + " x " + std::to_string(s.train_length) + " tokens");
      std::unique_ptr<Model> model = make_lm_model(ctx, s, name, seed);
      SeedRun run = train_and_evaluate(ctx, *model, s, data, validation, seed, label, clock, run_index, say);
      if (i == 0) {
        r.models.push_back(ModelResult{name, model->param_count(false), model->param_count(true), {}, {}, {}});
        seed0 = std::move(model);
      }
      r.models.back().seeds.push_back(std::move(run));
      summarize(r.models.back());
    }
    if (!s.cost_lengths.empty()) {
      say("  " + name + ": prefill and decode cost at n = " + [&] {
        std::string l;
        for (int64_t n : s.cost_lengths) l += (l.empty() ? "" : ", ") + std::to_string(n);
        return l;
      }());
      r.models.back().cost = measure_cost(ctx, *seed0, s);
      for (const CostPoint& c : r.models.back().cost) {
        char line[200];
        if (c.status == "ok")
          std::snprintf(line, sizeof line, "    %-7s n=%-5lld median %.3f ms%s  peak %.1f MiB%s", c.workload.c_str(), static_cast<long long>(c.n), c.median_s * 1e3,
                        c.workload == "decode" ? "/token" : "", static_cast<double>(c.peak_working_bytes) / 1048576.0, c.contended ? "  [contended]" : "");
        else
          std::snprintf(line, sizeof line, "    %-7s n=%-5lld %s: %s", c.workload.c_str(), static_cast<long long>(c.n), c.status.c_str(), c.reason.c_str());
        say(line);
      }
    }
    if (after_model) after_model(name, *seed0);
  }
  r.wall_seconds = clock.elapsed();
}

}  // namespace bsbr::lm

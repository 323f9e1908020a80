// The point runner: prepare, verify, warm up, time, measure memory.
#include "bench/runner.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <new>
#include <optional>

#include "core/alloc_count.hpp"
#include "core/checked.hpp"
#include "core/errors.hpp"
#include "core/interrupt.hpp"
#include "core/rng.hpp"
#include "train/optimizer.hpp"
#include "train/train_model.hpp"

namespace bsbr {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string gib(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// A point that threw while being prepared or run: out of memory, a size that does not fit, or a
// oneDNN error fail the point (the sweep goes on); anything else is rethrown.
void fail_point(std::exception_ptr error, RunRecord& rec, const std::string& setting, const std::string& out_of_memory) {
  rec.status = "failed";
  try {
    std::rethrow_exception(error);
  } catch (const std::bad_alloc&) {
    rec.reason = out_of_memory;
  } catch (const SizeError& e) {
    rec.reason = setting + ": " + e.what();
  } catch (const dnnl::error& e) {
    rec.reason = e.status == dnnl_out_of_memory ? out_of_memory
                                                : "oneDNN failed while preparing or running " + setting + ": " + e.what() + " (status " +
                                                      std::to_string(static_cast<int>(e.status)) + ")";
  }
}

// A point whose oneDNN scratchpads would not fit in the room the memory guard left after its
// estimate (ops::ScratchBudget): skipped, nothing more allocated, the scratch added to the estimate.
void skip_for_scratch(const ops::ScratchBudgetExceeded& e, RunRecord& rec, const std::string& setting, std::size_t available) {
  rec.status = "skipped";
  rec.memory.estimate_bytes += e.needed;
  rec.reason = "memory guard: " + setting + " needs about " + gib(rec.memory.estimate_bytes) + " with oneDNN's scratchpads (" +
               gib(e.needed) + " for " + std::to_string(rec.threads) + " threads), only " + gib(available) + " available";
}

bool all_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

}  // namespace

std::vector<Problem> expand_sweep(const BenchConfig& bench, const std::vector<std::string>& models, const std::vector<int64_t>& threads) {
  std::vector<Problem> out;
  for (int64_t t : threads)
    for (Problem p : expand(bench, models)) {
      p.threads = t;
      out.push_back(std::move(p));
    }
  return out;
}

std::vector<Problem> expand(const BenchConfig& bench, const std::vector<std::string>& models) {
  std::vector<Problem> out;
  for (const std::string& m : models)
    for (int64_t n : bench.seq_lengths)
      for (Workload w : bench.workloads) out.push_back({m, w, n});
  return out;
}

std::vector<int32_t> Runner::input_tokens(const ModelConfig& m, int64_t batch, int64_t n) {
  std::vector<int32_t> t(static_cast<std::size_t>(batch * n));
  for (int64_t b = 0; b < batch; ++b) {
    CounterRng rng(m.seed, hash_name("input_tokens") + static_cast<uint64_t>(b));
    for (int64_t i = 0; i < n; ++i) t[b * n + i] = static_cast<int32_t>(rng.bits(i) % static_cast<uint64_t>(m.vocab_size));
  }
  return t;
}

RunShape Runner::shape_for(const Problem& p, int64_t batch, int64_t n_tokens) {
  RunShape s;
  s.batch = batch;
  switch (p.workload) {
    case Workload::kPrefill: s.prefill_lengths = {p.n}; break;
    case Workload::kDecode:  // one prefill, then every sample steps n .. n+N-1 from the restored state
      s.prefill_lengths = {p.n};
      s.capacity = checked_add(p.n, n_tokens, "the decode capacity");
      s.snapshot = true;
      break;
    case Workload::kGenerate:
      s.prefill_lengths = {p.n};
      s.capacity = p.n + n_tokens;
      break;
    case Workload::kRecompute:
      // The study's method: every new token re-runs the whole forward at lengths n .. n+N. Each
      // length's ops are prepared just before its forward (prepare_length), one set at a time, so
      // the point is sized for its longest forward only.
      s.prefill_lengths = {checked_add(p.n, n_tokens, "the recompute length")};
      break;
    case Workload::kTrain:
    case Workload::kTrainRecompute: break;  // run_train prepares a train::TrainModel, not the inference model
  }
  return s;
}

bool Runner::verify_point(Model& model, Workload w, int64_t n, RunRecord& rec, const std::string& setting, const std::string& out_of_memory) {
  try {
    rec.verify = verifier_.verify(ctx_, model, w, n, rec.batch);
  } catch (const std::bad_alloc&) {
    rec.status = "failed";
    rec.reason = out_of_memory + " (in the verify pass)";
    return false;
  } catch (const dnnl::error& e) {
    rec.status = "failed";
    rec.reason = "oneDNN failed in the verify pass of " + setting + ": " + e.what();
    return false;
  }
  if (!rec.verify.ok) {
    rec.status = "failed";
    rec.reason = rec.verify.reason;
  }
  return rec.verify.ok;
}

void Runner::prepare_length(Model& model, int64_t batch, int64_t L) {
  // Untimed and uncounted, inside a sample: thaw the context for the primitives, then freeze it
  // again for the forward that follows.
  const bool frozen = ctx_.frozen();
  ctx_.thaw();
  {
    UncountedAllocations setup;
    RunShape s;
    s.batch = batch;
    s.prefill_lengths = {L};
    model.prepare(ctx_, s);
  }
  if (frozen) ctx_.freeze();
}

void Runner::prefill_for_decode(Model& model, const Problem& p) {
  model.prefill(ctx_, prompt_.data(), p.n);
  model.argmax(first_.data());
  model.save_state();
}

// One sample of the workload. Allocation-free: every buffer was sized in run().
double Runner::time_once(Model& model, const Problem& p, const RunRecord& rec) {
  const int64_t b = rec.batch, N = rec.n_tokens, n = p.n;
  const std::vector<int32_t>& prompt = prompt_;
  std::vector<int32_t>&next = next_, &seq = seq_, &packed = packed_;
  token_count_ = 0;
  auto keep = [&]() {
    std::copy(next.begin(), next.end(), tokens_.begin() + token_count_);
    token_count_ += b;
  };
  // Steps n .. n+N-1, each with its argmax, under one held team (ops/team.hpp): each step's products
  // hand their parts to threads that spin between steps too, where a region per step paid a
  // fork/join and a worker's wake-up each token (an instrumented 2-thread build saw the worker start
  // the first product of a step 10.7 us late on average in one run, against 0.4 us inside a step).
  auto held_steps = [&]() {
    ctx_.hold_team([&] {
      for (int64_t i = 0; i < N; ++i) {
        model.step(ctx_, next.data(), n + i);
        model.argmax(next.data());
        keep();
      }
    });
  };
  switch (p.workload) {
    case Workload::kPrefill: {
      auto t0 = Clock::now();
      model.prefill(ctx_, prompt.data(), n);
      return seconds_since(t0);
    }
    case Workload::kDecode: {
      // Every sample decodes positions n .. n+N-1 from the state the prefill left (restored
      // untimed), so each one measures context n.
      model.restore_state();
      std::copy(first_.begin(), first_.end(), next.begin());
      auto t0 = Clock::now();
      held_steps();
      return seconds_since(t0) / static_cast<double>(N);
    }
    case Workload::kGenerate: {
      auto t0 = Clock::now();
      model.prefill(ctx_, prompt.data(), n);
      model.argmax(next.data());
      keep();
      held_steps();
      return seconds_since(t0);
    }
    case Workload::kRecompute: {
      // seq holds each sequence's tokens so far; packed is the [b, L] input of one forward. The
      // sample is the sum of the N+1 timed forwards (each with its argmax); each length's ops are
      // prepared before its forward, outside the timed interval (oneDNN 2.6 primitives have static
      // shapes, and one set at a time is what the workload needs).
      for (int64_t s = 0; s < b; ++s)
        std::copy(prompt.begin() + s * n, prompt.begin() + (s + 1) * n, seq.begin() + s * (n + N + 1));
      double seconds = 0;
      for (int64_t L = n; L <= n + N; ++L) {
        prepare_length(model, b, L);
        auto t0 = Clock::now();
        for (int64_t s = 0; s < b; ++s)
          std::copy(seq.begin() + s * (n + N + 1), seq.begin() + s * (n + N + 1) + L, packed.begin() + s * L);
        model.prefill(ctx_, packed.data(), L);
        model.argmax(next.data());
        keep();
        for (int64_t s = 0; s < b; ++s) seq[s * (n + N + 1) + L] = next[s];
        seconds += seconds_since(t0);
      }
      return seconds;
    }
    case Workload::kTrain:
    case Workload::kTrainRecompute: break;  // run_train times its own samples
  }
  return 0;
}

// flops_model by the formulas (Model::prefill_flops / step_flops), over exactly what one sample runs.
void Runner::flops_by_formula(const Model& model, const Problem& p, RunRecord& rec) const {
  const int64_t N = rec.n_tokens;
  double f = 0;
  switch (p.workload) {
    case Workload::kPrefill: f = model.prefill_flops(p.n); break;
    case Workload::kDecode:  // mean over the timed positions n .. n+N-1
      for (int64_t pos = p.n; pos < p.n + N; ++pos) f += model.step_flops(pos);
      f /= static_cast<double>(N);
      break;
    case Workload::kGenerate:
      f = model.prefill_flops(p.n);
      for (int64_t i = 0; i < N; ++i) f += model.step_flops(p.n + i);
      break;
    case Workload::kRecompute:
      for (int64_t L = p.n; L <= p.n + N; ++L) f += model.prefill_flops(L);
      break;    case Workload::kTrain:
    case Workload::kTrainRecompute: break;  // run_train: train::TrainModel::step_flops_model
  }
  rec.flops_model = f;
}

RunRecord Runner::run(Model& model, const Problem& p) {
  if (is_train(p.workload)) return run_train(model, p);
  RunRecord rec;
  rec.problem = p;
  rec.batch = cfg_.model.batch_size;
  rec.n_tokens = (p.workload == Workload::kPrefill) ? 0 : cfg_.bench.n_tokens;
  rec.threads = ctx_.threads();
  rec.warmup = cfg_.bench.warmup;
  rec.repeats = cfg_.bench.repeats;
  rec.unit = p.workload == Workload::kDecode ? "s/token" : "s";
  rec.tokens_generated = p.workload == Workload::kPrefill ? 0 : (p.workload == Workload::kDecode ? rec.n_tokens : rec.n_tokens + 1);
  if (p.workload == Workload::kDecode) rec.positions = {p.n, p.n + rec.n_tokens - 1};
  const RunShape shape = shape_for(p, rec.batch, cfg_.bench.n_tokens);

  // Memory guard: skip a point whose buffers would not fit, instead of being killed. The estimate
  // covers the model's working buffers (activations, state, the mixers' per-thread work) and this
  // runner's token buffers; the weights exist already (compare guards them before allocating).
  const std::string setting = std::string(to_string(p.workload)) + " n=" + std::to_string(p.n) +
                              (p.workload == Workload::kPrefill ? "" : " n_tokens=" + std::to_string(rec.n_tokens)) +
                              " batch_size=" + std::to_string(rec.batch) + " threads=" + std::to_string(rec.threads);
  try {
    const int64_t token_bytes = checked_product("the token buffers", int64_t{sizeof(int32_t)}, rec.batch,
                                                checked_add(checked_mul(int64_t{5}, checked_add(p.n, rec.n_tokens + 1, "the token buffers"),
                                                                        "the token buffers"), int64_t{1}, "the token buffers"));
    rec.memory.estimate_bytes = checked_add(model.estimate_bytes(shape, ctx_.threads()), static_cast<std::size_t>(token_bytes), "the memory estimate");
  } catch (const SizeError& e) {
    rec.status = "skipped";
    rec.reason = "memory guard: " + setting + ": " + e.what();
    return rec;
  }
  std::size_t available = ProcessMemory::available_bytes();
  if (cfg_.bench.memory_guard && available > 0 && rec.memory.estimate_bytes > available / 10 * 9) {
    rec.status = "skipped";
    rec.reason = "memory guard: " + setting + " needs about " + gib(rec.memory.estimate_bytes) + ", only " + gib(available) + " available";
    return rec;
  }
  const std::string out_of_memory = "out of memory while preparing or running " + setting + " (estimated " + gib(rec.memory.estimate_bytes) +
                                    "): lower seq_lengths, n_tokens, batch_size or threads";

  // Verify against the oracle before timing; a mismatch fails the point (bench/verify.hpp).
  if (cfg_.bench.verify && !verify_point(model, p.workload, p.n, rec, setting, out_of_memory)) return rec;
  const LoadSnapshot load_before = read_load();

  MemoryTracker& mem = ctx_.memory();
  mem.reset_peak();
  bool rss_reset = ProcessMemory::reset_peak_rss();
  try {
    prompt_ = input_tokens(model.config(), rec.batch, p.n);
    next_.assign(rec.batch, 0);
    first_.assign(rec.batch, 0);
    seq_.assign(rec.batch * (p.n + rec.n_tokens + 1), 0);
    packed_.assign(seq_.size(), 0);
    tokens_.assign(rec.batch * (rec.n_tokens + 1), 0);

    // 1. Create: every primitive and buffer of the point (and, for decode, the prefilled state).
    // oneDNN's scratchpads are known only once their primitives exist: the context reserves them
    // under the room the guard's limit leaves after the estimate, and stops (ScratchBudgetExceeded)
    // before allocating one that would not fit; what it reserved joins the estimate.
    {
      std::optional<ops::ScratchBudget> budget;
      const std::size_t limit = available / 10 * 9;
      if (cfg_.bench.memory_guard && available > 0) budget.emplace(ctx_, limit > rec.memory.estimate_bytes ? limit - rec.memory.estimate_bytes : 0);
      model.prepare(ctx_, shape);
    }
    rec.memory.estimate_bytes = checked_add(rec.memory.estimate_bytes, ctx_.scratchpad_reserved_bytes(), "the memory estimate");
    if (p.workload == Workload::kDecode) prefill_for_decode(model, p);

    // 2. Verify: one untimed sample; its executed FLOPs are counted, outputs must be finite, and
    // its tokens are the point's. Every timed sample must reproduce them.
    ctx_.start_counting_flops();
    time_once(model, p, rec);
    const double executed = ctx_.stop_counting_flops();
    rec.flops_executed = p.workload == Workload::kDecode ? executed / static_cast<double>(rec.n_tokens) : executed;
    rec.generated.assign(tokens_.begin(), tokens_.begin() + token_count_);
    const int64_t V = model.config().vocab_size;
    if (!all_finite(model.logits(), rec.batch * V)) {
      rec.status = "failed";
      rec.reason = "non-finite logits in the verify run";
    }

    // 3. Time: warm-up and samples, frozen (no primitive creation) and counting heap allocations.
    if (rec.status == "ok") {
      int64_t diverged = -1;  // first sample whose tokens differ from the verify run's
      rec.samples_s.reserve(static_cast<std::size_t>(cfg_.bench.repeats));
      ops::FrozenRegion frozen(ctx_);
      CountAllocations allocations;
      for (int64_t i = 0; i < cfg_.bench.warmup + cfg_.bench.repeats; ++i) {
        throw_if_interrupted();  // SIGINT / SIGTERM: stop between samples (core/interrupt.hpp)
        const double t = time_once(model, p, rec);
        if (i >= cfg_.bench.warmup) rec.samples_s.push_back(t);
        if (diverged < 0 && !std::equal(rec.generated.begin(), rec.generated.end(), tokens_.begin(), tokens_.begin() + token_count_)) diverged = i;
      }
      rec.allocations = AllocationCounter::available() ? static_cast<int64_t>(allocations.allocations()) : -1;
      rec.library_allocations = AllocationCounter::available() ? static_cast<int64_t>(allocations.library_allocations()) : -1;
      if (rec.allocations > 0) {
        rec.status = "failed";
        rec.reason = std::to_string(rec.allocations) + " heap allocation(s) inside the timed region (nothing may allocate while timing)";
      } else if (diverged >= 0) {
        rec.status = "failed";
        rec.reason = "sample " + std::to_string(diverged) + " (warm-up included) generated other tokens than the verify run from the same state";
      }
    }
  } catch (const ops::ScratchBudgetExceeded& e) {
    skip_for_scratch(e, rec, setting, available);
  } catch (...) {  // out of memory, a size that does not fit, a primitive oneDNN could not create (or run): the point fails
    fail_point(std::current_exception(), rec, setting, out_of_memory);
  }
  rec.memory.peak_working_bytes = mem.peak_working();
  rec.memory.peak_activation_bytes = mem.peak(MemCategory::kActivations);
  rec.memory.scratchpad_bytes = mem.peak(MemCategory::kScratch);
  rec.memory.state_allocated_bytes = mem.current(MemCategory::kState);
  rec.memory.params_bytes = mem.current(MemCategory::kParams);
  rec.memory.packed_params_bytes = mem.current(MemCategory::kPackedParams);
  rec.memory.snapshot_bytes = mem.current(MemCategory::kSnapshot);
  rec.memory.peak_rss_bytes = rss_reset ? ProcessMemory::peak_rss_bytes() : 0;
  model.release(ctx_);
  ctx_.release_scratchpad();
  rec.contention = assess_contention(load_before, read_load(), ctx_.threads(), machine_cores());
  if (rec.status != "ok") return rec;

  rec.memory.state_bytes = model.state_bytes(p.n);
  rec.stats = compute_stats(rec.samples_s);
  rec.noisy = rec.stats.count > 1 && rec.stats.cv > kNoisyCv;
  flops_by_formula(model, p, rec);
  rec.gflops = rec.stats.median > 0 ? rec.flops_executed / rec.stats.median / 1e9 : 0;
  rec.model_gflops = rec.stats.median > 0 ? rec.flops_model / rec.stats.median / 1e9 : 0;
  if (p.workload == Workload::kDecode)
    rec.bytes_per_token = decode_bytes_per_token(model.config(), rec.memory.params_bytes, mean_step_reads(model, p.n, rec.n_tokens), rec.batch);
  return rec;
}

StepReads mean_step_reads(const Model& model, int64_t first, int64_t steps) {
  StepReads mean;
  if (steps <= 0) return mean;
  for (int64_t pos = first; pos < first + steps; ++pos) {
    const StepReads r = model.step_reads(pos);
    mean.state_bytes += r.state_bytes;
    mean.unread_param_bytes += r.unread_param_bytes;
  }
  mean.state_bytes /= static_cast<double>(steps);
  mean.unread_param_bytes /= static_cast<double>(steps);
  return mean;
}

double decode_bytes_per_token(const ModelConfig& cfg, std::size_t params_bytes, const StepReads& reads, int64_t batch) {
  const double embedding_unread = static_cast<double>(std::max<int64_t>(0, cfg.vocab_size - batch)) * static_cast<double>(cfg.hidden_dim) * sizeof(float);
  return std::max(0.0, static_cast<double>(params_bytes) - embedding_unread - reads.unread_param_bytes) + reads.state_bytes;
}

namespace {

// The model's weights, copied before a train point and written back when it ends (however it
// ends): the point's AdamW updates must not change what later points measure.
class WeightsSnapshot {
 public:
  WeightsSnapshot(ops::Context& ctx, ParamStore& params) : params_(params) {
    for (const Param& p : params.all()) {
      copies_.push_back(ctx.tensor(MemCategory::kSnapshot, p.value.shape()));
      std::copy(p.value.data(), p.value.data() + p.value.size(), copies_.back().data());
    }
  }
  ~WeightsSnapshot() {
    std::size_t i = 0;
    for (Param& p : params_.all()) {
      std::copy(copies_[i].data(), copies_[i].data() + copies_[i].size(), p.value.data());
      ++i;
    }
  }
  WeightsSnapshot(const WeightsSnapshot&) = delete;
  WeightsSnapshot& operator=(const WeightsSnapshot&) = delete;

 private:
  ParamStore& params_;
  std::vector<Tensor> copies_;
};

}  // namespace

// One sample = one training step (train::train_step): forward over b x n tokens, the mean
// next-token cross-entropy, backward, global-norm clipping and the AdamW update. The same phases
// as run(): guard, verify, create, one untimed step (FLOPs counted), warm-up and samples frozen
// and counting heap allocations.
RunRecord Runner::run_train(Model& model, const Problem& p) {
  RunRecord rec;
  rec.problem = p;
  rec.batch = cfg_.model.batch_size;
  rec.threads = ctx_.threads();
  rec.warmup = cfg_.bench.warmup;
  rec.repeats = cfg_.bench.repeats;
  const bool recompute = p.workload == Workload::kTrainRecompute;
  const std::string setting = std::string(to_string(p.workload)) + " n=" + std::to_string(p.n) + " batch_size=" + std::to_string(rec.batch) +
                              " threads=" + std::to_string(rec.threads);
  const std::vector<std::string> trainable = train::trainable_architectures();
  if (p.n < 2 || std::find(trainable.begin(), trainable.end(), model.name()) == trainable.end()) {
    rec.status = "skipped";
    rec.reason = p.n < 2 ? setting + ": a training step needs n >= 2 (a next token to predict)" : model.name() + " has no backward pass";
    return rec;
  }

  // Memory guard, before anything is allocated: the training buffers by their shapes, gradients,
  // the two AdamW moments and the weights' snapshot (each the size of the weights), the tokens.
  try {
    const train::TrainModel::Footprint f = train::TrainModel::footprint(model.config(), model.name(), rec.batch, p.n, recompute, ctx_.threads());
    const std::size_t weights = model.params().bytes();
    const std::size_t tokens = checked_mul(static_cast<std::size_t>(rec.batch) * sizeof(int32_t), static_cast<std::size_t>(p.n), "the token buffers");
    rec.memory.estimate_bytes = checked_add(checked_add(f.saved, f.working, "the memory estimate"),
                                            checked_add(checked_mul(weights, std::size_t{4}, "the memory estimate"), tokens, "the memory estimate"),
                                            "the memory estimate");
  } catch (const SizeError& e) {
    rec.status = "skipped";
    rec.reason = "memory guard: " + setting + ": " + e.what();
    return rec;
  }
  const std::size_t available = ProcessMemory::available_bytes();
  if (cfg_.bench.memory_guard && available > 0 && rec.memory.estimate_bytes > available / 10 * 9) {
    rec.status = "skipped";
    rec.reason = "memory guard: " + setting + " needs about " + gib(rec.memory.estimate_bytes) + ", only " + gib(available) + " available";
    return rec;
  }
  const std::string out_of_memory = "out of memory while preparing or running " + setting + " (estimated " + gib(rec.memory.estimate_bytes) +
                                    "): lower seq_lengths, batch_size or threads";

  // Verify the model's forward against the oracle (as prefill); the backward is checked against
  // finite differences by the test suite (tests/test_train_grad.cpp).
  if (cfg_.bench.verify && !verify_point(model, Workload::kPrefill, p.n, rec, setting, out_of_memory)) return rec;
  const LoadSnapshot load_before = read_load();

  MemoryTracker& mem = ctx_.memory();
  mem.reset_peak();
  const bool rss_reset = ProcessMemory::reset_peak_rss();
  try {
    prompt_ = input_tokens(model.config(), rec.batch, p.n);
    // 1. Create: the weights' snapshot, gradients, optimiser state, every op and buffer.
    WeightsSnapshot weights(ctx_, model.params());
    train::TrainModel tm(ctx_, model);
    train::AdamW opt(ctx_, model.params(), train::AdamWConfig{});
    tm.prepare(ctx_, rec.batch, p.n, recompute);
    rec.flops_model = tm.step_flops_model(rec.batch, p.n);

    // 2. One untimed step (train::train_step's parts): its executed FLOPs are counted; the loss and
    // the gradients must be finite before the update (a non-finite point fails, the sweep goes on).
    ctx_.start_counting_flops();
    rec.train_loss = tm.forward_backward(ctx_, prompt_.data());
    if (std::isfinite(rec.train_loss) && std::isfinite(tm.grads().squared_norm())) {
      opt.step(tm.grads(), train::learning_rate(opt.config(), opt.steps()));
      ctx_.count_flops(opt.step_flops());
    } else {
      rec.status = "failed";
      rec.reason = "non-finite loss or gradient in the untimed training step (loss " + std::to_string(rec.train_loss) + ")";
    }
    rec.flops_executed = ctx_.stop_counting_flops();

    // 3. Time: warm-up and samples, frozen (no primitive creation) and counting heap allocations.
    if (rec.status == "ok") {
      rec.samples_s.reserve(static_cast<std::size_t>(cfg_.bench.repeats));
      ops::FrozenRegion frozen(ctx_);
      CountAllocations allocations;
      for (int64_t i = 0; i < cfg_.bench.warmup + cfg_.bench.repeats; ++i) {
        throw_if_interrupted();
        auto t0 = Clock::now();
        train::train_step(ctx_, tm, opt, prompt_.data());
        const double t = seconds_since(t0);
        if (i >= cfg_.bench.warmup) rec.samples_s.push_back(t);
      }
      rec.allocations = AllocationCounter::available() ? static_cast<int64_t>(allocations.allocations()) : -1;
      rec.library_allocations = AllocationCounter::available() ? static_cast<int64_t>(allocations.library_allocations()) : -1;
      if (rec.allocations > 0) {
        rec.status = "failed";
        rec.reason = std::to_string(rec.allocations) + " heap allocation(s) inside the timed region (nothing may allocate while timing)";
      }
    }
  } catch (const ops::ScratchBudgetExceeded& e) {
    skip_for_scratch(e, rec, setting, available);
  } catch (...) {
    fail_point(std::current_exception(), rec, setting, out_of_memory);
  }
  rec.memory.peak_working_bytes = mem.peak_working();
  rec.memory.peak_activation_bytes = mem.peak(MemCategory::kActivations);
  rec.memory.scratchpad_bytes = mem.peak(MemCategory::kScratch);
  rec.memory.saved_activation_bytes = mem.peak(MemCategory::kSaved);
  rec.memory.gradient_bytes = mem.peak(MemCategory::kGrads);
  rec.memory.optimizer_bytes = mem.peak(MemCategory::kOptimizer);
  rec.memory.params_bytes = mem.current(MemCategory::kParams);
  rec.memory.packed_params_bytes = mem.current(MemCategory::kPackedParams);
  rec.memory.snapshot_bytes = mem.peak(MemCategory::kSnapshot);
  rec.memory.peak_rss_bytes = rss_reset ? ProcessMemory::peak_rss_bytes() : 0;
  ctx_.release_scratchpad();
  rec.contention = assess_contention(load_before, read_load(), ctx_.threads(), machine_cores());
  if (rec.status != "ok") return rec;

  rec.stats = compute_stats(rec.samples_s);
  rec.noisy = rec.stats.count > 1 && rec.stats.cv > kNoisyCv;
  rec.gflops = rec.stats.median > 0 ? rec.flops_executed / rec.stats.median / 1e9 : 0;
  rec.model_gflops = rec.stats.median > 0 ? rec.flops_model / rec.stats.median / 1e9 : 0;
  rec.tokens_per_second = rec.stats.median > 0 ? static_cast<double>(rec.batch * p.n) / rec.stats.median : 0;
  return rec;
}

std::string weights_guard(ops::Context& ctx, const ModelConfig& cfg, const Architecture& arch) {
  const std::size_t bytes = Model::weight_bytes(ctx, cfg, arch);
  const std::size_t available = ProcessMemory::available_bytes();
  if (available == 0 || bytes <= available / 10 * 9) return "";
  return "memory guard: the weights of " + std::string(arch.name) + " need about " + gib(bytes) + ", only " + gib(available) +
         " available (model.vocab_size=" + std::to_string(cfg.vocab_size) + ", hidden_dim=" + std::to_string(cfg.hidden_dim) +
         ", ff_dim=" + std::to_string(cfg.ff_dim) + ", num_layers=" + std::to_string(cfg.num_layers) + ")";
}

}  // namespace bsbr

// What the figures of a benchmark point mean (README "How it measures"):
//   - a decode point times positions n .. n+N-1 in every sample, from the same restored state;
//   - decode state and KV cache bytes by formula and as allocated (capacity n + n_tokens exactly);
//   - nothing allocates on the heap inside a timed region, for every model and workload, and an
//     allocation there fails the point;
//   - flops_executed is what the op layer ran (2·M·N·K per matmul), flops_model the formula.
#include <gtest/gtest.h>

#include <vector>

#include "bench/runner.hpp"
#include "core/alloc_count.hpp"
#include "model/model.hpp"
#include "ref/ref_model.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

// The runner tests' small model (test_util): head_dim 8, chunk 8, window 6; 3 repeats.
Config small_run(int64_t n_tokens) { return test::small_run_config(n_tokens, 3); }

class MeasureTest : public ::testing::TestWithParam<std::string> {
 protected:
  const Architecture& arch() const { return find_architecture(GetParam()); }
};

// Every decode sample steps n .. n+N-1 from the state the prefill left: the runner fails a point
// whose samples generate different tokens, and the tokens are generate's continuation from n.
TEST_P(MeasureTest, DecodeSamplesStartFromTheSameStateAtContextN) {
  ops::Context ctx(2);
  const Config cfg = small_run(12);  // crosses a chunk boundary (B = 8) from n = 21
  Model model(ctx, cfg.model, arch());
  Runner runner(ctx, cfg);
  const int64_t n = 21, N = cfg.bench.n_tokens;
  RunRecord dec = runner.run(model, {GetParam(), Workload::kDecode, n});
  RunRecord gen = runner.run(model, {GetParam(), Workload::kGenerate, n});
  ASSERT_EQ(dec.status, "ok") << dec.reason;
  ASSERT_EQ(gen.status, "ok") << gen.reason;
  EXPECT_EQ(dec.positions, (std::vector<int64_t>{n, n + N - 1}));
  EXPECT_EQ(dec.samples_s.size(), 3u);
  ASSERT_EQ(dec.generated.size(), static_cast<std::size_t>(N));
  EXPECT_EQ(dec.generated, std::vector<int32_t>(gen.generated.begin() + 1, gen.generated.end()))
      << GetParam() << ": decode from n is not generate's continuation";
}

// save_state / restore_state replay the same steps bit for bit; without the restore, an
// architecture whose steps overwrite state in place gives other logits (the check can fail).
TEST_P(MeasureTest, RestoreReplaysTheSameSteps) {
  ops::Context ctx(1);
  const Config cfg = small_run(12);
  Model model(ctx, cfg.model, arch());
  const int64_t n = 21, N = 12, V = cfg.model.vocab_size;
  RunShape shape;
  shape.prefill_lengths = {n};
  shape.capacity = n + N;
  shape.snapshot = true;
  model.prepare(ctx, shape);
  std::vector<int32_t> tokens = Runner::input_tokens(cfg.model, 1, n + N);
  auto steps = [&]() {
    std::vector<float> logits;
    for (int64_t i = 0; i < N; ++i) {
      model.step(ctx, &tokens[n + i], n + i);
      logits.insert(logits.end(), model.logits(), model.logits() + V);
    }
    return logits;
  };
  model.prefill(ctx, tokens.data(), n);
  model.save_state();
  const std::vector<float> first = steps();
  model.restore_state();
  EXPECT_EQ(steps(), first) << GetParam() << ": restored state does not replay the same steps";
  bool in_place = false;
  for (int l = 0; l < cfg.model.num_layers; ++l) in_place |= !model.mixer(l).overwritten_state().empty();
  if (in_place) {
    EXPECT_NE(steps(), first) << GetParam() << ": steps without a restore replay the same logits; is the state listed?";
  }
}

// No heap allocation inside the timed region, for every workload, training steps included (the
// runner records the count and would fail the point).
TEST_P(MeasureTest, NothingAllocatesWhileTiming) {
  if (!AllocationCounter::available()) GTEST_SKIP() << "allocation counting is compiled out in this (sanitizer) build";
  ops::Context ctx(2);
  const Config cfg = small_run(5);
  Model model(ctx, cfg.model, arch());
  Runner runner(ctx, cfg);
  for (Workload w : {Workload::kPrefill, Workload::kDecode, Workload::kGenerate, Workload::kRecompute, Workload::kTrain,
                     Workload::kTrainRecompute})
    for (int64_t n : {int64_t{7}, int64_t{19}}) {
      RunRecord r = runner.run(model, {GetParam(), w, n});
      EXPECT_EQ(r.status, "ok") << GetParam() << " " << to_string(w) << " n=" << n << ": " << r.reason;
      EXPECT_EQ(r.allocations, 0) << GetParam() << " " << to_string(w) << " n=" << n;
    }
}

// flops_executed counts what ran: at least the model's arithmetic (every kernel computes whole
// tiles or blocks), and for prefill the skeleton's FFN and LM head exactly once.
TEST_P(MeasureTest, ExecutedFlopsCoverTheModelsArithmetic) {
  ops::Context ctx(1);
  Config cfg = small_run(4);
  cfg.bench.repeats = 1;
  cfg.bench.warmup = 0;
  Model model(ctx, cfg.model, arch());
  Runner runner(ctx, cfg);
  for (Workload w : {Workload::kPrefill, Workload::kDecode, Workload::kGenerate})
    for (int64_t n : {int64_t{1}, int64_t{16}, int64_t{37}}) {
      RunRecord r = runner.run(model, {GetParam(), w, n});
      ASSERT_EQ(r.status, "ok") << r.reason;
      EXPECT_GT(r.flops_model, 0);
      EXPECT_GE(r.flops_executed, r.flops_model * (1 - 1e-12)) << GetParam() << " " << to_string(w) << " n=" << n;
    }
}

INSTANTIATE_TEST_SUITE_P(All, MeasureTest, ::testing::ValuesIn(architecture_names()), [](const auto& info) { return info.param; });

// The KV cache of Standard under configs/ci.yaml's sizes (d = 256, 2 layers) at n = 64,
// n_tokens = 32, by hand: K and V, 64 rows of 256 floats, 4 B, 2 layers = 2·64·256·4·2 = 262,144 B
// after the prefill; the cache is allocated for n + n_tokens = 96 rows exactly: 393,216 B.
TEST(KvCache, StandardAtCiSizes) {
  ops::Context ctx(1);
  Config cfg;  // SPEC defaults = ci.yaml's model
  cfg.model.num_layers = 2;
  cfg.model.compression_factor = 2;
  cfg.bench.n_tokens = 32;
  cfg.bench.warmup = 0;
  cfg.bench.repeats = 2;
  Model model(ctx, cfg.model, find_architecture("Standard"));
  Runner runner(ctx, cfg);
  RunRecord r = runner.run(model, {"Standard", Workload::kDecode, 64});
  ASSERT_EQ(r.status, "ok") << r.reason;
  EXPECT_EQ(r.memory.state_bytes, 262144u);
  EXPECT_EQ(r.memory.state_allocated_bytes, 393216u);
  EXPECT_EQ(r.positions, (std::vector<int64_t>{64, 95}));
}

// The counting hook: a matmul adds 2·batch·M·N·K, only while counting.
TEST(ExecutedFlops, MatMulHookCountsTwoMNK) {
  ops::Context ctx(1);
  ops::MatMulSpec s{ops::MatLayout::dense(5, 7).with_batch(3, 35), ops::MatLayout::dense(7, 11).with_batch(3, 77),
                    ops::MatLayout::dense(5, 11).with_batch(3, 55), false, 1.f, {}};
  ops::MatMul mm(ctx, s);
  std::vector<float> a(3 * 35, 1.f), b(3 * 77, 1.f), c(3 * 55);
  mm.run(ctx, a.data(), b.data(), c.data());  // not counting
  ctx.start_counting_flops();
  mm.run(ctx, a.data(), b.data(), c.data());
  mm.run(ctx, a.data(), b.data(), c.data());
  EXPECT_EQ(ctx.stop_counting_flops(), 2 * (2.0 * 3 * 5 * 11 * 7));
}

// Standard's prefill at n = 64 runs one 64 x 64 score tile per head (whole, the masked half too):
// executed = projections 2·4·n·d² + scores and weighted sum 2·2·n²·d per layer, FFN 2·2·n·d·ff
// per layer, LM head 2·d·V. Derived by hand here, not from src/'s formulas.
TEST(ExecutedFlops, StandardPrefillByHand) {
  ops::Context ctx(1);
  Config cfg = small_run(4);
  cfg.bench.repeats = 1;
  cfg.bench.warmup = 0;
  Model model(ctx, cfg.model, find_architecture("Standard"));
  Runner runner(ctx, cfg);
  const double n = 64, d = cfg.model.hidden_dim, ff = cfg.model.ff_dim, V = cfg.model.vocab_size, L = cfg.model.num_layers;
  RunRecord r = runner.run(model, {"Standard", Workload::kPrefill, 64});
  ASSERT_EQ(r.status, "ok") << r.reason;
  EXPECT_EQ(r.flops_executed, L * (2 * 4 * n * d * d + 2 * 2 * n * n * d + 2 * 2 * n * d * ff) + 2 * d * V);
  EXPECT_EQ(r.flops_model, L * (2 * 4 * n * d * d + 2 * 2 * (n * (n + 1) / 2) * d + 2 * 2 * n * d * ff) + 2 * d * V);
}

// The counter sees allocations from any source while armed, and nothing when disarmed.
TEST(AllocationCounter, CountsOnlyWhileArmed) {
  if (!AllocationCounter::available()) GTEST_SKIP() << "allocation counting is compiled out in this (sanitizer) build";
  std::vector<int>* v = nullptr;
  {
    CountAllocations count;
    v = new std::vector<int>(100);
    EXPECT_GE(count.allocations(), 2u);  // the vector object and its storage
  }
  const uint64_t before = AllocationCounter::count();
  delete v;
  v = new std::vector<int>(100);
  EXPECT_EQ(AllocationCounter::count(), before);
  delete v;
}

// Mutation: a mixer that allocates in prefill (inside the timed region) fails its point.
class AllocatingMixer : public Mixer {
 public:
  explicit AllocatingMixer(std::unique_ptr<Mixer> inner) : inner_(std::move(inner)) {}
  void prepare(ops::Context& ctx, const RunShape& shape) override { inner_->prepare(ctx, shape); }
  void release() override { inner_->release(); }
  void prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) override {
    std::vector<float> scratch(static_cast<std::size_t>(n));  // the mutation
    inner_->prefill(ctx, x, residual, n);
    sink_ += scratch.size();
  }
  void step(ops::Context& ctx, const float* x, float* residual, int64_t pos) override { inner_->step(ctx, x, residual, pos); }
  std::vector<Tensor*> overwritten_state() override { return inner_->overwritten_state(); }
  std::size_t state_bytes(int64_t n) const override { return inner_->state_bytes(n); }
  StepReads step_reads(int64_t pos) const override { return inner_->step_reads(pos); }
  std::size_t estimate_bytes(const RunShape& shape, int threads) const override { return inner_->estimate_bytes(shape, threads); }
  double prefill_flops(int64_t n) const override { return inner_->prefill_flops(n); }
  double step_flops(int64_t pos) const override { return inner_->step_flops(pos); }

 private:
  std::unique_ptr<Mixer> inner_;
  std::size_t sink_ = 0;
};

std::unique_ptr<Mixer> make_allocating(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return std::make_unique<AllocatingMixer>(find_architecture("Standard").make(cfg, params, prefix));
}

TEST(AllocationCounter, AllocationInTimedRegionFailsThePoint) {
  if (!AllocationCounter::available()) GTEST_SKIP() << "allocation counting is compiled out in this (sanitizer) build";
  ops::Context ctx(1);
  Config cfg = small_run(4);
  cfg.bench.verify = false;  // "Leaky" has no oracle; the allocation guard is what is tested
  const Architecture leaky{"Leaky", make_allocating, "Standard with an allocation in prefill"};
  Model model(ctx, cfg.model, leaky);
  Runner runner(ctx, cfg);
  RunRecord r = runner.run(model, {"Leaky", Workload::kPrefill, 16});
  EXPECT_EQ(r.status, "failed");
  EXPECT_GE(r.allocations, 4);  // one per warm-up and sample and layer
  EXPECT_NE(r.reason.find("heap allocation"), std::string::npos) << r.reason;
}

}  // namespace
}  // namespace bsbr

// Statistics against hand-computed values; the allocator's peak on a known allocation sequence;
// the memory guard skipping an impossible point.
#include <gtest/gtest.h>

#include "bench/runner.hpp"
#include "bench/stats.hpp"
#include "core/errors.hpp"
#include "core/memory.hpp"
#include "core/tensor.hpp"
#include "model/model.hpp"

namespace bsbr {
namespace {

TEST(Stats, HandComputed) {
  // samples 1..5 shuffled: median 3, mean 3, sample stddev sqrt(2.5), quartiles 2 and 4 (linear).
  SampleStats s = compute_stats({4, 1, 5, 3, 2});
  EXPECT_EQ(s.count, 5);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 5);
  EXPECT_DOUBLE_EQ(s.median, 3);
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_NEAR(s.stddev, 1.5811388300841898, 1e-12);
  EXPECT_DOUBLE_EQ(s.q1, 2);
  EXPECT_DOUBLE_EQ(s.q3, 4);
  EXPECT_DOUBLE_EQ(s.iqr, 2);
  EXPECT_NEAR(s.cv, 1.5811388300841898 / 3, 1e-12);
  // Even count: median between the middle two; quartiles interpolate (numpy: 1.75, 3.25).
  SampleStats e = compute_stats({1, 2, 3, 4});
  EXPECT_DOUBLE_EQ(e.median, 2.5);
  EXPECT_DOUBLE_EQ(e.q1, 1.75);
  EXPECT_DOUBLE_EQ(e.q3, 3.25);
  SampleStats one = compute_stats({0.5});
  EXPECT_DOUBLE_EQ(one.median, 0.5);
  EXPECT_DOUBLE_EQ(one.stddev, 0);
  EXPECT_DOUBLE_EQ(one.iqr, 0);
}

// Training's categories: saved activations are working memory, gradients and optimiser state are
// not (README "The train workload"); a view (training's shared buffers) is not counted, frees
// nothing, and cannot be larger than its owner.
TEST(Memory, TrainingCategoriesAndViews) {
  MemoryTracker t;
  Tensor owner(t, MemCategory::kActivations, {4, 8});  // 128 B
  {
    Tensor v = Tensor::view(owner, {2, 8});
    EXPECT_EQ(v.data(), owner.data());
    EXPECT_EQ(v.size(), 16);
    EXPECT_EQ(t.current(MemCategory::kActivations), 128u);
  }
  EXPECT_EQ(t.current(MemCategory::kActivations), 128u);
  EXPECT_THROW(Tensor::view(owner, {5, 8}), InvariantError);
  Buffer saved(t, MemCategory::kSaved, 100), grads(t, MemCategory::kGrads, 1000), moments(t, MemCategory::kOptimizer, 2000);
  EXPECT_EQ(t.current_working(), 228u);
  EXPECT_EQ(t.peak_working(), 228u);
  EXPECT_EQ(t.peak(MemCategory::kGrads), 1000u);
  EXPECT_EQ(t.peak(MemCategory::kOptimizer), 2000u);
}

TEST(Memory, TrackerPeakOnKnownSequence) {
  MemoryTracker t;
  {
    Buffer a(t, MemCategory::kActivations, 1000);
    Buffer s(t, MemCategory::kState, 500);
    EXPECT_EQ(t.current_working(), 1500u);
    {
      Buffer b(t, MemCategory::kActivations, 2000);  // peak here: 3500
      Buffer w(t, MemCategory::kParams, 10000);      // params are not working memory
      EXPECT_EQ(t.peak_working(), 3500u);
    }
    EXPECT_EQ(t.current_working(), 1500u);
    Buffer c(t, MemCategory::kScratch, 1000);  // 2500 < 3500
  }
  EXPECT_EQ(t.peak_working(), 3500u);
  EXPECT_EQ(t.peak(MemCategory::kActivations), 3000u);
  EXPECT_EQ(t.peak(MemCategory::kParams), 10000u);
  EXPECT_EQ(t.current_working(), 0u);
  t.reset_peak();
  EXPECT_EQ(t.peak_working(), 0u);
  Buffer moved(t, MemCategory::kState, 64);
  Buffer other = std::move(moved);  // moving does not double count
  EXPECT_EQ(t.current(MemCategory::kState), 64u);
}

TEST(Memory, GuardSkipsImpossiblePoint) {
  ops::Context ctx(1);
  Config cfg;
  cfg.bench.repeats = 1;
  Model model(ctx, cfg.model, find_architecture("Standard"));
  Runner runner(ctx, cfg);
  RunRecord r = runner.run(model, {"Standard", Workload::kPrefill, int64_t{1} << 36});
  EXPECT_EQ(r.status, "skipped");
  EXPECT_NE(r.reason.find("memory guard"), std::string::npos) << r.reason;
  EXPECT_TRUE(r.samples_s.empty());
}

// The estimate bounds everything a point allocates, oneDNN's scratchpads included (the runner adds
// what the context reserved for them: per thread for the ops our parallel loops run), at one
// thread and at several.
TEST(Memory, MeasuredPeakWithinEstimate) {
  for (int threads : {1, 3}) {
    ops::Context ctx(threads);
    Config cfg;
    cfg.bench.repeats = 1;
    cfg.bench.warmup = 0;
    cfg.bench.n_tokens = 4;
    for (const Architecture& a : architectures()) {
      Model model(ctx, cfg.model, a);
      Runner runner(ctx, cfg);
      for (Workload w : {Workload::kPrefill, Workload::kGenerate}) {
        RunRecord r = runner.run(model, {a.name, w, 200});
        ASSERT_EQ(r.status, "ok") << r.reason;
        EXPECT_GT(r.memory.peak_working_bytes, 0u);
        EXPECT_GT(r.memory.scratchpad_bytes, 0u) << a.name;
        EXPECT_LE(r.memory.peak_working_bytes, r.memory.estimate_bytes) << a.name << " " << to_string(w) << " threads " << threads;
      }
    }
  }
}

}  // namespace
}  // namespace bsbr

namespace bsbr {
namespace {

// Decode state after a prefill of n tokens, per layer and sequence, written independently from
// SPEC §2 for each architecture (bytes of f32).
std::size_t expected_state_bytes(const std::string& arch, const ModelConfig& c, int64_t n) {
  const std::size_t f = sizeof(float), d = c.hidden_dim, h = c.num_heads, dh = c.head_dim(), N = n;
  if (arch == "Standard" || arch == "Hopfield") return f * 2 * N * d;                     // K and V for every position
  if (arch == "SlidingWindow") return f * 2 * std::min<std::size_t>(N, c.window_size + 1) * d;  // ring of w+1 keys/values
  if (arch == "Linear") return f * h * (dh * dh + (c.normalize ? dh : 0));                // S and z per head
  if (arch == "DeltaNet") return f * h * dh * dh;                                          // S per head
  // BSBR and GAU: chunks before the current one (the one holding position n-1) are folded into
  // chunk states; the current chunk's rows are kept as K and V.
  const std::size_t B = c.chunk_size, cur = (N - 1) / B, rows = N - cur * B;
  if (arch == "BSBR") {  // per complete chunk: meta key H_j [d] + f_j [h, d/c] (or F_j [h, dh²]); current K, V; G_i; last input
    const std::size_t per_chunk = d + h * (c.compression_factor > 0 ? d / c.compression_factor : dh * dh);
    return f * (cur * per_chunk + 2 * rows * d + h * dh * dh + d);
  }
  if (arch == "GAU") {  // S = Σ K_j^T V_j [E, E]; current K, V [rows, E]
    const std::size_t E = c.expansion_factor * d;
    return f * (E * E + 2 * rows * E);
  }
  ADD_FAILURE() << "no independent state formula for " << arch << " in this test";
  return 0;
}

TEST(Memory, StateBytesMatchFormulaAndAllocation) {
  ops::Context ctx(2);
  ModelConfig c;
  c.compression_factor = 2;
  for (const Architecture& a : architectures()) {
    Model model(ctx, c, a);
    std::size_t prev = 0;
    for (int64_t n : {int64_t{100}, int64_t{1000}, int64_t{4000}}) {
      const std::size_t want = expected_state_bytes(a.name, c, n) * static_cast<std::size_t>(c.num_layers);
      EXPECT_EQ(model.state_bytes(n), want) << a.name << " n=" << n;
      // What prepare() allocates as state for a decode after a prefill of n covers it.
      RunShape shape;
      shape.prefill_lengths = {n};
      shape.capacity = n + 1;
      std::size_t before = ctx.memory().current(MemCategory::kState);
      model.prepare(ctx, shape);
      std::size_t allocated = ctx.memory().current(MemCategory::kState) - before;
      model.release(ctx);
      EXPECT_GE(allocated, want) << a.name << " n=" << n << ": the formula claims more state than is allocated";
      EXPECT_LE(allocated, 2 * want + (1u << 20)) << a.name << " n=" << n << ": far more state allocated than the formula";
      if (prev > 0 && (std::string(a.name) == "Standard" || std::string(a.name) == "Hopfield")) {
        EXPECT_GT(model.state_bytes(n), prev) << "a KV cache grows with n";
      }
      prev = model.state_bytes(n);
    }
  }
}

}  // namespace
}  // namespace bsbr

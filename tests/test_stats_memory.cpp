// Statistics against hand-computed values; the allocator's peak on a known allocation sequence;
// the memory guard skipping an impossible point.
#include <gtest/gtest.h>

#include "bench/runner.hpp"
#include "bench/stats.hpp"
#include "core/memory.hpp"
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

TEST(Memory, MeasuredPeakWithinEstimate) {
  ops::Context ctx(2);
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
      // The estimate bounds what was allocated (scratchpad excluded: oneDNN decides it).
      EXPECT_LE(r.memory.peak_working_bytes - r.memory.scratchpad_bytes, r.memory.estimate_bytes) << a.name << " " << to_string(w);
    }
  }
}

}  // namespace
}  // namespace bsbr

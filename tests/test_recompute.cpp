// The recompute workload's memory is what it needs (README "How it measures"): it runs forwards at
// every length n .. n+N, preparing each length's ops just before its forward (untimed), so one set
// exists at a time and its activations peak exactly where one prefill of its longest length,
// n + N, peaks; and still nothing allocates inside its timed intervals, and its tokens are
// generate's.
#include <gtest/gtest.h>

#include "bench/runner.hpp"
#include "core/alloc_count.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

// The runner tests' small model (test_util): chunk 8, so that n .. n+N crosses chunk boundaries.
Config small_run() { return test::small_run_config(9, 2); }

class RecomputeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RecomputeTest, PeaksLikeOnePrefillOfItsLongestLength) {
  ops::Context ctx(2);
  const Config cfg = small_run();
  Model model(ctx, cfg.model, find_architecture(GetParam()));
  Runner runner(ctx, cfg);
  const int64_t n = 21, N = cfg.bench.n_tokens;
  const RunRecord rec = runner.run(model, {GetParam(), Workload::kRecompute, n});
  const RunRecord pre = runner.run(model, {GetParam(), Workload::kPrefill, n + N});
  const RunRecord gen = runner.run(model, {GetParam(), Workload::kGenerate, n});
  ASSERT_EQ(rec.status, "ok") << rec.reason;
  ASSERT_EQ(pre.status, "ok") << pre.reason;
  ASSERT_EQ(gen.status, "ok") << gen.reason;
  // Activations (buffers and per-op workspaces) and state: exactly one forward at n + N.
  EXPECT_EQ(rec.memory.peak_activation_bytes, pre.memory.peak_activation_bytes) << GetParam();
  EXPECT_EQ(rec.memory.state_allocated_bytes, pre.memory.state_allocated_bytes) << GetParam();
  EXPECT_GT(rec.memory.peak_activation_bytes, 0u);
  // The guard sizes it for the longest forward only: exactly the prefill's estimate at n + N (the
  // runner's token buffers are sized by n + N + 1 positions in both).
  EXPECT_EQ(rec.memory.estimate_bytes, pre.memory.estimate_bytes) << GetParam();
  if (AllocationCounter::available()) {
    EXPECT_EQ(rec.allocations, 0) << GetParam();
  }
  EXPECT_EQ(rec.generated, gen.generated) << GetParam();
  EXPECT_EQ(rec.samples_s.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(All, RecomputeTest, ::testing::ValuesIn(architecture_names()), [](const auto& info) { return info.param; });

}  // namespace
}  // namespace bsbr

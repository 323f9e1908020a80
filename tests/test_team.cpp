// The held team of a decode step (ops/team.hpp): who runs what, nesting, errors, and that the ops
// give the same bits through it as through their own OpenMP regions.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "ops/context.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

// Four threads on any machine (oversubscribed on the 2-core box: the waits must yield).
constexpr int kThreads = 4;

TEST(Team, PartsRunOnTheirOwnThreadsEveryJob) {
  ops::Context ctx(kThreads);
  EXPECT_FALSE(ctx.team().dispatching());
  EXPECT_TRUE(ctx.may_fork());
  constexpr int kJobs = 300;
  std::vector<int> runs(kThreads, 0), wrong_thread(kThreads, 0);
  bool dispatching = false, forks = false;
  ctx.hold_team([&] {
    dispatching = ctx.team().dispatching();
    forks = ctx.may_fork();
    for (int j = 0; j < kJobs; ++j) {
      const int64_t parts = 1 + j % kThreads;  // 1 to 4 parts; idle threads only acknowledge
      ctx.team().run_parts(parts, [&](int64_t t) {
        ++runs[t];  // each part has its own element, written by one thread per job
        if (omp_get_thread_num() != t) ++wrong_thread[t];
      });
    }
  });
  EXPECT_TRUE(dispatching);
  EXPECT_TRUE(forks);
  EXPECT_FALSE(ctx.team().dispatching());
  for (int t = 0; t < kThreads; ++t) {
    int expected = 0;
    for (int j = 0; j < kJobs; ++j) expected += t < 1 + j % kThreads;
    EXPECT_EQ(runs[t], expected) << "part " << t;
    EXPECT_EQ(wrong_thread[t], 0) << "part " << t;
  }
}

TEST(Team, ItemsRunOnceEachAndParallelItemsUsesTheTeam) {
  ops::Context ctx(kThreads);
  constexpr int64_t kItems = 1001;
  std::vector<std::atomic<int>> seen(kItems);
  std::atomic<int> on_thread_zero_outside_job{0};
  ctx.hold_team([&] {
    ctx.team().run_items(kItems, [&](int64_t i) { seen[i].fetch_add(1); });
    ops::parallel_items(ctx, kItems, true, [&](int64_t i) {
      seen[i].fetch_add(1);
      if (ctx.team().dispatching()) on_thread_zero_outside_job.fetch_add(1);  // never: a body runs inside the job
    });
  });
  for (int64_t i = 0; i < kItems; ++i) EXPECT_EQ(seen[i].load(), 2) << "item " << i;
  EXPECT_EQ(on_thread_zero_outside_job.load(), 0);
}

TEST(Team, WorkInsideAJobRunsOnTheCallingThread) {
  ops::Context ctx(kThreads);
  std::vector<int> forks(kThreads, -1), nested_other_thread(kThreads, 0);
  ctx.hold_team([&] {
    ctx.team().run_parts(kThreads, [&](int64_t t) {
      forks[t] = ctx.may_fork() ? 1 : 0;
      const int me = omp_get_thread_num();
      ops::parallel_items(ctx, 50, true, [&](int64_t) { nested_other_thread[t] += omp_get_thread_num() != me; });
    });
  });
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(forks[t], 0) << "thread " << t;
    EXPECT_EQ(nested_other_thread[t], 0) << "thread " << t;
  }
}

TEST(Team, WithoutATeamMainRunsDirectly) {
  ops::Context one(1);
  bool dispatching = true;
  one.hold_team([&] { dispatching = one.team().dispatching(); });
  EXPECT_FALSE(dispatching);

  // Inside an OpenMP region (a step called from one of our parallel loops): no second team.
  ops::Context ctx(kThreads);
  std::atomic<int> dispatched{0}, ran{0}, region_threads{0};
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    region_threads = omp_get_num_threads();
    ctx.hold_team([&] {
      ran.fetch_add(1);
      dispatched.fetch_add(ctx.team().dispatching() ? 1 : 0);
    });
  }
  EXPECT_EQ(ran.load(), region_threads.load());  // every thread ran its main, none waited for a team
  EXPECT_EQ(dispatched.load(), 0);
}

TEST(Team, ErrorsReachTheMainLineAndTheTeamGoesOn) {
  ops::Context ctx(kThreads);
  // From a job on another thread: rethrown by run_parts on the main line.
  bool caught = false;
  int after = 0;
  ctx.hold_team([&] {
    try {
      ctx.team().run_parts(kThreads, [&](int64_t t) {
        if (t == kThreads - 1) throw std::runtime_error("part failed");
      });
    } catch (const std::runtime_error& e) {
      caught = std::string(e.what()) == "part failed";
    }
    ctx.team().run_parts(kThreads, [&](int64_t t) {
      if (t == 0) after = 1;
    });
  });
  EXPECT_TRUE(caught);
  EXPECT_EQ(after, 1);
  // From the main line, and from a job uncaught: out of hold_team, after the region.
  EXPECT_THROW(ctx.hold_team([&] { throw std::invalid_argument("main failed"); }), std::invalid_argument);
  EXPECT_THROW(ctx.hold_team([&] { ctx.team().run_items(100, [&](int64_t i) {
                 if (i == 77) throw std::out_of_range("item failed");
               }); }),
               std::out_of_range);
  // And it still holds.
  int parts_run = 0;
  ctx.hold_team([&] { ctx.team().run_parts(1, [&](int64_t) { ++parts_run; }); });
  EXPECT_EQ(parts_run, 1);
}

// A GEMV split over the threads gives the same bits held as from its own region (same parts), and
// the set of three products likewise.
TEST(Team, GemvThroughTheTeamIsBitwiseTheRegionsResult) {
  ops::Context ctx(kThreads);
  const int64_t K = 256, N = 1024;
  const ops::MatMulSpec spec{ops::MatLayout::dense(1, K), ops::MatLayout::dense(K, N), ops::MatLayout::dense(1, N), true, 1.f, {}};
  const ops::MatMul op(ctx, spec);
  ASSERT_NE(op.impl().find("gemv:hand"), std::string::npos) << op.impl();
  const std::vector<float> a = test::random_vector(K, 1), w = test::random_vector(K * N, 2), bias = test::random_vector(N, 3);
  const std::vector<float> w2 = test::random_vector(K * N, 4), w3 = test::random_vector(K * N, 5);
  std::vector<float> region(N), held(N), set_region(3 * N), set_held(3 * N);
  auto run_set = [&](float* c) {
    ops::MatMul::run_together(ctx, {{op, a.data(), w.data(), c, bias.data()},
                                    {op, a.data(), w2.data(), c + N, bias.data()},
                                    {op, a.data(), w3.data(), c + 2 * N, bias.data()}});
  };
  op.run(ctx, a.data(), w.data(), region.data(), bias.data());
  run_set(set_region.data());
  ctx.hold_team([&] {
    op.run(ctx, a.data(), w.data(), held.data(), bias.data());
    run_set(set_held.data());
  });
  EXPECT_TRUE(test::is_close(held.data(), region.data(), N, test::exact()));
  EXPECT_TRUE(test::is_close(set_held.data(), set_region.data(), 3 * N, test::exact()));
}

}  // namespace
}  // namespace bsbr

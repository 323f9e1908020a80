// The performance-target evaluator (issue 4) on synthetic results: it passes when the figures meet
// the bounds and names the target when one is missed. (The figures themselves come from benchmark
// runs, never from a timed test.)
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/targets.hpp"
#include "core/errors.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

const std::vector<std::string> kModels = {"BSBR", "Linear", "DeltaNet", "Standard", "SlidingWindow", "Hopfield", "GAU"};

// Decode per token: flat 200 us, Standard/Hopfield linear in n; BSBR `bsbr_factor` x Linear.
Results long_context(double bsbr_factor, double linear_growth, double prefill_gflops) {
  Results r = test::synthetic_results(kModels, {Workload::kPrefill, Workload::kDecode}, {1024, 4096, 16384, 65536}, 5,
                                      [&](const std::string& m, Workload w, int64_t n, int) {
                                        if (w == Workload::kPrefill) return 1e-6 * n;
                                        double t = 200e-6 * std::pow(n / 1024.0, m == "Linear" ? linear_growth : 0.0);
                                        if (m == "Standard" || m == "Hopfield") t = 200e-6 * n / 1024.0;
                                        if (m == "BSBR") t *= bsbr_factor;
                                        return t;
                                      });
  for (RunRecord& run : r.runs)
    if (run.problem.workload == Workload::kPrefill) run.gflops = prefill_gflops;
  return r;
}

Results default_run(double generate_seconds) {
  Results r = test::synthetic_results(kModels, {Workload::kGenerate}, {64, 1024}, 5,
                                      [&](const std::string&, Workload, int64_t, int) { return generate_seconds; });
  for (RunRecord& run : r.runs) run.n_tokens = 50;
  return r;
}

int missed(const std::vector<analysis::TargetCheck>& checks, std::string* which = nullptr) {
  int count = 0;
  for (const auto& c : checks)
    if (c.checked && !c.pass) {
      ++count;
      if (which) *which += c.target + " / " + c.model + "; ";
    }
  return count;
}

TEST(Targets, AllMet) {
  std::string which;
  EXPECT_EQ(missed(analysis::evaluate_targets(long_context(1.2, 0.0, 80), default_run(0.03)), &which), 0) << which;
}

TEST(Targets, EachMissIsNamed) {
  std::string which;
  EXPECT_EQ(missed(analysis::evaluate_targets(long_context(1.6, 0.0, 80), default_run(0.03)), &which), 1);
  EXPECT_NE(which.find("BSBR decode within 1.5x"), std::string::npos) << which;
  which.clear();
  EXPECT_EQ(missed(analysis::evaluate_targets(long_context(1.2, 0.2, 80), default_run(0.03)), &which), 1);
  EXPECT_NE(which.find("Linear"), std::string::npos) << which;
  which.clear();
  // Calibration is 100 GFLOP/s in synthetic files: 40 is below half for Standard and BSBR.
  EXPECT_EQ(missed(analysis::evaluate_targets(long_context(1.2, 0.0, 40), default_run(0.03)), &which), 2) << which;
  EXPECT_EQ(missed(analysis::evaluate_targets(long_context(1.2, 0.0, 80), default_run(0.06))), 7);
}

TEST(Targets, NoisyPointsAreNamed) {
  // A figure resting on a point flagged noisy (cv > 10%) carries that point, so a miss can be told
  // apart from a real regression; clean points carry nothing.
  Results lc = long_context(1.6, 0.0, 80);
  for (RunRecord& r : lc.runs)
    if (r.problem.model == "BSBR" && r.problem.workload == Workload::kDecode && r.problem.n == 65536) {
      r.noisy = true;
      r.stats.cv = 0.33;
    }
  int noisy_checks = 0;
  for (const auto& c : analysis::evaluate_targets(lc, default_run(0.03))) {
    if (c.noisy_points.empty()) continue;
    ++noisy_checks;
    EXPECT_EQ(c.model, "BSBR");
    ASSERT_EQ(c.noisy_points.size(), 1u);
    EXPECT_EQ(c.noisy_points[0], "BSBR decode n=65536 cv 33%");
  }
  EXPECT_EQ(noisy_checks, 2);  // BSBR's decode exponent and BSBR vs Linear at 65,536
}

TEST(Targets, MissingPointIsUserError) {
  Results lc = long_context(1.2, 0.0, 80);
  lc.runs.erase(std::remove_if(lc.runs.begin(), lc.runs.end(),
                               [](const RunRecord& r) { return r.problem.model == "BSBR" && r.problem.workload == Workload::kDecode && r.problem.n == 65536; }),
                lc.runs.end());
  EXPECT_THROW(analysis::evaluate_targets(lc, default_run(0.03)), UserError);
}

}  // namespace
}  // namespace bsbr

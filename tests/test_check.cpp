// check: the Mann-Whitney U test against hand-computed values, and the regression rules end to end
// through the CLI on synthetic results files (self, 1.5x, 1.02x, a faster machine, an exponent
// change, underpowered samples, failed points), the Markdown summary, and unusable input (exit 2).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "analysis/check.hpp"
#include "analysis/mann_whitney.hpp"
#include "core/rng.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

using namespace analysis;

// ---- Mann-Whitney U --------------------------------------------------------------------------------

TEST(MannWhitney, ExactSmallSamplesByHand) {
  // m = n = 3: the 20 arrangements give U = 0..9 with counts 1 1 2 3 3 3 3 2 1 1.
  MannWhitneyResult all_above = mann_whitney_greater({4, 5, 6}, {1, 2, 3});
  EXPECT_EQ(all_above.u, 9);
  EXPECT_TRUE(all_above.exact);
  EXPECT_NEAR(all_above.p_value, 1.0 / 20, 1e-15);
  MannWhitneyResult interleaved = mann_whitney_greater({2, 4, 6}, {1, 3, 5});  // U = 1 + 2 + 3 = 6
  EXPECT_EQ(interleaved.u, 6);
  EXPECT_NEAR(interleaved.p_value, (3.0 + 2 + 1 + 1) / 20, 1e-15);          // P(U >= 6) = 7/20
  MannWhitneyResult all_below = mann_whitney_greater({1, 2, 3}, {4, 5, 6});
  EXPECT_EQ(all_below.u, 0);
  EXPECT_NEAR(all_below.p_value, 1.0, 1e-15);
  // m = 2, n = 3: 10 arrangements, U = 0..6 with counts 1 1 2 2 2 1 1; x = {3.5, 10} beats 2 then 3: U = 5.
  MannWhitneyResult two_three = mann_whitney_greater({3.5, 10}, {1, 2, 5});
  EXPECT_EQ(two_three.u, 5);
  EXPECT_NEAR(two_three.p_value, 2.0 / 10, 1e-15);
  // 5 + 5 all above: 1 / C(10, 5) = 1/252, the smallest p check can see at its minimum sample count.
  EXPECT_NEAR(mann_whitney_greater({6, 7, 8, 9, 10}, {1, 2, 3, 4, 5}).p_value, 1.0 / 252, 1e-15);
}

TEST(MannWhitney, NormalApproximationWithTiesByHand) {
  // x = {2, 2, 3, 4}, y = {1, 1, 2, 2}: each x = 2 beats the two 1s and ties the two 2s (3), 3 and 4
  // beat all four: U = 3 + 3 + 4 + 4 = 14. Ties: 1 (x2), 2 (x4) -> Σ(t³ - t) = 6 + 60 = 66.
  // σ² = 4·4/12 · (9 - 66/(8·7)) = 10.4285714; z = (14 - 8 - 0.5)/σ = 1.7031397; p = 1 - Φ(z) = 0.0442710.
  MannWhitneyResult r = mann_whitney_greater({2, 2, 3, 4}, {1, 1, 2, 2});
  EXPECT_EQ(r.u, 14);
  EXPECT_FALSE(r.exact);
  EXPECT_NEAR(r.p_value, 0.0442710, 1e-6);
  // Every value tied: no evidence of a shift.
  EXPECT_NEAR(mann_whitney_greater({1, 1, 1}, {1, 1, 1}).p_value, 1.0, 1e-12);
}

TEST(MannWhitney, ExactAndNormalAgreeForModerateSamples) {
  std::vector<double> x, y;
  CounterRng rng(5, 5);
  for (int i = 0; i < 12; ++i) {
    x.push_back(1.0 + rng.uniform(i) + 0.3);
    y.push_back(1.0 + rng.uniform(100 + i));
  }
  MannWhitneyResult exact = mann_whitney_greater(x, y);
  ASSERT_TRUE(exact.exact);
  // Beyond the exact limit the normal approximation takes over: same data repeated twice (24 + 24).
  std::vector<double> x2(x), y2(y);
  for (double v : x) x2.push_back(v + 1e-9);
  for (double v : y) y2.push_back(v + 1e-9);
  MannWhitneyResult approx = mann_whitney_greater(x2, y2);
  EXPECT_FALSE(approx.exact);
  EXPECT_LT(approx.p_value, exact.p_value) << "twice the evidence of the same shift";
  EXPECT_GT(exact.p_value, 0);
  EXPECT_LT(exact.p_value, 0.05);
}

// ---- check end to end -------------------------------------------------------------------------------

const std::vector<std::string> kModels{"Standard", "Hopfield"};
const std::vector<Workload> kWorkloads{Workload::kPrefill, Workload::kDecode};
const std::vector<int64_t> kLengths{64, 128, 256, 512};

// Roughly linear cost with ±3 % deterministic jitter per sample.
double base_time(const std::string& m, Workload w, int64_t n, int i) {
  CounterRng rng(hash_name(m) ^ static_cast<uint64_t>(w), static_cast<uint64_t>(n));
  const double jitter = 1 + 0.03 * (2 * rng.uniform(i) - 1);
  return (w == Workload::kDecode ? 1e-4 : 1e-3) * (1 + n / 64.0) * jitter;
}

struct Files {
  std::string dir, baseline;
};

Files write_baseline(const std::string& tag, int repeats = 7) {
  Files f{test::temp_dir(tag), ""};
  f.baseline = test::save_synthetic(test::synthetic_results(kModels, kWorkloads, kLengths, repeats, base_time), f.dir, "baseline.json");
  return f;
}

test::CliResult check(const Files& f, const std::string& current, const std::string& extra = "") {
  return test::run_cli("check --baseline '" + f.baseline + "' --current '" + current + "' " + extra);
}

TEST(Check, FileAgainstItselfPasses) {
  Files f = write_baseline("check_self");
  auto r = check(f, f.baseline);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("16 points compared: 0 faster, 16 same, 0 slower"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no regression"), std::string::npos) << r.out;
}

TEST(Check, SlowdownOfOneAndAHalfIsNamed) {
  Files f = write_baseline("check_slow");
  // Standard prefill at n = 128 and 256 are 1.5x slower; everything else as before. (The middle two
  // lengths: symmetric in log n, so the fitted exponent and the complexity gate do not move.)
  Results cur = test::synthetic_results(kModels, kWorkloads, kLengths, 7, [](const std::string& m, Workload w, int64_t n, int i) {
    const bool slowed = m == "Standard" && w == Workload::kPrefill && (n == 128 || n == 256);
    return base_time(m, w, n, i) * (slowed ? 1.5 : 1.0);
  });
  auto r = check(f, test::save_synthetic(cur, f.dir, "current.json"));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::string summary = r.out.substr(r.out.rfind("check:"));
  EXPECT_NE(summary.find("2 REGRESSIONS: Standard prefill n=128 (1.50x) Standard prefill n=256 (1.50x)\n"), std::string::npos) << summary;
  EXPECT_NE(summary.find("14 same, 2 slower"), std::string::npos) << summary;
}

TEST(Check, ConfirmationSweepMustReproduceARegression) {
  Files f = write_baseline("check_confirm");
  auto slowed_at = [](int64_t slow_n) {
    return [slow_n](const std::string& m, Workload w, int64_t n, int i) {
      return base_time(m, w, n, i) * (m == "Hopfield" && w == Workload::kPrefill && n == slow_n ? 2.5 : 1.0);
    };
  };
  const std::string current = test::save_synthetic(test::synthetic_results(kModels, kWorkloads, kLengths, 7, slowed_at(128)), f.dir, "c.json");
  const std::string same_point = test::save_synthetic(test::synthetic_results(kModels, kWorkloads, kLengths, 7, slowed_at(128)), f.dir, "c2.json");
  const std::string other_point = test::save_synthetic(test::synthetic_results(kModels, kWorkloads, kLengths, 7, slowed_at(512)), f.dir, "c3.json");
  EXPECT_EQ(check(f, current).exit_code, 1);
  auto reproduced = check(f, current, "--confirm '" + same_point + "'");
  EXPECT_EQ(reproduced.exit_code, 1) << reproduced.out;
  EXPECT_NE(reproduced.out.find("1 REGRESSION: Hopfield prefill n=128"), std::string::npos) << reproduced.out;
  auto not_reproduced = check(f, current, "--confirm '" + other_point + "'");
  EXPECT_EQ(not_reproduced.exit_code, 0) << not_reproduced.out;
  EXPECT_NE(not_reproduced.out.find("slower, not reproduced by the confirmation sweep"), std::string::npos) << not_reproduced.out;
  EXPECT_NE(not_reproduced.out.find("1 not reproduced by the confirmation sweep; no regression"), std::string::npos) << not_reproduced.out;
}

TEST(Check, TwoPercentIsNoise) {
  Files f = write_baseline("check_noise");
  Results cur = test::synthetic_results(kModels, kWorkloads, kLengths, 7,
                                        [](const std::string& m, Workload w, int64_t n, int i) { return base_time(m, w, n, i) * 1.02; });
  auto r = check(f, test::save_synthetic(cur, f.dir, "current.json"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(Check, FasterMachineBaselineIsNotARegression) {
  // The baseline ran on a machine twice as fast: half the times, twice the calibration GFLOP/s.
  Files f{test::temp_dir("check_machine"), ""};
  Results fast = test::synthetic_results(kModels, kWorkloads, kLengths, 7,
                                         [](const std::string& m, Workload w, int64_t n, int i) { return base_time(m, w, n, i) / 2; }, 200.0);
  f.baseline = test::save_synthetic(fast, f.dir, "baseline.json");
  Results here = test::synthetic_results(kModels, kWorkloads, kLengths, 7, base_time, 100.0);
  auto r = check(f, test::save_synthetic(here, f.dir, "current.json"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("0 slower"), std::string::npos) << r.out;
  // Without the calibration difference the same times are a 2x slowdown everywhere.
  Results same_speed = test::synthetic_results(kModels, kWorkloads, kLengths, 7, base_time, 200.0);
  auto slow = check(f, test::save_synthetic(same_speed, f.dir, "current_same_machine.json"));
  EXPECT_EQ(slow.exit_code, 1) << slow.out;
}

TEST(Check, ExponentGrowthFailsTheComplexityGate) {
  // Baseline t = c n; current t = c n² / 512: equal at the largest n and faster below it, so no
  // point is slower, but the fitted exponent goes from 1 to 2.
  auto linear = [](const std::string&, Workload, int64_t n, int i) { return 1e-5 * n * (1 + 0.01 * (i % 3)); };
  auto quadratic = [](const std::string&, Workload, int64_t n, int i) { return 1e-5 * n * n / 512.0 * (1 + 0.01 * (i % 3)); };
  Files f{test::temp_dir("check_exponent"), ""};
  f.baseline = test::save_synthetic(test::synthetic_results({"Linear"}, {Workload::kPrefill}, kLengths, 7, linear), f.dir, "b.json");
  const std::string cur = test::save_synthetic(test::synthetic_results({"Linear"}, {Workload::kPrefill}, kLengths, 7, quadratic), f.dir, "c.json");
  auto r = check(f, cur);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("0 slower"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Linear prefill exponent 1.00->2.00"), std::string::npos) << r.out;
  EXPECT_EQ(check(f, cur, "--exponent-tolerance 1.5").exit_code, 0) << "a tolerance above the growth passes";
}

TEST(Check, UnderpoweredSamplesDecideOnTheThresholdAndSaySo) {
  Files f = write_baseline("check_underpowered", 3);
  Results cur = test::synthetic_results(kModels, kWorkloads, kLengths, 3, [](const std::string& m, Workload w, int64_t n, int i) {
    return base_time(m, w, n, i) * (m == "Hopfield" && w == Workload::kDecode && n == 64 ? 1.3 : 1.0);
  });
  auto r = check(f, test::save_synthetic(cur, f.dir, "current.json"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("REGRESSION (threshold only: underpowered)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fewer than 5 samples on a side: the U test is underpowered"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 REGRESSION: Hopfield decode n=64"), std::string::npos) << r.out;
}

TEST(Check, SlowerButNotSignificantIsNotARegression) {
  // Medians 20 % apart but the samples overlap heavily: p > alpha.
  auto spread = [](double scale) {
    return [scale](const std::string&, Workload, int64_t n, int i) {
      const double pattern[] = {1.0, 1.25, 0.8, 1.3, 0.75, 1.2, 0.85};
      return scale * 1e-3 * n * pattern[i];
    };
  };
  Files f{test::temp_dir("check_overlap"), ""};
  f.baseline = test::save_synthetic(test::synthetic_results({"A"}, {Workload::kPrefill}, {64, 128}, 7, spread(1.0)), f.dir, "b.json");
  Results cur = test::synthetic_results({"A"}, {Workload::kPrefill}, {64, 128}, 7, [](const std::string&, Workload, int64_t n, int i) {
    const double pattern[] = {1.2, 1.1, 1.45, 0.9, 1.6, 0.95, 1.25};  // median 1.2 vs 1.0
    return 1e-3 * n * pattern[i];
  });
  auto r = check(f, test::save_synthetic(cur, f.dir, "c.json"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("slower, not significant"), std::string::npos) << r.out;
}

TEST(Check, FiltersMissingPointsFailuresAndMarkdown) {
  Files f = write_baseline("check_misc");
  // Current: no Hopfield decode at 512, an extra length 1024, and Standard prefill 64 failed.
  Results cur = test::synthetic_results(kModels, kWorkloads, {64, 128, 256, 512, 1024}, 7, base_time);
  std::erase_if(cur.runs, [](const RunRecord& r) { return r.problem.model == "Hopfield" && r.problem.workload == Workload::kDecode && r.problem.n == 512; });
  for (RunRecord& r : cur.runs)
    if (r.problem.model == "Standard" && r.problem.workload == Workload::kPrefill && r.problem.n == 64) {
      r.status = "failed";
      r.reason = "non-finite output";
      r.samples_s.clear();
    }
  const std::string current = test::save_synthetic(cur, f.dir, "current.json");
  const std::string md = f.dir + "/summary.md";
  auto r = check(f, current, "--markdown '" + md + "'");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("missing from current"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("new in current"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("failed in current: non-finite output"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 REGRESSION: Standard prefill n=64 (failed)"), std::string::npos) << r.out;
  std::ifstream in(md);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.rfind("## bsbr-bench check: 1 regression(s)", 0), 0u) << text;
  EXPECT_NE(text.find("| model | workload | n |"), std::string::npos) << text;

  // Filters: only Hopfield prefill -> nothing regressed.
  auto filtered = check(f, current, "--models Hopfield --workloads prefill");
  EXPECT_EQ(filtered.exit_code, 0) << filtered.out;
  EXPECT_NE(filtered.out.find("check: 4 points compared"), std::string::npos) << filtered.out;
}

// ---- unusable input ---------------------------------------------------------------------------------

struct Unusable {
  const char* name;
  const char* current_text;  // nullptr: no file
  const char* extra_args;
  const char* expect;
};
// ctest shows a case by its name, not its bytes.
void PrintTo(const Unusable& c, std::ostream* os) { *os << c.name; }

class CheckUnusable : public ::testing::TestWithParam<Unusable> {};

TEST_P(CheckUnusable, OneErrorLineExitTwo) {
  const Unusable& c = GetParam();
  Files f = write_baseline("check_unusable");
  const std::string current = f.dir + "/current.json";
  if (c.current_text) std::ofstream(current) << c.current_text;
  auto r = check(f, current, c.extra_args);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CheckUnusable,
    ::testing::Values(Unusable{"missing_file", nullptr, "", "not found"}, Unusable{"not_json", "[1,", "", "is not valid JSON"},
                      Unusable{"wrong_schema", R"({"hello": 1})", "", "missing key 'seq_lengths'"},
                      Unusable{"no_calibration", R"({"seq_lengths": [64, 128], "time_results": {"Standard": {"64": 1.0, "128": 2.0}}})", "",
                               "current results have no calibration"},
                      Unusable{"no_overlap",
                               R"({"schema_version": 2, "seq_lengths": [64], "calibration": {"gflops": 100},
                                   "runs": [{"model": "Other", "workload": "prefill", "n": 64, "status": "ok", "samples_s": [0.1]}]})",
                               "", "no (model, workload, n, threads) point has ok timings in both files"},
                      Unusable{"bad_alpha", nullptr, "--alpha 1.5", "--alpha must be in (0, 1)"},
                      Unusable{"bad_threshold", nullptr, "--threshold -0.1", "--threshold must be"},
                      Unusable{"bad_workload", nullptr, "--workloads sideways", "sideways"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CheckCli, HasHelp) {
  auto r = test::run_cli("check --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--baseline", "--current", "--threshold", "--alpha", "--exponent-tolerance", "--workloads", "--models", "--confirm", "--markdown"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

}  // namespace
}  // namespace bsbr

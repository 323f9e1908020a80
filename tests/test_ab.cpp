// `bsbr-bench ab`: the statistics (Hodges-Lehmann interval and its coverage, Holm / BH, the
// verdict rule), contention parsing and judging, the rounds loop with an injected launcher (seeded
// order, discard-and-repeat, never quiet), the settings fingerprint (ab and check refuse naming the
// field), exit codes, and an end-to-end `ab --aa` at tiny sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "analysis/ab.hpp"
#include "bench/ab_contention.hpp"
#include "bench/ab_rounds.hpp"
#include "core/errors.hpp"
#include "report/ab_report.hpp"
#include "report/fingerprint.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

using analysis::AbPointInput;
using analysis::AbVerdict;

std::vector<double> lognormal(std::mt19937_64& rng, int count, double median, double sigma) {
  std::normal_distribution<double> z(0.0, sigma);
  std::vector<double> v;
  for (int i = 0; i < count; ++i) v.push_back(median * std::exp(z(rng)));
  return v;
}

// ---- statistics ----

TEST(AbStats, HodgesLehmannOfAnExactShiftIsTheShift) {
  const std::vector<double> a{1.0, 1.3, 0.9, 1.1, 1.7, 1.05};
  std::vector<double> b;
  for (double x : a) b.push_back(1.2 * x);
  const analysis::LogRatioEstimate e = analysis::hodges_lehmann_ratio(a, b);
  EXPECT_NEAR(e.ratio, 1.2, 1e-12);
  EXPECT_LT(e.lo, 1.2);
  EXPECT_GT(e.hi, 1.2);
  EXPECT_TRUE(e.exact);
}

TEST(AbStats, ExactIntervalUsesTheTabulatedCriticalValue) {
  // m = n = 5, 95 %: P0(U <= 2) = 4/252 <= 0.025 < P0(U <= 3) = 7/252, so the interval is
  // [D_(3), D_(23)] of the 25 sorted differences (Hollander & Wolfe's table: C = 3).
  const std::vector<double> a{1.0, 2.0, 3.0, 4.0, 5.0}, b{1.55, 2.45, 3.7, 6.1, 9.3};  // 25 distinct ratios
  std::vector<double> d;
  for (double y : b)
    for (double x : a) d.push_back(std::log(y) - std::log(x));
  std::sort(d.begin(), d.end());
  const analysis::LogRatioEstimate e = analysis::hodges_lehmann_ratio(a, b);
  EXPECT_NEAR(e.lo, std::exp(d[2]), 1e-12);
  EXPECT_NEAR(e.hi, std::exp(d[22]), 1e-12);
  EXPECT_NEAR(e.ratio, std::exp(d[12]), 1e-12);
}

TEST(AbStats, TooFewValuesGiveAnUnboundedInterval) {
  // 2 + 2 values: P0(U = 0) = 1/6 > 0.025, no finite 95 % interval exists.
  const analysis::LogRatioEstimate e = analysis::hodges_lehmann_ratio({1.0, 1.1}, {1.2, 1.3});
  EXPECT_EQ(e.lo, 0);
  EXPECT_TRUE(std::isinf(e.hi));
}

// Coverage of the 95 % interval on synthetic log-normal data with a known ratio, exact (8 + 8)
// and normal-approximation (25 + 25) branches.
void expect_coverage(int per_side, bool exact) {
  std::mt19937_64 rng(1234 + per_side);
  const double true_ratio = 1.1;
  const int trials = 1500;
  int covered = 0;
  for (int t = 0; t < trials; ++t) {
    const std::vector<double> a = lognormal(rng, per_side, 1e-3, 0.05), b = lognormal(rng, per_side, 1.1e-3, 0.05);
    const analysis::LogRatioEstimate e = analysis::hodges_lehmann_ratio(a, b);
    ASSERT_EQ(e.exact, exact);
    covered += e.lo <= true_ratio && true_ratio <= e.hi;
  }
  const double coverage = static_cast<double>(covered) / trials;
  EXPECT_GT(coverage, 0.93) << per_side;  // binomial sd at 0.95: 0.006
  EXPECT_LT(coverage, 0.985) << per_side;
}
TEST(AbStats, IntervalCoverageExact) { expect_coverage(8, true); }
TEST(AbStats, IntervalCoverageNormalApproximation) { expect_coverage(25, false); }

TEST(AbStats, HolmAndBenjaminiHochbergOnKnownValues) {
  // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.03 0.06 0.06 0.02; "BH" = 0.02 0.04 0.04 0.02
  const std::vector<double> p{0.01, 0.04, 0.03, 0.005};
  const std::vector<double> holm = analysis::holm_adjust(p), bh = analysis::bh_adjust(p);
  const std::vector<double> holm_want{0.03, 0.06, 0.06, 0.02}, bh_want{0.02, 0.04, 0.04, 0.02};
  for (std::size_t i = 0; i < p.size(); ++i) {
    EXPECT_NEAR(holm[i], holm_want[i], 1e-12) << i;
    EXPECT_NEAR(bh[i], bh_want[i], 1e-12) << i;
  }
  // Capped at 1; a single p is unchanged.
  EXPECT_EQ(analysis::holm_adjust({0.6, 0.7})[0], 1.0);
  EXPECT_EQ(analysis::bh_adjust({0.3})[0], 0.3);
  EXPECT_EQ(analysis::parse_correction("bh"), analysis::Correction::kBenjaminiHochberg);
  EXPECT_THROW(analysis::parse_correction("bonferroni"), UserError);
}

TEST(AbStats, MinAttainableP) {
  EXPECT_NEAR(analysis::min_attainable_p(5, 5), 1.0 / 252, 1e-15);
  EXPECT_NEAR(analysis::min_attainable_p(3, 4), 1.0 / 35, 1e-15);
}

AbPointInput point(const std::string& model, std::vector<double> a, std::vector<double> b) {
  AbPointInput p;
  p.model = model;
  p.n = 64;
  p.a = std::move(a);
  p.b = std::move(b);
  return p;
}

TEST(AbStats, VerdictNeedsBothSignificanceAndTheNoiseFloor) {
  std::mt19937_64 rng(7);
  const int rounds = 12;
  std::vector<AbPointInput> in;
  in.push_back(point("slower", lognormal(rng, rounds, 1e-3, 0.01), lognormal(rng, rounds, 1.3e-3, 0.01)));
  in.push_back(point("same", lognormal(rng, rounds, 1e-3, 0.01), lognormal(rng, rounds, 1e-3, 0.01)));
  // Significant but inside the noise floor: 2 % slower with 0.1 % noise.
  in.push_back(point("tiny", lognormal(rng, rounds, 1e-3, 0.001), lognormal(rng, rounds, 1.02e-3, 0.001)));
  in.push_back(point("faster", lognormal(rng, rounds, 1e-3, 0.01), lognormal(rng, rounds, 0.7e-3, 0.01)));
  AbPointInput failed = point("broken", {1e-3}, {});
  failed.problem = "failed in B (round 0): out of memory";
  failed.failed_in_b = true;
  in.push_back(failed);
  analysis::AbOptions o;  // delta 0.05, alpha 0.05, Holm
  const analysis::AbAnalysis r = analysis::analyze_ab(in, o);
  ASSERT_EQ(r.points.size(), 5u);
  EXPECT_EQ(r.points[0].verdict, AbVerdict::kSlower);
  EXPECT_NEAR(r.points[0].hl.ratio, 1.3, 0.02);
  EXPECT_EQ(r.points[1].verdict, AbVerdict::kSame);
  EXPECT_LT(r.points[2].p_slower_adj, 0.05);  // significant ...
  EXPECT_EQ(r.points[2].verdict, AbVerdict::kSame);  // ... but not beyond 1 + delta
  EXPECT_EQ(r.points[3].verdict, AbVerdict::kFaster);
  EXPECT_EQ(r.points[4].verdict, AbVerdict::kFailed);
  EXPECT_EQ(r.slower, 1);
  EXPECT_EQ(r.faster, 1);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.compared, 4);
  EXPECT_FALSE(r.blind);
  // With delta 0 the tiny shift counts.
  o.delta = 0;
  EXPECT_EQ(analysis::analyze_ab(in, o).points[2].verdict, AbVerdict::kSlower);
}

TEST(AbStats, FewRoundsForManyPointsIsBlind) {
  std::vector<AbPointInput> in;
  for (int i = 0; i < 84; ++i) in.push_back(point("m" + std::to_string(i), {1, 1.1, 1.2, 1.3, 1.4}, {2, 2.1, 2.2, 2.3, 2.4}));
  const analysis::AbAnalysis r = analysis::analyze_ab(in, {});
  EXPECT_TRUE(r.blind);  // 84 / 252 > 0.05
  EXPECT_EQ(r.slower, 0);
  RoundsResult rounds;
  rounds.valid = 5;
  EXPECT_NE(assess_usability(rounds, r, 5, false).find("too few rounds"), std::string::npos);
  EXPECT_EQ(assess_usability(rounds, r, 5, true), "");  // A/A reports anyway
}

TEST(AbStats, OptionsAreValidated) {
  analysis::AbOptions o;
  o.alpha = 0;
  EXPECT_THROW(o.validate(), UserError);
  o.alpha = 0.05;
  o.delta = -0.1;
  EXPECT_THROW(o.validate(), UserError);
  o.delta = std::nan("");
  EXPECT_THROW(o.validate(), UserError);
}

TEST(AbStats, AaSummaryTakesTheLargestExcursion) {
  std::mt19937_64 rng(11);
  std::vector<AbPointInput> in;
  for (int i = 0; i < 6; ++i) in.push_back(point("m" + std::to_string(i), lognormal(rng, 10, 1e-3, 0.03), lognormal(rng, 10, 1e-3, 0.03)));
  const analysis::AbAnalysis an = analysis::analyze_ab(in, {});
  const analysis::AaSummary s = analysis::summarize_aa(an, {});
  double excess = 0;
  for (const analysis::AbPoint& p : an.points) excess = std::max({excess, p.hl.lo - 1, 1 / p.hl.hi - 1});
  EXPECT_EQ(s.points, 6);
  EXPECT_EQ(s.bounded, 6);
  EXPECT_NEAR(s.suggested_delta, std::ceil(excess * 100 - 1e-9) / 100 + 0.01, 1e-12);
  EXPECT_LE(s.ratio_min, s.ratio_p50);
  EXPECT_LE(s.ratio_p50, s.ratio_max);
  // Two rounds a side bound no interval: no delta can be read off.
  const analysis::AaSummary few = analysis::summarize_aa(analysis::analyze_ab({point("x", {1, 1.1}, {1.05, 1.0})}, {}), {});
  EXPECT_EQ(few.bounded, 0);
  EXPECT_TRUE(std::isnan(few.suggested_delta));
}

// ---- contention ----

TEST(AbContention, ParsesTheKernelFiles) {
  const auto r = parse_loadavg("0.52 0.58 0.59 3/845 12345\n");
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->load1, 0.52);
  EXPECT_EQ(r->procs_running, 3);
  EXPECT_FALSE(parse_loadavg(""));
  EXPECT_FALSE(parse_loadavg("0.5 0.5 0.5 x/845 1"));
  EXPECT_FALSE(parse_loadavg("0.5 0.5 0.5 /845 1"));
  LoadReading s;
  ASSERT_TRUE(parse_proc_stat("cpu  10 1 5 100 2 0 1 7 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", s));
  EXPECT_EQ(s.steal_ticks, 7u);
  EXPECT_EQ(s.total_ticks, 126u);
  EXPECT_FALSE(parse_proc_stat("cpu0 1 2 3\n", s));
  EXPECT_FALSE(parse_proc_stat("cpu  1 2 3\n", s));
}

TEST(AbContention, Rule) {
  ContentionRule rule{1.25, 0.10, 1};
  ContentionReadings quiet;
  quiet.running_samples = {2, 2, 3, 2};  // reader + worker, once one other
  ContentionVerdict v = judge_contention(quiet, rule);
  EXPECT_DOUBLE_EQ(v.others, 0.25);
  EXPECT_FALSE(v.heavy);
  ContentionReadings busy;
  busy.running_samples = {5, 6, 5, 4};  // 3, 4, 3, 2 others
  v = judge_contention(busy, rule);
  EXPECT_DOUBLE_EQ(v.others, 3.0);
  EXPECT_TRUE(v.heavy);
  EXPECT_NE(v.why.find("others"), std::string::npos);
  ContentionReadings stolen = quiet;
  stolen.before = LoadReading{0, 2, 100, 1000};
  stolen.after = LoadReading{0, 2, 130, 1200};  // 30 of 200 ticks stolen
  v = judge_contention(stolen, rule);
  EXPECT_NEAR(v.steal_share, 0.15, 1e-12);
  EXPECT_TRUE(v.heavy);
  EXPECT_NE(v.why.find("steal"), std::string::npos);
}

// ---- rounds, with an injected launcher ----

RunRecord record(const std::string& model, double median, const std::string& status = "ok") {
  RunRecord r;
  r.problem = {model, Workload::kPrefill, 64};
  r.status = status;
  if (status == "ok") {
    r.samples_s = {median, median * 1.01, median * 0.99};
    r.stats.median = median;
  }
  return r;
}

// B is 20 % slower on "M"; `others` runnable tasks in every B run while `busy_rounds` remain.
struct FakeLauncher {
  int busy_legs = 0;  // legs reported heavily contended, from the first
  int calls = 0;
  std::string b_status = "ok";
  LegRun operator()(char side, const WorkerSpec&, const std::string&) {
    LegRun leg;
    leg.side = side;
    leg.start_cost_s = 0.05;
    leg.readings.running_samples = {calls++ < busy_legs ? 9 : 2};
    leg.results.environment = {{"threads", 1}, {"cpu_model", "X"}};
    leg.results.runs.push_back(record("M", side == 'A' ? 1e-3 * (1 + 0.001 * calls) : 1.2e-3 * (1 + 0.001 * calls),
                                      side == 'A' ? "ok" : b_status));
    return leg;
  }
};

RoundsOptions rounds_options(int max_rounds) {
  RoundsOptions o;
  o.a = {"a", {}};
  o.b = {"b", {}};
  o.work_dir = test::temp_dir("ab_rounds");
  o.max_rounds = max_rounds;
  o.seed = 42;
  o.rule = {1.25, 0.10, 1};
  return o;
}

TEST(AbRounds, OrderIsSeededAndBothOrdersOccur) {
  FakeLauncher f1, f2;
  const RoundsResult r1 = run_rounds(rounds_options(16), std::ref(f1));
  const RoundsResult r2 = run_rounds(rounds_options(16), std::ref(f2));
  ASSERT_EQ(r1.valid, 16);
  EXPECT_EQ(r1.stopped, "max rounds");
  int ab = 0;
  for (std::size_t i = 0; i < r1.rounds.size(); ++i) {
    EXPECT_EQ(r1.rounds[i].order, r2.rounds[i].order);
    ASSERT_EQ(r1.rounds[i].legs.size(), 2u);
    EXPECT_EQ(r1.rounds[i].legs[0].side, r1.rounds[i].order[0]);
    ab += r1.rounds[i].order == "AB";
  }
  EXPECT_EQ(ab, 8);  // balanced: one AB and one BA per pair of rounds
  for (std::size_t i = 0; i + 1 < r1.rounds.size(); i += 2) EXPECT_NE(r1.rounds[i].order, r1.rounds[i + 1].order) << i;
  RoundsOptions other = rounds_options(16);
  other.seed = 43;
  FakeLauncher f3;
  const RoundsResult r3 = run_rounds(other, std::ref(f3));
  bool differs = false;
  for (std::size_t i = 0; i < r3.rounds.size(); ++i) differs |= r3.rounds[i].order != r1.rounds[i].order;
  EXPECT_TRUE(differs);
  // The points: one value per round and side, and B's 20 % is found.
  const std::vector<AbPointInput> pts = collect_points(r1);
  ASSERT_EQ(pts.size(), 1u);
  EXPECT_EQ(pts[0].a.size(), 16u);
  EXPECT_EQ(pts[0].b.size(), 16u);
  const analysis::AbAnalysis an = analysis::analyze_ab(pts, {});
  EXPECT_EQ(an.points[0].verdict, AbVerdict::kSlower);
}

TEST(AbRounds, ContendedRoundsAreDiscardedAndRepeated) {
  FakeLauncher f;
  f.busy_legs = 3;  // rounds 0 and 1 have a busy leg
  const RoundsResult r = run_rounds(rounds_options(5), std::ref(f));
  EXPECT_EQ(r.valid, 5);
  EXPECT_EQ(r.discarded, 2);
  EXPECT_TRUE(r.rounds[0].discarded);
  EXPECT_NE(r.rounds[0].why.find("heavy contention"), std::string::npos);
  EXPECT_FALSE(r.rounds[2].discarded);
  EXPECT_EQ(collect_points(r)[0].a.size(), 5u);  // discarded rounds contribute nothing
  EXPECT_EQ(assess_usability(r, analysis::analyze_ab(collect_points(r), {}), 5, false), "");
}

TEST(AbRounds, NeverQuietIsUnusable) {
  FakeLauncher f;
  f.busy_legs = 1000;
  const RoundsResult r = run_rounds(rounds_options(5), std::ref(f));
  EXPECT_EQ(r.valid, 0);
  EXPECT_EQ(r.stopped, "attempts");
  AbRun run;
  run.rounds = r;
  run.analysis = analysis::analyze_ab(collect_points(r), {});
  run.unusable = assess_usability(r, run.analysis, 5, false);
  EXPECT_NE(run.unusable.find("never got quiet"), std::string::npos);
  EXPECT_EQ(ab_exit_code(run), 2);
  EXPECT_NE(ab_markdown(run).find("never got quiet"), std::string::npos);
}

TEST(AbRounds, BudgetStopsRounds) {
  FakeLauncher f;
  RoundsOptions o = rounds_options(1000);
  o.budget_s = 1e-9;  // any first round takes longer
  const RoundsResult r = run_rounds(o, std::ref(f));
  EXPECT_EQ(r.rounds.size(), 1u);
  EXPECT_EQ(r.stopped, "budget");
  EXPECT_NE(assess_usability(r, analysis::analyze_ab(collect_points(r), {}), 5, false).find("budget"), std::string::npos);
}

TEST(AbRounds, FailureInBIsASlowerPointAndExitOne) {
  FakeLauncher f;
  f.b_status = "failed";
  const RoundsResult r = run_rounds(rounds_options(6), std::ref(f));
  AbRun run;
  run.rounds = r;
  run.analysis = analysis::analyze_ab(collect_points(r), {});
  ASSERT_EQ(run.analysis.points.size(), 1u);
  EXPECT_EQ(run.analysis.points[0].verdict, AbVerdict::kFailed);
  EXPECT_EQ(ab_exit_code(run), 1);
  const nlohmann::json j = ab_to_json(run);
  EXPECT_EQ(j["summary"]["exit_code"], 1);
  EXPECT_EQ(j["points"][0]["verdict"], "FAILED in B");
}

TEST(AbRounds, AHungWorkerIsKilledAtItsTimeout) {
  const std::string dir = test::temp_dir("ab_hang");
  const std::string hang = dir + "/hang";
  {
    std::ofstream f(hang);
    f << "#!/bin/sh\nexec sleep 30\n";
  }
  std::filesystem::permissions(hang, std::filesystem::perms::owner_all);
  WorkerSpec w{hang, {}, 0.5};
  const auto t0 = std::chrono::steady_clock::now();
  try {
    launch_worker('B', w, dir + "/leg");
    FAIL() << "no throw";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("was killed"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

// ---- fingerprint ----

Results fingerprinted(const std::string& hidden_dim = "256", int threads = 1, const std::string& cpu = "AMD EPYC") {
  Results r = test::synthetic_results({"A"}, {Workload::kPrefill}, {64, 128, 256}, 7,
                                      [](const std::string&, Workload, int64_t n, int i) { return 1e-6 * n * (1 + 0.01 * i); });
  r.environment = {{"threads", threads}, {"cpu_model", cpu}, {"cores", 2}, {"onednn_isa", "avx512_core"}, {"hostname", "vm"}};
  r.config = {{"model", {{"hidden_dim", hidden_dim}, {"num_layers", "2"}, {"batch_size", "1"}}},
              {"benchmark", {{"threads", threads}, {"n_tokens", 32}}},
              {"weights", nullptr}};
  return r;
}

TEST(Fingerprint, EqualSettingsPass) {
  EXPECT_TRUE(fingerprint_differences(fingerprinted(), fingerprinted(), FingerprintScope::kSettingsAndMachine).empty());
}

TEST(Fingerprint, NamesTheDifferingField) {
  const auto d = fingerprint_differences(fingerprinted("256"), fingerprinted("512"), FingerprintScope::kSettings);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].field, "config.model.hidden_dim");
  EXPECT_EQ(d[0].left, "\"256\"");
  try {
    require_same_fingerprint(fingerprinted("256"), "base.json", fingerprinted("512"), "cur.json", FingerprintScope::kSettings);
    FAIL() << "no throw";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("config.model.hidden_dim"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("base.json"), std::string::npos);
  }
  // Threads: environment, benchmark config.
  const auto t = fingerprint_differences(fingerprinted("256", 1), fingerprinted("256", 2), FingerprintScope::kSettings);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].field, "environment.threads");
  EXPECT_EQ(t[1].field, "config.benchmark.threads");
  // A key absent from one file differs.
  Results missing = fingerprinted();
  missing.config["model"].erase("num_layers");
  const auto m = fingerprint_differences(fingerprinted(), missing, FingerprintScope::kSettings);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].field, "config.model.num_layers");
  EXPECT_EQ(m[0].right, "(absent)");
  // Per-run settings of the points both ran.
  Results batch = fingerprinted();
  batch.runs[1].batch = 4;
  const auto b = fingerprint_differences(fingerprinted(), batch, FingerprintScope::kSettings);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].field, "runs[A prefill n=128].batch");
}

TEST(Fingerprint, MachineCountsForAbOnlyAndExemptionsApply) {
  EXPECT_TRUE(fingerprint_differences(fingerprinted("256", 1, "X"), fingerprinted("256", 1, "Y"), FingerprintScope::kSettings).empty());
  const auto d = fingerprint_differences(fingerprinted("256", 1, "X"), fingerprinted("256", 1, "Y"), FingerprintScope::kSettingsAndMachine);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].field, "environment.cpu_model");
  EXPECT_TRUE(fingerprint_differences(fingerprinted("256"), fingerprinted("512"), FingerprintScope::kSettings, {"config.model.hidden_dim"})
                  .empty());
}

TEST(Fingerprint, CheckRefusesDifferentSettingsNamingTheField) {
  const std::string dir = test::temp_dir("fingerprint_check");
  const std::string base = test::save_synthetic(fingerprinted("256"), dir, "base.json");
  const std::string same = test::save_synthetic(fingerprinted("256"), dir, "same.json");
  const std::string other = test::save_synthetic(fingerprinted("512"), dir, "other.json");
  const test::CliResult ok = test::run_cli("check --baseline '" + base + "' --current '" + same + "'");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  const test::CliResult bad = test::run_cli("check --baseline '" + base + "' --current '" + other + "'");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("config.model.hidden_dim"), std::string::npos) << bad.err;
  const test::CliResult confirm = test::run_cli("check --baseline '" + base + "' --current '" + same + "' --confirm '" + other + "'");
  EXPECT_EQ(confirm.exit_code, 2);
  EXPECT_NE(confirm.err.find("config.model.hidden_dim"), std::string::npos) << confirm.err;
}

// ---- the CLI ----

const std::string kTiny =
    " --models Linear Standard --workloads prefill --seq_lengths 16 --set model.hidden_dim=32 --set model.num_heads=2"
    " --set model.ff_dim=64 --set model.vocab_size=64 --set model.num_layers=1 --threads 1 --warmup 0";

TEST(AbCli, BadInputIsExitTwo) {
  const std::string exe = BSBR_BENCH_EXE;
  EXPECT_EQ(test::run_cli("ab --a /nonexistent/bsbr-bench --b '" + exe + "'").exit_code, 2);
  EXPECT_EQ(test::run_cli("ab --a '" + exe + "'").exit_code, 2);  // --b or --aa needed
  EXPECT_EQ(test::run_cli("ab --aa --a '" + exe + "' --b-set model.ff_dim=96").exit_code, 2);
  EXPECT_EQ(test::run_cli("ab --aa --a '" + exe + "' --correction bonferroni").exit_code, 2);
  EXPECT_EQ(test::run_cli("ab --aa --a '" + exe + "' --alpha 2").exit_code, 2);
  EXPECT_EQ(test::run_cli("ab --aa --a '" + exe + "' --config /nonexistent.yaml").exit_code, 2);
}

TEST(AbCli, ABaselineOlderThanTheProtocolIsExitTwo) {
  // An executable that does not know `compare --no-analysis` exits 2 like an old bsbr-bench would.
  const std::string dir = test::temp_dir("ab_old");
  const std::string old = dir + "/old-bsbr-bench";
  {
    std::ofstream f(old);
    f << "#!/bin/sh\necho 'error: The following argument was not expected: --no-analysis' >&2\nexit 2\n";
  }
  std::filesystem::permissions(old, std::filesystem::perms::owner_all);
  const test::CliResult r = test::run_cli("ab --a '" + old + "' --b '" + std::string(BSBR_BENCH_EXE) + "' --out '" + dir + "/out'");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("older than the ab protocol"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--no-analysis"), std::string::npos) << r.err;
}

// End to end at tiny sizes: A/A writes its results, flags nothing at a loose delta, and records
// every round's samples, order, start cost and contention readings.
TEST(AbCli, AaEndToEndAtTinySizes) {
  const std::string out = test::temp_dir("ab_aa");
  const test::CliResult r = test::run_cli("ab --aa --a '" + std::string(BSBR_BENCH_EXE) + "'" + kTiny +
                                          " --samples-per-round 2 --max-rounds 6 --min-rounds 5 --budget-s 120"
                                          " --max-others 1000 --max-steal 1 --delta 1.0 --out '" + out + "'");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::ifstream f(out + "/ab_results.json");
  ASSERT_TRUE(f) << "no ab_results.json";
  const nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["mode"], "aa");
  EXPECT_EQ(j["summary"]["valid_rounds"], 6);
  EXPECT_EQ(j["summary"]["slower"], 0);
  ASSERT_EQ(j["points"].size(), 2u);
  for (const auto& p : j["points"]) {
    EXPECT_EQ(p["a_rounds"].size(), 6u);
    EXPECT_EQ(p["verdict"], "same");
  }
  ASSERT_EQ(j["rounds"].size(), 6u);
  for (const auto& round : j["rounds"]) {
    ASSERT_EQ(round["legs"].size(), 2u);
    for (const auto& leg : round["legs"]) {
      EXPECT_TRUE(leg["start_cost_s"].is_number());
      // The start and the timed samples are disjoint parts of the worker's wall time: the start
      // cost is outside every timed sample.
      EXPECT_GT(leg["timed_s"].get<double>(), 0);
      EXPECT_LE(leg["start_cost_s"].get<double>() + leg["timed_s"].get<double>(), leg["wall_s"].get<double>());
      EXPECT_TRUE(leg["contention"]["before"].is_object());
      EXPECT_EQ(leg["points"][0]["samples_s"].size(), 2u);
    }
  }
  EXPECT_TRUE(j["aa"]["suggested_delta"].is_number());
  EXPECT_TRUE(std::filesystem::exists(out + "/ab_report.md"));
  EXPECT_FALSE(std::filesystem::exists(out + "/ab_work"));
  EXPECT_NE(r.out.find("ab --aa: 2 points"), std::string::npos) << r.out;
}

// A candidate that runs other settings than the baseline (here a wrapper adding a model override)
// is refused, naming the field: the fingerprint check of ab itself.
TEST(AbCli, DifferentSettingsAreRefusedNamingTheField) {
  const std::string dir = test::temp_dir("ab_fingerprint");
  const std::string wrapper = dir + "/other-settings";
  {
    std::ofstream f(wrapper);
    f << "#!/bin/sh\nexec '" << BSBR_BENCH_EXE << "' \"$@\" --set model.ff_dim=96\n";
  }
  std::filesystem::permissions(wrapper, std::filesystem::perms::owner_all);
  const test::CliResult r = test::run_cli("ab --a '" + std::string(BSBR_BENCH_EXE) + "' --b '" + wrapper + "'" + kTiny +
                                          " --samples-per-round 1 --max-rounds 2 --min-rounds 2 --budget-s 60"
                                          " --max-others 1000 --max-steal 1 --out '" + dir + "/out'");
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("config.model.ff_dim"), std::string::npos) << r.err;
}

// --b-set reaches B alone, and the fingerprint accepts exactly that field differing. (Whether the
// heavier B is flagged is a timing question: tools/ab-power.sh, on a quiet machine.)
TEST(AbCli, BSetChangesBAloneAndIsExemptFromTheFingerprint) {
  const std::string out = test::temp_dir("ab_bset");
  const std::string exe = BSBR_BENCH_EXE;
  const test::CliResult r = test::run_cli("ab --a '" + exe + "' --b '" + exe + "'" + kTiny + " --b-set model.ff_dim=96" +
                                          " --samples-per-round 1 --max-rounds 2 --min-rounds 2 --budget-s 60"
                                          " --max-others 1000 --max-steal 1 --out '" + out + "'");
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;  // 2 rounds are too few for any p: unusable, but written
  std::ifstream f(out + "/ab_results.json");
  ASSERT_TRUE(f);
  const nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["a"]["config"]["model"]["ff_dim"], "64");
  EXPECT_EQ(j["b"]["config"]["model"]["ff_dim"], "96");
  EXPECT_EQ(j["fingerprint"]["exempt"], nlohmann::json::array({"config.model.ff_dim"}));
  EXPECT_NE(j["summary"]["unusable"].get<std::string>().find("too few rounds"), std::string::npos);
}

}  // namespace
}  // namespace bsbr

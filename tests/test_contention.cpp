// The contention rule (bench/contention.hpp), the readings round-tripping through the results file,
// and the OpenMP wait policy the tool runs with (bench/environment.hpp).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/contention.hpp"
#include "core/limits.hpp"
#include "report/results.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

LoadSnapshot snapshot(int64_t procs_running, int64_t own_running, double load1, uint64_t steal = 0, uint64_t total = 1000) {
  LoadSnapshot s;
  s.valid = true;
  s.procs_running = procs_running;
  s.own_running = own_running;
  s.loadavg1 = s.loadavg5 = load1;
  s.steal_ticks = steal;
  s.total_ticks = total;
  return s;
}

TEST(Contention, QuietMachineIsNotContended) {
  // 2 cores, 2 threads: this process's own runnable thread, nothing else.
  ContentionRecord c = assess_contention(snapshot(1, 1, 1.9), snapshot(1, 1, 2.1, 10, 2000), 2, 2);
  EXPECT_FALSE(c.contended) << c.reason;
  EXPECT_NEAR(c.steal_fraction, 0.01, 1e-12);
  // 1 thread on 2 cores leaves a core for one other runnable thread.
  EXPECT_FALSE(assess_contention(snapshot(2, 1, 1.0), snapshot(2, 1, 1.0), 1, 2).contended);
}

TEST(Contention, EachConditionFlagsThePoint) {
  ContentionRecord others = assess_contention(snapshot(5, 1, 1.0), snapshot(1, 1, 1.0), 2, 2);
  EXPECT_TRUE(others.contended);
  EXPECT_NE(others.reason.find("before: 4 other runnable threads > 0 idle cores"), std::string::npos) << others.reason;
  EXPECT_EQ(others.reason.find("after"), std::string::npos) << others.reason;

  ContentionRecord load = assess_contention(snapshot(1, 1, 1.0), snapshot(1, 1, 3.5), 2, 2);
  EXPECT_TRUE(load.contended);
  EXPECT_NE(load.reason.find("after: load average 3.50 > cores + 1 = 3"), std::string::npos) << load.reason;
  EXPECT_FALSE(assess_contention(snapshot(1, 1, 3.0), snapshot(1, 1, 3.0), 2, 2).contended) << "the bound is strict";

  ContentionRecord steal = assess_contention(snapshot(1, 1, 1.0, 100, 1000), snapshot(1, 1, 1.0, 160, 2000), 2, 2);
  EXPECT_TRUE(steal.contended);
  EXPECT_NEAR(steal.steal_fraction, 0.06, 1e-12);
  EXPECT_NE(steal.reason.find("CPU steal 6.0 % > 5 %"), std::string::npos) << steal.reason;
  EXPECT_FALSE(assess_contention(snapshot(1, 1, 1.0, 100, 1000), snapshot(1, 1, 1.0, 150, 2000), 2, 2).contended) << "5 % exactly is not";

  ContentionRecord unreadable = assess_contention(LoadSnapshot{}, snapshot(9, 1, 9), 2, 2);
  EXPECT_FALSE(unreadable.contended) << "no verdict without both readings";
}

TEST(Contention, CalibrationDrift) {
  EXPECT_EQ(calibration_drift(100, 85), "");
  EXPECT_EQ(calibration_drift(100, 120), "");
  EXPECT_NE(calibration_drift(100, 79).find("from 100.0 to 79.0 GFLOP/s over the sweep (-21 % > 20 %)"), std::string::npos)
      << calibration_drift(100, 79);
  EXPECT_NE(calibration_drift(100, 121), "");
  EXPECT_EQ(calibration_drift(0, 50), "") << "no calibration, no verdict";
}

TEST(Contention, ReadsTheKernelFigures) {
  LoadSnapshot s = read_load();
  ASSERT_TRUE(s.valid) << "/proc/loadavg or /proc/stat unreadable";
  EXPECT_GE(s.own_running, 1) << "the reading thread itself is running";
  EXPECT_GE(s.procs_running, 1);
  EXPECT_GT(s.total_ticks, 0u);
  EXPECT_GE(machine_cores(), 1);
}

TEST(Contention, VerifyAndContentionRoundTripThroughTheResultsFile) {
  Results r = test::synthetic_results({"Linear"}, {Workload::kPrefill}, {64}, 3, [](auto&&...) { return 0.01; });
  RunRecord& run = r.runs[0];
  run.verify = {true, true, 64, 31, {1e-4, 2e-4}, 3.5e-6, 0.04, ""};
  run.contention = assess_contention(snapshot(6, 1, 4.25), snapshot(1, 1, 1.0, 5, 2000), 2, 2);
  r.warnings = {"busy machine: something"};
  r.calibration_end = {{"gflops", 80.0}};
  Results back = load_results(test::save_synthetic(r, test::temp_dir("contention_rt"), "r.json"));
  const RunRecord& b = back.runs.at(0);
  EXPECT_TRUE(b.verify.ran);
  EXPECT_EQ(b.verify.length, 64);
  EXPECT_EQ(b.verify.decode_from, 31);
  EXPECT_DOUBLE_EQ(b.verify.tol.rtol, 2e-4);
  EXPECT_DOUBLE_EQ(b.verify.max_abs_error, 3.5e-6);
  EXPECT_DOUBLE_EQ(b.verify.max_error_ratio, 0.04);
  EXPECT_TRUE(b.contention.contended);
  EXPECT_EQ(b.contention.reason, run.contention.reason);
  EXPECT_EQ(b.contention.before.procs_running, 6);
  EXPECT_DOUBLE_EQ(b.contention.before.loadavg1, 4.25);
  EXPECT_EQ(back.warnings, r.warnings);
  EXPECT_EQ(back.calibration_end["gflops"], 80.0);
}

// The tool re-executes itself with OMP_WAIT_POLICY=passive and GOMP_SPINCOUNT=10000 unless the user
// set either, and records which; BSBR_NO_REEXEC=1 opts out.
TEST(Contention, WaitPolicyIsChosenAndRecorded) {
  struct Case {
    const char* user_policy;  // nullptr: unset
    const char* no_reexec;
    const char* policy;       // recorded
    const char* source;
    const char* user_spin = nullptr;  // GOMP_SPINCOUNT set by the user
    const char* spin = nullptr;       // recorded
  };
  const char* saved = std::getenv("OMP_WAIT_POLICY");
  const std::string saved_value = saved ? saved : "";
  for (const Case& c : {Case{nullptr, nullptr, "passive", "bsbr-bench", nullptr, "10000"}, Case{"active", nullptr, "active", "user"},
                        Case{nullptr, "1", nullptr, "unset"}, Case{nullptr, nullptr, nullptr, "unset", "500", "500"}}) {
    c.user_policy ? ::setenv("OMP_WAIT_POLICY", c.user_policy, 1) : ::unsetenv("OMP_WAIT_POLICY");
    c.user_spin ? ::setenv("GOMP_SPINCOUNT", c.user_spin, 1) : ::unsetenv("GOMP_SPINCOUNT");
    c.no_reexec ? ::setenv("BSBR_NO_REEXEC", c.no_reexec, 1) : ::unsetenv("BSBR_NO_REEXEC");
    ::unsetenv("BSBR_OMP_WAIT_POLICY_SET");
    const std::string dir = test::temp_dir("waitpolicy");
    test::CliResult r = test::run_cli("compare --models Linear --seq_lengths 8 --workloads prefill --repeats 1 --warmup 0 --threads 1 --no-calibration --out '" + dir + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ifstream in(dir + "/comparison_results.json");
    nlohmann::json env = nlohmann::json::parse(in)["environment"];
    if (c.policy)
      EXPECT_EQ(env["omp_wait_policy"], c.policy);
    else
      EXPECT_TRUE(env["omp_wait_policy"].is_null()) << env["omp_wait_policy"];
    EXPECT_EQ(env["omp_wait_policy_source"], c.source);
    if (c.spin)
      EXPECT_EQ(env["gomp_spincount"], c.spin);
    else
      EXPECT_TRUE(env["gomp_spincount"].is_null()) << env["gomp_spincount"];
  }
  ::unsetenv("BSBR_NO_REEXEC");
  ::unsetenv("GOMP_SPINCOUNT");
  saved ? ::setenv("OMP_WAIT_POLICY", saved_value.c_str(), 1) : ::unsetenv("OMP_WAIT_POLICY");
}

// Thread binding (OMP_PROC_BIND, OMP_PLACES) is recorded, and does not lower the --threads limit.
// libgomp binds the initial thread to its first place when it loads: the limit (4 x the CPUs) was
// taken from that thread's mask, one core, and the wait-policy re-exec inherited that mask, so
// --threads 16 on a 16-core host exited 2. Bound with the re-exec, bound without it, and unbound.
TEST(Contention, ThreadBindingIsRecordedAndKeepsTheThreadsLimit) {
  const std::string most = std::to_string(max_threads());  // this process is not bound
  struct Case {
    bool bound, reexec;
  };
  for (const Case c : {Case{true, true}, Case{true, false}, Case{false, true}}) {
    if (c.bound) {
      ::setenv("OMP_PROC_BIND", "close", 1);
      ::setenv("OMP_PLACES", "cores", 1);
    }
    if (!c.reexec) ::setenv("BSBR_NO_REEXEC", "1", 1);
    const std::string dir = test::temp_dir("binding");
    test::CliResult r = test::run_cli("compare --models Linear --seq_lengths 8 --workloads prefill --repeats 1 --warmup 0 --threads " + most +
                                      " --no-calibration --no-verify --out '" + dir + "'");
    ::unsetenv("OMP_PROC_BIND");
    ::unsetenv("OMP_PLACES");
    ::unsetenv("BSBR_NO_REEXEC");
    const std::string which = std::string(c.bound ? "bound" : "unbound") + (c.reexec ? ", re-executed" : ", not re-executed");
    ASSERT_EQ(r.exit_code, 0) << which << ": " << r.err;
    std::ifstream in(dir + "/comparison_results.json");
    nlohmann::json env = nlohmann::json::parse(in)["environment"];
    EXPECT_EQ(env["threads"], max_threads()) << which;
    EXPECT_EQ(env["omp_wait_policy_source"], c.reexec ? "bsbr-bench" : "unset") << which;
    if (c.bound) {
      EXPECT_EQ(env["omp_proc_bind"], "close") << which;
      EXPECT_EQ(env["omp_places"], "cores") << which;
    } else {
      EXPECT_EQ(env["omp_proc_bind"], "false") << which;
      EXPECT_TRUE(env["omp_places"].is_null()) << which << ": " << env["omp_places"];
    }
  }
}

}  // namespace
}  // namespace bsbr

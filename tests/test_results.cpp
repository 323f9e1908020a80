// comparison_results.json: written by compare, re-read, keeps the study's keys; the study's own
// file loads; malformed files are one-line errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "report/results.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

using nlohmann::json;

TEST(Results, CompareWritesStudyKeysAndRuns) {
  std::string dir = test::temp_dir("results");
  auto r = test::run_cli("compare --models Standard Hopfield --seq_lengths 8 24 --n_tokens 3 --repeats 2 --warmup 0 --out '" + dir + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[  1/8]"), std::string::npos) << "progress lines expected on stderr";
  EXPECT_NE(r.out.find("generate"), std::string::npos) << "results table expected on stdout";
  std::ifstream in(dir + "/comparison_results.json");
  ASSERT_TRUE(in.good());
  json j = json::parse(in);
  for (const char* key : {"time_results", "memory_results", "param_counts", "seq_lengths", "schema_version", "environment", "config",
                          "calibration", "runs"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["seq_lengths"], json::array({8, 24}));
  EXPECT_EQ(j["param_counts"]["Standard"], 3614720);
  EXPECT_TRUE(j["time_results"]["Standard"].contains("8"));  // the study's string keys
  EXPECT_GT(j["time_results"]["Standard"]["24"].get<double>(), 0);
  EXPECT_GT(j["memory_results"]["Hopfield"]["24"].get<double>(), 0);
  EXPECT_GT(j["calibration"]["gflops"].get<double>(), 0);
  EXPECT_EQ(j["runs"].size(), 8u);
  const json& run = j["runs"][0];
  EXPECT_EQ(run["samples_s"].size(), 2u);
  EXPECT_NE(run["repro"].get<std::string>().find("--models Standard --workloads prefill --seq_lengths 8"), std::string::npos);
  for (const char* key : {"onednn_version", "onednn_isa", "cpu_model", "git_commit", "utc_time", "compiler", "build_type"})
    EXPECT_TRUE(j["environment"].contains(key)) << key;
  // The binary's own commit, from its build (tools/git_commit.cmake): a checkout's, or "unknown" for
  // a build of a tree without one.
  const std::string commit = j["environment"]["git_commit"].get<std::string>();
  if (std::filesystem::exists(std::string(BSBR_SOURCE_DIR) + "/.git"))
    EXPECT_TRUE(std::regex_match(commit, std::regex("[0-9a-f]{40}(-dirty)?"))) << commit;
  else
    EXPECT_EQ(commit, "unknown");

  // Re-read through the loader: same runs and stats.
  Results back = load_results(dir + "/comparison_results.json");
  EXPECT_FALSE(back.study_schema);
  ASSERT_EQ(back.runs.size(), 8u);
  const RunRecord* g = back.find("Hopfield", Workload::kGenerate, 24);
  ASSERT_NE(g, nullptr);
  EXPECT_DOUBLE_EQ(g->stats.median, j["time_results"]["Hopfield"]["24"].get<double>());
  EXPECT_EQ(g->generated.size(), 4u);  // the prefill's token + 3 steps
  EXPECT_TRUE(back.calibration_gflops().has_value());
  // compare ends with the analysis: the fits block in the file, report.md next to it.
  ASSERT_TRUE(j.contains("fits"));
  EXPECT_EQ(j["fits"]["series"].size(), 4u) << "2 models x 2 workloads";
  EXPECT_EQ(back.fits.size(), 4u);
  EXPECT_TRUE(std::filesystem::exists(dir + "/report.md"));
  EXPECT_NE(r.out.find("scaling of the median time"), std::string::npos) << "the analysis summary ends compare's output";
  // No temp file left behind (atomic writes).
  for (auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(Results, ThreadsAreUsedAndRecorded) {
  for (int threads : {1, 2}) {
    std::string dir = test::temp_dir("threads" + std::to_string(threads));
    auto r = test::run_cli("compare --models Standard --seq_lengths 16 --workloads prefill decode --n_tokens 2 --repeats 1 --warmup 0 --threads " +
                           std::to_string(threads) + " --out '" + dir + "'");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ifstream in(dir + "/comparison_results.json");
    json j = json::parse(in);
    EXPECT_EQ(j["environment"]["threads"], threads);
    // Evidence that the threads ran, not just that the flag was echoed: OpenMP's pool after the
    // sweep is exactly `threads` OS threads (the main thread is worker 0). Ignoring --threads (using
    // all cores) changes it for --threads 1 on any machine of 2+ cores.
    EXPECT_EQ(j["environment"]["process_threads_after_sweep"], threads);
    EXPECT_EQ(j["calibration"]["threads"], threads);
    for (const json& run : j["runs"]) {
      EXPECT_EQ(run["threads"], threads);
      EXPECT_NE(run["repro"].get<std::string>().find("--threads " + std::to_string(threads)), std::string::npos);
    }
  }
}

TEST(Results, LoadsTheStudysFile) {
  Results r = load_results(std::string(BSBR_SOURCE_DIR) + "/tests/data/study_comparison_results.json");
  EXPECT_TRUE(r.study_schema);
  EXPECT_EQ(r.models.size(), 7u);
  EXPECT_EQ(r.seq_lengths.size(), 5u);
  const RunRecord* b = r.find("BSBR", Workload::kGenerate, 1024);
  ASSERT_NE(b, nullptr);
  EXPECT_GT(b->stats.median, 0);
  EXPECT_EQ(r.model_info.at("GAU").params, 4403712);
}

struct Bad {
  const char* name;
  std::string text;
  const char* expect;
};
// ctest shows a case by its name, not its bytes.
void PrintTo(const Bad& c, std::ostream* os) { *os << c.name; }

class BadResults : public ::testing::TestWithParam<Bad> {};

TEST_P(BadResults, OneLineUserError) {
  std::string path = test::temp_dir("badresults") + "/r.json";
  std::ofstream(path) << GetParam().text;
  try {
    load_results(path);
    FAIL() << "accepted " << GetParam().name;
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(GetParam().expect), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadResults,
    ::testing::Values(Bad{"not_json", "{oops", "is not valid JSON"}, Bad{"array", "[1,2]", "top level must be a JSON object"},
                      Bad{"no_lengths", R"({"time_results": {"A": {"8": 1.0}}})", "missing key 'seq_lengths'"},
                      Bad{"no_times", R"({"seq_lengths": [8]})", "missing key 'time_results'"},
                      Bad{"negative_time", R"({"seq_lengths": [8], "time_results": {"A": {"8": -1.0}}})", "must be a positive number"},
                      Bad{"bad_key", R"({"seq_lengths": [8], "time_results": {"A": {"x8": 1.0}}})", "is not a positive integer"},
                      Bad{"bad_version", R"({"seq_lengths": [8], "schema_version": 99, "runs": []})", "schema_version 99"},
                      Bad{"bad_run", R"({"seq_lengths": [8], "schema_version": 1, "runs": [{"model": "A"}]})", "missing key 'workload'"},
                      // Hostile values (issue 12): each names the field, none crashes or is exit 3.
                      Bad{"overflow_number", R"({"seq_lengths": [8], "schema_version": 1, "runs": [{"model": "A", "workload": "prefill", "n": 8, "status": "ok", "samples_s": [1, 1e999]}]})",
                          "number overflow parsing '1e999' at runs[0].samples_s[1]"},
                      Bad{"overflow_in_environment", R"({"seq_lengths": [8], "schema_version": 1, "runs": [], "environment": {"x": -1e400}})",
                          "at environment.x"},
                      Bad{"deep_environment", R"({"seq_lengths": [8], "schema_version": 1, "runs": [], "environment": )" + std::string(100000, '[') + std::string(100000, ']') + "}",
                          "nesting deeper than 64 levels at environment"},
                      Bad{"duplicate_run", R"({"seq_lengths": [8], "schema_version": 1, "runs": [
                            {"model": "A", "workload": "prefill", "n": 8, "status": "ok", "samples_s": [1]},
                            {"model": "A", "workload": "prefill", "n": 8, "status": "failed"}]})", "runs[1]: a second record for model A, workload prefill, n = 8"},
                      Bad{"duplicate_study_length", R"({"seq_lengths": [8], "time_results": {"A": {"8": 1.0, "08": 2.0}}})", "a second record for model A, workload generate, n = 8"},
                      Bad{"duplicate_seq_lengths", R"({"seq_lengths": [8, 8], "time_results": {"A": {"8": 1.0}}})", "lists n = 8 twice"},
                      Bad{"string_count", R"({"seq_lengths": [8], "schema_version": 1, "runs": [{"model": "A", "workload": "prefill", "n": 8, "status": "skipped", "threads": "4"}]})",
                          "runs[0]: 'threads' must be an integer"},
                      Bad{"huge_count", R"({"seq_lengths": [8], "schema_version": 1, "runs": [{"model": "A", "workload": "prefill", "n": 8, "status": "skipped", "repeats": 18446744073709551615}]})",
                          "'repeats' = 18446744073709551615 is out of range"},
                      Bad{"huge_length", R"({"seq_lengths": [8], "schema_version": 1, "runs": [{"model": "A", "workload": "prefill", "n": 9223372036854775807, "status": "skipped"}]})",
                          "'n' = 9223372036854775807 is out of range"},
                      Bad{"negative_bytes", R"({"seq_lengths": [8], "schema_version": 1, "runs": [{"model": "A", "workload": "prefill", "n": 8, "status": "skipped", "memory": {"peak_working_bytes": -1}}]})",
                          "memory: 'peak_working_bytes' = -1 is out of range"},
                      Bad{"tiny_time", R"({"seq_lengths": [8], "schema_version": 1, "runs": [{"model": "A", "workload": "prefill", "n": 8, "status": "ok", "samples_s": [5e-324]}]})",
                          "'samples_s[0]' = 5e-324 must be a positive number of seconds"},
                      Bad{"huge_time", R"({"seq_lengths": [8], "time_results": {"A": {"8": 1e308}}})", "time_results.A.8: the time = 1e+308 must be a positive number of seconds"},
                      Bad{"bool_noisy", R"({"seq_lengths": [8], "schema_version": 1, "runs": [{"model": "A", "workload": "prefill", "n": 8, "status": "skipped", "noisy": "yes"}]})",
                          "'noisy' must be true or false"},
                      Bad{"bad_tokens", R"({"seq_lengths": [8], "schema_version": 1, "runs": [{"model": "A", "workload": "prefill", "n": 8, "status": "skipped", "generated_tokens": [1, -5]}]})",
                          "'generated_tokens[1]' = -5 is out of range"},
                      Bad{"param_count_type", R"({"seq_lengths": [8], "param_counts": {"A": "many"}, "time_results": {"A": {"8": 1.0}}})", "'param_counts.A' must be an integer"},
                      Bad{"calibration_type", R"({"seq_lengths": [8], "schema_version": 1, "runs": [], "calibration": {"gflops": "fast"}})", "calibration: 'gflops' must be a number"},
                      Bad{"calibration_sample", R"({"seq_lengths": [8], "schema_version": 1, "runs": [], "calibration": {"samples_s": [0]}})", "calibration: 'samples_s[0]' = 0 must be a positive"},
                      Bad{"control_in_name", R"({"seq_lengths": [8], "time_results": {"A\u001b[2J": {"8": 1.0}}})", "contains a control character"},
                      Bad{"study_memory_type", R"({"seq_lengths": [8], "time_results": {"A": {"8": 1.0}}, "memory_results": {"A": {"8": "big"}}})", "memory_results.A.8: the memory (MB) must be a number"}),
    [](const auto& info) { return std::string(info.param.name); });

// The same through the CLI: analyze, check and targets all read results files; each bad file is
// exit 2 with one line naming the file (never 3, never a crash).
TEST(Results, HostileFilesAreExitTwoInEveryCommand) {
  const std::string dir = test::temp_dir("hostile_results");
  const std::string good = test::save_synthetic(
      test::synthetic_results({"A"}, {Workload::kPrefill}, {64, 128}, 5, [](const std::string&, Workload, int64_t n, int) { return 1e-6 * n; }), dir, "good.json");
  for (const std::string& text :
       {std::string(R"({"seq_lengths": [64], "schema_version": 1, "runs": [{"model": "A", "workload": "prefill", "n": 64, "status": "ok", "samples_s": [1e999]}]})"),
        std::string(R"({"seq_lengths": [64], "schema_version": 1, "runs": [], "config": )") + std::string(50000, '[') + std::string(50000, ']') + "}"}) {
    const std::string bad = dir + "/bad.json";
    std::ofstream(bad) << text;
    for (const std::string& args : {"analyze '" + bad + "' --no-plots --out '" + dir + "'", "check --baseline '" + good + "' --current '" + bad + "'",
                                    "targets --long '" + bad + "' --default '" + good + "'"}) {
      auto r = test::run_cli(args);
      EXPECT_EQ(r.exit_code, 2) << args << ": " << r.err;
      EXPECT_NE(r.err.find("results file " + bad), std::string::npos) << args << ": " << r.err;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    }
  }
}

// tools/git_commit.cmake, which the build runs to name the binary's commit (results' git_commit):
// "unknown" outside a repository, the checkout's HEAD in one, "-dirty" once a tracked file differs
// from it, and not for an untracked file; the header is rewritten only when that text changes.
TEST(BuildInfo, GitCommitScriptNamesTheCheckoutsCommit) {
  ASSERT_EQ(std::system("git --version > /dev/null 2>&1"), 0) << "git is needed at build time to name the commit";
  const std::string dir = test::temp_dir("git_commit"), repo = dir + "/repo", out = dir + "/git_commit.hpp";
  std::filesystem::create_directories(repo);
  auto run_script = [&]() {
    const std::string cmd = std::string("'") + BSBR_CMAKE_COMMAND + "' -DSOURCE_DIR='" + repo + "' -DTEMPLATE='" + BSBR_SOURCE_DIR +
                            "/src/core/git_commit.hpp.in' -DOUT='" + out + "' -P '" + BSBR_SOURCE_DIR + "/tools/git_commit.cmake'";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream in(out);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::smatch m;
    EXPECT_TRUE(std::regex_search(text, m, std::regex("kGitCommit = \"([^\"]*)\";"))) << text;
    return m.size() > 1 ? m[1].str() : std::string();
  };
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
  };
  EXPECT_EQ(run_script(), "unknown");
  const std::string git = "git -C '" + repo + "' ";
  std::ofstream(repo + "/a.txt") << "one\n";
  ASSERT_EQ(std::system((git + "init -q && " + git + "add a.txt && " + git +
                         "-c user.name=t -c user.email=t@t commit -q -m one && " + git + "rev-parse HEAD > '" + dir + "/head'")
                            .c_str()),
            0);
  const std::string head = read(dir + "/head");
  ASSERT_EQ(head.size(), 40u) << head;
  EXPECT_EQ(run_script(), head);
  const auto written = std::filesystem::last_write_time(out);
  EXPECT_EQ(run_script(), head);
  EXPECT_EQ(std::filesystem::last_write_time(out), written) << "an unchanged commit rewrote the header";
  std::ofstream(repo + "/untracked.txt") << "x\n";
  EXPECT_EQ(run_script(), head);
  std::ofstream(repo + "/a.txt") << "two\n";
  EXPECT_EQ(run_script(), head + "-dirty");
  std::filesystem::remove_all(dir);
}

TEST(Results, MissingFile) { EXPECT_THROW(load_results("/nonexistent/results.json"), UserError); }

}  // namespace
}  // namespace bsbr

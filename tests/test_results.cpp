// comparison_results.json: written by compare, re-read, keeps the study's keys; the study's own
// file loads; malformed files are one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
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
  const char* text;
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
                      Bad{"bad_run", R"({"seq_lengths": [8], "schema_version": 1, "runs": [{"model": "A"}]})", "missing key 'workload'"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Results, MissingFile) { EXPECT_THROW(load_results("/nonexistent/results.json"), UserError); }

}  // namespace
}  // namespace bsbr

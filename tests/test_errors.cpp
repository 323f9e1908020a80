// The error contract and the limits (README "Errors and limits"), through the real executable:
// every numeric input outside its range is exit 2 naming the input and the range (no clamp, no
// default); --set is validated in its end state; exit codes 0 / 1 / 2 for each class; outputs
// never replace a non-regular file and are checked before the first point; an interrupted sweep
// keeps its points (partial) and leaves no temp file; out of memory is a failed point, not exit 1.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/checked.hpp"
#include "core/config.hpp"
#include "core/io.hpp"
#include "core/limits.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// A quick compare (one model, one short length, one sample) into `out`.
std::string quick(const std::string& out) {
  return "compare --models Linear --workloads prefill --seq_lengths 8 --repeats 1 --warmup 0 --threads 1 --out '" + out + "'";
}

// ---- limits ----------------------------------------------------------------------------------------

struct RangeCase {
  const char* name;
  std::string args;
  std::string expect;  // substring of the one error line
};
void PrintTo(const RangeCase& c, std::ostream* os) { *os << c.name; }

class OutOfRange : public ::testing::TestWithParam<RangeCase> {};

TEST_P(OutOfRange, ExitTwoNamingTheInputAndTheRange) {
  const RangeCase& c = GetParam();
  const std::string out = test::temp_dir(std::string("range_") + c.name);
  const bool has_out = c.args.rfind("forward", 0) != 0;  // forward writes --dump, not --out
  auto r = test::run_cli(c.args + (has_out ? " --out '" + out + "'" : ""));
  EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
  EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1) << "expected one line, got: " << r.err;
  EXPECT_EQ(r.err.find("calibrating"), std::string::npos) << "validated only after work started: " << r.err;
  EXPECT_TRUE(fs::is_empty(out)) << "a refused command left files in " << out;
}

const std::string kSweep = "compare --models Standard --workloads prefill ";
const std::string kThreadsAbove = std::to_string(max_threads() + 1);

INSTANTIATE_TEST_SUITE_P(
    Flags, OutOfRange,
    ::testing::Values(
        RangeCase{"length_2p63m1", kSweep + "--seq_lengths 9223372036854775807", "--seq_lengths must be an integer in [1, 4194304], got '9223372036854775807'"},
        RangeCase{"length_2p63", kSweep + "--seq_lengths 9223372036854775808", "--seq_lengths must be an integer in [1, 4194304]"},
        RangeCase{"length_negative", kSweep + "--seq_lengths 64 -8", "--seq_lengths must be an integer in [1, 4194304], got '-8'"},
        RangeCase{"n_tokens_huge", kSweep + "--seq_lengths 8 --n_tokens 4000000000000000000", "--n_tokens must be an integer in [1, 65536]"},
        RangeCase{"n_tokens_negative", kSweep + "--seq_lengths 8 --n_tokens -5", "--n_tokens must be an integer in [1, 65536], got '-5'"},
        RangeCase{"repeats_1e12", kSweep + "--seq_lengths 8 --repeats 1000000000000", "--repeats must be an integer in [1, 10000]"},
        RangeCase{"repeats_negative", kSweep + "--seq_lengths 8 --repeats -1", "--repeats must be an integer in [1, 10000], got '-1'"},
        RangeCase{"warmup_negative", kSweep + "--seq_lengths 8 --warmup -1", "--warmup must be an integer in [0, 10000], got '-1'"},
        RangeCase{"threads_negative", kSweep + "--seq_lengths 8 --threads -1", "--threads must be an integer in [0, "},
        RangeCase{"threads_2p32p1", kSweep + "--seq_lengths 8 --threads 4294967297", "got '4294967297'"},
        RangeCase{"threads_2p63", kSweep + "--seq_lengths 8 --threads 9223372036854775808", "got '9223372036854775808'"},
        RangeCase{"threads_above_bound", kSweep + "--seq_lengths 8 --threads " + kThreadsAbove, "--threads must be an integer in [0, "},
        RangeCase{"threads_text", kSweep + "--seq_lengths 8 --threads 2x", "--threads must be an integer"},
        RangeCase{"set_hidden_dim", kSweep + "--seq_lengths 8 --set model.hidden_dim=99999999", "model.hidden_dim must be an integer in [1, 16384]"},
        RangeCase{"set_expansion", kSweep + "--seq_lengths 8 --set model.expansion_factor=4611686018427387904",
                  "model.expansion_factor must be an integer in [1, 64]"},
        RangeCase{"set_vocab", kSweep + "--seq_lengths 8 --set model.vocab_size=2147483648", "model.vocab_size must be an integer in [1, 16777216]"},
        RangeCase{"set_batch", kSweep + "--seq_lengths 8 --set model.batch_size=-2", "model.batch_size must be an integer in [1, 256]"},
        RangeCase{"set_layers", kSweep + "--seq_lengths 8 --set model.num_layers=100000", "model.num_layers must be an integer in [1, 1024]"},
        RangeCase{"set_window", kSweep + "--seq_lengths 8 --set model.window_size=9223372036854775807", "model.window_size must be an integer in [0, 4194304]"},
        RangeCase{"set_repeats", kSweep + "--seq_lengths 8 --set benchmark.repeats=-3", "benchmark.repeats must be an integer in [1, 10000]"},
        RangeCase{"decode_positions", "compare --models Linear --workloads decode --seq_lengths 4194304 --n_tokens 65536",
                  "workloads would reach position"},
        RangeCase{"forward_threads", "forward --model Linear --tokens '1 2' --dump /nonexistent/x.json --threads -1",
                  "--threads must be an integer in [0, "},
        RangeCase{"convert_seed", "convert --checkpoint /nonexistent --tokens /nonexistent --seed -1",
                  "--seed must be an integer in [0, 9223372036854775807], got '-1'"},
        RangeCase{"convert_repeats", "convert --checkpoint /nonexistent --tokens /nonexistent --repeats 1000000000000", "--repeats must be an integer in [1, 10000]"},
        RangeCase{"convert_lengths", "convert --checkpoint /nonexistent --tokens /nonexistent --seq_lengths 9223372036854775807",
                  "--seq_lengths must be an integer in [1, 4194304]"},
        RangeCase{"convert_compression", "convert --checkpoint /nonexistent --tokens /nonexistent --compression 99999999999999999999",
                  "--compression takes 'none' or integers in [1, 16384], got '99999999999999999999'"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Limits, ConfigFileValuesAreRangeChecked) {
  const std::string dir = test::temp_dir("limits_config");
  std::ofstream(dir + "/c.yaml") << "model:\n  ff_dim: 9223372036854775807\n";
  try {
    load_config(dir + "/c.yaml");
    FAIL() << "accepted ff_dim = 2^63 - 1";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("model.ff_dim must be an integer in [1, 262144]"), std::string::npos) << e.what();
  }
}

TEST(Limits, SetIsValidatedInItsEndState) {
  // 250 is not divisible by the default 4 heads, nor 5 by the default... each alone is invalid,
  // together valid: accepted in either order.
  for (const std::string& sets : {std::string("--set model.hidden_dim=250 --set model.num_heads=5"),
                                  std::string("--set model.num_heads=5 --set model.hidden_dim=250")}) {
    const std::string out = test::temp_dir("set_end_state");
    auto r = test::run_cli(quick(out) + " " + sets);
    EXPECT_EQ(r.exit_code, 0) << sets << "\n" << r.err;
    EXPECT_TRUE(fs::exists(out + "/comparison_results.json"));
  }
  // The end state itself is still checked.
  auto r = test::run_cli(quick(test::temp_dir("set_end_bad")) + " --set model.hidden_dim=250");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("with --set: model.hidden_dim (250) must be divisible by model.num_heads (4)"), std::string::npos) << r.err;
}

TEST(Limits, ReadmeListsEveryRange) {
  const std::string readme = slurp(std::string(BSBR_SOURCE_DIR) + "/README.md");
  const auto section = readme.find("## Errors and limits");
  ASSERT_NE(section, std::string::npos);
  const std::string text = readme.substr(section);
  for (const auto& [name, range] : limits_table()) {
    const std::string row_start = "`" + name + "`";
    const auto at = text.find(row_start);
    ASSERT_NE(at, std::string::npos) << name << " is missing from the README's ranges table";
    const std::string row = text.substr(at, text.find('\n', at) - at);
    EXPECT_NE(row.find(range), std::string::npos) << "README row of " << name << " does not say " << range << ": " << row;
  }
}

TEST(CheckedArithmetic, OverflowThrowsNamingWhat) {
  EXPECT_EQ(checked_mul(int64_t{1} << 31, int64_t{1} << 31, "x"), int64_t{1} << 62);
  EXPECT_THROW(checked_mul(int64_t{1} << 32, int64_t{1} << 31, "x"), SizeError);
  EXPECT_THROW(checked_add(INT64_MAX, int64_t{1}, "x"), SizeError);
  EXPECT_THROW(checked_mul(SIZE_MAX / 2, std::size_t{3}, "x"), SizeError);
  try {
    checked_product("the decode capacity", int64_t{1} << 22, int64_t{1} << 22, int64_t{1} << 22);
    FAIL();
  } catch (const SizeError& e) {
    EXPECT_NE(std::string(e.what()).find("the decode capacity does not fit in 64 bits"), std::string::npos);
  }
  EXPECT_THROW(numel({int64_t{1} << 40, int64_t{1} << 40}), SizeError);
}

TEST(CheckedArithmetic, WeightBytesWithoutAllocating) {
  ops::Context ctx(1);
  ModelConfig m;
  m.vocab_size = 1 << 24;
  m.hidden_dim = 16384;  // 2 x 2^24 x 2^14 x 4 bytes = 2 TiB of embedding and head alone
  m.ff_dim = 1 << 18;
  m.num_layers = 1024;
  for (const Architecture& a : architectures()) {
    const std::size_t bytes = Model::weight_bytes(ctx, m, a);
    EXPECT_GT(bytes, std::size_t{1} << 41) << a.name;
    EXPECT_EQ(ctx.memory().current(MemCategory::kParams), 0u) << a.name << " allocated weights";
  }
  ModelConfig small;
  Model real(ctx, small, find_architecture("GAU"));
  EXPECT_EQ(Model::weight_bytes(ctx, small, find_architecture("GAU")), ctx.memory().current(MemCategory::kParams));
}

// ---- exit codes -------------------------------------------------------------------------------------

TEST(ExitCodes, UnknownOrMissingSubcommandIsTwoWithTheList) {
  auto r = test::run_cli("frobnicate --x 1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown subcommand 'frobnicate' (known: compare, forward, analyze, check, targets, convert"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  auto none = test::run_cli("");
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("a subcommand is required (known: compare"), std::string::npos) << none.err;
  EXPECT_EQ(none.err.find("A subcommand is required"), std::string::npos) << none.err;
}

TEST(ExitCodes, CheckOfOnlyFailedPointsIsARegression) {
  const std::string dir = test::temp_dir("check_failed");
  auto time = [](const std::string&, Workload, int64_t n, int s) { return 1e-6 * n * (1 + 0.001 * s); };
  Results base = test::synthetic_results({"Linear"}, {Workload::kPrefill}, {64, 128, 256}, 5, time);
  Results cur = base;
  for (RunRecord& run : cur.runs) {
    run.status = "failed";
    run.reason = "out of memory while preparing or running prefill n=64";
    run.samples_s.clear();
    run.stats = {};
  }
  const std::string b = test::save_synthetic(base, dir, "base.json"), c = test::save_synthetic(cur, dir, "cur.json");
  auto r = test::run_cli("check --baseline '" + b + "' --current '" + c + "'");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  // Only skipped (memory guard, machine-dependent) is nothing to check: unusable, exit 2.
  for (RunRecord& run : cur.runs) run.status = "skipped";
  test::save_synthetic(cur, dir, "cur.json");
  auto s = test::run_cli("check --baseline '" + b + "' --current '" + c + "'");
  EXPECT_EQ(s.exit_code, 2) << s.out << s.err;
}

// `ulimit -v` caps the address space; an AddressSanitizer process reserves terabytes of it for its
// shadow memory at start, so under ASan (tools/sanitize.sh) such a process cannot start at all. The
// two out-of-memory tests below need the cap: they run in the Release suite (README commands, CI
// stage 2) and say why they skip in the sanitizer job.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif
#define SKIP_UNDER_ASAN() \
  if (kAddressSanitizer) GTEST_SKIP() << "ulimit -v cannot cap an AddressSanitizer process (its shadow memory needs terabytes of address space); the Release suite runs this test"

TEST(ExitCodes, OutOfMemoryInAPointIsAFailedPointNotExitOne) {
  SKIP_UNDER_ASAN();
  // Address space capped at 1 GiB: the n = 2^19 point of Linear (FFN activations alone are
  // 2^19 x 512 x 4 bytes = 1 GiB) cannot be allocated; the guard is off so the allocation is tried.
  const std::string out = test::temp_dir("oom_point");
  const std::string cmd = "ulimit -v 1048576; '" + std::string(BSBR_BENCH_EXE) +
                          "' compare --models Linear --workloads prefill --seq_lengths 8 524288 --repeats 1 --warmup 0 --threads 1 "
                          "--no-memory-guard --out '" + out + "' >/dev/null 2>'" + out + "/../oom_err.txt'";
  const int status = std::system(("bash -c \"" + cmd + "\"").c_str());
  const std::string err = slurp(out + "/../oom_err.txt");
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 0) << err;
  const nlohmann::json j = nlohmann::json::parse(slurp(out + "/comparison_results.json"));
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][0]["status"], "ok");
  EXPECT_EQ(j["runs"][1]["status"], "failed");
  const std::string reason = j["runs"][1]["reason"];
  EXPECT_NE(reason.find("out of memory while preparing or running prefill n=524288"), std::string::npos) << reason;
}

TEST(ExitCodes, MemoryGuardNamesTheSetting) {
  // What is read here is the guard's verdict, so the machine's calibration and the oracle check of
  // the n = 8 point (plain loops at batch 256: ~40 s under the sanitizers) are left out.
  const std::string out = test::temp_dir("guard");
  auto r = test::run_cli("compare --models Standard --workloads prefill --seq_lengths 8 4194304 --repeats 1 --warmup 0 --threads 1 --no-calibration --no-verify "
                         "--set model.batch_size=256 --out '" + out + "'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(slurp(out + "/comparison_results.json"));
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][1]["status"], "skipped");
  const std::string reason = j["runs"][1]["reason"];
  EXPECT_NE(reason.find("memory guard: prefill n=4194304 batch_size=256"), std::string::npos) << reason;
  // Weights that cannot fit: every point of the model skipped before anything is allocated.
  auto w = test::run_cli("compare --models Standard --workloads prefill --seq_lengths 8 --repeats 1 --warmup 0 --threads 1 --no-calibration "
                         "--set model.vocab_size=16777216 --set model.hidden_dim=16384 --set model.num_heads=1 --out '" + out + "'");
  EXPECT_EQ(w.exit_code, 0) << w.err;
  const nlohmann::json k = nlohmann::json::parse(slurp(out + "/comparison_results.json"));
  EXPECT_EQ(k["runs"][0]["status"], "skipped");
  EXPECT_NE(k["runs"][0]["reason"].get<std::string>().find("the weights of Standard need about"), std::string::npos) << k["runs"][0]["reason"];
}

TEST(ExitCodes, OutOfMemoryOutsideAPointIsTwoNamingWhat) {
  SKIP_UNDER_ASAN();
  // forward: weights of 2 x 2^24 x 2^14 x 4 bytes (2 TiB) are refused before they are allocated.
  const std::string dir = test::temp_dir("oom_forward");
  auto r = test::run_cli("forward --model Linear --tokens '1 2' --threads 1 --set model.vocab_size=16777216 --set model.hidden_dim=16384 "
                         "--dump '" + dir + "/d.json'");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("memory guard: the weights of Linear need about"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("model.vocab_size=16777216, hidden_dim=16384"), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  // An allocation that fails (address space capped at 1 GiB, logits [40000, 10000] = 1.6 GB) is
  // exit 2 naming the step, not 1 and not a bare "out of memory".
  std::string tokens;
  for (int i = 0; i < 40000; ++i) tokens += "1 ";
  std::ofstream(dir + "/args.sh") << "ulimit -v 1048576; exec '" << BSBR_BENCH_EXE << "' forward --model Linear --threads 1 --tokens '" << tokens
                                  << "' --dump '" << dir << "/d.json' 2>'" << dir << "/err.txt'\n";
  const int status = std::system(("bash '" + dir + "/args.sh'").c_str());
  const std::string err = slurp(dir + "/err.txt");
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 2) << err;
  EXPECT_NE(err.find("error: out of memory while preparing the prefill, logits [40000, 10000]"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir + "/d.json"));
}

// ---- outputs ----------------------------------------------------------------------------------------

TEST(Outputs, AtomicWriterRefusesNonRegularFiles) {
  const std::string dir = test::temp_dir("nonregular");
  const std::string fifo = dir + "/fifo", link = dir + "/link", target = dir + "/target", sub = dir + "/sub";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::ofstream(target) << "keep";
  fs::create_symlink(target, link);
  fs::create_directory(sub);
  for (const std::string& p : {fifo, link, sub}) {
    try {
      write_file_atomic(p, "x");
      ADD_FAILURE() << "replaced " << p;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("refusing to write " + p), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link)));
  EXPECT_EQ(slurp(target), "keep");
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  write_file_atomic(target, "new");  // a regular file is replaced
  EXPECT_EQ(slurp(target), "new");
}

TEST(Outputs, ForwardDumpOntoAFifoOrSymlinkIsExitTwo) {
  const std::string dir = test::temp_dir("dump_nonregular");
  const std::string fifo = dir + "/fifo", link = dir + "/link";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  fs::create_symlink("/nonexistent/elsewhere", link);
  for (const auto& [path, kind] : {std::pair{fifo, "a FIFO"}, std::pair{link, "a symbolic link"}}) {
    auto r = test::run_cli("forward --model Linear --tokens '1 2 3' --threads 1 --dump '" + path + "'");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("--dump: refusing to write " + path + ": it exists and is " + kind), std::string::npos) << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
  }
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link)));
}

TEST(Outputs, CompareChecksOutBeforeTheFirstPoint) {
  const std::string dir = test::temp_dir("out_checked");
  std::ofstream(dir + "/file") << "x";
  auto r = test::run_cli(quick(dir + "/file"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--out: " + dir + "/file cannot be used as an output directory"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("[  1/"), std::string::npos) << "a point ran before --out was checked: " << r.err;
  // convert checks --out before loading the checkpoint.
  auto c = test::run_cli("convert --checkpoint /nonexistent --tokens /nonexistent --no-plots --out '" + dir + "/file'");
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.err.find("--out: " + dir + "/file cannot be used as an output directory"), std::string::npos) << c.err;
  // The results file itself is a symlink: refused before any point runs, the link kept.
  fs::create_directory(dir + "/out");
  fs::create_symlink(dir + "/file", dir + "/out/comparison_results.json");
  auto s = test::run_cli(quick(dir + "/out"));
  EXPECT_EQ(s.exit_code, 2);
  EXPECT_NE(s.err.find("refusing to write " + dir + "/out/comparison_results.json: it exists and is a symbolic link"), std::string::npos) << s.err;
  EXPECT_EQ(s.err.find("[  1/"), std::string::npos) << s.err;
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(dir + "/out/comparison_results.json")));
  // Not writable (root may write anywhere: then only the other checks apply).
  if (::geteuid() != 0) {
    fs::create_directory(dir + "/ro");
    fs::permissions(dir + "/ro", fs::perms::owner_read | fs::perms::owner_exec);
    auto t = test::run_cli(quick(dir + "/ro/sub"));
    EXPECT_EQ(t.exit_code, 2);
    EXPECT_NE(t.err.find("is not writable"), std::string::npos) << t.err;
  }
}

class Interrupt : public ::testing::TestWithParam<int> {};

TEST_P(Interrupt, SweepKeepsItsPointsAsPartialAndLeavesNoTempFile) {
  const int sig = GetParam();
  const std::string dir = test::temp_dir("interrupt_" + std::to_string(sig)), out = dir + "/out", err = dir + "/err.txt";
  // Many short points: the signal lands while the sweep is running.
  std::vector<std::string> args{"compare", "--models", "Linear", "DeltaNet", "--workloads", "prefill", "--seq_lengths"};
  for (int n = 16; n <= 16 + 40 * 8; n += 8) args.push_back(std::to_string(n));
  for (const char* a : {"--repeats", "20", "--warmup", "0", "--threads", "1", "--out"}) args.push_back(a);
  args.push_back(out);
  const pid_t pid = test::spawn_cli(args, err);
  // Wait until the third point has started.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (slurp(err).find("[  3/") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_NE(slurp(err).find("[  3/"), std::string::npos) << slurp(err);
  ::kill(pid, sig);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  const std::string text = slurp(err);
  ASSERT_TRUE(WIFEXITED(status)) << text;
  EXPECT_EQ(WEXITSTATUS(status), 2) << text;
  const nlohmann::json j = nlohmann::json::parse(slurp(out + "/comparison_results.json"));
  EXPECT_EQ(j["partial"], true);
  EXPECT_NE(j["partial_reason"].get<std::string>().find(sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)"), std::string::npos);
  EXPECT_GE(j["runs"].size(), 2u);
  EXPECT_LT(j["runs"].size(), 82u);
  for (const auto& e : fs::directory_iterator(out)) EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  EXPECT_FALSE(fs::exists(out + "/report.md")) << "a partial sweep was analysed";
}

INSTANTIATE_TEST_SUITE_P(Signals, Interrupt, ::testing::Values(SIGINT, SIGTERM),
                         [](const auto& info) { return std::string(info.param == SIGINT ? "SIGINT" : "SIGTERM"); });

}  // namespace
}  // namespace bsbr

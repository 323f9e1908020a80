// Config loading: defaults, YAML and JSON, overrides, and every bad case -> one clear error, exit 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/config.hpp"
#include "core/errors.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

std::string write_tmp(const std::string& name, const std::string& text) {
  std::string dir = test::temp_dir("config");
  std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Config, DefaultsAreTheStudyDefaults) {
  Config c;
  EXPECT_EQ(c.model.vocab_size, 10000);
  EXPECT_EQ(c.model.hidden_dim, 256);
  EXPECT_EQ(c.model.num_layers, 2);
  EXPECT_EQ(c.model.num_heads, 4);
  EXPECT_EQ(c.model.ff_dim, 512);
  EXPECT_EQ(c.model.chunk_size, 32);
  EXPECT_EQ(c.model.window_size, 32);
  EXPECT_DOUBLE_EQ(c.model.beta, 0.9);
  EXPECT_DOUBLE_EQ(c.model.temperature, 1.0);
  EXPECT_EQ(c.model.expansion_factor, 2);
  EXPECT_EQ(c.model.compression_factor, 2);  // BSBR as the study ran it; "none" must be asked for
  EXPECT_EQ(c.model.batch_size, 1);
}

TEST(Config, RepositoryDefaultYamlLoads) {
  Config c = load_config(std::string(BSBR_SOURCE_DIR) + "/configs/default.yaml");
  EXPECT_EQ(c.model.compression_factor, 2);
  EXPECT_EQ(c.bench.models.size(), 7u);
  EXPECT_EQ(c.bench.seq_lengths.back(), 1024);
}

TEST(Config, JsonAndOverrides) {
  std::string p = write_tmp("c.json", R"({"model": {"hidden_dim": 128, "num_heads": 8, "compression_factor": null},
                                          "benchmark": {"seq_lengths": [7, 9], "workloads": ["decode"]}})");
  Config c = load_config(p);
  EXPECT_EQ(c.model.hidden_dim, 128);
  EXPECT_EQ(c.model.head_dim(), 16);
  EXPECT_EQ(c.model.compression_factor, 0);
  EXPECT_EQ(c.bench.workloads, std::vector<Workload>{Workload::kDecode});
  apply_override(c, "model.chunk_size=48");
  EXPECT_EQ(c.model.chunk_size, 48);
  apply_override(c, "model.feature_map=identity");
  EXPECT_EQ(c.model.feature_map, FeatureMap::kIdentity);
  EXPECT_THROW(apply_override(c, "model.chunk_size"), UserError);
  EXPECT_THROW(apply_override(c, "model.nope=1"), UserError);
}

struct BadCase {
  const char* name;
  const char* text;
  const char* expect;  // substring of the one-line message
};
// ctest shows a case by its name, not its bytes.
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, ExitTwoWithMessage) {
  const BadCase& c = GetParam();
  std::string path = write_tmp(std::string(c.name) + ".yaml", c.text);
  try {
    load_config(path);
    FAIL() << "accepted a bad config: " << c.name;
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
  }
  const std::string out = test::temp_dir("config_out") + "/not_written";
  auto r = test::run_cli("compare --config '" + path + "' --seq_lengths 8 --models Standard --out '" + out + "'");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out + "/comparison_results.json")) << "a rejected config wrote results";
  EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "expected one line, got: " << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfig,
    ::testing::Values(BadCase{"unknown_key", "model:\n  hiden_dim: 256\n", "unknown key 'model.hiden_dim'"},
                      BadCase{"unknown_section", "modle:\n  hidden_dim: 256\n", "unknown section 'modle'"},
                      BadCase{"wrong_type", "model:\n  hidden_dim: abc\n", "model.hidden_dim must be an integer"},
                      BadCase{"float_for_int", "model:\n  num_layers: 2.5\n", "model.num_layers must be an integer"},
                      BadCase{"list_for_int", "model:\n  ff_dim: [1, 2]\n", "model.ff_dim must be an integer"},
                      BadCase{"not_divisible", "model:\n  hidden_dim: 250\n  num_heads: 4\n", "must be divisible by model.num_heads"},
                      BadCase{"zero_size", "model:\n  chunk_size: 0\n", "model.chunk_size must be an integer in [1, 4194304], got 0"},
                      BadCase{"negative_size", "model:\n  num_heads: -4\n", "model.num_heads must be an integer in [1, 16384], got -4"},
                      BadCase{"negative_window", "model:\n  window_size: -1\n", "model.window_size must be an integer in [0, 4194304], got -1"},
                      BadCase{"bad_beta", "model:\n  beta: 2.5\n", "model.beta must be in (0, 2)"},
                      BadCase{"bad_enum", "model:\n  feature_map: relu\n", "feature_map must be elu1 or identity"},
                      BadCase{"bad_bool", "model:\n  normalize: maybe\n", "normalize must be true or false"},
                      BadCase{"bad_workload", "benchmark:\n  workloads: [prefil]\n", "unknown workload 'prefil'"},
                      BadCase{"bad_length", "benchmark:\n  seq_lengths: [64, -1]\n", "benchmark.seq_lengths must be an integer in [1, 4194304], got -1"},
                      BadCase{"not_yaml", "model: [unclosed\n", "not valid YAML/JSON"},
                      BadCase{"empty", "", "file is empty"},
                      BadCase{"scalar_top", "42\n", "top level must be a mapping"},
                      // Hostile shapes (issue 12): keys that are collections, nesting that would
                      // overflow yaml-cpp's recursive parser, YAML features a config never needs.
                      BadCase{"sequence_key", "model:\n  ? [chunk_size, window_size]\n  : 64\n", "a key must be a plain name, got a list (line 2)"},
                      BadCase{"mapping_key", "model:\n  ? {a: 1}\n  : 64\n", "a key must be a plain name, got a mapping"},
                      BadCase{"sequence_section", "? [model]\n: {hidden_dim: 64}\n", "a key must be a plain name, got a list"},
                      BadCase{"json_deep", "{\"model\": {\"ff_dim\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}", "nesting deeper than 32 levels"},
                      BadCase{"block_deep", "model:\n  ff_dim:\n" "    - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - 1\n", "nesting deeper than 32 levels (line 3)"},
                      BadCase{"alias_key", "model:\n  &a [x]: 1\n", "a key must be a plain name"},
                      BadCase{"tagged_map_value", "model: !!binary aGVsbG8=\n", "section 'model' must be a mapping"}),
    [](const auto& info) { return std::string(info.param.name); });

// Deep nesting is refused before yaml-cpp's recursive descent runs: 100 000 levels, which would
// otherwise exhaust yaml-cpp's own guard or the stack.
TEST(Config, VeryDeepNestingIsAUserError) {
  for (const std::string& text : {"model: " + std::string(100000, '[') + std::string(100000, ']') + "\n",
                                  [] {
                                    std::string s;
                                    for (int i = 0; i < 100000; ++i) s += "- ";
                                    return s + "x\n";
                                  }()}) {
    try {
      parse_config(text, "deep.yaml");
      ADD_FAILURE() << "accepted a deeply nested config";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("config deep.yaml: nesting deeper than 32 levels"), std::string::npos) << e.what();
    }
  }
}

TEST(Config, MissingFileIsExitTwo) {
  auto r = test::run_cli("compare --config /nonexistent/c.yaml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("config file not found: /nonexistent/c.yaml"), std::string::npos) << r.err;
}

TEST(Cli, BadFlagsAreExitTwo) {
  for (const char* args : {"compare --seq_lengths abc", "compare --models Nope --seq_lengths 8", "compare --repeats 0 --seq_lengths 8",
                           "compare --workloads sideways", "compare --set model.hidden_dim=0", "frobnicate", ""}) {
    auto r = test::run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << args << " -> " << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << args;
  }
}

TEST(Cli, HelpOnEverySubcommand) {
  auto top = test::run_cli("--help");
  EXPECT_EQ(top.exit_code, 0);
  // Every subcommand listed in the top-level help answers --help with exit 0.
  std::size_t pos = top.out.find("Subcommands:");
  ASSERT_NE(pos, std::string::npos);
  std::istringstream lines(top.out.substr(pos));
  std::string line;
  std::getline(lines, line);
  int count = 0;
  while (std::getline(lines, line)) {
    std::istringstream w(line);
    std::string name;
    if (!(w >> name)) continue;
    auto r = test::run_cli(name + " --help");
    EXPECT_EQ(r.exit_code, 0) << name;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << name;
    ++count;
  }
  EXPECT_GE(count, 1);
}

}  // namespace
}  // namespace bsbr

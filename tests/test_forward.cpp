// `bsbr-bench forward` through the CLI: the dump's numbers are the library's prefill, prefill and
// decode dumps agree for every architecture, the dump says what produced it, and bad input is one
// line with exit code 2 and no file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

std::string dir() {
  static std::string d = test::temp_dir("forward");
  return d;
}

// A small model (window 2, chunks of 4, so 9 tokens cross several windows and chunks).
const std::vector<std::string> kOverrides = {"model.vocab_size=61", "model.hidden_dim=32", "model.num_heads=2", "model.ff_dim=40",
                                             "model.window_size=2",  "model.chunk_size=4",  "model.linear_chunk_size=4",
                                             "model.compression_factor=2", "model.init_std=0.2"};
const std::string kTokens = "7 3 60 0 12 12 5 41 9";

std::string set_flags() {
  std::string s;
  for (const std::string& kv : kOverrides) s += " --set " + kv;
  return s;
}

nlohmann::json run_forward(const std::string& model, const std::string& mode) {
  const std::string path = dir() + "/" + model + "_" + mode + ".json";
  auto r = test::run_cli("forward --model " + model + " --mode " + mode + " --tokens '" + kTokens + "' --threads 2 --dump '" + path + "'" + set_flags());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(std::ifstream(path));
}

std::vector<float> flat(const nlohmann::json& rows) {
  std::vector<float> v;
  for (const auto& row : rows)
    for (const auto& x : row) v.push_back(x.get<float>());
  return v;
}

class ForwardCli : public ::testing::TestWithParam<std::string> {};

TEST_P(ForwardCli, PrefillAndDecodeDumpsAgree) {
  nlohmann::json p = run_forward(GetParam(), "prefill"), d = run_forward(GetParam(), "decode");
  ASSERT_EQ(p["logits"].size(), 9u);
  ASSERT_EQ(d["logits"].size(), 9u);
  EXPECT_EQ(p["logits"][0].size(), 61u);
  EXPECT_EQ(p["hidden"][0].size(), 32u);
  EXPECT_TRUE(test::is_close(flat(d["logits"]), flat(p["logits"]), test::within(1e-4))) << GetParam();
  EXPECT_TRUE(test::is_close(flat(d["hidden"]), flat(p["hidden"]), test::within(1e-4))) << GetParam();
  EXPECT_EQ(d["mode"], "decode");
}

TEST_P(ForwardCli, DumpEqualsLibraryPrefill) {
  nlohmann::json dump = run_forward(GetParam(), "prefill");
  Config cfg;
  for (const std::string& kv : kOverrides) apply_override(cfg, kv);
  ops::Context ctx(2);
  Model model(ctx, cfg.model, find_architecture(GetParam()));
  std::vector<int32_t> tokens = {7, 3, 60, 0, 12, 12, 5, 41, 9};
  const int64_t n = 9;
  RunShape shape;
  shape.prefill_lengths = {n};
  model.prepare(ctx, shape, LogitsMode::kAll);
  model.prefill(ctx, tokens.data(), n);
  // Same weights, same threads, same kernels: the same numbers (JSON keeps every float exactly).
  EXPECT_EQ(flat(dump["hidden"]), std::vector<float>(model.hidden(), model.hidden() + n * 32));
  EXPECT_EQ(flat(dump["logits"]), std::vector<float>(model.logits(), model.logits() + n * 61));
  // And it says what produced it.
  EXPECT_EQ(dump["model"], GetParam());
  EXPECT_EQ(dump["mode"], "prefill");
  EXPECT_EQ(dump["tokens"], nlohmann::json(tokens));
  EXPECT_EQ(dump["config"]["window_size"], "2");
  EXPECT_EQ(dump["vocab_size"], 61);
  EXPECT_TRUE(dump["weights"].is_null());
}

INSTANTIATE_TEST_SUITE_P(All, ForwardCli, ::testing::ValuesIn(architecture_names()), [](const auto& info) { return info.param; });

TEST(ForwardCliErrors, BadInputIsOneLineExitTwoAndNoFile) {
  const std::string out = dir() + "/bad.json";
  const std::string base = "forward --model Standard --dump '" + out + "'" + set_flags();
  struct Case {
    std::string args, expect;
  };
  for (const Case& c : std::vector<Case>{{base + " --tokens '3 x 5'", "'x' is not an integer"},
                                         {base + " --tokens '3.5'", "'3.5' is not an integer"},
                                         {base + " --tokens ''", "--tokens is empty"},
                                         {base + " --tokens '   '", "--tokens is empty"},
                                         {base + " --tokens '1 61'", "token id 61 (index 1) is outside the vocabulary [0, 61)"},
                                         {base + " --tokens '-1'", "token id -1 (index 0)"},
                                         {base + " --tokens '99999999999999999999'", "not an integer"},
                                         {base + " --tokens 1 --mode sideways", "sideways"},
                                         {base + " --tokens 1 --set model.hidden_dim=0", "with --set: model.hidden_dim must be an integer in [1, 16384], got 0"},
                                         {base + " --tokens 1 --config /nonexistent.yaml", "config file not found"},
                                         {base + " --tokens 1 --weights /nonexistent.safetensors", "not found"},
                                         {base + " --tokens 1 --threads -2", "--threads"},
                                         {"forward --model Nope --tokens 1 --dump '" + out + "'", "unknown model 'Nope'"},
                                         {"forward --model Standard --tokens 1", "--dump is required"},
                                         {"forward --model Standard --dump '" + out + "'", "--tokens is required"}}) {
    auto r = test::run_cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << c.args;
  }
}

TEST(ForwardCliErrors, HelpDescribesTheFlags) {
  auto r = test::run_cli("forward --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--model", "--tokens", "--mode", "--weights", "--dump", "--set", "--config"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

}  // namespace
}  // namespace bsbr

// Duplicate keys in every input that has keys (issue 12): a JSON object or YAML mapping that gives a
// key twice says two things, and the parsers would silently keep one (nlohmann the last, yaml-cpp
// both, applied in order). Each reader refuses it with one line naming the file and the key:
// --config (YAML and JSON), results files, GPT-2 config.json (and its Hugging Face aliases),
// vocab.json and merges.txt, the safetensors header. Through the parsers and through the CLI
// (exit 2, one line, no file written).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/errors.hpp"
#include "core/io.hpp"
#include "core/json_input.hpp"
#include "io/gpt2_checkpoint.hpp"
#include "io/gpt2_tokenizer.hpp"
#include "io/safetensors.hpp"
#include "ref/ref_gpt2.hpp"
#include "report/results.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

namespace fs = std::filesystem;

// f() must throw a UserError whose message contains every fragment.
void expect_refused(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "accepted; expected an error with '" << fragments.front() << "'";
  } catch (const UserError& e) {
    for (const std::string& s : fragments) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
  }
}

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// ---- the shared JSON parser ----------------------------------------------------------------------

TEST(DuplicateKeys, JsonParserRefusesAKeyGivenTwiceInOneObject) {
  expect_refused([] { parse_json_input(R"({"a": 1, "a": 2})", "input x.json"); }, {"input x.json: duplicate key 'a' at a"});
  expect_refused([] { parse_json_input(R"({"runs": [{"n": 1}, {"n": 2, "m": 0, "n": 3}]})", "input x.json"); },
                 {"duplicate key 'n' at runs[1].n"});
  expect_refused([] { parse_ordered_json_input(R"({"o": {"k": {}, "k": []}})", "input y.json"); }, {"input y.json: duplicate key 'k' at o.k"});
  // A control character in the key stays on one line.
  expect_refused([] { parse_json_input("{\"a\\nb\": 1, \"a\\nb\": 2}", "input z.json"); }, {"duplicate key 'a\\x0ab'"});
  // The same key in different objects, and equal values under different keys, are fine.
  EXPECT_NO_THROW(parse_json_input(R"({"a": {"k": 1}, "b": {"k": 1}, "c": [{"k": 1}, {"k": 2}]})", "ok.json"));
  EXPECT_NO_THROW(parse_ordered_json_input(R"({"a": {"k": 1}, "b": {"k": 1}})", "ok.json"));
}

// ---- --config -------------------------------------------------------------------------------------

TEST(DuplicateKeys, ConfigYamlAndJson) {
  expect_refused([] { parse_config("model:\n  chunk_size: 32\n  window_size: 8\n  chunk_size: 64\n", "c.yaml"); },
                 {"config c.yaml: key 'model.chunk_size' appears twice (lines 2 and 4)"});
  expect_refused([] { parse_config("benchmark:\n  repeats: 3\nmodel:\n  chunk_size: 8\nbenchmark:\n  warmup: 1\n", "c.yaml"); },
                 {"config c.yaml: section 'benchmark' appears twice (lines 1 and 5)"});
  expect_refused([] { parse_config(R"({"model": {"window_size": 16, "window_size": 8}})", "c.json"); },
                 {"config c.json: key 'model.window_size' appears twice"});
  expect_refused([] { parse_config(R"({"model": {"seed": 1}, "model": {"seed": 2}})", "c.json"); }, {"config c.json: section 'model' appears twice"});
  // Flow and block style, quoted and plain: the same key.
  expect_refused([] { parse_config("model: {chunk_size: 8, \"chunk_size\": 16}\n", "c.yaml"); }, {"key 'model.chunk_size' appears twice"});
  // The same key name in both sections is two keys.
  EXPECT_NO_THROW(parse_config("model:\n  chunk_size: 8\nbenchmark:\n  repeats: 2\n", "ok.yaml"));
}

// ---- results files --------------------------------------------------------------------------------

TEST(DuplicateKeys, ResultsFiles) {
  expect_refused([] { parse_results(R"({"seq_lengths": [8], "time_results": {"A": {"8": 1.0}, "A": {"8": 2.0}}})", "r.json"); },
                 {"results file r.json: duplicate key 'A' at time_results.A"});
  expect_refused([] { parse_results(R"({"seq_lengths": [8], "seq_lengths": [16], "time_results": {"A": {"8": 1.0}}})", "r.json"); },
                 {"results file r.json: duplicate key 'seq_lengths'"});
  expect_refused([] { parse_results(R"({"seq_lengths": [8], "time_results": {"A": {"8": 1.0, "8": 3.0}}})", "r.json"); },
                 {"duplicate key '8' at time_results.A.8"});
}

// ---- GPT-2 config.json ----------------------------------------------------------------------------

const std::string kGpt2 = R"("model_type": "gpt2", "n_head": 2, "n_layer": 1, "n_positions": 16, "vocab_size": 11)";

TEST(DuplicateKeys, Gpt2ConfigAndItsAliases) {
  expect_refused([] { parse_gpt2_config("{" + kGpt2 + R"(, "n_embd": 8, "n_embd": 16})", "config.json"); },
                 {"GPT-2 config config.json: duplicate key 'n_embd'"});
  // Hugging Face's alias of the same setting with another value.
  expect_refused([] { parse_gpt2_config("{" + kGpt2 + R"(, "n_embd": 8, "hidden_size": 16})", "config.json"); },
                 {"GPT-2 config config.json: 'hidden_size' = 16 disagrees with 'n_embd' = 8"});
  expect_refused([] { parse_gpt2_config("{" + kGpt2 + R"(, "n_embd": 8, "max_position_embeddings": 1024})", "config.json"); },
                 {"'max_position_embeddings' = 1024 disagrees with 'n_positions' = 16"});
  // An alias that agrees is the same statement twice: accepted.
  EXPECT_NO_THROW(parse_gpt2_config("{" + kGpt2 + R"(, "n_embd": 8, "hidden_size": 8, "num_hidden_layers": 1})", "config.json"));
}

// ---- tokenizer files ------------------------------------------------------------------------------

TEST(DuplicateKeys, TokenizerVocabularyAndMerges) {
  const std::string vocab = R"({"a": 0, "b": 1, "ab": 2})", merges = "#version: 0.2\na b\n";
  EXPECT_NO_THROW(Gpt2Tokenizer::from_text(vocab, merges, "vocab.json", "merges.txt"));
  expect_refused([&] { Gpt2Tokenizer::from_text(R"({"a": 0, "b": 1, "ab": 2, "a": 3})", merges, "vocab.json", "merges.txt"); },
                 {"vocabulary vocab.json: duplicate key 'a'"});
  expect_refused([&] { Gpt2Tokenizer::from_text(vocab, "#version: 0.2\na b\nb a\na b\n", "vocab.json", "merges.txt"); },
                 {"BPE merges merges.txt:4: the pair \"a b\" is listed twice (lines 2 and 4)"});
}

// ---- safetensors header ---------------------------------------------------------------------------

std::vector<unsigned char> safetensors_bytes(const std::string& header, std::size_t data_bytes) {
  std::vector<unsigned char> b(8 + header.size() + data_bytes, 0);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>((header.size() >> (8 * i)) & 0xff);
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

TEST(DuplicateKeys, SafetensorsHeader) {
  const std::string a0 = R"("a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  const std::string a1 = R"("a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]})";
  auto ok = safetensors_bytes("{" + a0 + "}", 8);
  EXPECT_EQ(parse_safetensors_layout(ok.data(), ok.size(), "w.safetensors").tensors.size(), 1u);
  auto twice = safetensors_bytes("{" + a0 + ", " + a1 + "}", 12);
  expect_refused([&] { parse_safetensors_layout(twice.data(), twice.size(), "w.safetensors"); },
                 {"safetensors file w.safetensors: header: duplicate key 'a' at a"});
  auto meta = safetensors_bytes(R"({"__metadata__": {"format": "pt", "format": "np"}, )" + a0 + "}", 8);
  expect_refused([&] { parse_safetensors_layout(meta.data(), meta.size(), "w.safetensors"); },
                 {"duplicate key 'format' at __metadata__.format"});
}

// ---- through the CLI: exit 2, one line naming the file and the key, nothing written ----------------

struct CliCase {
  const char* name;
  std::string file, content, args, expect;  // args: "{F}" is the file's path, "{OUT}" an empty directory
};
void PrintTo(const CliCase& c, std::ostream* os) { *os << c.name; }

class DuplicateKeyCli : public ::testing::TestWithParam<CliCase> {};

TEST_P(DuplicateKeyCli, ExitTwoOneLineNoFile) {
  const CliCase& c = GetParam();
  const std::string dir = test::temp_dir(std::string("dupkey_") + c.name), out = dir + "/out";
  fs::create_directories(out);
  const std::string path = dir + "/" + c.file;
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << c.content;
  std::string args = c.args;
  for (auto [from, to] : {std::pair<std::string, std::string>{"{F}", path}, {"{DIR}", dir}, {"{OUT}", out}})
    for (std::size_t p; (p = args.find(from)) != std::string::npos;) args.replace(p, from.size(), to);
  const test::CliResult r = test::run_cli(args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
  EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(path), std::string::npos) << "the message does not name the file: " << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_TRUE(fs::is_empty(out)) << "a refused input left files in " << out;
}

std::string safetensors_text(const std::string& header) {
  auto b = safetensors_bytes(header, 8);
  return std::string(b.begin(), b.end());
}

INSTANTIATE_TEST_SUITE_P(
    Inputs, DuplicateKeyCli,
    ::testing::Values(
        CliCase{"config_yaml", "c.yaml", "model:\n  chunk_size: 8\n  chunk_size: 16\n",
                "compare --config {F} --models Linear --workloads prefill --seq_lengths 8 --repeats 1 --out {OUT}",
                "key 'model.chunk_size' appears twice (lines 2 and 3)"},
        CliCase{"config_json", "c.json", R"({"benchmark": {"repeats": 1}, "benchmark": {"repeats": 2}})",
                "compare --config {F} --models Linear --workloads prefill --seq_lengths 8 --out {OUT}", "section 'benchmark' appears twice"},
        CliCase{"results_analyze", "r.json", R"({"seq_lengths": [8, 16], "time_results": {"A": {"8": 1.0, "16": 2.0}, "A": {"8": 5.0, "16": 9.0}}})",
                "analyze {F} --no-plots --out {OUT}", "duplicate key 'A' at time_results.A"},
        CliCase{"results_check", "r.json", R"({"seq_lengths": [8], "seq_lengths": [8], "time_results": {"A": {"8": 1.0}}})",
                "check --baseline {F} --current {F} --markdown {OUT}/summary.md", "duplicate key 'seq_lengths'"},
        CliCase{"weights", "w.safetensors", safetensors_text(R"({"embed.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, )"
                                                             R"("embed.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})"),
                "forward --model Linear --tokens '1 2' --weights {F} --dump {OUT}/f.json", "duplicate key 'embed.weight'"}),
    [](const auto& info) { return std::string(info.param.name); });

// convert: a duplicate key in the checkpoint's config.json, in its vocab.json, a merge listed twice.
TEST(DuplicateKeys, ConvertCheckpointFiles) {
  struct Case {
    const char* file;
    std::function<std::string(const std::string&)> edit;  // the file's new content from its old one
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"config.json", [](const std::string& t) { return "{\"n_layer\": 5, " + t.substr(t.find('{') + 1); }, "duplicate key 'n_layer'"},
      {"vocab.json", [](const std::string& t) { return "{\"a\": 7, " + t.substr(t.find('{') + 1); }, "duplicate key 'a'"},
      {"merges.txt", [](const std::string& t) { return t + t.substr(t.find('\n') + 1, t.find('\n', t.find('\n') + 1) - t.find('\n')); },
       "is listed twice"},
  };
  for (const Case& c : cases) {
    const std::string dir = test::temp_dir(std::string("dupkey_convert_") + c.file), ckpt = dir + "/ckpt", out = dir + "/out";
    fs::create_directories(out);
    ref::write_tiny_gpt2(ref::make_tiny_gpt2(3), ckpt);
    const std::string path = ckpt + "/" + c.file;
    const std::string edited = c.edit(read_file(path, "test file"));
    std::ofstream(path, std::ios::binary | std::ios::trunc) << edited;
    std::ofstream(dir + "/text.txt") << "the theater in the sun, then the end.";
    const test::CliResult r = test::run_cli("convert --checkpoint " + ckpt + " --text " + dir + "/text.txt --no-speed --no-plots --out " + out);
    EXPECT_EQ(r.exit_code, 2) << c.file << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.file << ": " << r.err;
    EXPECT_NE(r.err.find(path), std::string::npos) << "the message does not name the file: " << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_TRUE(fs::is_empty(out)) << c.file;
  }
}

}  // namespace
}  // namespace bsbr

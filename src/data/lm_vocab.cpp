#include "data/lm_vocab.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "core/json_input.hpp"
#include "io/gpt2_tokenizer.hpp"

namespace bsbr {

namespace {
// GPT-2's vocabulary is 50,257; anything this large is not a BPE vocabulary this tool reads.
constexpr int64_t kMaxSourceVocab = 1 << 24;

void check_source(int64_t vocab, int64_t eot, const std::string& what) {
  if (vocab < 2 || vocab > kMaxSourceVocab)
    throw UserError(what + ": source_vocab_size " + std::to_string(vocab) + " is outside [2, " + std::to_string(kMaxSourceVocab) + "]");
  if (eot < 0 || eot >= vocab)
    throw UserError(what + ": source_eot " + std::to_string(eot) + " is outside [0, source_vocab_size)");
}
}  // namespace

LmVocab LmVocab::build(const TokenSplit& train, int32_t gpt2_vocab, int32_t gpt2_eot, int64_t size) {
  check_source(gpt2_vocab, gpt2_eot, "lm vocabulary");
  if (size < kMinSize || size > kMaxSize)
    throw UserError("--vocab " + std::to_string(size) + " is outside [" + std::to_string(kMinSize) + ", " + std::to_string(kMaxSize) + "]");
  std::vector<int64_t> count(static_cast<size_t>(gpt2_vocab), 0);
  for (int32_t t : train.tokens) {
    if (t < 0 || t >= gpt2_vocab) throw UserError("lm vocabulary: token id " + std::to_string(t) + " is outside the source vocabulary");
    ++count[static_cast<size_t>(t)];
  }
  std::vector<int32_t> order;
  for (int32_t id = 0; id < gpt2_vocab; ++id)
    if (id != gpt2_eot && count[static_cast<size_t>(id)] > 0) order.push_back(id);
  // Descending count, ties by the smaller id: a total order, so the map is reproducible.
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const int64_t ca = count[static_cast<size_t>(a)], cb = count[static_cast<size_t>(b)];
    return ca != cb ? ca > cb : a < b;
  });
  if (static_cast<int64_t>(order.size()) > size - 2) order.resize(static_cast<size_t>(size - 2));
  LmVocab v;
  v.source_vocab_ = gpt2_vocab;
  v.source_eot_ = gpt2_eot;
  v.source_ids_ = std::move(order);
  v.index();
  return v;
}

void LmVocab::index() {
  to_compact_.assign(static_cast<size_t>(source_vocab_), kUnk);
  to_compact_[static_cast<size_t>(source_eot_)] = kEot;
  for (size_t i = 0; i < source_ids_.size(); ++i) to_compact_[static_cast<size_t>(source_ids_[i])] = static_cast<int32_t>(i + 2);
}

std::string LmVocab::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = "bsbr-lm-vocab";
  j["version"] = 1;
  j["source_vocab_size"] = source_vocab_;
  j["source_eot"] = source_eot_;
  j["source_ids"] = source_ids_;
  return j.dump() + "\n";
}

LmVocab LmVocab::from_json(const std::string& text, const std::string& what) {
  const nlohmann::json j = parse_json_input(text, what);
  if (!j.is_object()) throw UserError(what + ": expected a JSON object");
  for (const auto& [key, value] : j.items()) {
    (void)value;
    if (key != "format" && key != "version" && key != "source_vocab_size" && key != "source_eot" && key != "source_ids")
      throw UserError(what + ": unknown key '" + key + "'");
  }
  auto need = [&](const char* key) -> const nlohmann::json& {
    if (!j.contains(key)) throw UserError(what + ": missing key '" + std::string(key) + "'");
    return j.at(key);
  };
  if (!need("format").is_string() || need("format").get<std::string>() != "bsbr-lm-vocab")
    throw UserError(what + ": format must be \"bsbr-lm-vocab\"");
  if (!need("version").is_number_integer() || need("version").get<int64_t>() != 1)
    throw UserError(what + ": version must be 1");
  const auto& jv = need("source_vocab_size");
  const auto& je = need("source_eot");
  if (!jv.is_number_integer() || !je.is_number_integer())
    throw UserError(what + ": source_vocab_size and source_eot must be integers");
  const int64_t vocab = jv.get<int64_t>(), eot = je.get<int64_t>();
  check_source(vocab, eot, what);
  const auto& ids = need("source_ids");
  if (!ids.is_array()) throw UserError(what + ": source_ids must be an array");
  if (static_cast<int64_t>(ids.size()) + 2 > kMaxSize || static_cast<int64_t>(ids.size()) + 2 > vocab + 1)
    throw UserError(what + ": source_ids has " + std::to_string(ids.size()) + " entries, more than the vocabulary allows");
  LmVocab v;
  v.source_vocab_ = static_cast<int32_t>(vocab);
  v.source_eot_ = static_cast<int32_t>(eot);
  std::vector<char> seen(static_cast<size_t>(vocab), 0);
  v.source_ids_.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& e = ids[i];
    const std::string at = what + ": source_ids[" + std::to_string(i) + "]";
    if (!e.is_number_integer()) throw UserError(at + " is not an integer");
    const int64_t id = e.get<int64_t>();
    if (id < 0 || id >= vocab) throw UserError(at + " = " + std::to_string(id) + " is outside [0, source_vocab_size)");
    if (id == eot) throw UserError(at + " is <|endoftext|>, which is compact id 0 already");
    if (seen[static_cast<size_t>(id)]) throw UserError(at + " = " + std::to_string(id) + " appears twice");
    seen[static_cast<size_t>(id)] = 1;
    v.source_ids_.push_back(static_cast<int32_t>(id));
  }
  v.index();
  return v;
}

void LmVocab::save(const std::string& path) const { write_file_atomic(path, to_json()); }

LmVocab LmVocab::load(const std::string& path) { return from_json(read_file(path, "lm vocabulary"), "lm vocabulary " + path); }

int32_t LmVocab::source_id(int32_t c) const {
  if (c == kEot) return source_eot_;
  if (c == kUnk) return -1;
  if (c < 0 || c >= size()) throw UserError("compact token id " + std::to_string(c) + " is outside the lm vocabulary");
  return source_ids_[static_cast<size_t>(c - 2)];
}

int32_t LmVocab::compact(int32_t gpt2_id) const {
  if (gpt2_id < 0 || gpt2_id >= source_vocab_)
    throw UserError("token id " + std::to_string(gpt2_id) + " is outside the source vocabulary of " + std::to_string(source_vocab_));
  return to_compact_[static_cast<size_t>(gpt2_id)];
}

TokenSplit LmVocab::map(const TokenSplit& split) const {
  TokenSplit out = split;
  for (int32_t& t : out.tokens) t = compact(t);
  return out;
}

BrownTokens LmVocab::map(const BrownTokens& tokens) const {
  BrownTokens out;
  out.train = map(tokens.train);
  out.validation = map(tokens.validation);
  out.test = map(tokens.test);
  out.eot = kEot;
  return out;
}

double unk_share(const TokenSplit& mapped) {
  const int64_t text = mapped.text_tokens();
  if (text <= 0) return 0;
  const auto unk = std::count(mapped.tokens.begin(), mapped.tokens.end(), LmVocab::kUnk);
  return static_cast<double>(unk) / static_cast<double>(text);
}

}  // namespace bsbr

namespace bsbr {

namespace {
BrownTokens gpt2_brown_tokens(const std::string& brown_dir, const std::string& gpt2_dir) {
  const std::vector<BrownDocument> docs = read_brown_corpus(brown_dir);
  const Gpt2Tokenizer tok(gpt2_dir + "/encoder.json", gpt2_dir + "/vocab.bpe");
  return tokenize_brown(docs, tok);
}

LmData finish(LmVocab vocab, const BrownTokens& gpt2) {
  LmData d;
  d.tokens = vocab.map(gpt2);
  d.vocab = std::move(vocab);
  d.unk_train = unk_share(d.tokens.train);
  d.unk_validation = unk_share(d.tokens.validation);
  d.unk_test = unk_share(d.tokens.test);
  return d;
}
}  // namespace

LmData load_lm_data(const std::string& brown_dir, const std::string& gpt2_dir, int64_t vocab_size) {
  const BrownTokens gpt2 = gpt2_brown_tokens(brown_dir, gpt2_dir);
  // tokenize_brown checked the tokenizer is GPT-2's: its last id is <|endoftext|>.
  return finish(LmVocab::build(gpt2.train, gpt2.eot + 1, gpt2.eot, vocab_size), gpt2);
}

LmData load_lm_data(const std::string& brown_dir, const std::string& gpt2_dir, const LmVocab& vocab) {
  const BrownTokens gpt2 = gpt2_brown_tokens(brown_dir, gpt2_dir);
  if (vocab.source_vocab() != gpt2.eot + 1 || vocab.source_eot() != gpt2.eot)
    throw UserError("lm vocabulary: its source vocabulary (" + std::to_string(vocab.source_vocab()) + " ids, <|endoftext|> = " +
                    std::to_string(vocab.source_eot()) + ") is not the tokenizer's in " + gpt2_dir);
  return finish(vocab, gpt2);
}

}  // namespace bsbr

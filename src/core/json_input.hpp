// Parsing JSON that comes from outside (results files, safetensors headers, GPT-2 config.json,
// vocab.json): one function, so every reader has the same limits and the same errors.
//  - nesting deeper than `max_depth` is refused while parsing (nlohmann's parser is iterative, but
//    copying, dumping and comparing a json value recurse, so a deep file would overflow the stack
//    later);
//  - a key that appears twice in one object is refused while parsing ("duplicate key 'x' at
//    runs[0].x"): nlohmann would keep the last one and drop the first silently, so a file could
//    say two things and be read as one;
//  - every nlohmann exception (syntax error, a number such as 1e999 that overflows a double,
//    invalid UTF-8) becomes a UserError "<what>: <problem> at <path>" naming the field reached,
//    e.g. "results file r.json: number overflow parsing '1e999' at runs[0].samples_s[2]".
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace bsbr {

inline constexpr int kMaxJsonDepth = 64;

// `what` names the input in the error ("results file r.json").
nlohmann::json parse_json_input(const std::string& text, const std::string& what, int max_depth = kMaxJsonDepth);
nlohmann::ordered_json parse_ordered_json_input(const std::string& text, const std::string& what, int max_depth = kMaxJsonDepth);

}  // namespace bsbr

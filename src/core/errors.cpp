// Formats invariant failures with their location.
#include "core/errors.hpp"

namespace bsbr {

void invariant_failed(const char* expr, const char* file, int line, const std::string& hint) {
  throw InvariantError(std::string(file) + ":" + std::to_string(line) + ": invariant `" + expr +
                       "` broken: " + hint);
}

}  // namespace bsbr

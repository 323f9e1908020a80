// Formats invariant failures with their location.
#include "core/errors.hpp"

#include "core/checked.hpp"

namespace bsbr {

void invariant_failed(const char* expr, const char* file, int line, const std::string& hint) {
  throw InvariantError(std::string(file) + ":" + std::to_string(line) + ": invariant `" + expr +
                       "` broken: " + hint);
}

void size_overflow(const char* what) {
  throw SizeError(std::string(what) + " does not fit in 64 bits: the sizes asked for are too large (README \"Errors and limits\")");
}

}  // namespace bsbr

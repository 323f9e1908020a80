// Shared by the libFuzzer targets: run one parser on the input. A UserError (the parser refusing
// bad input with a message) is the normal outcome; anything else escapes and is a finding: an
// uncaught exception aborts, a crash, sanitizer report or hang is caught by libFuzzer, which keeps
// the input that caused it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/errors.hpp"

namespace bsbr::fuzz {

template <class F>
int run(F&& parse) {
  try {
    parse();
  } catch (const UserError&) {
  }
  return 0;
}

inline std::string text(const uint8_t* data, std::size_t size) { return std::string(reinterpret_cast<const char*>(data), size); }

}  // namespace bsbr::fuzz

// Error handling, two levels (see README "Errors"):
//  - UserError: bad input (config, results file, weights, CLI flag). main() prints one line and
//    exits with code 2. Never a crash, never a silent default.
//  - InvariantError: a broken internal invariant. Stops with file:line and a hint (exit code 3).
// A failing benchmark point (unsupported, out of memory) is not an error: it is recorded in the
// results as skipped/failed with its reason and the sweep continues (bench/runner.hpp).
#pragma once
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace bsbr {

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InvariantError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Runs f(); std::bad_alloc becomes a UserError "out of memory while <what>" (exit 2), so a failed
// allocation names the operation and the settings behind it instead of a bare "out of memory".
template <class F>
decltype(auto) out_of_memory_as_error(const std::string& what, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const std::bad_alloc&) {
    throw UserError("out of memory while " + what);
  }
}

[[noreturn]] void invariant_failed(const char* expr, const char* file, int line, const std::string& hint);

}  // namespace bsbr

// BSBR_CHECK(cond, hint): stops with "file:line: invariant `cond` broken: hint".
#define BSBR_CHECK(cond, hint)                                              \
  do {                                                                      \
    if (!(cond)) ::bsbr::invariant_failed(#cond, __FILE__, __LINE__, (hint)); \
  } while (0)

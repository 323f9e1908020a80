// Checked size arithmetic. The validated ranges (core/limits.hpp, README "Errors and limits") keep
// every size the tool computes far below 2^63, but a product of several in-range values (batch x
// length x width x layers) can still exceed it. Sizes that decide an allocation, a loop bound or
// the memory guard are therefore computed with these helpers: an overflow throws SizeError naming
// what was being sized, instead of wrapping around (undefined behaviour for int64_t, a too-small
// buffer for size_t).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/errors.hpp"

namespace bsbr {

// A size that does not fit in 64 bits: the input asked for more than any machine holds.
// A UserError (exit 2 outside a benchmark point; a point records it as skipped).
class SizeError : public UserError {
 public:
  using UserError::UserError;
};

[[noreturn]] void size_overflow(const char* what);

inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) size_overflow(what);
  return r;
}
inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) size_overflow(what);
  return r;
}
inline std::size_t checked_mul(std::size_t a, std::size_t b, const char* what) {
  std::size_t r;
  if (__builtin_mul_overflow(a, b, &r)) size_overflow(what);
  return r;
}
inline std::size_t checked_add(std::size_t a, std::size_t b, const char* what) {
  std::size_t r;
  if (__builtin_add_overflow(a, b, &r)) size_overflow(what);
  return r;
}
// The product of non-negative int64 factors, checked.
template <class... T>
int64_t checked_product(const char* what, int64_t first, T... rest) {
  int64_t r = first;
  ((r = checked_mul(r, static_cast<int64_t>(rest), what)), ...);
  return r;
}

}  // namespace bsbr

// Per-element closeness of a computed tensor to its reference, shared by `compare --verify` and the
// tests: element i passes when both values are finite and |a_i - b_i| <= atol + rtol * |b_i|
// (b is the reference). No global scaling: an error confined to a small term fails as surely as
// one in the largest, and a non-finite value on either side fails (a NaN reference never matches).
#pragma once
#include <cstdint>
#include <string>

namespace bsbr {

struct Tolerance {
  double atol = 0, rtol = 0;
};

struct Closeness {
  int64_t count = 0;       // elements compared
  int64_t violations = 0;  // elements outside the tolerance (non-finite ones included)
  int64_t first = -1;      // index of the first violation, -1 if none
  // The worst element: the largest |a - b| / (atol + rtol |b|) (a non-finite element is infinitely
  // bad; the first such wins). worst_ratio <= 1 when everything passes.
  int64_t worst = -1;
  float worst_a = 0, worst_b = 0;
  double worst_ratio = 0;
  double max_abs_error = 0;  // max |a - b| over the finite pairs
  Tolerance tol;
  bool ok() const { return violations == 0; }
  // One line for a failure message or a results `reason`:
  // "12 of 4096 outside |a-b| <= 1e-05 + 1e-05|b|; worst [17]: 0.512 vs 0.498 (|a-b| 0.014, 1.4e+03x the tolerance)".
  std::string describe() const;
};

// a: computed [n], b: reference [n].
Closeness compare_close(const float* a, const float* b, int64_t n, Tolerance tol);

}  // namespace bsbr

// Per-element closeness (see compare.hpp).
#include "core/compare.hpp"

#include <cmath>
#include <cstdio>
#include <limits>

namespace bsbr {

Closeness compare_close(const float* a, const float* b, int64_t n, Tolerance tol) {
  Closeness c;
  c.count = n;
  c.tol = tol;
  for (int64_t i = 0; i < n; ++i) {
    const double x = a[i], y = b[i];
    double ratio;
    if (!std::isfinite(x) || !std::isfinite(y)) {
      ratio = std::numeric_limits<double>::infinity();
    } else {
      const double err = std::fabs(x - y), bound = tol.atol + tol.rtol * std::fabs(y);
      if (err > c.max_abs_error) c.max_abs_error = err;
      // bound 0 (atol = rtol = 0) asks for equality: any difference is infinitely bad.
      ratio = err == 0 ? 0 : bound > 0 ? err / bound : std::numeric_limits<double>::infinity();
    }
    if (ratio > 1) {
      ++c.violations;
      if (c.first < 0) c.first = i;
    }
    if (c.worst < 0 || ratio > c.worst_ratio) {
      c.worst = i;
      c.worst_ratio = ratio;
      c.worst_a = a[i];
      c.worst_b = b[i];
    }
  }
  return c;
}

std::string Closeness::describe() const {
  char buf[320];
  if (worst < 0) {
    std::snprintf(buf, sizeof buf, "no elements compared");
  } else if (!std::isfinite(worst_a) || !std::isfinite(worst_b)) {
    std::snprintf(buf, sizeof buf, "%lld of %lld outside |a-b| <= %.3g + %.3g|b|; non-finite at [%lld]: %g vs reference %g",
                  static_cast<long long>(violations), static_cast<long long>(count), tol.atol, tol.rtol, static_cast<long long>(worst),
                  static_cast<double>(worst_a), static_cast<double>(worst_b));
  } else {
    std::snprintf(buf, sizeof buf,
                  "%lld of %lld outside |a-b| <= %.3g + %.3g|b|; worst [%lld]: %.7g vs reference %.7g (|a-b| %.3g, %.3gx the tolerance)",
                  static_cast<long long>(violations), static_cast<long long>(count), tol.atol, tol.rtol, static_cast<long long>(worst),
                  static_cast<double>(worst_a), static_cast<double>(worst_b), std::fabs(static_cast<double>(worst_a) - worst_b), worst_ratio);
  }
  return buf;
}

}  // namespace bsbr

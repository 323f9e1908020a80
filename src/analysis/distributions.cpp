// Student's t and normal distributions (see distributions.hpp).
#include "analysis/distributions.hpp"

#include <cmath>
#include <limits>

#include "core/errors.hpp"

namespace bsbr::analysis {

namespace {

// Continued fraction for I_x(a, b), valid (fast-converging) for x < (a + 1) / (a + b + 2).
double beta_continued_fraction(double a, double b, double x) {
  constexpr double kTiny = 1e-300, kEps = 1e-15;
  constexpr int kMaxIterations = 1000;
  const double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= kMaxIterations; ++m) {
    const double m2 = 2.0 * m;
    // even step: d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    // odd step: d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < kEps) return h;
  }
  return h;  // converged to double precision well before this for the a, b analyze uses
}

}  // namespace

double regularized_incomplete_beta(double a, double b, double x) {
  BSBR_CHECK(a > 0 && b > 0, "incomplete beta needs a, b > 0");
  BSBR_CHECK(x >= 0 && x <= 1, "incomplete beta needs x in [0, 1]");
  if (x == 0 || x == 1) return x;
  // front factor x^a (1-x)^b / (a B(a, b)), in logs
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return std::exp(log_front) * beta_continued_fraction(a, b, x) / a;
  // symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges fast
  return 1 - std::exp(log_front) * beta_continued_fraction(b, a, 1 - x) / b;
}

double student_t_cdf(double t, double dof) {
  BSBR_CHECK(dof > 0, "t distribution needs dof > 0");
  if (std::isinf(t)) return t > 0 ? 1.0 : 0.0;
  const double tail = 0.5 * regularized_incomplete_beta(dof / 2, 0.5, dof / (dof + t * t));  // P(T > |t|)
  return t >= 0 ? 1 - tail : tail;
}

double student_t_quantile(double p, double dof) {
  BSBR_CHECK(p > 0 && p < 1, "t quantile needs p in (0, 1)");
  if (p < 0.5) return -student_t_quantile(1 - p, dof);
  if (p == 0.5) return 0;
  // Bracket [0, hi] with cdf(hi) >= p, then bisect.
  double lo = 0, hi = 1;
  while (student_t_cdf(hi, dof) < p) {
    lo = hi;
    hi *= 2;
    BSBR_CHECK(hi < 1e300, "t quantile bracket diverged");
  }
  for (int i = 0; i < 200 && hi - lo > 1e-13 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, dof) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

}  // namespace bsbr::analysis

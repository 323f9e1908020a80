// Vectorisable float math for the hand GEMV's element-wise post-ops (gemv.cpp's apply_eltwise),
// built on fast_exp (kernels.hpp).
//
// Why: libm's expm1f / erff / tanhf are scalar calls. In a decode step the QKV projection's elu + 1
// and the FFN's GELU ran one call per output column: at 2 threads on the 2-core box the layer's QKV
// job took 10.6 us, 6.5 us with these (per-job timings of an instrumented build).
//
// Each is accurate to a few 1e-7, relative (erf above 0.5: 1.5e-7 absolute), as oneDNN's own
// vectorised kernels, built the same way (a range-reduced exp polynomial; Abramowitz & Stegun
// 7.1.26 for erf, as oneDNN's GELU-erf kernel); tests/test_ops.cpp checks each against
// double-precision libm. Written so that every loop of apply_eltwise vectorises on AVX2 as well as
// AVX-512: no floorf, and branches chosen by integer compares of the bits (under the default
// -ftrapping-math GCC turns a float compare into a vector select only with AVX-512's masks; see
// fast_exp).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

#include "ops/kernels.hpp"

namespace bsbr::ops::vmath {

// |x| < 0.5 by the bits (NaN: false).
inline bool below_half(float x) { return (std::bit_cast<int32_t>(x) & 0x7fffffff) < std::bit_cast<int32_t>(0.5f); }
// x > 0 by the bits (+0: false; a NaN with the sign bit clear: true).
inline bool positive(float x) { return std::bit_cast<int32_t>(x) > 0; }
// c ? a : b as a blend of the bits: both sides are computed anyway, and GCC if-converts neither a
// ?: whose sides may trap nor one it sank into branches, on AVX2 ("control flow in loop").
inline float select(bool c, float a, float b) {
  const int32_t mask = -static_cast<int32_t>(c);
  return std::bit_cast<float>((std::bit_cast<int32_t>(a) & mask) | (std::bit_cast<int32_t>(b) & ~mask));
}

// e^x - 1: for |x| < 0.5 its Taylor series to x^8 / 8! (truncation < 6e-9), so small x keeps its
// relative accuracy; elsewhere e^x - 1 (|result| >= 0.39, the subtraction loses nothing).
inline float expm1(float x) {
  float p = 1.f / 40320.f;
  p = p * x + 1.f / 5040.f;
  p = p * x + 1.f / 720.f;
  p = p * x + 1.f / 120.f;
  p = p * x + 1.f / 24.f;
  p = p * x + 1.f / 6.f;
  p = p * x + 0.5f;
  const float series = (p * x + 1.f) * x;
  const float direct = fast_exp(x) - 1.f;
  return select(below_half(x), series, direct);
}

// erf(x): for |x| < 0.5 its Maclaurin series to x^11 (2/sqrt(pi) sum (-1)^i x^(2i+1) / (i! (2i+1)),
// truncation < 2e-8), which keeps small x's relative accuracy; above, Abramowitz & Stegun 7.1.26
// (absolute error <= 1.5e-7): 1 - t (a1 + t (a2 + ...)) e^-x^2, t = 1 / (1 + p |x|). Odd in x.
inline float erf(float x) {
  const float x2 = x * x;
  float s = 1.f / 1320.f;  // the x^11 term's 1 / (5! 11)
  s = s * x2 - 1.f / 216.f;
  s = s * x2 + 1.f / 42.f;
  s = s * x2 - 1.f / 10.f;
  s = s * x2 + 1.f / 3.f;
  s = s * x2 - 1.f;
  const float series = -1.12837916709551257f * s * x;  // 2 / sqrt(pi) (x - x^3 / 3 + ...)
  const float t = 1.f / (1.f + 0.3275911f * std::fabs(x));
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float tail = std::copysign(1.f - p * t * fast_exp(-x2), x);
  return select(below_half(x), series, tail);
}

// tanh(x) = e / (e + 2) with e = e^{2|x|} - 1 (expm1 keeps small x's relative accuracy; a large e
// gives 1). Odd in x.
inline float tanh(float x) {
  const float e = expm1(2.f * std::fabs(x));
  return std::copysign(e / (e + 2.f), x);
}

inline float sigmoid(float x) { return 1.f / (1.f + fast_exp(-x)); }

}  // namespace bsbr::ops::vmath

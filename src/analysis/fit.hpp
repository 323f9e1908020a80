// Scaling fits of time against sequence length (SPEC §5): the study's power law with R² on the
// log scale, a 95% interval for its exponent, a non-negative linear + quadratic fit that separates
// O(n) from O(n²) cost, and the local exponent over the largest lengths.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bsbr::analysis {

// log t = a + b log n by ordinary least squares (the study's estimator: numpy.polyfit on the logs).
struct PowerLawFit {
  double a = 0, b = 0;     // t ≈ e^a · n^b
  double r_squared = 0;    // 1 - SS_res / SS_tot on the log scale (1 when every log t is equal: a perfect flat fit)
  int points = 0;
  // 95% interval for b: b ± t_{0.975, k-2} · se(b), se(b)² = (SS_res / (k - 2)) / Σ (log n_i - mean)².
  // Undefined (nullopt) with only 2 points: no residual degrees of freedom.
  std::optional<double> b_low, b_high;
};

// Needs >= 2 distinct n and every t > 0 (callers validate user data first; a violation here is a bug).
PowerLawFit fit_power_law(const std::vector<int64_t>& n, const std::vector<double>& t, double confidence = 0.95);

// t ≈ α n + γ n² with α, γ >= 0, least squares on relative residuals (t_i - α n_i - γ n_i²) / t_i so
// every length counts the same although times span orders of magnitude. Exact two-variable NNLS:
// the unconstrained solution if both coefficients are >= 0, else the better of the two
// single-term fits (the constrained optimum of a convex quadratic in 2 variables lies on an axis).
struct LinearQuadraticFit {
  double alpha = 0;  // seconds per token
  double gamma = 0;  // seconds per token²
  double quadratic_share = 0;  // γ N² / (α N + γ N²) at the largest length N
  double rms_relative_error = 0;  // sqrt(mean of squared relative residuals)
  int64_t largest_n = 0;
};
LinearQuadraticFit fit_linear_quadratic(const std::vector<int64_t>& n, const std::vector<double>& t);

// The power-law exponent over the `count` largest lengths only (the asymptotic trend the global fit
// averages away); nullopt with fewer than `count` points.
std::optional<double> local_exponent(const std::vector<int64_t>& n, const std::vector<double>& t, int count = 3);

// Everything analyze fits to one series (one model under one workload).
struct ScalingFit {
  PowerLawFit power_law;
  std::optional<double> local_exponent;  // over the 3 largest lengths
  LinearQuadraticFit linear_quadratic;
};
ScalingFit fit_scaling(const std::vector<int64_t>& n, const std::vector<double>& t);

// The study's name for an exponent range: b < 0.2 "O(1)"; [0.2, 1.2) "≈ O(n)"; [1.2, 1.5)
// "≈ O(n log n)"; [1.5, 1.8) "≈ O(n·w)"; [1.8, 2.2) "≈ O(n²)"; else none.
std::string complexity_class(double b);
// The study's full label, e.g. "O(n^0.70) ≈ O(n)", "O(1)", "O(n^2.61)".
std::string complexity_label(double b);

}  // namespace bsbr::analysis

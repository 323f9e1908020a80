// Scaling fits (see fit.hpp).
#include "analysis/fit.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "analysis/distributions.hpp"
#include "core/errors.hpp"

namespace bsbr::analysis {

namespace {

void check_series(const std::vector<int64_t>& n, const std::vector<double>& t) {
  BSBR_CHECK(n.size() == t.size(), "lengths and times differ in size");
  for (std::size_t i = 0; i < n.size(); ++i) BSBR_CHECK(n[i] > 0 && t[i] > 0 && std::isfinite(t[i]), "fit needs positive n and t");
  BSBR_CHECK(std::adjacent_find(n.begin(), n.end(), std::not_equal_to<>()) != n.end(), "fit needs >= 2 distinct lengths");
}

}  // namespace

PowerLawFit fit_power_law(const std::vector<int64_t>& n, const std::vector<double>& t, double confidence) {
  check_series(n, t);
  const std::size_t k = n.size();
  std::vector<double> x(k), y(k);  // x = log n, y = log t
  for (std::size_t i = 0; i < k; ++i) {
    x[i] = std::log(static_cast<double>(n[i]));
    y[i] = std::log(t[i]);
  }
  const double x_mean = std::accumulate(x.begin(), x.end(), 0.0) / k;
  const double y_mean = std::accumulate(y.begin(), y.end(), 0.0) / k;
  double sxx = 0, sxy = 0, ss_tot = 0;
  for (std::size_t i = 0; i < k; ++i) {
    sxx += (x[i] - x_mean) * (x[i] - x_mean);
    sxy += (x[i] - x_mean) * (y[i] - y_mean);
    ss_tot += (y[i] - y_mean) * (y[i] - y_mean);
  }
  PowerLawFit f;
  f.points = static_cast<int>(k);
  f.b = sxy / sxx;
  f.a = y_mean - f.b * x_mean;
  double ss_res = 0;
  for (std::size_t i = 0; i < k; ++i) {
    const double r = y[i] - (f.a + f.b * x[i]);
    ss_res += r * r;
  }
  // A flat series fits perfectly; numpy would report 0/0. Rounding can leave ss_res a hair above 0.
  f.r_squared = ss_tot > 0 ? 1 - ss_res / ss_tot : 1.0;
  if (k > 2) {
    const double dof = static_cast<double>(k - 2);
    const double se_b = std::sqrt(ss_res / dof / sxx);
    const double half = student_t_quantile(0.5 + confidence / 2, dof) * se_b;
    f.b_low = f.b - half;
    f.b_high = f.b + half;
  }
  return f;
}

LinearQuadraticFit fit_linear_quadratic(const std::vector<int64_t>& n, const std::vector<double>& t) {
  check_series(n, t);
  const std::size_t k = n.size();
  // Relative residual r_i = 1 - α u_i - γ v_i with u_i = n_i / t_i, v_i = n_i² / t_i.
  double suu = 0, suv = 0, svv = 0, su = 0, sv = 0;
  for (std::size_t i = 0; i < k; ++i) {
    const double nn = static_cast<double>(n[i]);
    const double u = nn / t[i], v = nn * nn / t[i];
    suu += u * u;
    suv += u * v;
    svv += v * v;
    su += u;
    sv += v;
  }
  auto rss = [&](double alpha, double gamma) {
    double s = 0;
    for (std::size_t i = 0; i < k; ++i) {
      const double nn = static_cast<double>(n[i]);
      const double r = 1 - (alpha * nn + gamma * nn * nn) / t[i];
      s += r * r;
    }
    return s;
  };
  double alpha = -1, gamma = -1;
  const double det = suu * svv - suv * suv;
  if (det > 1e-12 * suu * svv) {  // normal equations [suu suv; suv svv] [α γ]ᵀ = [su sv]ᵀ
    alpha = (su * svv - sv * suv) / det;
    gamma = (sv * suu - su * suv) / det;
  }
  if (alpha < 0 || gamma < 0) {
    const double alpha_only = su / suu, gamma_only = sv / svv;  // single-term least squares
    if (rss(alpha_only, 0) <= rss(0, gamma_only)) {
      alpha = alpha_only;
      gamma = 0;
    } else {
      alpha = 0;
      gamma = gamma_only;
    }
  }
  LinearQuadraticFit f;
  f.alpha = alpha;
  f.gamma = gamma;
  f.largest_n = *std::max_element(n.begin(), n.end());
  const double big = static_cast<double>(f.largest_n);
  f.quadratic_share = gamma * big * big / (alpha * big + gamma * big * big);
  f.rms_relative_error = std::sqrt(rss(alpha, gamma) / static_cast<double>(k));
  return f;
}

std::optional<double> local_exponent(const std::vector<int64_t>& n, const std::vector<double>& t, int count) {
  if (static_cast<int>(n.size()) < count) return std::nullopt;
  std::vector<std::size_t> order(n.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) { return n[i] > n[j]; });
  std::vector<int64_t> top_n;
  std::vector<double> top_t;
  for (int i = 0; i < count; ++i) {
    top_n.push_back(n[order[i]]);
    top_t.push_back(t[order[i]]);
  }
  return fit_power_law(top_n, top_t).b;
}

ScalingFit fit_scaling(const std::vector<int64_t>& n, const std::vector<double>& t) {
  return ScalingFit{fit_power_law(n, t), local_exponent(n, t), fit_linear_quadratic(n, t)};
}

std::string complexity_class(double b) {
  if (b < 0.2) return "O(1)";
  if (b < 1.2) return "≈ O(n)";
  if (b < 1.5) return "≈ O(n log n)";
  if (b < 1.8) return "≈ O(n·w)";
  if (b < 2.2) return "≈ O(n²)";
  return "";
}

std::string complexity_label(double b) {
  if (b < 0.2) return "O(1)";
  char buf[32];
  std::snprintf(buf, sizeof buf, "O(n^%.2f)", b);
  const std::string cls = complexity_class(b);
  return cls.empty() ? std::string(buf) : std::string(buf) + " " + cls;
}

}  // namespace bsbr::analysis

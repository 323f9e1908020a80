// The few probability distributions analyze and check need, implemented here so no statistics
// library is a dependency: Student's t (for the 95% interval of a fitted exponent) and the
// standard normal (Mann-Whitney's large-sample approximation).
#pragma once

namespace bsbr::analysis {

// Regularized incomplete beta I_x(a, b) for a, b > 0 and x in [0, 1] (continued fraction,
// modified Lentz; Numerical Recipes §6.4), accurate to ~1e-14.
double regularized_incomplete_beta(double a, double b, double x);

// Student's t distribution with `dof` > 0 degrees of freedom:
// CDF F(t) = 1 - I_{dof/(dof+t^2)}(dof/2, 1/2) / 2 for t >= 0, symmetric for t < 0.
double student_t_cdf(double t, double dof);
// Inverse CDF for p in (0, 1), by bisection on the CDF (monotone), to ~1e-12 relative.
double student_t_quantile(double p, double dof);

// Standard normal CDF, via erfc.
double normal_cdf(double z);

}  // namespace bsbr::analysis

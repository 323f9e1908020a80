// The statistics of `bsbr-bench ab` (see ab.hpp).
#include "analysis/ab.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "analysis/distributions.hpp"
#include "analysis/mann_whitney.hpp"
#include "bench/stats.hpp"
#include "core/errors.hpp"

namespace bsbr::analysis {

namespace {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return quantile_sorted(v, 0.5);
}

// Standard normal quantile by bisection on normal_cdf (monotone); |error| < 1e-12.
double normal_quantile(double p) {
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (normal_cdf(mid) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

LogRatioEstimate hodges_lehmann_ratio(const std::vector<double>& a, const std::vector<double>& b, double level) {
  BSBR_CHECK(!a.empty() && !b.empty(), "Hodges-Lehmann needs values on both sides");
  BSBR_CHECK(level > 0 && level < 1, "confidence level in (0, 1)");
  const int m = static_cast<int>(b.size()), n = static_cast<int>(a.size());
  std::vector<double> d;  // [m·n] differences log b_i - log a_j
  d.reserve(static_cast<std::size_t>(m) * n);
  for (double y : b)
    for (double x : a) {
      BSBR_CHECK(x > 0 && y > 0, "times are positive");
      d.push_back(std::log(y) - std::log(x));
    }
  std::sort(d.begin(), d.end());
  const int total = m * n;
  LogRatioEstimate r;
  r.ratio = std::exp(quantile_sorted(d, 0.5));
  const double gamma = (1 - level) / 2;
  // k: the largest with P0(U <= k - 1) <= gamma (1-based rank of the lower end).
  int k = 0;
  if (m <= kExactMaxSamples && n <= kExactMaxSamples) {
    const std::vector<double> counts = mann_whitney_null_counts(m, n);
    const double all = std::accumulate(counts.begin(), counts.end(), 0.0);
    double cdf = 0;  // P0(U <= k - 1) for the candidate k + 1
    while (k < total && cdf + counts[k] / all <= gamma * (1 + 1e-12)) cdf += counts[k++] / all;
  } else {
    r.exact = false;
    const double sd = std::sqrt(static_cast<double>(m) * n * (m + n + 1) / 12.0);
    k = static_cast<int>(std::floor(0.5 * total - normal_quantile(1 - gamma) * sd));  // continuity-conservative
    k = std::clamp(k, 0, total / 2);
  }
  if (k < 1) {
    r.lo = 0;
    r.hi = std::numeric_limits<double>::infinity();
  } else {
    r.lo = std::exp(d[k - 1]);
    r.hi = std::exp(d[total - k]);
  }
  return r;
}

const char* to_string(Correction c) { return c == Correction::kHolm ? "holm" : "bh"; }

Correction parse_correction(const std::string& s) {
  if (s == "holm") return Correction::kHolm;
  if (s == "bh") return Correction::kBenjaminiHochberg;
  throw UserError("--correction: '" + s + "' is not one of holm, bh");
}

namespace {
std::vector<std::size_t> ascending_order(const std::vector<double>& p) {
  std::vector<std::size_t> idx(p.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t i, std::size_t j) { return p[i] < p[j]; });
  return idx;
}
}  // namespace

std::vector<double> holm_adjust(const std::vector<double>& p) {
  const std::size_t m = p.size();
  std::vector<double> out(m);
  double running = 0;
  const std::vector<std::size_t> idx = ascending_order(p);
  for (std::size_t j = 0; j < m; ++j) {
    running = std::max(running, std::min(1.0, static_cast<double>(m - j) * p[idx[j]]));
    out[idx[j]] = running;
  }
  return out;
}

std::vector<double> bh_adjust(const std::vector<double>& p) {
  const std::size_t m = p.size();
  std::vector<double> out(m);
  double running = 1;
  const std::vector<std::size_t> idx = ascending_order(p);
  for (std::size_t j = m; j-- > 0;) {
    running = std::min(running, std::min(1.0, static_cast<double>(m) * p[idx[j]] / static_cast<double>(j + 1)));
    out[idx[j]] = running;
  }
  return out;
}

std::vector<double> adjust(const std::vector<double>& p, Correction c) {
  return c == Correction::kHolm ? holm_adjust(p) : bh_adjust(p);
}

double min_attainable_p(int m, int n) {
  // 1 / C(m + n, m) as a running product, in doubles (no overflow for realistic sizes).
  double c = 1;
  for (int i = 1; i <= std::min(m, n); ++i) c = c * (std::max(m, n) + i) / i;
  return 1 / c;
}

void AbOptions::validate() const {
  if (!(delta >= 0 && delta < 10)) throw UserError("--delta must be in [0, 10) (a fraction: 0.05 = 5 %), got " + std::to_string(delta));
  if (!(alpha > 0 && alpha < 1)) throw UserError("--alpha must be in (0, 1), got " + std::to_string(alpha));
}

const char* to_string(AbVerdict v) {
  switch (v) {
    case AbVerdict::kSame: return "same";
    case AbVerdict::kSlower: return "SLOWER";
    case AbVerdict::kFaster: return "faster";
    case AbVerdict::kFailed: return "FAILED in B";
    case AbVerdict::kNotCompared: return "not compared";
  }
  return "?";
}

AbAnalysis analyze_ab(std::vector<AbPointInput> inputs, const AbOptions& options) {
  options.validate();
  AbAnalysis out;
  std::vector<std::size_t> tested;  // indices of points with values on both sides
  int min_rounds_a = std::numeric_limits<int>::max(), min_rounds_b = std::numeric_limits<int>::max();
  for (AbPointInput& in : inputs) {
    AbPoint p;
    p.input = std::move(in);
    if (!p.input.problem.empty()) {
      p.verdict = p.input.failed_in_b ? AbVerdict::kFailed : AbVerdict::kNotCompared;
      out.failed += p.input.failed_in_b;
    } else {
      BSBR_CHECK(!p.input.a.empty() && !p.input.b.empty(), "a compared point has values on both sides");
      p.median_a = median_of(p.input.a);
      p.median_b = median_of(p.input.b);
      p.ratio = p.median_b / p.median_a;
      p.hl = hodges_lehmann_ratio(p.input.a, p.input.b);
      const MannWhitneyResult slower = mann_whitney_greater(p.input.b, p.input.a);
      const MannWhitneyResult faster = mann_whitney_greater(p.input.a, p.input.b);
      p.p_slower = slower.p_value;
      p.p_faster = faster.p_value;
      p.p_exact = slower.exact;
      tested.push_back(out.points.size());
      min_rounds_a = std::min(min_rounds_a, static_cast<int>(p.input.a.size()));
      min_rounds_b = std::min(min_rounds_b, static_cast<int>(p.input.b.size()));
    }
    out.points.push_back(std::move(p));
  }
  std::vector<double> ps, pf;
  for (std::size_t i : tested) {
    ps.push_back(out.points[i].p_slower);
    pf.push_back(out.points[i].p_faster);
  }
  const std::vector<double> ps_adj = adjust(ps, options.correction), pf_adj = adjust(pf, options.correction);
  for (std::size_t t = 0; t < tested.size(); ++t) {
    AbPoint& p = out.points[tested[t]];
    p.p_slower_adj = ps_adj[t];
    p.p_faster_adj = pf_adj[t];
    if (p.p_slower_adj < options.alpha && p.hl.lo > 1 + options.delta) {
      p.verdict = AbVerdict::kSlower;
      ++out.slower;
    } else if (p.p_faster_adj < options.alpha && p.hl.hi < 1 / (1 + options.delta)) {
      p.verdict = AbVerdict::kFaster;
      ++out.faster;
    }
  }
  out.compared = static_cast<int>(tested.size());
  if (!tested.empty()) {
    out.min_p = min_attainable_p(min_rounds_a, min_rounds_b);
    // Both corrections first compare the smallest p with alpha / m.
    out.blind = out.min_p * static_cast<double>(tested.size()) >= options.alpha;
  }
  return out;
}

AaSummary summarize_aa(const AbAnalysis& a, const AbOptions& options) {
  AaSummary s;
  std::vector<double> ratios;
  for (const AbPoint& p : a.points) {
    if (!p.input.problem.empty()) continue;
    ratios.push_back(p.hl.ratio);
    if (std::isfinite(p.hl.hi) && p.hl.lo > 0) {
      ++s.bounded;
      s.max_lo_excess = std::max(s.max_lo_excess, p.hl.lo - 1);
      s.max_hi_shortfall = std::max(s.max_hi_shortfall, 1 / p.hl.hi - 1);
    }
    s.raw_p_below_alpha += p.p_slower < options.alpha;
    s.adjusted_p_below_alpha += p.p_slower_adj < options.alpha;
  }
  s.points = static_cast<int>(ratios.size());
  if (ratios.empty()) return s;
  std::sort(ratios.begin(), ratios.end());
  s.ratio_min = ratios.front();
  s.ratio_max = ratios.back();
  s.ratio_p05 = quantile_sorted(ratios, 0.05);
  s.ratio_p50 = quantile_sorted(ratios, 0.5);
  s.ratio_p95 = quantile_sorted(ratios, 0.95);
  s.suggested_delta = s.bounded == 0 ? std::nan("") : std::ceil(std::max(s.max_lo_excess, s.max_hi_shortfall) * 100 - 1e-9) / 100 + 0.01;
  return s;
}

}  // namespace bsbr::analysis

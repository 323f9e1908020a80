// The statistics of `bsbr-bench ab` (README "bsbr-bench ab"): per (model, workload, n), baseline A
// and candidate B each give one value per valid round (the median of that round's k samples; the
// round, one worker process, is the independent replicate). From them:
//  - ratio B/A of the medians of the round medians;
//  - the Hodges-Lehmann estimate of the shift log B - log A with its distribution-free interval
//    from the Mann-Whitney null distribution (exact up to kExactMaxSamples rounds a side, normal
//    approximation above), reported as a ratio exp(shift) with [lo, hi];
//  - one-sided Mann-Whitney p-values (B slower, B faster), adjusted across all points with Holm
//    (default: controls the chance of any false alarm, what a CI gate needs) or Benjamini-Hochberg;
//  - slower when p_adj(slower) < alpha AND lo > 1 + delta; faster when p_adj(faster) < alpha AND
//    hi < 1 / (1 + delta) (informational).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.hpp"

namespace bsbr::analysis {

// The interval's two-sided confidence level (its lower bound is a 97.5 % one-sided bound).
inline constexpr double kAbConfidence = 0.95;

// Hodges-Lehmann: shift = median of the m·n differences log b_i - log a_j; the interval is
// [D_(k), D_(mn+1-k)] of the sorted differences, k the largest with P0(U <= k - 1) <= (1 - level) / 2.
// With too few values for that level the interval is unbounded (lo = 0, hi = +inf).
struct LogRatioEstimate {
  double ratio = 1;          // exp(HL shift)
  double lo = 0, hi = 0;     // exp of the interval's ends
  bool exact = true;         // exact null distribution vs normal approximation
};
// Both samples non-empty and positive (times).
LogRatioEstimate hodges_lehmann_ratio(const std::vector<double>& a, const std::vector<double>& b, double level = kAbConfidence);

enum class Correction { kHolm, kBenjaminiHochberg };
const char* to_string(Correction c);
Correction parse_correction(const std::string& s);  // "holm" | "bh"; UserError otherwise
// Adjusted p-values in the input order, each in [0, 1]. Holm: step-down max_{j<=i} (m - j + 1) p_(j);
// BH: step-up min_{j>=i} m p_(j) / j.
std::vector<double> holm_adjust(const std::vector<double>& p);
std::vector<double> bh_adjust(const std::vector<double>& p);
std::vector<double> adjust(const std::vector<double>& p, Correction c);

// The smallest one-sided p-value m + n values can give (exact, no ties): 1 / C(m + n, m).
double min_attainable_p(int m, int n);

struct AbOptions {
  double delta = 0.05;  // noise floor from A/A runs: the interval must clear 1 + delta
  double alpha = 0.05;  // on adjusted p-values
  Correction correction = Correction::kHolm;
  void validate() const;  // UserError naming the flag
};

enum class AbVerdict { kSame, kSlower, kFaster, kFailed, kNotCompared };
const char* to_string(AbVerdict v);

// One point's round values (seconds; per token for decode), in round order.
struct AbPointInput {
  std::string model;
  Workload workload = Workload::kPrefill;
  int64_t n = 0;
  int64_t threads = 0;       // A's thread count at this point (points pair by it too)
  std::vector<double> a, b;  // one value per valid round
  std::string problem;       // non-empty: the point could not be compared (why); failed_in_b marks B's failure
  bool failed_in_b = false;  // ok in A, failed or skipped in B: counts as slower
};

struct AbPoint {
  AbPointInput input;
  double median_a = 0, median_b = 0, ratio = 1;  // ratio = median_b / median_a
  LogRatioEstimate hl;
  double p_slower = 1, p_faster = 1, p_slower_adj = 1, p_faster_adj = 1;
  bool p_exact = true;
  AbVerdict verdict = AbVerdict::kSame;
};

struct AbAnalysis {
  std::vector<AbPoint> points;
  int compared = 0, slower = 0, faster = 0, failed = 0;
  // True when even the most extreme result could not pass the corrected test (too few rounds for
  // this many points): the gate could not have flagged anything.
  bool blind = false;
  double min_p = 1;  // smallest attainable raw p with the rounds that were run
};

AbAnalysis analyze_ab(std::vector<AbPointInput> inputs, const AbOptions& options);

// A/A calibration summary: across the compared points, the spread of the HL ratio, of the
// interval's ends and of the p-values, and the delta that would have kept every point unflagged.
struct AaSummary {
  int points = 0;
  int bounded = 0;               // points whose interval is finite (enough rounds); the excursions use these
  double ratio_min = 1, ratio_max = 1, ratio_p05 = 1, ratio_p50 = 1, ratio_p95 = 1;
  double max_lo_excess = 0;      // max over points of lo - 1 (how far an interval cleared 1 upward)
  double max_hi_shortfall = 0;   // max over points of 1 / hi - 1 (downward)
  int raw_p_below_alpha = 0;     // one-sided slower p < alpha before correction (expect ~alpha of points)
  int adjusted_p_below_alpha = 0;
  // max(max_lo_excess, max_hi_shortfall) rounded up to 0.01, plus 0.01; NaN when no interval is bounded.
  double suggested_delta = 0;
};
AaSummary summarize_aa(const AbAnalysis& a, const AbOptions& options);

}  // namespace bsbr::analysis

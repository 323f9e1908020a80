// Regression check (see check.hpp).
#include "analysis/check.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "analysis/fit.hpp"
#include "core/errors.hpp"

namespace bsbr::analysis {

namespace {

using Key = std::tuple<std::string, Workload, int64_t, int64_t>;  // model, workload, n, threads

// The calibration GFLOP/s a file's points at `threads` are normalised by (its own count's).
double calibration_of(const Results& r, const char* which, int64_t threads) {
  auto g = r.calibration_attainable_gflops_at(threads);
  if (!g)
    throw UserError(std::string(which) + " results have no calibration at " + std::to_string(threads) +
                    " threads (check normalises each file's times by its calibration GFLOP/s at the point's thread count; the file "
                    "must come from bsbr-bench compare)");
  return *g;
}

// The calibration of the file's first thread count (for the report's header line).
double first_calibration(const Results& r, const char* which) {
  const std::vector<int64_t> counts = r.thread_counts();
  if (counts.empty()) {
    auto g = r.calibration_attainable_gflops();
    if (!g) throw UserError(std::string(which) + " results have no calibration (the file must come from bsbr-bench compare)");
    return *g;
  }
  return calibration_of(r, which, counts.front());
}

bool selected(const CheckOptions& o, const RunRecord& run) {
  const bool model_ok = o.models.empty() || std::find(o.models.begin(), o.models.end(), run.problem.model) != o.models.end();
  const bool workload_ok = o.workloads.empty() || std::find(o.workloads.begin(), o.workloads.end(), run.problem.workload) != o.workloads.end();
  return model_ok && workload_ok;
}

std::map<Key, const RunRecord*> index_runs(const Results& r, const CheckOptions& o) {
  std::map<Key, const RunRecord*> out;
  for (const RunRecord& run : r.runs)
    if (selected(o, run)) out[{run.problem.model, run.problem.workload, run.problem.n, run.threads}] = &run;
  return out;
}

std::vector<double> scaled(const std::vector<double>& samples, double factor) {
  std::vector<double> out(samples);
  for (double& x : out) x *= factor;
  return out;
}

PointComparison compare_point(const RunRecord& base, const RunRecord& cur, double g_base, double g_cur, const CheckOptions& o) {
  PointComparison p;
  p.model = cur.problem.model;
  p.workload = cur.problem.workload;
  p.n = cur.problem.n;
  p.threads = cur.threads;
  p.baseline_median_s = base.stats.median;
  p.current_median_s = cur.stats.median;
  p.baseline_samples = static_cast<int>(base.samples_s.size());
  p.current_samples = static_cast<int>(cur.samples_s.size());
  p.ratio = (cur.stats.median * g_cur) / (base.stats.median * g_base);
  if (p.ratio > 1 + o.threshold) p.verdict = Verdict::kSlower;
  else if (p.ratio < 1 / (1 + o.threshold)) p.verdict = Verdict::kFaster;
  p.underpowered = p.baseline_samples < kMinSamplesForTest || p.current_samples < kMinSamplesForTest;
  if (!p.underpowered) p.test = mann_whitney_greater(scaled(cur.samples_s, g_cur), scaled(base.samples_s, g_base));
  p.regression = p.verdict == Verdict::kSlower && (p.underpowered || p.test->p_value < o.alpha);
  return p;
}

void exponent_gate(const std::map<Key, const RunRecord*>& base, const std::map<Key, const RunRecord*>& cur, const CheckOptions& o,
                   CheckResult& out) {
  // Lengths where both files have an ok run, per (model, workload, threads).
  using Series = std::tuple<std::string, Workload, int64_t>;
  std::map<Series, std::vector<int64_t>> common;
  std::set<Series> series;
  for (const auto& [key, run] : cur) {
    auto it = base.find(key);
    if (it == base.end()) continue;
    const Series id{std::get<0>(key), std::get<1>(key), std::get<3>(key)};
    series.insert(id);
    if (run->status == "ok" && it->second->status == "ok") common[id].push_back(std::get<2>(key));
  }
  const bool several_counts = std::any_of(series.begin(), series.end(), [&](const Series& id) { return std::get<2>(id) != std::get<2>(*series.begin()); });
  for (const auto& id : series) {
    const auto& [model, workload, threads] = id;
    const std::vector<int64_t>& lengths = common[id];
    if (static_cast<int>(lengths.size()) < kMinLengthsForGate) {
      out.gate_skipped.push_back(model + " " + to_string(workload) + (several_counts ? " threads=" + std::to_string(threads) : "") + ": " +
                                 std::to_string(lengths.size()) + " common lengths (the gate needs " + std::to_string(kMinLengthsForGate) + ")");
      continue;
    }
    std::vector<double> t_base, t_cur;
    for (int64_t n : lengths) {
      t_base.push_back(base.at({model, workload, n, threads})->stats.median);
      t_cur.push_back(cur.at({model, workload, n, threads})->stats.median);
    }
    ExponentComparison e;
    e.model = model;
    e.workload = workload;
    e.threads = threads;
    e.seq_lengths = lengths;
    e.baseline_b = fit_power_law(lengths, t_base).b;
    e.current_b = fit_power_law(lengths, t_cur).b;
    e.regression = e.current_b - e.baseline_b > o.exponent_tolerance;
    out.exponents.push_back(e);
  }
}

}  // namespace

void CheckOptions::validate() const {
  if (!(threshold >= 0) || threshold > 100) throw UserError("--threshold must be a fraction >= 0 (0.10 = 10% slower)");
  if (!(alpha > 0 && alpha < 1)) throw UserError("--alpha must be in (0, 1)");
  if (!(exponent_tolerance >= 0)) throw UserError("--exponent-tolerance must be >= 0");
}

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::kFaster:
      return "faster";
    case Verdict::kSame:
      return "same";
    case Verdict::kSlower:
      return "slower";
  }
  return "?";
}

int CheckResult::regressions() const {
  int count = 0;
  for (const auto& p : points) count += p.regression;
  for (const auto& e : exponents) count += e.regression;
  for (const auto& u : unpaired) count += u.regression;
  return count;
}

void require_confirmation(CheckResult& r, const CheckResult& confirmation, const std::string& confirmation_source) {
  r.confirmed_by = confirmation_source;
  std::set<Key> points;
  std::set<std::tuple<std::string, Workload, int64_t>> exponents;
  for (const auto& p : confirmation.points)
    if (p.regression) points.insert({p.model, p.workload, p.n, p.threads});
  for (const auto& u : confirmation.unpaired)
    if (u.regression) points.insert({u.model, u.workload, u.n, u.threads});
  for (const auto& e : confirmation.exponents)
    if (e.regression) exponents.insert({e.model, e.workload, e.threads});
  auto confirm = [](auto& item, bool reproduced) {
    if (item.regression && !reproduced) {
      item.regression = false;
      item.unconfirmed = true;
    }
  };
  for (auto& p : r.points) confirm(p, points.count({p.model, p.workload, p.n, p.threads}) > 0);
  for (auto& u : r.unpaired) confirm(u, points.count({u.model, u.workload, u.n, u.threads}) > 0);
  for (auto& e : r.exponents) confirm(e, exponents.count({e.model, e.workload, e.threads}) > 0);
}

CheckResult check_regressions(const Results& baseline, const Results& current, const CheckOptions& o) {
  o.validate();
  // Version 2 changed what a decode point times (context n in every sample, not a drifting
  // position), so times of different versions are not comparable.
  if (baseline.schema_version != current.schema_version)
    throw UserError("baseline has schema_version " + std::to_string(baseline.schema_version) + ", current has " +
                    std::to_string(current.schema_version) + ": their points measure different things (schema 2: every decode "
                    "sample at context n); regenerate the baseline with this build (README, Refreshing the baseline)");
  CheckResult out;
  out.baseline_gflops = first_calibration(baseline, "baseline");
  out.current_gflops = first_calibration(current, "current");
  for (const std::string& m : o.models)
    if (std::find(baseline.models.begin(), baseline.models.end(), m) == baseline.models.end() &&
        std::find(current.models.begin(), current.models.end(), m) == current.models.end())
      throw UserError("--models " + m + " is in neither file");

  const auto base = index_runs(baseline, o), cur = index_runs(current, o);
  for (const auto& [key, b] : base) {
    const auto& [model, w, n, threads] = key;
    auto it = cur.find(key);
    if (it == cur.end()) {
      out.unpaired.push_back({model, w, n, "missing from current", false, false, threads});
      continue;
    }
    const RunRecord& c = *it->second;
    if (b->status == "ok" && c.status == "ok") {
      out.points.push_back(compare_point(*b, c, calibration_of(baseline, "baseline", threads), calibration_of(current, "current", threads), o));
    } else if (b->status == "ok") {
      // A point that ran before and fails now is a regression; one skipped by the memory guard
      // depends on the machine and is only reported.
      out.unpaired.push_back({model, w, n, c.status + " in current: " + c.reason, c.status == "failed", false, threads});
    } else {
      out.unpaired.push_back({model, w, n, b->status + " in baseline: " + b->reason, false, false, threads});
    }
  }
  for (const auto& [key, c] : cur)
    if (!base.count(key))
      out.unpaired.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), "new in current (no baseline)", false, false, std::get<3>(key)});
  // Nothing to compare is unusable input (exit 2), unless a point that ran in the baseline fails
  // now: that is a regression (exit 1) even when no point has timings on both sides.
  const bool failed_now = std::any_of(out.unpaired.begin(), out.unpaired.end(), [](const auto& u) { return u.regression; });
  if (out.points.empty() && !failed_now)
    throw UserError("no (model, workload, n, threads) point has ok timings in both files" +
                    std::string(o.models.empty() && o.workloads.empty() ? "" : " after --models/--workloads") + ": nothing to check");
  exponent_gate(base, cur, o, out);
  // Present in the current file's model order, then workload, then n.
  auto model_rank = [&](const std::string& m) { return std::find(current.models.begin(), current.models.end(), m) - current.models.begin(); };
  auto by_rank = [&](const auto& a, const auto& b) {
    return std::make_tuple(a.threads, model_rank(a.model), a.workload, a.n) < std::make_tuple(b.threads, model_rank(b.model), b.workload, b.n);
  };
  std::stable_sort(out.points.begin(), out.points.end(), by_rank);
  std::stable_sort(out.unpaired.begin(), out.unpaired.end(), by_rank);
  std::stable_sort(out.exponents.begin(), out.exponents.end(), [&](const auto& a, const auto& b) {
    return std::make_tuple(a.threads, model_rank(a.model), a.workload) < std::make_tuple(b.threads, model_rank(b.model), b.workload);
  });
  return out;
}

}  // namespace bsbr::analysis

// Check reports (see check_report.hpp): one set of tables rendered for the terminal or Markdown.
#include "report/check_report.hpp"

#include <algorithm>
#include <cstdio>

#include "report/console.hpp"

namespace bsbr {

namespace {

using analysis::CheckOptions;
using analysis::CheckResult;


std::string p_value(double p) {
  char buf[40];
  std::snprintf(buf, sizeof buf, p < 0.001 ? "%.1e" : "%.3f", p);
  return buf;
}

std::string point_verdict(const analysis::PointComparison& p, const CheckOptions& o) {
  if (p.regression) return p.underpowered ? "REGRESSION (threshold only: underpowered)" : "REGRESSION";
  if (p.unconfirmed) return "slower, not reproduced by the confirmation sweep";
  if (p.verdict == analysis::Verdict::kSlower) return "slower, not significant (p >= " + format_fixed(o.alpha, 2) + ")";
  return to_string(p.verdict);
}

// A thread sweep's points pair by (model, workload, n, threads): its n cells name the count.
bool several_thread_counts(const CheckResult& r) {
  std::vector<int64_t> t;
  for (const auto& p : r.points) t.push_back(p.threads);
  for (const auto& u : r.unpaired) t.push_back(u.threads);
  return std::any_of(t.begin(), t.end(), [&](int64_t x) { return x != t.front(); });
}

std::string n_cell(int64_t n, int64_t threads, bool several) { return std::to_string(n) + (several ? " t=" + std::to_string(threads) : ""); }

std::vector<ReportTable> sections(const CheckResult& r, const CheckOptions& o) {
  std::vector<ReportTable> out;
  const bool several = several_thread_counts(r);
  ReportTable points{"points: normalised median ratio current / baseline (times x own calibration GFLOP/s); slower = ratio > " +
                     format_fixed(1 + o.threshold, 2) + " and one-sided Mann-Whitney p < " + format_fixed(o.alpha, 2),
                 {"model", "workload", "n", "baseline", "current", "ratio", "p", "samples", "verdict"},
                 {},
                 {}};
  for (const auto& p : r.points) {
    const std::string unit = p.workload == Workload::kDecode ? "/tok" : "";
    points.rows.push_back({p.model, to_string(p.workload), n_cell(p.n, p.threads, several), format_seconds(p.baseline_median_s) + unit,
                           format_seconds(p.current_median_s) + unit, format_fixed(p.ratio, 3) + "x",
                           p.test ? p_value(p.test->p_value) + (p.test->exact ? "" : " (approx.)") : "underpowered",
                           std::to_string(p.baseline_samples) + " / " + std::to_string(p.current_samples), point_verdict(p, o)});
  }
  out.push_back(points);
  if (!r.exponents.empty()) {
    ReportTable gate{"complexity gate: fitted exponent b (log t = a + b log n) over the lengths both files have; fails when b grows by > " +
                     format_fixed(o.exponent_tolerance, 2),
                 {"model", "workload", "lengths", "b baseline", "b current", "change", "verdict"},
                 {},
                 {}};
    for (const auto& e : r.exponents)
      gate.rows.push_back({e.model + (several ? " t=" + std::to_string(e.threads) : ""), to_string(e.workload),
                           std::to_string(e.seq_lengths.front()) + ".." + std::to_string(e.seq_lengths.back()) + " (" +
                               std::to_string(e.seq_lengths.size()) + ")",
                           format_fixed(e.baseline_b, 2), format_fixed(e.current_b, 2), (e.current_b >= e.baseline_b ? "+" : "") + format_fixed(e.current_b - e.baseline_b, 2),
                           e.regression ? "REGRESSION" : e.unconfirmed ? "grew, not reproduced by the confirmation sweep" : "ok"});
    out.push_back(gate);
  }
  if (!r.unpaired.empty()) {
    ReportTable unpaired{"points not compared", {"model", "workload", "n", "why", "verdict"}, {}, {}};
    for (const auto& u : r.unpaired)
      unpaired.rows.push_back({u.model, to_string(u.workload), n_cell(u.n, u.threads, several), u.what,
                               u.regression ? "REGRESSION" : u.unconfirmed ? "not reproduced by the confirmation sweep" : "-"});
    out.push_back(unpaired);
  }
  return out;
}

std::string header_line(const CheckResult& r, const CheckSources& s) {
  return "baseline " + s.baseline_path + " vs current " + s.current_path + "; machine speed (fastest calibration sample): " +
         format_fixed(r.baseline_gflops, 1) + " vs " + format_fixed(r.current_gflops, 1) + " GFLOP/s";
}

std::vector<std::string> notes(const CheckResult& r) {
  std::vector<std::string> out;
  int underpowered = 0;
  for (const auto& p : r.points) underpowered += p.underpowered;
  if (underpowered)
    out.push_back(std::to_string(underpowered) + " point(s) have fewer than " + std::to_string(analysis::kMinSamplesForTest) +
                  " samples on a side: the U test is underpowered there, so they were decided on the threshold alone");
  for (const std::string& g : r.gate_skipped) out.push_back("complexity gate skipped for " + g);
  if (!r.confirmed_by.empty())
    out.push_back("regressions count only when the confirmation sweep " + r.confirmed_by + " reproduces them against the same baseline");
  return out;
}

}  // namespace

std::string check_summary_line(const CheckResult& r, const CheckOptions& o) {
  int faster = 0, same = 0, slower = 0;
  for (const auto& p : r.points)
    (p.verdict == analysis::Verdict::kFaster ? faster : p.verdict == analysis::Verdict::kSame ? same : slower)++;
  int exponent_regressions = 0;
  for (const auto& e : r.exponents) exponent_regressions += e.regression;
  const int n = r.regressions();
  const bool several = several_thread_counts(r);
  int unconfirmed = 0;
  for (const auto& p : r.points) unconfirmed += p.unconfirmed;
  for (const auto& e : r.exponents) unconfirmed += e.unconfirmed;
  for (const auto& u : r.unpaired) unconfirmed += u.unconfirmed;
  std::string s = "check: " + std::to_string(r.points.size()) + " points compared: " + std::to_string(faster) + " faster, " +
                  std::to_string(same) + " same, " + std::to_string(slower) + " slower; complexity gate: " +
                  std::to_string(exponent_regressions) + " of " + std::to_string(r.exponents.size()) + " exponents grew by > " +
                  format_fixed(o.exponent_tolerance, 2) + "; " + std::to_string(r.unpaired.size()) + " points not compared; ";
  if (!r.confirmed_by.empty()) s += std::to_string(unconfirmed) + " not reproduced by the confirmation sweep; ";
  if (n == 0) return s + "no regression";
  s += std::to_string(n) + (n == 1 ? " REGRESSION:" : " REGRESSIONS:");
  for (const auto& p : r.points)
    if (p.regression) s += " " + p.model + " " + to_string(p.workload) + " n=" + n_cell(p.n, p.threads, several) + " (" + format_fixed(p.ratio, 2) + "x)";
  for (const auto& e : r.exponents)
    if (e.regression) s += " " + e.model + " " + to_string(e.workload) + " exponent " + format_fixed(e.baseline_b, 2) + "->" + format_fixed(e.current_b, 2);
  for (const auto& u : r.unpaired)
    if (u.regression) s += " " + u.model + " " + to_string(u.workload) + " n=" + n_cell(u.n, u.threads, several) + " (failed)";
  return s;
}

std::string check_text(const CheckResult& r, const CheckOptions& o, const CheckSources& src) {
  std::string s = header_line(r, src) + "\n";
  for (const ReportTable& sec : sections(r, o)) s += "\n" + render_text(sec);
  s += "\n";
  for (const std::string& n : notes(r)) s += "note: " + n + "\n";
  return s + check_summary_line(r, o) + "\n";
}

std::string check_markdown(const CheckResult& r, const CheckOptions& o, const CheckSources& src) {
  const int n = r.regressions();
  std::string s = std::string("## bsbr-bench check: ") + (n == 0 ? "no regression" : std::to_string(n) + " regression(s)") + "\n\n";
  s += header_line(r, src) + "\n\n**" + check_summary_line(r, o) + "**\n\n";
  for (const ReportTable& sec : sections(r, o)) s += render_markdown(sec);
  for (const std::string& note : notes(r)) s += "- " + note + "\n";
  return s;
}

}  // namespace bsbr

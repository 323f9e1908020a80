// ab's results file and reports (see ab_report.hpp).
#include "report/ab_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "bench/stats.hpp"
#include "report/console.hpp"

namespace bsbr {

namespace {

using nlohmann::json;
using analysis::AbPoint;
using analysis::AbVerdict;

json reading_json(const std::optional<LoadReading>& r) {
  if (!r) return nullptr;
  return {{"load1", r->load1}, {"procs_running", r->procs_running}, {"steal_ticks", r->steal_ticks}, {"total_ticks", r->total_ticks}};
}

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string p_text(double p) {
  char buf[40];
  std::snprintf(buf, sizeof buf, p < 0.001 ? "%.1e" : "%.3f", p);
  return buf;
}

std::string ratio_text(double v) { return std::isfinite(v) ? format_fixed(v, 3) : "inf"; }

// Start cost over every leg that reported one: min, median, max.
SampleStats start_costs(const RoundsResult& r) {
  std::vector<double> v;
  for (const Round& round : r.rounds)
    for (const LegRun& leg : round.legs)
      if (leg.start_cost_s >= 0) v.push_back(leg.start_cost_s);
  return v.empty() ? SampleStats{} : compute_stats(v);
}

const LegRun* first_valid_leg(const RoundsResult& r, char side) {
  for (const Round& round : r.rounds)
    if (!round.discarded)
      for (const LegRun& leg : round.legs)
        if (leg.side == side) return &leg;
  return nullptr;
}

std::vector<ReportTable> sections(const AbRun& r) {
  std::vector<ReportTable> out;
  const analysis::AbOptions& o = r.stats;
  ReportTable points{"points: B / A over " + std::to_string(r.rounds.valid) + " valid rounds (one value per round: the median of its " +
                         std::to_string(r.samples_per_round) + " samples); HL = Hodges-Lehmann ratio with its 95 % interval; p: one-sided "
                         "Mann-Whitney (B slower), " + analysis::to_string(o.correction) + "-adjusted; slower = p_adj < " +
                         format_fixed(o.alpha, 3) + " and interval above " + format_fixed(1 + o.delta, 3),
                     {"model", "workload", "n", "A median", "B median", "ratio", "HL", "95% interval", "p", "p_adj", "verdict"}};
  for (const AbPoint& p : r.analysis.points) {
    const std::string unit = p.input.workload == Workload::kDecode ? "/tok" : "";
    if (!p.input.problem.empty()) {
      points.rows.push_back({p.input.model, to_string(p.input.workload), std::to_string(p.input.n), "-", "-", "-", "-", "-", "-", "-",
                             std::string(to_string(p.verdict)) + ": " + p.input.problem});
      continue;
    }
    points.rows.push_back({p.input.model, to_string(p.input.workload), std::to_string(p.input.n), format_seconds(p.median_a) + unit,
                           format_seconds(p.median_b) + unit, format_fixed(p.ratio, 3) + "x", format_fixed(p.hl.ratio, 3) + "x",
                           "[" + ratio_text(p.hl.lo) + ", " + ratio_text(p.hl.hi) + "]", p_text(p.p_slower) + (p.p_exact ? "" : "~"),
                           p_text(p.p_slower_adj), to_string(p.verdict)});
  }
  out.push_back(points);

  ReportTable rounds{"rounds (order seeded by --seed " + std::to_string(r.rounds_options.seed) + "); start = spawn to the worker's first "
                     "point, outside every timed sample; others = runnable tasks besides ab and the worker",
                     {"round", "order", "A wall", "A start", "B wall", "B start", "others A/B", "steal A/B", "status"}};
  for (const Round& round : r.rounds.rounds) {
    const LegRun* a = nullptr;
    const LegRun* b = nullptr;
    for (const LegRun& leg : round.legs) (leg.side == 'A' ? a : b) = &leg;
    auto wall = [](const LegRun* l) { return l ? format_fixed(l->wall_s, 2) + " s" : "-"; };
    auto start = [](const LegRun* l) { return l && l->start_cost_s >= 0 ? format_fixed(l->start_cost_s, 3) + " s" : "-"; };
    auto others = [](const LegRun* l) { return l ? format_fixed(l->contention.others, 2) : "-"; };
    auto steal = [](const LegRun* l) { return l ? format_fixed(100 * l->contention.steal_share, 1) + "%" : "-"; };
    rounds.rows.push_back({std::to_string(round.index), round.order, wall(a), start(a), wall(b), start(b), others(a) + " / " + others(b),
                           steal(a) + " / " + steal(b), round.discarded ? "discarded: " + round.why : "ok"});
  }
  out.push_back(rounds);

  if (r.aa) {
    const analysis::AaSummary& s = r.aa_summary;
    ReportTable aa{"A/A calibration: the spread of B/A when B is A (choose --delta above the largest interval excursion over "
                   "several A/A runs)",
                   {"figure", "value"}};
    aa.rows = {{"points compared", std::to_string(s.points)},
               {"HL ratio min / 5% / median / 95% / max", format_fixed(s.ratio_min, 3) + " / " + format_fixed(s.ratio_p05, 3) + " / " +
                                                              format_fixed(s.ratio_p50, 3) + " / " + format_fixed(s.ratio_p95, 3) + " / " +
                                                              format_fixed(s.ratio_max, 3)},
               {"largest interval lower end above 1 (lo - 1)", format_fixed(s.max_lo_excess, 4)},
               {"largest interval upper end below 1 (1/hi - 1)", format_fixed(s.max_hi_shortfall, 4)},
               {"points with raw p < alpha (expected about alpha x points)", std::to_string(s.raw_p_below_alpha)},
               {"points with adjusted p < alpha (false alarms at delta 0)", std::to_string(s.adjusted_p_below_alpha)},
               {"points with a bounded interval (the excursions are over these)", std::to_string(s.bounded)},
               {"delta clearing every interval of this run (+0.01)",
                std::isfinite(s.suggested_delta) ? format_fixed(s.suggested_delta, 2) : "n/a: no bounded interval, run more rounds"}};
    out.push_back(aa);
  }
  return out;
}

std::string header(const AbRun& r) {
  const SampleStats sc = start_costs(r.rounds);
  std::string s = std::string(r.aa ? "A/A: " : "") + "A " + r.rounds_options.a.exe + " vs B " + r.rounds_options.b.exe;
  if (!r.b_only_args.empty()) {
    s += " (B alone:";
    for (const std::string& a : r.b_only_args) s += " " + a;
    s += ")";
  }
  s += "\nworker: <exe>";
  for (const std::string& a : r.rounds_options.a.args) s += " " + a;
  s += "\nprocess start cost (spawn -> first point, outside the timed samples): " +
       (sc.count ? format_seconds(sc.min) + " min, " + format_seconds(sc.median) + " median, " + format_seconds(sc.max) + " max over " +
                       std::to_string(sc.count) + " worker runs"
                 : std::string("not observed"));
  s += "\nrounds: " + std::to_string(r.rounds.valid) + " valid, " + std::to_string(r.rounds.discarded) + " discarded for contention, " +
       format_fixed(r.rounds.elapsed_s, 1) + " s, stopped by " + r.rounds.stopped;
  return s;
}

std::vector<std::string> notes(const AbRun& r) {
  std::vector<std::string> out;
  if (!r.unusable.empty()) out.push_back("UNUSABLE (exit 2): " + r.unusable);
  if (r.analysis.blind)
    out.push_back("with these rounds the smallest attainable p is " + p_text(r.analysis.min_p) + ": times " +
                  std::to_string(r.analysis.compared) + " points it cannot get below alpha, so no point could be flagged; run more rounds");
  if (!r.exempt_fields.empty()) {
    std::string f;
    for (const std::string& e : r.exempt_fields) f += (f.empty() ? "" : ", ") + e;
    out.push_back("fingerprint: " + f + " differ(s) on purpose (--b-set); every other field was checked equal");
  }
  for (const Round& round : r.rounds.rounds)
    for (const LegRun& leg : round.legs)
      if (!leg.contention.readable) {
        out.push_back("no contention readings (no /proc/loadavg, /proc/stat): rounds could not be judged");
        return out;
      }
  return out;
}

}  // namespace

std::string assess_usability(const RoundsResult& rounds, const analysis::AbAnalysis& analysis, int min_rounds, bool aa) {
  const std::string need = " (need --min-rounds " + std::to_string(min_rounds) + ")";
  if (rounds.valid < min_rounds && rounds.discarded > 0)
    return "the machine never got quiet: " + std::to_string(rounds.discarded) + " of " + std::to_string(rounds.rounds.size()) +
           " rounds ran under heavy contention and were discarded, leaving " + std::to_string(rounds.valid) + " valid" + need;
  if (rounds.valid < min_rounds)
    return "only " + std::to_string(rounds.valid) + " rounds fit in the budget" + need + ": raise --budget-s or shrink the point set";
  if (analysis.blind && !aa)
    return "too few rounds for the corrected test: " + std::to_string(rounds.valid) + " rounds cannot give any of " +
           std::to_string(analysis.compared) + " points an adjusted p below alpha";
  return "";
}

int ab_exit_code(const AbRun& r) {
  if (!r.unusable.empty()) return 2;
  return r.analysis.slower + r.analysis.failed > 0 ? 1 : 0;
}

std::string ab_summary_line(const AbRun& r) {
  const analysis::AbAnalysis& a = r.analysis;
  std::string s = std::string(r.aa ? "ab --aa: " : "ab: ") + std::to_string(a.points.size()) + " points, " + std::to_string(a.compared) +
                  " compared: " + std::to_string(a.slower) + " slower, " + std::to_string(a.faster) + " faster, " +
                  std::to_string(a.failed) + " failed in B; " + std::to_string(r.rounds.valid) + " valid rounds (" +
                  std::to_string(r.rounds.discarded) + " discarded)";
  if (!r.unusable.empty()) return s + "; UNUSABLE: " + r.unusable;
  for (const AbPoint& p : a.points)
    if (p.verdict == AbVerdict::kSlower || p.verdict == AbVerdict::kFailed)
      s += "; " + std::string(to_string(p.verdict)) + " " + p.input.model + " " + to_string(p.input.workload) + " n=" +
           std::to_string(p.input.n) + (p.verdict == AbVerdict::kSlower ? " (" + format_fixed(p.hl.ratio, 3) + "x)" : "");
  return s;
}

std::string ab_text(const AbRun& r) {
  std::string s = header(r) + "\n";
  for (const ReportTable& t : sections(r)) s += "\n" + render_text(t);
  s += "\n";
  for (const std::string& n : notes(r)) s += "note: " + n + "\n";
  return s + ab_summary_line(r) + "\n";
}

std::string ab_markdown(const AbRun& r) {
  const int code = ab_exit_code(r);
  std::string s = std::string("## bsbr-bench ab") + (r.aa ? " --aa" : "") + ": " +
                  (code == 2 ? "unusable" : code == 1 ? "slower point(s)" : "nothing slower") + "\n\n";
  std::string h = header(r);
  for (std::size_t i = 0; (i = h.find('\n', i)) != std::string::npos; i += 3) h.replace(i, 1, "  \n");
  s += h + "\n\n**" + ab_summary_line(r) + "**\n\n";
  for (const ReportTable& t : sections(r)) s += render_markdown(t);
  for (const std::string& n : notes(r)) s += "- " + n + "\n";
  return s;
}

json ab_to_json(const AbRun& r) {
  const RoundsOptions& ro = r.rounds_options;
  json j;
  j["schema"] = "bsbr-bench-ab";
  j["schema_version"] = kAbSchemaVersion;
  j["mode"] = r.aa ? "aa" : "ab";
  auto side = [&](char c, const WorkerSpec& w) {
    json s = {{"exe", w.exe}, {"args", w.args}};
    if (const LegRun* leg = first_valid_leg(r.rounds, c)) {
      s["environment"] = leg->results.environment;
      s["config"] = leg->results.config;
    }
    return s;
  };
  j["a"] = side('A', ro.a);
  j["b"] = side('B', ro.b);
  j["b_only_args"] = r.b_only_args;
  j["fingerprint"] = {{"scope", "settings and machine"}, {"exempt", r.exempt_fields}};
  j["options"] = {{"delta", r.stats.delta},
                  {"alpha", r.stats.alpha},
                  {"correction", analysis::to_string(r.stats.correction)},
                  {"confidence", analysis::kAbConfidence},
                  {"samples_per_round", r.samples_per_round},
                  {"budget_s", ro.budget_s},
                  {"max_rounds", ro.max_rounds},
                  {"seed", ro.seed},
                  {"contention_rule", {{"max_others", ro.rule.max_others}, {"max_steal", ro.rule.max_steal}, {"worker_threads", ro.rule.worker_threads}}}};
  json rounds = json::array();
  for (const Round& round : r.rounds.rounds) {
    json legs = json::array();
    for (const LegRun& leg : round.legs) {
      json samples = json::array();
      for (const RunRecord& rec : leg.results.runs)
        samples.push_back({{"model", rec.problem.model}, {"workload", to_string(rec.problem.workload)}, {"n", rec.problem.n},
                           {"status", rec.status}, {"unit", rec.unit}, {"samples_s", rec.samples_s}});
      legs.push_back({{"side", std::string(1, leg.side)},
                      {"exit_code", leg.exit_code},
                      {"wall_s", leg.wall_s},
                      {"start_cost_s", leg.start_cost_s >= 0 ? json(leg.start_cost_s) : json(nullptr)},
                      {"timed_s", leg.timed_s},
                      {"contention",
                       {{"before", reading_json(leg.readings.before)},
                        {"after", reading_json(leg.readings.after)},
                        {"procs_running_samples", leg.readings.running_samples},
                        {"others", leg.contention.others},
                        {"steal_share", leg.contention.steal_share},
                        {"heavy", leg.contention.heavy},
                        {"why", leg.contention.why}}},
                      {"points", samples}});
    }
    rounds.push_back({{"index", round.index}, {"order", round.order}, {"discarded", round.discarded}, {"why", round.why}, {"legs", legs}});
  }
  j["rounds"] = rounds;
  json points = json::array();
  for (const AbPoint& p : r.analysis.points)
    points.push_back({{"model", p.input.model},
                      {"workload", to_string(p.input.workload)},
                      {"n", p.input.n}, {"threads", p.input.threads},
                      {"unit", p.input.workload == Workload::kDecode ? "s/token" : "s"},
                      {"a_rounds", p.input.a},
                      {"b_rounds", p.input.b},
                      {"problem", p.input.problem},
                      {"median_a", p.median_a},
                      {"median_b", p.median_b},
                      {"ratio", p.ratio},
                      {"hl_ratio", p.hl.ratio},
                      {"ci", {finite_or_null(p.hl.lo), finite_or_null(p.hl.hi)}},
                      {"ci_exact", p.hl.exact},
                      {"p_slower", p.p_slower},
                      {"p_slower_adj", p.p_slower_adj},
                      {"p_faster", p.p_faster},
                      {"p_faster_adj", p.p_faster_adj},
                      {"p_exact", p.p_exact},
                      {"verdict", to_string(p.verdict)}});
  j["points"] = points;
  const SampleStats sc = start_costs(r.rounds);
  j["summary"] = {{"compared", r.analysis.compared},
                  {"slower", r.analysis.slower},
                  {"faster", r.analysis.faster},
                  {"failed_in_b", r.analysis.failed},
                  {"valid_rounds", r.rounds.valid},
                  {"discarded_rounds", r.rounds.discarded},
                  {"elapsed_s", r.rounds.elapsed_s},
                  {"stopped", r.rounds.stopped},
                  {"blind", r.analysis.blind},
                  {"min_attainable_p", r.analysis.min_p},
                  {"start_cost_s", {{"count", sc.count}, {"min", sc.min}, {"median", sc.median}, {"max", sc.max}}},
                  {"unusable", r.unusable},
                  {"exit_code", ab_exit_code(r)},
                  {"line", ab_summary_line(r)}};
  if (r.aa) {
    const analysis::AaSummary& s = r.aa_summary;
    j["aa"] = {{"points", s.points},           {"ratio_min", s.ratio_min},
               {"ratio_p05", s.ratio_p05},     {"ratio_p50", s.ratio_p50},
               {"ratio_p95", s.ratio_p95},     {"ratio_max", s.ratio_max},
               {"max_lo_excess", s.max_lo_excess}, {"max_hi_shortfall", s.max_hi_shortfall},
               {"raw_p_below_alpha", s.raw_p_below_alpha}, {"adjusted_p_below_alpha", s.adjusted_p_below_alpha},
               {"bounded", s.bounded},                     {"suggested_delta", finite_or_null(s.suggested_delta)}};
  }
  return j;
}

}  // namespace bsbr

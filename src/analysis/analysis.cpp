// The analysis pass (see analysis.hpp).
#include "analysis/analysis.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

#include "core/errors.hpp"
#include "report/console.hpp"

namespace bsbr::analysis {

namespace {

constexpr Workload kAllWorkloads[] = {Workload::kPrefill, Workload::kDecode,        Workload::kGenerate,
                                      Workload::kRecompute, Workload::kTrain, Workload::kTrainRecompute};

std::string join_lengths(const std::vector<int64_t>& ns) {
  std::string s;
  for (int64_t n : ns) s += (s.empty() ? "" : ", ") + std::to_string(n);
  return s;
}

// The ok runs of (model, workload), ascending n.
std::vector<const RunRecord*> ok_runs(const Results& r, const std::string& model, Workload w) {
  std::vector<const RunRecord*> out;
  for (const RunRecord& run : r.runs)
    if (run.status == "ok" && run.problem.model == model && run.problem.workload == w) out.push_back(&run);
  std::sort(out.begin(), out.end(), [](const RunRecord* a, const RunRecord* b) { return a->problem.n < b->problem.n; });
  return out;
}

bool has_any_run(const Results& r, const std::string& model, Workload w) {
  return std::any_of(r.runs.begin(), r.runs.end(),
                     [&](const RunRecord& run) { return run.problem.model == model && run.problem.workload == w; });
}

SeriesAnalysis analyse_series(const std::string& model, Workload w, const std::vector<const RunRecord*>& runs) {
  SeriesAnalysis s;
  s.fit.model = model;
  s.fit.workload = w;
  s.fit.unit = w == Workload::kDecode ? "s/token" : "s";
  std::vector<int64_t> noisy_at;
  for (const RunRecord* run : runs) {
    s.fit.seq_lengths.push_back(run->problem.n);
    s.median_s.push_back(run->stats.median);
    s.q1_s.push_back(run->stats.q1);
    s.q3_s.push_back(run->stats.q3);
    s.noisy.push_back(run->noisy);
    if (run->noisy) noisy_at.push_back(run->problem.n);
  }
  s.fit.fit = fit_scaling(s.fit.seq_lengths, s.median_s);
  s.fit.complexity = complexity_label(s.fit.fit.power_law.b);
  const double r2 = s.fit.fit.power_law.r_squared;
  if (r2 < kPoorFitRSquared)
    s.fit.notes.push_back("R² " + format_fixed(r2, 4) + " < " + format_fixed(kPoorFitRSquared, 2) +
                          ": one power law fits poorly; see the local exponent and the linear + quadratic fit");
  if (!noisy_at.empty()) s.fit.notes.push_back("noisy (cv > 10%) at n = " + join_lengths(noisy_at));
  if (runs.size() == 2) s.fit.notes.push_back("2 lengths only: no interval for b");
  return s;
}

void relative_performance(WorkloadAnalysis& wa, const std::optional<std::string>& baseline) {
  const SeriesAnalysis* base = nullptr;
  if (baseline) {
    for (const SeriesAnalysis& s : wa.series)
      if (s.fit.model == *baseline) base = &s;
    if (!base)
      throw UserError("--baseline " + *baseline + " has no ok timings at 2 or more lengths under the " + to_string(wa.workload) +
                      " workload (choose another baseline or --workload)");
    wa.baseline_named = true;
  } else {
    for (const SeriesAnalysis& s : wa.series) {
      auto t = s.median_at(wa.largest_n);
      if (t && (!base || *t < *base->median_at(wa.largest_n))) base = &s;
    }
  }
  wa.baseline = base->fit.model;
  for (const SeriesAnalysis& s : wa.series) {
    if (&s == base) continue;
    Slowdown d;
    d.model = s.fit.model;
    double sum = 0;
    for (std::size_t i = 0; i < s.fit.seq_lengths.size(); ++i) {
      auto tb = base->median_at(s.fit.seq_lengths[i]);
      if (!tb) continue;
      const double ratio = s.median_s[i] / *tb;
      d.min = d.points == 0 ? ratio : std::min(d.min, ratio);
      d.max = d.points == 0 ? ratio : std::max(d.max, ratio);
      sum += ratio;
      ++d.points;
    }
    if (d.points == 0) continue;  // no common length: nothing to compare
    d.mean = sum / d.points;
    auto tm = s.median_at(wa.largest_n), tb = base->median_at(wa.largest_n);
    if (tm && tb) d.at_largest_n = *tm / *tb;
    wa.relative.push_back(d);
  }
}

std::vector<MemorySeries> memory_series(const Results& r, const std::vector<int64_t>& lengths) {
  std::vector<MemorySeries> out;
  const std::optional<Workload> w = memory_workload(r);
  if (!w) return out;
  for (const std::string& m : r.models) {
    MemorySeries ms{m, {}};
    for (int64_t n : lengths) {
      const RunRecord* run = r.find(m, *w, n);
      if (run == nullptr) continue;
      MemoryPoint p{n, static_cast<double>(run->memory.peak_working_bytes), static_cast<double>(run->memory.state_bytes),
                    static_cast<double>(run->memory.peak_rss_bytes)};
      if (p.peak_working_bytes > 0) ms.points.push_back(p);
    }
    if (!ms.points.empty()) out.push_back(ms);
  }
  return out;
}

// Training memory fits (see TrainMemorySeries), for every analysed train workload.
std::vector<TrainMemorySeries> train_memory_series(const Results& r, const Analysis& a) {
  std::vector<TrainMemorySeries> out;
  for (const WorkloadAnalysis& wa : a.workloads) {
    if (!is_train(wa.workload)) continue;
    for (const std::string& m : r.models) {
      TrainMemorySeries ts;
      ts.model = m;
      ts.workload = wa.workload;
      for (const RunRecord* run : ok_runs(r, m, wa.workload)) {
        if (run->memory.peak_working_bytes == 0 || run->memory.saved_activation_bytes == 0) continue;
        ts.n.push_back(run->problem.n);
        ts.peak_working_bytes.push_back(static_cast<double>(run->memory.peak_working_bytes));
        ts.saved_activation_bytes.push_back(static_cast<double>(run->memory.saved_activation_bytes));
        ts.weights_bytes = static_cast<double>(run->memory.params_bytes);
        ts.gradient_bytes = static_cast<double>(run->memory.gradient_bytes);
        ts.optimizer_bytes = static_cast<double>(run->memory.optimizer_bytes);
      }
      if (ts.n.size() < 2) continue;
      ts.peak_fit = fit_power_law(ts.n, ts.peak_working_bytes);
      ts.saved_fit = fit_power_law(ts.n, ts.saved_activation_bytes);
      ts.peak_complexity = complexity_label(ts.peak_fit.b);
      out.push_back(std::move(ts));
    }
  }
  return out;
}

// Decode cost per token: measured (decode runs) or estimated from generate - prefill.
void decode_series(const Results& r, Analysis& a) {
  for (const std::string& m : r.models) {
    DecodeSeries d{m, {}, {}};
    for (const RunRecord* run : ok_runs(r, m, Workload::kDecode)) {
      d.n.push_back(run->problem.n);
      d.seconds_per_token.push_back(run->stats.median);
    }
    if (!d.n.empty()) a.decode.push_back(d);
  }
  if (!a.decode.empty()) return;
  for (const std::string& m : r.models) {
    DecodeSeries d{m, {}, {}};
    for (const RunRecord* gen : ok_runs(r, m, Workload::kGenerate)) {
      const RunRecord* pre = r.find(m, Workload::kPrefill, gen->problem.n);
      if (!pre || gen->n_tokens <= 0) continue;
      // generate = prefill of n (+ first token) then n_tokens steps; the difference is the steps.
      const double per_token = (gen->stats.median - pre->stats.median) / static_cast<double>(gen->n_tokens);
      if (per_token <= 0) continue;  // within noise of zero: no estimate
      d.n.push_back(gen->problem.n);
      d.seconds_per_token.push_back(per_token);
    }
    if (!d.n.empty()) a.decode.push_back(d);
  }
  a.decode_estimated = !a.decode.empty();
}

}  // namespace

std::optional<double> SeriesAnalysis::median_at(int64_t n) const {
  for (std::size_t i = 0; i < fit.seq_lengths.size(); ++i)
    if (fit.seq_lengths[i] == n) return median_s[i];
  return std::nullopt;
}

const WorkloadAnalysis* Analysis::find(Workload w) const {
  for (const WorkloadAnalysis& wa : workloads)
    if (wa.workload == w) return &wa;
  return nullptr;
}

Analysis analyze(const Results& all, const AnalyzeOptions& o, const std::string& source) {
  // A thread sweep: the fits, tables and plots per n use the first count; scaling uses them all.
  const std::vector<int64_t> counts = all.thread_counts();
  const Results first_count = counts.size() > 1 ? all.at_threads(counts.front()) : Results{};
  const Results& r = counts.size() > 1 ? first_count : all;
  std::set<int64_t> length_set(r.seq_lengths.begin(), r.seq_lengths.end());
  for (const RunRecord& run : r.runs) length_set.insert(run.problem.n);
  const std::vector<int64_t> lengths(length_set.begin(), length_set.end());
  if (lengths.size() < 2)
    throw UserError(source + ": fewer than 2 sequence lengths (" + join_lengths(lengths) + "); a scaling fit needs at least 2");
  if (o.baseline && std::find(r.models.begin(), r.models.end(), *o.baseline) == r.models.end()) {
    std::string models;
    for (const std::string& m : r.models) models += (models.empty() ? "" : ", ") + m;
    throw UserError("--baseline " + *o.baseline + " is not in " + source + " (models: " + models + ")");
  }

  Analysis a;
  a.source = source;
  a.study_schema = r.study_schema;
  std::string present;
  for (Workload w : kAllWorkloads) {
    const bool any = std::any_of(r.runs.begin(), r.runs.end(), [&](const RunRecord& run) { return run.problem.workload == w; });
    if (!any) continue;
    present += (present.empty() ? "" : ", ") + std::string(to_string(w));
    if (o.workload && *o.workload != w) continue;
    WorkloadAnalysis wa;
    wa.workload = w;
    wa.unit = w == Workload::kDecode ? "s/token" : "s";
    for (const std::string& m : r.models) {
      std::vector<const RunRecord*> runs = ok_runs(r, m, w);
      if (runs.size() >= 2) {
        wa.series.push_back(analyse_series(m, w, runs));
        wa.largest_n = std::max(wa.largest_n, runs.back()->problem.n);
      } else if (has_any_run(r, m, w)) {
        wa.unfitted.push_back(m + ": " + (runs.empty() ? std::string("no ok points")
                                                       : "only n = " + std::to_string(runs[0]->problem.n) + " ok") +
                              " (a fit needs 2 lengths)");
      }
    }
    if (wa.series.empty()) continue;
    relative_performance(wa, o.baseline);
    a.workloads.push_back(std::move(wa));
  }
  if (o.workload && !a.find(*o.workload))
    throw UserError(source + ": no model has ok " + to_string(*o.workload) + " timings at 2 or more lengths (workloads in the file: " +
                    (present.empty() ? "none" : present) + ")");
  if (a.workloads.empty()) throw UserError(source + ": no model has ok timings at 2 or more lengths");
  a.primary = o.workload ? *o.workload : a.find(Workload::kGenerate) ? Workload::kGenerate : a.workloads.front().workload;

  a.memory = memory_series(r, lengths);
  if (const std::optional<Workload> w = memory_workload(r)) a.memory_workload = to_string(*w);
  for (const MemorySeries& ms : a.memory) a.memory_largest_n = std::max(a.memory_largest_n, ms.points.back().n);
  decode_series(r, a);
  a.threads = counts.empty() ? 0 : counts.front();
  a.scaling = analyze_scaling(all);
  a.train_memory = train_memory_series(r, a);
  return a;
}

std::vector<FitRecord> fit_records(const Analysis& a) {
  std::vector<FitRecord> out;
  for (const WorkloadAnalysis& wa : a.workloads)
    for (const SeriesAnalysis& s : wa.series) out.push_back(s.fit);
  return out;
}

}  // namespace bsbr::analysis

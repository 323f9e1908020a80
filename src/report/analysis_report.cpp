// Reporters for an Analysis (see analysis_report.hpp). Terminal and Markdown share one set of
// tables (ReportTable); CSV and JSON carry the full-precision numbers.
#include "report/analysis_report.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "report/console.hpp"

namespace bsbr {

namespace {

using analysis::Analysis;
using analysis::SeriesAnalysis;
using analysis::WorkloadAnalysis;
using nlohmann::json;


std::string per_unit(const std::string& unit) { return unit == "s/token" ? " per token" : ""; }

std::string n_label(int64_t n) { return "n=" + std::to_string(n); }

ReportTable fit_table(const WorkloadAnalysis& wa) {
  ReportTable t;
  t.title = std::string(to_string(wa.workload)) + ": scaling of the median time" + per_unit(wa.unit) +
            " (least squares on log t = a + b·log n, R² on the log scale)";
  t.header = {"model", "complexity", "b", "95% CI of b", "R²", "local b", "quadratic share at " + n_label(wa.largest_n),
              "time at " + n_label(wa.largest_n)};
  for (const SeriesAnalysis& s : wa.series) {
    const auto& f = s.fit.fit;
    const std::string ci = f.power_law.b_low ? "[" + format_fixed(*f.power_law.b_low, 2) + ", " + format_fixed(*f.power_law.b_high, 2) + "]" : "-";
    const std::string local = f.local_exponent ? format_fixed(*f.local_exponent, 2) : "-";
    const bool at_largest = f.linear_quadratic.largest_n == wa.largest_n;
    std::string share = format_fixed(100 * f.linear_quadratic.quadratic_share, 0) + "%";
    if (!at_largest) share += " (n=" + std::to_string(f.linear_quadratic.largest_n) + ")";
    const auto t_big = s.median_at(wa.largest_n);
    t.rows.push_back({s.fit.model, s.fit.complexity, format_fixed(f.power_law.b, 2), ci, format_fixed(f.power_law.r_squared, 4), local, share,
                      t_big ? format_seconds(*t_big) : "-"});
    for (const std::string& note : s.fit.notes) t.notes.push_back(s.fit.model + ": " + note);
  }
  for (const std::string& u : wa.unfitted) t.notes.push_back(u);
  t.notes.push_back("local b: the exponent over the 3 largest lengths; quadratic share: γn² / (αn + γn²) of the "
                    "non-negative fit t ≈ αn + γn² at the largest length");
  return t;
}

ReportTable relative_table(const WorkloadAnalysis& wa) {
  ReportTable t;
  t.title = std::string(to_string(wa.workload)) + ": slowdown vs " + wa.baseline +
            (wa.baseline_named ? " (--baseline)" : " (the fastest at " + n_label(wa.largest_n) + ")") +
            ", median time ratio over the lengths both have";
  t.header = {"model", "mean slowdown", "min", "max", "at " + n_label(wa.largest_n), "lengths"};
  auto x = [](double v) { return format_fixed(v, 2) + "x"; };
  for (const analysis::Slowdown& d : wa.relative)
    t.rows.push_back({d.model, x(d.mean), x(d.min), x(d.max), d.at_largest_n ? x(*d.at_largest_n) : "-", std::to_string(d.points)});
  return t;
}

ReportTable memory_table_at_largest(const Analysis& a) {
  ReportTable t;
  t.title = "memory at " + n_label(a.memory_largest_n) + (a.study_schema ? " (the study's memory_results)" : " (" + a.memory_workload + " points)");
  if (a.study_schema) t.header = {"model", "memory"};
  else t.header = {"model", "peak working memory", "decode state after prefill", "process peak RSS"};
  auto bytes = [](double b) { return b > 0 ? format_bytes(b) : std::string("-"); };
  for (const auto& ms : a.memory) {
    const analysis::MemoryPoint& p = ms.points.back();
    if (p.n != a.memory_largest_n) {
      t.rows.push_back({ms.model, "- (largest n measured: " + std::to_string(p.n) + ")"});
      continue;
    }
    if (a.study_schema) t.rows.push_back({ms.model, format_fixed(p.peak_working_bytes / (1024.0 * 1024.0), 2) + " MB"});
    else t.rows.push_back({ms.model, bytes(p.peak_working_bytes), bytes(p.state_bytes), bytes(p.peak_rss_bytes)});
  }
  if (!a.study_schema)
    t.notes.push_back("peak working memory: activations + decode state + oneDNN scratchpad, counted by the tool's allocator; "
                      "weights are not included");
  return t;
}

ReportTable decode_table(const Analysis& a) {
  ReportTable t;
  t.title = std::string("decode cost per generated token") +
            (a.decode_estimated ? ", estimated as (generate - prefill) / n_tokens (no decode runs in the file)" : " (decode workload)");
  std::vector<int64_t> lengths;
  for (const auto& d : a.decode) lengths.insert(lengths.end(), d.n.begin(), d.n.end());
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  t.header = {"model"};
  for (int64_t n : lengths) t.header.push_back(n_label(n));
  for (const auto& d : a.decode) {
    std::vector<std::string> row{d.model};
    for (int64_t n : lengths) {
      std::string cell = "-";
      for (std::size_t i = 0; i < d.n.size(); ++i)
        if (d.n[i] == n) cell = format_seconds(d.seconds_per_token[i]);
      row.push_back(cell);
    }
    t.rows.push_back(row);
  }
  return t;
}

// A thread sweep: time, speed-up and parallel efficiency per point and count (analysis/scaling.hpp).
ReportTable scaling_table(const Analysis& a) {
  const analysis::ScalingAnalysis& sc = a.scaling;
  ReportTable t;
  t.title = "thread scaling: median time" + std::string(", speed-up over ") + std::to_string(sc.base_threads) +
            " thread(s), parallel efficiency (speed-up / the calibration's speed-up)";
  t.header = {"model", "workload", "n"};
  for (int64_t th : sc.threads) t.header.push_back(std::to_string(th) + (th == 1 ? " thread" : " threads"));
  std::vector<std::string> cal{"calibration matmul", "", ""};
  for (const auto& c : sc.calibration)
    cal.push_back(c.gflops ? format_fixed(*c.gflops, 1) + " GFLOP/s" + (c.speedup ? ", " + format_fixed(*c.speedup, 2) + "x" : "") : "-");
  t.rows.push_back(cal);
  for (const auto& row : sc.rows) {
    std::vector<std::string> r{row.model, to_string(row.workload), std::to_string(row.n)};
    for (const auto& cell : row.cells) {
      std::string text = cell.median_s ? format_seconds(*cell.median_s) : "-";
      if (cell.speedup) text += ", " + format_fixed(*cell.speedup, 2) + "x";
      if (cell.parallel_efficiency) text += ", " + format_fixed(100 * *cell.parallel_efficiency, 0) + "%";
      r.push_back(text);
    }
    t.rows.push_back(r);
  }
  t.notes.push_back("each cell: median time (per token for decode), speed-up = time at " + std::to_string(sc.base_threads) +
                    " / time, parallel efficiency = speed-up / (calibration GFLOP/s at the count / at " + std::to_string(sc.base_threads) + ")");
  t.notes.push_back("the other tables use the runs at " + std::to_string(a.threads) + " thread(s), the sweep's first count");
  return t;
}

// Training memory (README "train"): by kind at the largest n, and the exponents of peak working
// memory and of the saved activations over n.
ReportTable train_memory_table(const Analysis& a) {
  ReportTable t;
  t.title = "training memory (train workloads): at each series' largest n, and power-law exponents over n";
  t.header = {"model", "workload", "n", "weights", "gradients", "optimizer state", "saved activations", "peak working", "peak b", "R²",
              "saved b", "complexity"};
  for (const analysis::TrainMemorySeries& s : a.train_memory)
    t.rows.push_back({s.model, to_string(s.workload), n_label(s.n.back()), format_bytes(s.weights_bytes), format_bytes(s.gradient_bytes),
                      format_bytes(s.optimizer_bytes), format_bytes(s.saved_activation_bytes.back()), format_bytes(s.peak_working_bytes.back()),
                      format_fixed(s.peak_fit.b, 3), format_fixed(s.peak_fit.r_squared, 4), format_fixed(s.saved_fit.b, 3), s.peak_complexity});
  t.notes.push_back("counted by the tool's allocator; peak working = saved activations + working activations + oneDNN scratchpad; "
                    "weights, gradients and optimizer state are parameter-sized and not part of it");
  return t;
}

std::vector<ReportTable> all_tables(const Analysis& a) {
  std::vector<ReportTable> out;
  for (const WorkloadAnalysis& wa : a.workloads) {
    out.push_back(fit_table(wa));
    if (!wa.relative.empty()) out.push_back(relative_table(wa));
  }
  if (!a.memory.empty()) out.push_back(memory_table_at_largest(a));
  if (!a.decode.empty()) out.push_back(decode_table(a));
  if (!a.scaling.empty()) out.push_back(scaling_table(a));
  if (!a.train_memory.empty()) out.push_back(train_memory_table(a));
  return out;
}

std::string csv_cell(const std::string& v) {
  if (v.find_first_of(",\"\n") == std::string::npos) return v;
  std::string s = "\"";
  for (char c : v) s += c == '"' ? std::string("\"\"") : std::string(1, c);
  return s + "\"";
}

std::string csv_number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string render_csv(const Analysis& a) {
  std::string s =
      "workload,model,unit,points,min_n,max_n,b,b_ci95_low,b_ci95_high,r_squared,complexity,local_exponent,alpha_s_per_token,"
      "gamma_s_per_token2,quadratic_share_at_largest_n,median_at_largest_n_s,baseline,slowdown_mean,slowdown_min,slowdown_max,"
      "slowdown_at_largest_n,notes\n";
  for (const WorkloadAnalysis& wa : a.workloads)
    for (const SeriesAnalysis& sr : wa.series) {
      const auto& f = sr.fit.fit;
      const analysis::Slowdown* d = nullptr;
      for (const auto& r : wa.relative)
        if (r.model == sr.fit.model) d = &r;
      auto opt = [](const std::optional<double>& v) { return v ? csv_number(*v) : std::string(); };
      std::string notes;
      for (const std::string& n : sr.fit.notes) notes += (notes.empty() ? "" : "; ") + n;
      std::vector<std::string> cells{to_string(wa.workload), sr.fit.model, sr.fit.unit, std::to_string(f.power_law.points),
                                     std::to_string(sr.fit.seq_lengths.front()), std::to_string(sr.fit.seq_lengths.back()),
                                     csv_number(f.power_law.b), opt(f.power_law.b_low), opt(f.power_law.b_high),
                                     csv_number(f.power_law.r_squared), sr.fit.complexity, opt(f.local_exponent),
                                     csv_number(f.linear_quadratic.alpha), csv_number(f.linear_quadratic.gamma),
                                     csv_number(f.linear_quadratic.quadratic_share), opt(sr.median_at(wa.largest_n)), wa.baseline,
                                     d ? csv_number(d->mean) : (sr.fit.model == wa.baseline ? "1" : ""),
                                     d ? csv_number(d->min) : (sr.fit.model == wa.baseline ? "1" : ""),
                                     d ? csv_number(d->max) : (sr.fit.model == wa.baseline ? "1" : ""),
                                     d ? opt(d->at_largest_n) : (sr.fit.model == wa.baseline ? "1" : ""), notes};
      for (std::size_t i = 0; i < cells.size(); ++i) s += (i ? "," : "") + csv_cell(cells[i]);
      s += "\n";
    }
  return s;
}

std::string environment_line(const Results& r) {
  std::string s;
  auto add = [&](const char* label, const char* key) {
    if (r.environment.is_object() && r.environment.contains(key) && !r.environment[key].is_null()) {
      const json& v = r.environment[key];
      s += (s.empty() ? "" : "; ") + std::string(label) + " " + (v.is_string() ? v.get<std::string>() : v.dump());
    }
  };
  add("CPU", "cpu_model");
  add("threads", "threads");
  add("thread counts", "thread_counts");
  add("oneDNN", "onednn_version");
  add("ISA", "onednn_isa");
  add("build", "build_type");
  add("commit", "git_commit");
  add("measured", "utc_time");
  if (auto g = r.calibration_gflops()) s += (s.empty() ? "" : "; ") + std::string("calibration ") + format_fixed(*g, 1) + " GFLOP/s";
  return s;
}

}  // namespace

ReportFormat parse_report_format(const std::string& s) {
  if (s == "table") return ReportFormat::kTable;
  if (s == "markdown") return ReportFormat::kMarkdown;
  if (s == "csv") return ReportFormat::kCsv;
  if (s == "json") return ReportFormat::kJson;
  throw UserError("unknown --format '" + s + "' (expected table, markdown, csv or json)");
}

std::string analysis_summary(const Analysis& a) {
  std::string s;
  for (const WorkloadAnalysis& wa : a.workloads) s += (s.empty() ? "" : "\n") + render_text(fit_table(wa));
  return s;
}

std::string render_analysis(const Analysis& a, ReportFormat format) {
  switch (format) {
    case ReportFormat::kCsv:
      return render_csv(a);
    case ReportFormat::kJson:
      return analysis_json(a).dump(2) + "\n";
    case ReportFormat::kMarkdown: {
      std::string s;
      for (const ReportTable& t : all_tables(a)) s += render_markdown(t);
      return s;
    }
    case ReportFormat::kTable:
      break;
  }
  std::string s;
  for (const ReportTable& t : all_tables(a)) s += (s.empty() ? "" : "\n") + render_text(t);
  return s;
}

json analysis_json(const Analysis& a) {
  json workloads = json::array();
  for (const WorkloadAnalysis& wa : a.workloads) {
    json fits = json::array(), relative = json::array();
    for (const SeriesAnalysis& s : wa.series) {
      json f = to_json(s.fit);
      f["median_s"] = s.median_s;
      fits.push_back(f);
    }
    for (const analysis::Slowdown& d : wa.relative)
      relative.push_back({{"model", d.model}, {"points", d.points}, {"mean", d.mean}, {"min", d.min}, {"max", d.max},
                          {"at_largest_n", d.at_largest_n ? json(*d.at_largest_n) : json(nullptr)}});
    workloads.push_back({{"workload", to_string(wa.workload)}, {"unit", wa.unit}, {"largest_n", wa.largest_n},
                         {"baseline", wa.baseline}, {"baseline_named", wa.baseline_named}, {"fits", fits},
                         {"relative", relative}, {"unfitted", wa.unfitted}});
  }
  json memory = json::array();
  for (const auto& ms : a.memory)
    for (const auto& p : ms.points)
      memory.push_back({{"model", ms.model}, {"n", p.n}, {"peak_working_bytes", p.peak_working_bytes},
                        {"state_bytes", p.state_bytes}, {"peak_rss_bytes", p.peak_rss_bytes}});
  json decode = json::array();
  for (const auto& d : a.decode) decode.push_back({{"model", d.model}, {"n", d.n}, {"seconds_per_token", d.seconds_per_token}});
  auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  json scaling = nullptr;
  if (!a.scaling.empty()) {
    json cal = json::array(), rows = json::array();
    for (const auto& c : a.scaling.calibration) cal.push_back({{"threads", c.threads}, {"gflops", opt(c.gflops)}, {"speedup", opt(c.speedup)}});
    for (const auto& row : a.scaling.rows) {
      json cells = json::array();
      for (const auto& c : row.cells)
        cells.push_back({{"threads", c.threads}, {"median_s", opt(c.median_s)}, {"speedup", opt(c.speedup)}, {"parallel_efficiency", opt(c.parallel_efficiency)}});
      rows.push_back({{"model", row.model}, {"workload", to_string(row.workload)}, {"n", row.n}, {"cells", cells}});
    }
    scaling = {{"threads", a.scaling.threads}, {"base_threads", a.scaling.base_threads}, {"calibration", cal}, {"points", rows}};
  }
  json train_memory = json::array();
  for (const analysis::TrainMemorySeries& s : a.train_memory)
    train_memory.push_back({{"model", s.model}, {"workload", to_string(s.workload)}, {"n", s.n}, {"peak_working_bytes", s.peak_working_bytes},
                            {"saved_activation_bytes", s.saved_activation_bytes}, {"weights_bytes", s.weights_bytes},
                            {"gradient_bytes", s.gradient_bytes}, {"optimizer_bytes", s.optimizer_bytes},
                            {"peak_working_power_law", {{"a", s.peak_fit.a}, {"b", s.peak_fit.b}, {"r_squared", s.peak_fit.r_squared}}},
                            {"saved_activation_power_law", {{"a", s.saved_fit.a}, {"b", s.saved_fit.b}, {"r_squared", s.saved_fit.r_squared}}},
                            {"complexity", s.peak_complexity}});
  return {{"thread_scaling", scaling}, {"source", a.source}, {"study_schema", a.study_schema}, {"primary_workload", to_string(a.primary)},
          {"workloads", workloads}, {"memory", memory}, {"memory_largest_n", a.memory_largest_n}, {"memory_workload", a.memory_workload},
          {"decode_per_token", decode}, {"decode_estimated", a.decode_estimated}, {"train_memory", train_memory}};
}

ReportFiles write_analysis_report(const Analysis& a, const Results& results, const std::string& dir, const Gnuplot* gnuplot,
                                  const std::string& no_plots_reason) {
  ReportFiles files;
  if (gnuplot) files.plots = write_analysis_plots(a, dir, *gnuplot);
  std::string md = "# bsbr-bench analysis of " + std::filesystem::path(a.source).filename().string() + "\n\n";
  const std::string env = environment_line(results);
  md += "Source: `" + a.source + "`" + (a.study_schema ? " (the study's plain schema: one timing per point)" : "") + ".";
  md += env.empty() ? "\n\n" : " " + env + ".\n\n";
  md += "Times are medians of each point's samples (per token for decode). The exponent b is the least-squares slope of "
        "log t on log n with R² on the log scale (the study's estimator, labelled with its ranges); its 95% interval uses "
        "Student's t with k − 2 degrees of freedom. The non-negative fit t ≈ αn + γn² (relative residuals) separates linear "
        "from quadratic cost; the local exponent is the slope over the three largest lengths.\n\n";
  md += "## Scaling and relative performance\n\n";
  for (const ReportTable& t : all_tables(a)) md += render_markdown(t);
  md += "## Plots\n\n";
  for (const PlotFile& p : files.plots.written) md += "![" + p.caption + "](" + p.file + ")\n\n*" + p.caption + "*\n\n";
  if (!gnuplot) md += "Plots were not drawn: " + no_plots_reason + "\n\n";
  for (const std::string& why : files.plots.not_drawn) md += "- not drawn: " + why + "\n";
  files.report_path = (std::filesystem::path(dir) / "report.md").string();
  write_file_atomic(files.report_path, md);
  return files;
}

}  // namespace bsbr

namespace bsbr {

std::string analyze_for_compare(Results& results, const std::string& results_path) {
  analysis::Analysis a;
  try {
    a = analysis::analyze(results, {}, results_path);
  } catch (const UserError& e) {  // e.g. a sweep over one length: nothing to fit, not an error for compare
    return std::string("analysis skipped: ") + e.what() + "\n";
  }
  results.fits = analysis::fit_records(a);
  const std::optional<Gnuplot> gnuplot = Gnuplot::find();
  const std::string dir = std::filesystem::path(results_path).parent_path().string();
  const ReportFiles files = write_analysis_report(a, results, dir.empty() ? "." : dir, gnuplot ? &*gnuplot : nullptr,
                                                  "gnuplot was not found (install gnuplot-nox; tools/setup.sh does)");
  std::string s = analysis_summary(a) + "report: " + files.report_path;
  if (!gnuplot) s += " (no plots: gnuplot not found)";
  return s + "\n";
}

}  // namespace bsbr

// analyze's plots (see plots.hpp). Each plot is a line chart built into a gnuplot script with its
// data inline; the gnuplot runner renders it.
#include "report/plots.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

namespace bsbr {

namespace {

using analysis::Analysis;
using analysis::WorkloadAnalysis;

struct Series {
  std::string title, color;
  std::vector<double> x, y;
  std::vector<double> y_low, y_high;  // optional error bars (the samples' quartiles)
};

struct Guide {
  std::string expression, title;  // a gnuplot expression in x
};

struct LineChart {
  std::string title, xlabel, ylabel;
  bool log_x = false, log_y = false;
  std::vector<Series> series;
  std::vector<Guide> guides;
};

// Stable colours: the study's seven models keep theirs in every plot; others take the rest in order.
class Palette {
 public:
  std::string color(const std::string& model) {
    static constexpr std::pair<const char*, const char*> kStudy[] = {
        {"BSBR", "#1f77b4"},     {"Linear", "#2ca02c"},   {"DeltaNet", "#d62728"}, {"Standard", "#9467bd"},
        {"SlidingWindow", "#ff7f0e"}, {"Hopfield", "#8c564b"}, {"GAU", "#e377c2"}};
    static constexpr const char* kOthers[] = {"#17becf", "#bcbd22", "#7f7f7f", "#000080", "#008080", "#800000"};
    for (auto& [name, c] : kStudy)
      if (model == name) return c;
    auto it = assigned_.find(model);
    if (it != assigned_.end()) return it->second;
    const std::string c = kOthers[assigned_.size() % std::size(kOthers)];
    assigned_[model] = c;
    return c;
  }

 private:
  std::map<std::string, std::string> assigned_;
};

// Seconds shown in a unit that keeps the axis numbers readable.
struct TimeUnit {
  double scale;
  const char* name;
};
TimeUnit time_unit(double max_seconds) {
  if (max_seconds < 1e-3) return {1e6, "µs"};
  if (max_seconds < 1.0) return {1e3, "ms"};
  return {1.0, "s"};
}

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// Tic values for a log axis over [lo, hi]: 1-2-5 per decade, denser when the range spans less than
// about a decade (gnuplot alone would label only the powers of ten, possibly none).
std::vector<double> log_tics(double lo, double hi) {
  for (const std::vector<double>& mantissas : {std::vector<double>{1, 2, 5}, std::vector<double>{1, 1.5, 2, 3, 4, 5, 6, 8},
                                               std::vector<double>{1, 1.2, 1.4, 1.6, 1.8, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 9}}) {
    std::vector<double> tics;
    for (int e = static_cast<int>(std::floor(std::log10(lo))); e <= static_cast<int>(std::ceil(std::log10(hi))); ++e)
      for (double m : mantissas) {
        const double v = m * std::pow(10.0, e);
        if (v >= lo && v <= hi) tics.push_back(v);
      }
    if (tics.size() >= 4) return tics;
  }
  return {};  // a hair-thin range: let gnuplot choose
}

std::string chart_script(const LineChart& c) {
  std::string s;
  for (std::size_t i = 0; i < c.series.size(); ++i) {
    std::string rows;
    const Series& sr = c.series[i];
    for (std::size_t k = 0; k < sr.x.size(); ++k) {
      rows += num(sr.x[k]) + " " + num(sr.y[k]);
      if (!sr.y_low.empty()) rows += " " + num(sr.y_low[k]) + " " + num(sr.y_high[k]);
      rows += "\n";
    }
    s += gnuplot_datablock("series" + std::to_string(i), rows);
  }
  s += "set title " + gnuplot_quote(c.title) + "\n";
  s += "set xlabel " + gnuplot_quote(c.xlabel) + "\nset ylabel " + gnuplot_quote(c.ylabel) + "\n";
  s += "set grid\nset key outside right top vertical box samplen 3 spacing 1.15\nset border lw 1\n";
  if (c.log_x) s += "set logscale x 2\n";
  if (c.log_y) s += "set logscale y 10\nset format y \"%g\"\n";
  std::vector<double> lengths;  // tics at the measured lengths, unless there are too many
  for (const Series& sr : c.series) lengths.insert(lengths.end(), sr.x.begin(), sr.x.end());
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  if (lengths.size() <= 12) {
    s += "set xtics (";
    for (std::size_t i = 0; i < lengths.size(); ++i) s += (i ? ", " : "") + num(lengths[i]);
    s += ")\n";
  }
  double x_min = INFINITY, x_max = 0, y_min = INFINITY, y_max = 0;
  for (const Series& sr : c.series)
    for (std::size_t k = 0; k < sr.x.size(); ++k) {
      x_min = std::min(x_min, sr.x[k]);
      x_max = std::max(x_max, sr.x[k]);
      y_min = std::min(y_min, sr.y_low.empty() ? sr.y[k] : sr.y_low[k]);
      y_max = std::max(y_max, sr.y_high.empty() ? sr.y[k] : sr.y_high[k]);
    }
  // Axes span the data; guide curves are clipped to it rather than stretching it.
  const double x_pad = c.log_x ? 1.15 : 1.0;
  s += "set xrange [" + num(c.log_x ? x_min / x_pad : 0) + ":" + num(x_max * x_pad) + "]\n";
  if (c.log_y) {
    const double lo = y_min / 1.5, hi = y_max * 1.5;
    s += "set yrange [" + num(lo) + ":" + num(hi) + "]\n";
    if (std::vector<double> tics = log_tics(lo, hi); !tics.empty() && tics.size() <= 20) {
      s += "set ytics (";
      for (std::size_t i = 0; i < tics.size(); ++i) s += (i ? ", " : "") + num(tics[i]);
      s += ")\n";
    }
  }
  else s += "set yrange [0:" + num(y_max * 1.08) + "]\n";
  s += "set samples 200\nplot ";
  std::string items;
  for (std::size_t i = 0; i < c.series.size(); ++i)
    items += std::string(items.empty() ? "" : ", \\\n     ") + "$series" + std::to_string(i) +
             (c.series[i].y_low.empty() ? " using 1:2 with linespoints" : " using 1:2:3:4 with yerrorlines") + " lw 2 pt 7 ps 1.1 lc rgb " +
             gnuplot_quote(c.series[i].color) + " title " + gnuplot_quote(c.series[i].title);
  const char* guide_dash[] = {"2", "4"};
  for (std::size_t g = 0; g < c.guides.size(); ++g)
    items += ", \\\n     " + c.guides[g].expression + " with lines lw 1.5 dt " + guide_dash[g % 2] + " lc rgb \"#404040\" title " +
             gnuplot_quote(c.guides[g].title);
  return s + items + "\n";
}

std::vector<double> to_doubles(const std::vector<int64_t>& v) { return std::vector<double>(v.begin(), v.end()); }

// Time vs n for one workload; O(n) and O(n²) guides through the slowest model's point at the
// largest n, so on linear axes they span the plot and their curvature compares with every series.
LineChart time_chart(const Analysis& a, const WorkloadAnalysis& wa, bool log_log, Palette& palette) {
  LineChart c;
  double t_max = 0;
  for (const auto& s : wa.series) t_max = std::max(t_max, *std::max_element(s.median_s.begin(), s.median_s.end()));
  const TimeUnit u = time_unit(t_max);
  const std::string what = wa.workload == Workload::kDecode ? "time per generated token" : std::string("time per ") + to_string(wa.workload) + " run";
  c.title = std::string(to_string(wa.workload)) + ": median " + what + " vs n" + (log_log ? " (log-log)" : "") + " — " +
            std::filesystem::path(a.source).filename().string();
  c.xlabel = "sequence length n (tokens" + std::string(log_log ? ", log scale)" : ")");
  c.ylabel = "median " + what + " (" + u.name + (log_log ? ", log scale" : "") + "; bars: quartiles of the samples)";
  c.log_x = c.log_y = log_log;
  for (const auto& s : wa.series) {
    char label[160];
    std::snprintf(label, sizeof label, "%s (b=%.2f)", s.fit.model.c_str(), s.fit.fit.power_law.b);
    Series sr{label, palette.color(s.fit.model), to_doubles(s.fit.seq_lengths), {}, {}, {}};
    for (std::size_t k = 0; k < s.median_s.size(); ++k) {
      sr.y.push_back(s.median_s[k] * u.scale);
      sr.y_low.push_back(s.q1_s[k] * u.scale);
      sr.y_high.push_back(s.q3_s[k] * u.scale);
    }
    c.series.push_back(sr);
  }
  const analysis::SeriesAnalysis* slowest = nullptr;
  for (const auto& s : wa.series)
    if (auto t = s.median_at(wa.largest_n); t && (!slowest || *t > *slowest->median_at(wa.largest_n))) slowest = &s;
  if (slowest) {
    const double anchor = *slowest->median_at(wa.largest_n) * u.scale;
    const std::string big = num(static_cast<double>(wa.largest_n));
    c.guides.push_back({num(anchor) + "*x/" + big, "O(n) guide"});
    c.guides.push_back({num(anchor) + "*(x/" + big + ")**2", "O(n²) guide"});
    c.title += "\nguides through " + slowest->fit.model + " at n = " + big;
  }
  return c;
}

// Speed-up vs threads (a thread sweep): per model, its points of one workload (prefill when the
// file has it) at the largest n it ran at every count; the calibration matmul's own speed-up for
// reference.
LineChart speedup_chart(const Analysis& a, Palette& palette) {
  const analysis::ScalingAnalysis& sc = a.scaling;
  LineChart c;
  Workload w = sc.rows.front().workload;
  for (const auto& row : sc.rows)
    if (row.workload == Workload::kPrefill) w = Workload::kPrefill;
  c.title = std::string(to_string(w)) + ": speed-up over " + std::to_string(sc.base_threads) + " thread(s) vs threads — " +
            std::filesystem::path(a.source).filename().string();
  c.xlabel = "threads (log scale)";
  c.ylabel = "speed-up (time at " + std::to_string(sc.base_threads) + " / time)";
  c.log_x = true;
  std::vector<std::string> models;
  for (const auto& row : sc.rows)
    if (row.workload == w && std::find(models.begin(), models.end(), row.model) == models.end()) models.push_back(row.model);
  for (const std::string& m : models) {
    const analysis::SpeedupRow* best = nullptr;  // the largest n with a speed-up at every count
    for (const auto& row : sc.rows)
      if (row.model == m && row.workload == w &&
          std::all_of(row.cells.begin(), row.cells.end(), [](const analysis::SpeedupCell& cell) { return cell.speedup.has_value(); }))
        best = &row;
    if (!best) continue;
    Series sr{m + " n=" + std::to_string(best->n), palette.color(m), {}, {}, {}, {}};
    for (const auto& cell : best->cells) {
      sr.x.push_back(static_cast<double>(cell.threads));
      sr.y.push_back(*cell.speedup);
    }
    c.series.push_back(sr);
  }
  Series cal{"calibration matmul", "#000000", {}, {}, {}, {}};
  for (const auto& cs : sc.calibration)
    if (cs.speedup) {
      cal.x.push_back(static_cast<double>(cs.threads));
      cal.y.push_back(*cs.speedup);
    }
  if (cal.x.size() == sc.threads.size()) c.series.push_back(cal);
  return c;
}

}  // namespace

PlotSet write_analysis_plots(const Analysis& a, const std::string& dir, const Gnuplot& gnuplot) {
  PlotSet out;
  Palette palette;
  const PngSize size{1200, 650};
  auto render = [&](const LineChart& c, const std::string& file, const std::string& caption) {
    gnuplot.render_png(chart_script(c), (std::filesystem::path(dir) / file).string(), size);
    out.written.push_back({file, caption});
  };

  const WorkloadAnalysis* primary = a.find(a.primary);
  render(time_chart(a, *primary, false, palette), "complexity_analysis.png",
         std::string(to_string(a.primary)) + ": median time vs n, linear axes, with O(n) and O(n²) guides through the slowest "
             "model at the largest n");
  render(time_chart(a, *primary, true, palette), "complexity_loglog.png",
         std::string(to_string(a.primary)) + ": the same on log-log axes (slope = exponent b)");
  for (const WorkloadAnalysis& wa : a.workloads) {
    if (wa.workload == a.primary || wa.workload == Workload::kDecode) continue;
    const std::string file = std::string("complexity_loglog_") + to_string(wa.workload) + ".png";
    render(time_chart(a, wa, true, palette), file, std::string(to_string(wa.workload)) + ": median time vs n, log-log axes");
  }

  if (!a.memory.empty()) {
    LineChart c;
    c.title = "peak working memory vs sequence length — " + std::filesystem::path(a.source).filename().string();
    c.xlabel = "sequence length n (tokens, log scale)";
    c.ylabel = a.study_schema ? "memory (MB, the study's memory_results; log scale)"
                              : "peak working memory: activations + state + scratchpad (MiB, log scale)";
    c.log_x = c.log_y = true;
    for (const auto& ms : a.memory) {
      Series sr{ms.model, palette.color(ms.model), {}, {}, {}, {}};
      for (const auto& p : ms.points) {
        sr.x.push_back(static_cast<double>(p.n));
        sr.y.push_back(p.peak_working_bytes / (1024.0 * 1024.0));
      }
      c.series.push_back(sr);
    }
    render(c, "memory_scaling.png", "peak working memory vs n (" + (a.memory_workload.empty() ? std::string("memory_results") : a.memory_workload) + " points), log-log axes");
  } else {
    out.not_drawn.push_back("memory_scaling.png: the file has no memory figures");
  }

  if (!a.decode.empty()) {
    LineChart c;
    double t_max = 0;
    for (const auto& d : a.decode) t_max = std::max(t_max, *std::max_element(d.seconds_per_token.begin(), d.seconds_per_token.end()));
    const TimeUnit u = time_unit(t_max);
    const std::string how = a.decode_estimated ? "estimated as (generate - prefill) / n_tokens" : "measured (decode workload)";
    c.title = "decode cost per generated token vs context length, " + how;
    c.xlabel = "context length n before decoding (tokens, log scale)";
    c.ylabel = std::string("median time per token (") + u.name + ", log scale)";
    c.log_x = c.log_y = true;
    for (const auto& d : a.decode) {
      Series sr{d.model, palette.color(d.model), to_doubles(d.n), {}, {}, {}};
      for (double t : d.seconds_per_token) sr.y.push_back(t * u.scale);
      c.series.push_back(sr);
    }
    render(c, "decode_per_token.png", "decode cost per generated token vs context length, " + how);
  } else {
    out.not_drawn.push_back("decode_per_token.png: no decode runs, and no prefill + generate pair to estimate it from "
                            "(run compare with --workloads decode)");
  }

  if (!a.scaling.empty() && !a.scaling.rows.empty()) {
    const LineChart c = speedup_chart(a, palette);
    if (!c.series.empty())
      render(c, "thread_speedup.png", "speed-up over " + std::to_string(a.scaling.base_threads) +
                                          " thread(s) vs threads per model (largest n measured at every count), with the calibration matmul's");
    else out.not_drawn.push_back("thread_speedup.png: no point ran at every thread count");
  }

  // Training memory (README "train"): peak working memory (solid) and saved activations (dashed
  // by title) per model and train workload.
  if (!a.train_memory.empty()) {
    LineChart c;
    c.title = "training step: peak working memory and saved activations vs n — " + std::filesystem::path(a.source).filename().string();
    c.xlabel = "sequence length n (tokens, log scale)";
    c.ylabel = "MiB (log scale), counted by the tool's allocator";
    c.log_x = c.log_y = true;
    for (const analysis::TrainMemorySeries& ts : a.train_memory) {
      const std::string tag = ts.model + (ts.workload == Workload::kTrainRecompute ? " (recompute)" : "");
      char label[200];
      std::snprintf(label, sizeof label, "%s peak working (b=%.2f)", tag.c_str(), ts.peak_fit.b);
      Series peak{label, palette.color(ts.model), to_doubles(ts.n), {}, {}, {}};
      std::snprintf(label, sizeof label, "%s saved (b=%.2f)", tag.c_str(), ts.saved_fit.b);
      Series saved{label, palette.color(ts.model), to_doubles(ts.n), {}, {}, {}};
      for (std::size_t i = 0; i < ts.n.size(); ++i) {
        peak.y.push_back(ts.peak_working_bytes[i] / (1024.0 * 1024.0));
        saved.y.push_back(ts.saved_activation_bytes[i] / (1024.0 * 1024.0));
      }
      c.series.push_back(peak);
      c.series.push_back(saved);
    }
    render(c, "train_memory.png", "training step: peak working memory and saved activations vs n, log-log axes");
  }
  return out;
}

}  // namespace bsbr

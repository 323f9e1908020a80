// The lm study's tables, plots and files (lm_report.hpp).
#include "report/lm_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>

#include "core/interrupt.hpp"
#include "core/io.hpp"
#include "report/gnuplot.hpp"

namespace bsbr {

using lm::Interval;
using lm::LmResults;
using lm::ModelResult;

namespace {

std::string fixed(double v, int digits) { return std::isfinite(v) ? format_fixed(v, digits) : "–"; }

std::string num(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.9g", v);
  return std::isfinite(v) ? b : "NaN";
}

std::string percent(double v) { return fixed(100 * v, 1) + " %"; }

std::string tokens_text(double v) {
  char b[32];
  if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(b, sizeof b, "%.0fk", v / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

std::string bucket_label(int64_t lo, int64_t hi) { return "[" + std::to_string(lo) + ", " + std::to_string(hi) + ")"; }

const lm::CostPoint* find_cost(const ModelResult& m, const std::string& workload, int64_t n) {
  for (const lm::CostPoint& c : m.cost)
    if (c.workload == workload && c.n == n) return &c;
  return nullptr;
}

std::vector<int64_t> contexts_of(const LmResults& r) {
  for (const ModelResult& m : r.models)
    if (!m.seeds.empty()) {
      std::vector<int64_t> v;
      for (const lm::ContextEval& c : m.seeds.front().contexts) v.push_back(c.context);
      return v;
    }
  return {};
}

std::vector<int64_t> cost_lengths_of(const LmResults& r) {
  std::vector<int64_t> v;
  for (const ModelResult& m : r.models)
    for (const lm::CostPoint& c : m.cost)
      if (std::find(v.begin(), v.end(), c.n) == v.end()) v.push_back(c.n);
  return v;
}

// settings.config.lm.<key> (the study's settings as run; lm::to_json(LmSettings)).
const nlohmann::json* lm_setting(const LmResults& r, const char* key) {
  const nlohmann::json& s = r.settings;
  if (!s.is_object() || !s.contains("config") || !s["config"].is_object() || !s["config"].contains("lm")) return nullptr;
  const nlohmann::json& lm = s["config"]["lm"];
  return lm.is_object() && lm.contains(key) ? &lm[key] : nullptr;
}

int64_t setting(const LmResults& r, const char* key, int64_t fallback) {
  const nlohmann::json* v = lm_setting(r, key);
  return v && v->is_number_integer() ? v->get<int64_t>() : fallback;
}

double setting_real(const LmResults& r, const char* key) {
  const nlohmann::json* v = lm_setting(r, key);
  return v && v->is_number() ? v->get<double>() : NAN;
}

std::string seeds_note(const LmResults& r) {
  const int64_t k = setting(r, "seeds", 0);
  return "mean ± half-width of the 95 % interval over " + std::to_string(k) + " seeds (Student's t, " + std::to_string(std::max<int64_t>(0, k - 1)) +
         " degrees of freedom); each seed changes the initial weights and the data order together";
}

}  // namespace

std::string format_interval(const Interval& i, int digits) {
  if (i.n == 0 || !std::isfinite(i.mean)) return "–";
  if (i.n == 1) return format_fixed(i.mean, digits);
  return format_fixed(i.mean, digits) + " ± " + format_fixed(i.half, digits);
}

std::vector<ReportTable> lm_tables(const LmResults& r) {
  std::vector<ReportTable> out;
  const int64_t L = setting(r, "train_length", 0);
  {
    ReportTable t{"Data: the Brown corpus, compact vocabulary of " + std::to_string(r.vocab_size) + " ids", {"split", "documents", "text tokens", "<unk> share"}};
    for (const lm::SplitInfo& s : r.splits) t.rows.push_back({s.name, std::to_string(s.documents), std::to_string(s.text_tokens), percent(s.unk_share)});
    t.notes.push_back("evaluated: the first " + std::to_string(r.eval_documents) + " test documents (" + std::to_string(r.eval_text_tokens) +
                      " text tokens, each scored once at every context)");
    out.push_back(t);
  }
  {
    ReportTable t{"Training (" + tokens_text(static_cast<double>(setting(r, "tokens", 0))) + " tokens per run, length " + std::to_string(L) + ")",
                  {"model", "params", "tokens/s", "final val loss", "test ppl @" + std::to_string(L), "steps to target", "time to target", "reached"}};
    for (const ModelResult& m : r.models) {
      const lm::ModelSummary& s = m.summary;
      t.rows.push_back({m.name, std::to_string(m.params), format_interval(s.tokens_per_second, 0), format_interval(s.final_val_loss, 3),
                        format_interval(s.test_perplexity, 2), format_interval(s.target_steps, 0),
                        s.target_seconds.n > 0 ? format_interval(s.target_seconds, 1) + " s" : "not reached",
                        std::to_string(s.target_reached) + "/" + std::to_string(m.seeds.size())});
    }
    t.notes.push_back(seeds_note(r));
    for (const ModelResult& m : r.models)
      for (const lm::SeedRun& run : m.seeds) {
        if (run.diverged)
          t.notes.push_back(m.name + " seed " + std::to_string(run.seed) + " diverged after " + std::to_string(run.steps) +
                            " steps (non-finite loss): no evaluation, left out of the intervals");
        if (run.stopped_by_time)
          t.notes.push_back(m.name + " seed " + std::to_string(run.seed) + " stopped by the time budget after " + std::to_string(run.tokens) + " tokens");
      }
    t.notes.push_back("target: validation loss ≤ " + fixed(setting_real(r, "target_val_loss"), 2) +
                      " nats; steps and training time (evaluation excluded) to the first validation at or below it, over the seeds that reached it");
    t.notes.push_back("tokens/s: training steps alone (forward, backward, AdamW), evaluation excluded; params without the LM head");
    out.push_back(t);
  }
  const std::vector<int64_t> contexts = contexts_of(r);
  {
    ReportTable t{"Test perplexity vs evaluation context (trained at " + std::to_string(L) + ")", {"model"}};
    for (int64_t c : contexts) t.header.push_back(std::to_string(c));
    for (const ModelResult& m : r.models) {
      std::vector<std::string> row{m.name};
      for (std::size_t c = 0; c < contexts.size(); ++c)
        row.push_back(c < m.summary.context_perplexity.size() ? format_interval(m.summary.context_perplexity[c], 2) : "–");
      t.rows.push_back(row);
    }
    t.notes.push_back(seeds_note(r));
    t.notes.push_back("windows of at most `context` tokens restarting at each document; every text token scored once per context");
    out.push_back(t);
  }
  for (std::size_t c = 0; c < contexts.size(); ++c) {
    ReportTable t{"Test perplexity by position in the window, context " + std::to_string(contexts[c]), {"model"}};
    std::vector<std::size_t> shown;
    for (const ModelResult& m : r.models)
      if (!m.seeds.empty()) {
        const auto& b = m.seeds.front().contexts[c].buckets;
        for (std::size_t k = 0; k < b.size(); ++k)
          if (b[k].lo < contexts[c]) {
            shown.push_back(k);
            t.header.push_back(bucket_label(b[k].lo, std::min(b[k].hi, contexts[c])));
          }
        break;
      }
    for (const ModelResult& m : r.models) {
      std::vector<std::string> row{m.name};
      for (std::size_t k : shown)
        row.push_back(c < m.summary.bucket_perplexity.size() && k < m.summary.bucket_perplexity[c].size() ? format_interval(m.summary.bucket_perplexity[c][k], 2)
                                                                                                          : "–");
      t.rows.push_back(row);
    }
    t.notes.push_back("position p: the prediction made after the window's first p + 1 tokens; a late bucket gains when long context helps");
    out.push_back(t);
  }
  const std::vector<int64_t> lengths = cost_lengths_of(r);
  if (!lengths.empty()) {
    ReportTable t{"Quality vs cost", {"model", "test ppl @" + std::to_string(L)}};
    for (int64_t n : lengths) t.header.push_back("prefill n=" + std::to_string(n));
    for (int64_t n : lengths) t.header.push_back("decode/token n=" + std::to_string(n));
    for (int64_t n : lengths) t.header.push_back("peak mem n=" + std::to_string(n));
    for (int64_t n : lengths) t.header.push_back("state n=" + std::to_string(n));
    bool contended = false;
    for (const ModelResult& m : r.models) {
      std::vector<std::string> row{m.name, format_interval(m.summary.test_perplexity, 2)};
      auto cell = [&](const char* w, int64_t n, int what) -> std::string {
        const lm::CostPoint* c = find_cost(m, w, n);
        if (!c) return "–";
        if (c->status != "ok") return c->status;
        contended = contended || c->contended;
        const std::string mark = c->contended ? " (c)" : "";
        if (what == 0) return format_seconds(c->median_s) + mark;
        if (what == 1) return format_bytes(static_cast<double>(c->peak_working_bytes));
        return format_bytes(static_cast<double>(c->state_bytes));
      };
      for (int64_t n : lengths) row.push_back(cell("prefill", n, 0));
      for (int64_t n : lengths) row.push_back(cell("decode", n, 0));
      for (int64_t n : lengths) row.push_back(cell("prefill", n, 1));
      for (int64_t n : lengths) row.push_back(cell("decode", n, 2));
      t.rows.push_back(row);
    }
    t.notes.push_back("times: medians of the benchmark Runner (as `compare`: verify, warm-up, repeats) on seed 1's trained weights; prefill = one forward over n tokens, "
                      "decode = time per generated token at context n; peak mem = peak working bytes of the prefill (activations + state + scratchpad); "
                      "state = decode state after n tokens");
    if (contended) t.notes.push_back("(c): the point ran contended (a busy machine); its time is not the machine's");
    out.push_back(t);
  }
  return out;
}

std::string lm_markdown(const LmResults& r, const std::vector<std::string>& plots) {
  std::string s = "# Language-modelling study (bsbr-bench lm)\n\n";
  if (!r.partial_reason.empty()) s += "**Partial results**: " + r.partial_reason + "\n\n";
  s += "- command: `" + r.repro + "`\n";
  if (r.environment.contains("cpu_model")) s += "- machine: " + r.environment.value("cpu_model", std::string()) + ", " + std::to_string(r.environment.value("threads", 0)) + " threads\n";
  s += "- wall time: " + fixed(r.wall_seconds / 60, 1) + " min\n";
  for (const std::string& w : r.warnings) s += "- warning: " + w + "\n";
  s += "\n";
  for (const ReportTable& t : lm_tables(r)) s += render_markdown(t) + "\n";
  if (!plots.empty()) {
    s += "### Plots\n\n";
    for (const std::string& p : plots) s += "![" + p + "](" + p + ")\n\n";
  }
  return s;
}

namespace {

const char* color_of(const std::string& model) {
  static const std::map<std::string, const char*> kColors{{"BSBR", "#1f77b4"},     {"Linear", "#2ca02c"},   {"DeltaNet", "#d62728"},
                                                           {"Standard", "#9467bd"}, {"SlidingWindow", "#ff7f0e"}, {"Hopfield", "#8c564b"},
                                                           {"GAU", "#e377c2"},      {"GPT-2", "#17becf"}};
  auto it = kColors.find(model);
  return it == kColors.end() ? "#7f7f7f" : it->second;
}

// Mean over seeds of curve point i (the points every seed has).
std::vector<lm::LossPoint> mean_curve(const ModelResult& m, bool val) {
  std::vector<lm::LossPoint> out;
  if (m.seeds.empty()) return out;
  std::size_t len = SIZE_MAX;
  for (const lm::SeedRun& s : m.seeds) len = std::min(len, (val ? s.val_curve : s.train_curve).size());
  for (std::size_t i = 0; i < len; ++i) {
    lm::LossPoint p = (val ? m.seeds.front().val_curve : m.seeds.front().train_curve)[i];
    double sum = 0;
    for (const lm::SeedRun& s : m.seeds) sum += (val ? s.val_curve : s.train_curve)[i].loss;
    p.loss = sum / static_cast<double>(m.seeds.size());
    out.push_back(p);
  }
  return out;
}

// Buckets of context c (the first model with runs).
std::size_t m_buckets(const LmResults& r, std::size_t c) {
  for (const ModelResult& m : r.models)
    if (!m.seeds.empty() && c < m.seeds.front().contexts.size()) return m.seeds.front().contexts[c].buckets.size();
  return 1;
}

std::vector<std::string> draw_lm_plots(const LmResults& r, const std::string& dir) {
  const Gnuplot gnuplot = Gnuplot::require();
  std::vector<std::string> files;
  auto draw = [&](const std::string& file, const std::string& script, PngSize size = {}) {
    gnuplot.render_png(script, dir + "/" + file, size);
    files.push_back(file);
  };
  const int64_t L = setting(r, "train_length", 0);
  {  // loss curves
    std::string data, plot;
    int i = 0;
    for (const ModelResult& m : r.models) {
      std::string tr, va;
      for (const lm::LossPoint& p : mean_curve(m, false)) tr += num(static_cast<double>(p.tokens) / 1e6) + " " + num(p.loss) + "\n";
      for (const lm::LossPoint& p : mean_curve(m, true)) va += num(static_cast<double>(p.tokens) / 1e6) + " " + num(p.loss) + "\n";
      if (tr.empty()) continue;
      data += gnuplot_datablock("tr" + std::to_string(i), tr) + gnuplot_datablock("va" + std::to_string(i), va.empty() ? "NaN NaN\n" : va);
      plot += std::string(plot.empty() ? "plot " : ", \\\n     ") + "$tr" + std::to_string(i) + " using 1:2 with lines lw 1.5 lc rgb " +
              gnuplot_quote(color_of(m.name)) + " title " + gnuplot_quote(m.name + " train") + ", $va" + std::to_string(i) +
              " using 1:2 with linespoints dt 2 pt 7 ps 0.8 lw 1.5 lc rgb " + gnuplot_quote(color_of(m.name)) + " title " + gnuplot_quote(m.name + " val");
      ++i;
    }
    if (!plot.empty())
      draw("lm_loss_curves.png", data + "set grid\nset key outside right top\nset xlabel \"training tokens (millions)\"\nset ylabel \"cross-entropy (nats, mean over seeds)\"\n"
                                        "set title " + gnuplot_quote("Training (lines, mean per logging interval) and validation (dashed) loss") + "\n" + plot + "\n",
           PngSize{1100, 650});
  }
  const std::vector<int64_t> contexts = contexts_of(r);
  auto interval_rows = [](double x, const Interval& i) {
    return num(x) + " " + num(i.mean) + " " + num(i.mean - i.half) + " " + num(i.mean + i.half) + "\n";
  };
  if (!contexts.empty()) {  // perplexity vs context
    std::string data, plot;
    int i = 0;
    for (const ModelResult& m : r.models) {
      std::string rows;
      for (std::size_t c = 0; c < contexts.size() && c < m.summary.context_perplexity.size(); ++c)
        rows += interval_rows(static_cast<double>(contexts[c]), m.summary.context_perplexity[c]);
      if (rows.empty()) continue;
      data += gnuplot_datablock("c" + std::to_string(i), rows);
      plot += std::string(plot.empty() ? "plot " : ", \\\n     ") + "$c" + std::to_string(i) + " using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb " +
              gnuplot_quote(color_of(m.name)) + " title " + gnuplot_quote(m.name);
      ++i;
    }
    std::string tics;
    for (int64_t c : contexts) tics += (tics.empty() ? "" : ", ") + std::to_string(c);
    if (!plot.empty())
      draw("lm_perplexity_vs_context.png", data + "set grid\nset logscale x 2\nset logscale y\nset xtics (" + tics + ")\nset key outside right top\n"
                                                  "set xlabel \"evaluation context (tokens)\"\nset ylabel \"test perplexity (bars: 95 % interval over seeds)\"\n"
                                                  "set arrow from " + std::to_string(L) + ", graph 0 to " + std::to_string(L) + ", graph 1 nohead dt 3\n"
                                                  "set title " + gnuplot_quote("Test perplexity vs evaluation context (dotted: training length " + std::to_string(L) + ")") +
                                                  "\n" + plot + "\n",
           PngSize{1100, 650});
  }
  if (!contexts.empty()) {  // by position, at the largest context
    const std::size_t c = contexts.size() - 1;
    std::string data, plot, tics;
    int i = 0;
    for (const ModelResult& m : r.models) {
      if (m.seeds.empty() || c >= m.summary.bucket_perplexity.size()) continue;
      const auto& buckets = m.seeds.front().contexts[c].buckets;
      std::string rows;
      for (std::size_t k = 0; k < buckets.size() && k < m.summary.bucket_perplexity[c].size(); ++k)
        rows += interval_rows(static_cast<double>(k) + 0.05 * (i - 0.5 * (static_cast<double>(r.models.size()) - 1)), m.summary.bucket_perplexity[c][k]);
      if (tics.empty())
        for (std::size_t k = 0; k < buckets.size(); ++k)
          tics += (k ? ", " : "") + gnuplot_quote(bucket_label(buckets[k].lo, std::min(buckets[k].hi, contexts[c]))) + " " + std::to_string(k);
      data += gnuplot_datablock("b" + std::to_string(i), rows);
      plot += std::string(plot.empty() ? "plot " : ", \\\n     ") + "$b" + std::to_string(i) + " using 1:2:3:4 with yerrorlines lw 2 pt 7 lc rgb " +
              gnuplot_quote(color_of(m.name)) + " title " + gnuplot_quote(m.name);
      ++i;
    }
    const std::size_t buckets = m_buckets(r, c);
    if (!plot.empty())
      draw("lm_perplexity_by_position.png", data + "set grid\nset logscale y\nset xrange [-0.5:" + num(static_cast<double>(buckets) - 0.5) + "]\nset xtics (" + tics + ")\nset key outside right top\nset xlabel \"position in the window\"\n"
                                                   "set ylabel \"test perplexity (bars: 95 % interval over seeds)\"\nset title " +
                                                   gnuplot_quote("Test perplexity by position, context " + std::to_string(contexts[c])) + "\n" + plot + "\n",
           PngSize{1100, 650});
  }
  const std::vector<int64_t> lengths = cost_lengths_of(r);
  if (!lengths.empty()) {  // quality vs cost at the largest cost length
    const int64_t n = *std::max_element(lengths.begin(), lengths.end());
    auto panel = [&](const char* workload, double scale, const std::string& xlabel) {
      std::string data, plot;
      int i = 0;
      for (const ModelResult& m : r.models) {
        const lm::CostPoint* c = find_cost(m, workload, n);
        if (!c || c->status != "ok" || m.summary.test_perplexity.n == 0) continue;
        const Interval& q = m.summary.test_perplexity;
        data += gnuplot_datablock("q" + std::to_string(i), num(c->median_s * scale) + " " + num(q.mean) + " " + num(q.mean - q.half) + " " +
                                                               num(q.mean + q.half) + " " + gnuplot_quote(m.name) + "\n");
        plot += std::string(plot.empty() ? "plot " : ", \\\n     ") + "$q" + std::to_string(i) + " using 1:2:3:4 with yerrorbars pt 7 ps 1.5 lw 2 lc rgb " +
                gnuplot_quote(color_of(m.name)) + " title " + gnuplot_quote(m.name) + ", $q" + std::to_string(i) +
                " using 1:2:5 with labels offset 1,0.8 notitle";
        ++i;
      }
      if (plot.empty()) return std::string();
      return data + "set grid\nset logscale x\nset offsets graph 0.1, graph 0.1, graph 0.1, graph 0.1\nset key outside right top\nset xlabel " + gnuplot_quote(xlabel) +
             "\nset ylabel \"test perplexity @" + std::to_string(L) + " (bars: 95 % interval)\"\n" + plot + "\n";
    };
    const std::string a = panel("prefill", 1e3, "prefill time, n = " + std::to_string(n) + " (ms, median)");
    const std::string b = panel("decode", 1e6, "decode time per token at context " + std::to_string(n) + " (µs, median)");
    if (!a.empty() && !b.empty())
      draw("lm_quality_vs_cost.png", "set multiplot layout 1,2 title " + gnuplot_quote("Quality vs cost: one point per model") + "\n" + a +
                                         "unset label\n" + b + "unset multiplot\n",
           PngSize{1500, 650});
  }
  return files;
}

}  // namespace

void save_lm_results(const LmResults& r, const std::string& path) { write_file_atomic(path, lm::to_json(r).dump(2) + "\n"); }

LmReportFiles write_lm_report(const LmResults& r, const std::string& dir, bool plots) {
  LmReportFiles f;
  f.json = dir + "/lm_results.json";
  save_lm_results(r, f.json);  // first: the results stay if a plot fails
  if (plots) f.plots = draw_lm_plots(r, dir);
  f.markdown = dir + "/lm_report.md";
  write_file_atomic(f.markdown, lm_markdown(r, f.plots));
  return f;
}

void keep_partial_lm(LmResults& r, const std::string& dir, int64_t total_runs, const std::function<void()>& study) {
  auto save = [&](const std::string& reason) {
    int64_t runs = 0;
    for (const ModelResult& m : r.models) runs += static_cast<int64_t>(m.seeds.size());
    if (runs == 0) return;  // nothing completed: nothing to keep
    r.partial_reason = reason + " after " + std::to_string(runs) + " of " + std::to_string(total_runs) + " runs";
    const std::string path = dir + "/lm_results.json";
    save_lm_results(r, path);
    std::fprintf(stderr, "%lld completed runs written to %s, marked partial\n", static_cast<long long>(runs), path.c_str());
  };
  run_saving_partial(study, save);
}

}  // namespace bsbr

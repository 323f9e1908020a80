// `bsbr-bench analyze`: scaling fits, relative performance, memory, report.md and plots from a
// results file (ours or the study's plain schema).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "analysis/analysis.hpp"
#include "cli/commands.hpp"
#include "core/config.hpp"
#include "report/analysis_report.hpp"
#include "report/results.hpp"

namespace bsbr::cli {

namespace {

struct AnalyzeCliOptions {
  std::string results_path;
  std::string baseline;
  std::string workload;
  std::string out_dir;  // default: next to the results file
  std::string format = "table";
  bool no_plots = false;
};

int run_analyze(const AnalyzeCliOptions& o) {
  const ReportFormat format = parse_report_format(o.format);
  analysis::AnalyzeOptions options;
  if (!o.baseline.empty()) options.baseline = o.baseline;
  if (!o.workload.empty()) options.workload = parse_workload(o.workload);
  const Results results = load_results(o.results_path);
  const analysis::Analysis a = analysis::analyze(results, options, o.results_path);

  std::optional<Gnuplot> gnuplot;
  if (!o.no_plots) gnuplot = Gnuplot::require();  // a missing gnuplot is one error line (use --no-plots)
  std::string dir = o.out_dir;
  if (dir.empty()) dir = std::filesystem::path(o.results_path).parent_path().string();
  if (dir.empty()) dir = ".";
  const ReportFiles files = write_analysis_report(a, results, dir, gnuplot ? &*gnuplot : nullptr, "--no-plots was given");

  std::printf("%s", render_analysis(a, format).c_str());
  std::fprintf(stderr, "report: %s", files.report_path.c_str());
  for (const PlotFile& p : files.plots.written) std::fprintf(stderr, ", %s", p.file.c_str());
  std::fprintf(stderr, "\n");
  for (const std::string& why : files.plots.not_drawn) std::fprintf(stderr, "not drawn: %s\n", why.c_str());
  return 0;
}

}  // namespace

void add_analyze(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<AnalyzeCliOptions>();
  CLI::App* sub = app.add_subcommand("analyze",
                                     "Fit how time grows with n (exponent, 95% CI, R², linear + quadratic split), compare models, "
                                     "and write report.md with plots");
  sub->add_option("results", o->results_path, "comparison_results.json (bsbr-bench's or the study's plain schema)")->required();
  sub->add_option("--baseline", o->baseline, "Relative performance vs this model (default: the fastest at the largest n)");
  sub->add_option("--workload", o->workload, "Analyse only this workload: prefill, decode, generate or recompute (default: every one in the file)");
  sub->add_option("--out", o->out_dir, "Directory for report.md and the plots (default: the results file's directory)");
  sub->add_option("--format", o->format, "What to print: table, markdown, csv or json")->capture_default_str();
  sub->add_flag("--no-plots", o->no_plots, "Do not draw plots (no gnuplot needed)");
  sub->callback([o, &exit_code]() { exit_code = run_analyze(*o); });
}

}  // namespace bsbr::cli

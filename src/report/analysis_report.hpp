// Reporters for an Analysis: terminal tables, Markdown, CSV and JSON, and report.md (tables and
// plots together). They only format what analysis::analyze computed.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "analysis/analysis.hpp"
#include "report/gnuplot.hpp"
#include "report/plots.hpp"

namespace bsbr {

enum class ReportFormat { kTable, kMarkdown, kCsv, kJson };
ReportFormat parse_report_format(const std::string& s);  // table|markdown|csv|json, else UserError

// The scaling-fit tables only (one per workload), for the terminal: compare ends with this.
std::string analysis_summary(const analysis::Analysis& a);
// Every table (fits, relative performance, memory at the largest n, decode cost) in a format.
std::string render_analysis(const analysis::Analysis& a, ReportFormat format);
nlohmann::json analysis_json(const analysis::Analysis& a);

struct ReportFiles {
  std::string report_path;  // report.md
  PlotSet plots;
};
// Writes report.md and the plots into `dir`. Without gnuplot (nullptr) no plots are drawn and
// report.md says why (`no_plots_reason`).
ReportFiles write_analysis_report(const analysis::Analysis& a, const Results& results, const std::string& dir,
                                  const Gnuplot* gnuplot, const std::string& no_plots_reason);

// compare's ending: analyses `results`, stores the fits in it (saved afterwards by the caller) and
// writes report.md and plots next to `results_path`. Returns the fit tables and the report's path
// for the terminal; a sweep that cannot be fitted (one length) returns a line saying so. Without
// gnuplot the report is written without plots and says why.
std::string analyze_for_compare(Results& results, const std::string& results_path);

}  // namespace bsbr

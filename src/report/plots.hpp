// analyze's plots, rendered with gnuplot from an Analysis: time vs n on linear axes with O(n) and
// O(n²) guide curves, the same on log-log axes, peak memory vs n, and decode cost per token.
#pragma once
#include <string>
#include <vector>

#include "analysis/analysis.hpp"
#include "report/gnuplot.hpp"

namespace bsbr {

struct PlotFile {
  std::string file;     // name inside the output directory, e.g. "complexity_loglog.png"
  std::string caption;  // one line saying what it shows
};

struct PlotSet {
  std::vector<PlotFile> written;
  std::vector<std::string> not_drawn;  // "decode_per_token.png: no decode runs ..." (said in the report)
};

// Writes into `dir`: complexity_analysis.png and complexity_loglog.png (the primary workload),
// complexity_loglog_<workload>.png for each other non-decode workload, memory_scaling.png and
// decode_per_token.png when there is data for them.
PlotSet write_analysis_plots(const analysis::Analysis& a, const std::string& dir, const Gnuplot& gnuplot);

}  // namespace bsbr

// The lm study's report (README "bsbr-bench lm"): terminal and Markdown tables, the plots, and
// lm_results.json, from an LmResults value only.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "lm/results.hpp"
#include "report/console.hpp"

namespace bsbr {

// "12.3 ± 0.4" (mean ± half of the 95 % interval; "12.3" for one seed; "–" without values).
std::string format_interval(const lm::Interval& i, int digits);

// Data, summary (training), perplexity vs context, perplexity by position (at every context),
// quality vs cost.
std::vector<ReportTable> lm_tables(const lm::LmResults& r);
std::string lm_markdown(const lm::LmResults& r, const std::vector<std::string>& plots);

struct LmReportFiles {
  std::string json, markdown;
  std::vector<std::string> plots;
};
// Writes lm_results.json (first), the plots (unless !plots) and lm_report.md into `dir`.
LmReportFiles write_lm_report(const lm::LmResults& r, const std::string& dir, bool plots);
void save_lm_results(const lm::LmResults& r, const std::string& path);

// Runs `study`; on an interrupt or an error, the runs completed so far are written to
// dir/lm_results.json with "partial": true and the reason, then the exception is rethrown.
void keep_partial_lm(lm::LmResults& r, const std::string& dir, int64_t total_runs, const std::function<void()>& study);

}  // namespace bsbr

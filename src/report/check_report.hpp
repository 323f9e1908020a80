// Reporters for a regression check: the terminal report and the same as Markdown for a CI job
// summary. Every compared point, the complexity gate, unpaired points and one summary line.
#pragma once
#include <string>

#include "analysis/check.hpp"

namespace bsbr {

struct CheckSources {
  std::string baseline_path, current_path;
};

std::string check_text(const analysis::CheckResult& r, const analysis::CheckOptions& o, const CheckSources& sources);
std::string check_markdown(const analysis::CheckResult& r, const analysis::CheckOptions& o, const CheckSources& sources);
// "check: 24 points: 2 faster, 20 same, 2 slower; 1 regression ..." (also the last line of both reports).
std::string check_summary_line(const analysis::CheckResult& r, const analysis::CheckOptions& o);

}  // namespace bsbr

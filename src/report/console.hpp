// Terminal reporter: readable tables built only from a Results value.
#pragma once
#include <string>
#include <vector>

#include "report/results.hpp"

namespace bsbr {

// "812 ns", "12.3 us", "4.56 ms", "1.234 s"
std::string format_seconds(double s);
// v with `digits` decimals: format_fixed(0.93801, 4) == "0.9380"
std::string format_fixed(double v, int digits);
// "512 B", "1.5 KiB", "12.3 MiB", "2.10 GiB"
std::string format_bytes(double bytes);

// A plain text table with right-aligned columns; first column left-aligned.
std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// The same table as GitHub Markdown (first column left-aligned, others right; '|' in cells escaped).
std::string render_markdown_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// A titled table with notes underneath, as the analyze and check reports print them.
struct ReportTable {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows = {};
  std::vector<std::string> notes = {};
};
// Title line, the table, then "  note: ..." lines.
std::string render_text(const ReportTable& t);
// "### title", the Markdown table, then the notes as a bullet list.
std::string render_markdown(const ReportTable& t);

// Models x sequence lengths: the workload's median (per token for decode), or skipped/failed.
std::string time_table(const Results& r, Workload w);
// Models x sequence lengths: peak working memory of the workload.
std::string memory_table(const Results& r, Workload w);
// Parameter counts with and without the LM head.
std::string params_table(const Results& r);

}  // namespace bsbr

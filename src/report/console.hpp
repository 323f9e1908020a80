// Terminal reporter: readable tables built only from a Results value.
#pragma once
#include <string>
#include <vector>

#include "report/results.hpp"

namespace bsbr {

// "812 ns", "12.3 us", "4.56 ms", "1.234 s"
std::string format_seconds(double s);
// "512 B", "1.5 KiB", "12.3 MiB", "2.10 GiB"
std::string format_bytes(double bytes);

// A plain text table with right-aligned columns; first column left-aligned.
std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// Models x sequence lengths: the workload's median (per token for decode), or skipped/failed.
std::string time_table(const Results& r, Workload w);
// Models x sequence lengths: peak working memory of the workload.
std::string memory_table(const Results& r, Workload w);
// Parameter counts with and without the LM head.
std::string params_table(const Results& r);

}  // namespace bsbr

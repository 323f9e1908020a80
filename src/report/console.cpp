// Terminal tables.
#include "report/console.hpp"

#include <algorithm>
#include <cstdio>

namespace bsbr {

std::string format_seconds(double s) {
  char buf[32];
  if (s < 1e-6) std::snprintf(buf, sizeof buf, "%.0f ns", s * 1e9);
  else if (s < 1e-3) std::snprintf(buf, sizeof buf, "%.1f us", s * 1e6);
  else if (s < 1.0) std::snprintf(buf, sizeof buf, "%.2f ms", s * 1e3);
  else std::snprintf(buf, sizeof buf, "%.3f s", s);
  return buf;
}

std::string format_fixed(double v, int digits) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string format_bytes(double b) {
  char buf[32];
  if (b < 1024) std::snprintf(buf, sizeof buf, "%.0f B", b);
  else if (b < 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024);
  else if (b < 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  else std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  return buf;
}

namespace {

// Columns a UTF-8 string takes on a terminal: one per code point (labels use ≈, ², ·).
std::size_t display_width(const std::string& s) {
  std::size_t w = 0;
  for (unsigned char c : s) w += (c & 0xC0) != 0x80;
  return w;
}

}  // namespace

std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(header.size(), 0);
  auto widen = [&](const std::vector<std::string>& r) {
    for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], display_width(r[i]));
  };
  widen(header);
  for (auto& r : rows) widen(r);
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (std::size_t i = 0; i < w.size(); ++i) {
      std::string cell = i < r.size() ? r[i] : "";
      std::string pad(w[i] - display_width(cell), ' ');
      s += (i == 0 ? cell + pad : "  " + pad + cell);
    }
    return s + "\n";
  };
  std::string out = line(header);
  std::size_t total = 0;
  for (std::size_t x : w) total += x + 2;
  out += std::string(total - 2, '-') + "\n";
  for (auto& r : rows) out += line(r);
  return out;
}

std::string render_markdown_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  auto line = [&](const std::vector<std::string>& r) {
    std::string s = "|";
    for (std::size_t i = 0; i < header.size(); ++i) {
      std::string cell;
      for (char c : i < r.size() ? r[i] : std::string()) cell += c == '|' ? std::string("\\|") : std::string(1, c);
      s += " " + cell + " |";
    }
    return s + "\n";
  };
  std::string out = line(header) + "|";
  for (std::size_t i = 0; i < header.size(); ++i) out += i == 0 ? " :--- |" : " ---: |";
  out += "\n";
  for (auto& r : rows) out += line(r);
  return out;
}

std::string render_text(const ReportTable& t) {
  std::string s = t.title + "\n" + render_table(t.header, t.rows);
  for (const std::string& n : t.notes) s += "  note: " + n + "\n";
  return s;
}

std::string render_markdown(const ReportTable& t) {
  std::string s = "### " + t.title + "\n\n" + render_markdown_table(t.header, t.rows);
  if (!t.notes.empty()) s += "\n";
  for (const std::string& n : t.notes) s += "- " + n + "\n";
  return s + "\n";
}

namespace {

template <class Cell>
std::string model_by_length(const Results& r, Workload w, Cell cell) {
  std::vector<std::string> header{"model"};
  for (int64_t n : r.seq_lengths) header.push_back("n=" + std::to_string(n));
  std::vector<std::vector<std::string>> rows;
  for (const std::string& m : r.models) {
    std::vector<std::string> row{m};
    for (int64_t n : r.seq_lengths) {
      const RunRecord* found = nullptr;
      for (const RunRecord& run : r.runs)
        if (run.problem.model == m && run.problem.workload == w && run.problem.n == n) found = &run;
      if (!found) row.push_back("-");
      else if (found->status != "ok") row.push_back(found->status);
      else row.push_back(cell(*found));
    }
    rows.push_back(row);
  }
  return render_table(header, rows);
}

}  // namespace

std::string time_table(const Results& r, Workload w) {
  return model_by_length(r, w, [](const RunRecord& run) { return format_seconds(run.stats.median) + (run.noisy ? "~" : ""); });
}

std::string memory_table(const Results& r, Workload w) {
  return model_by_length(r, w, [](const RunRecord& run) { return format_bytes(static_cast<double>(run.memory.peak_working_bytes)); });
}

std::string params_table(const Results& r) {
  std::vector<std::vector<std::string>> rows;
  for (const std::string& m : r.models) {
    auto it = r.model_info.find(m);
    if (it == r.model_info.end()) continue;
    rows.push_back({m, std::to_string(it->second.params), std::to_string(it->second.params_with_head)});
  }
  return render_table({"model", "params (no LM head)", "params (with head)"}, rows);
}

}  // namespace bsbr

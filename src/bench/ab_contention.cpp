// Contention readings for ab (see ab_contention.hpp).
#include "bench/ab_contention.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace bsbr {

std::optional<LoadReading> parse_loadavg(const std::string& text) {
  // "0.52 0.58 0.59 2/845 12345": load1 load5 load15 running/total last_pid
  std::istringstream in(text);
  LoadReading r;
  double l5 = 0, l15 = 0;
  std::string running_total;
  if (!(in >> r.load1 >> l5 >> l15 >> running_total)) return std::nullopt;
  const std::size_t slash = running_total.find('/');
  if (slash == std::string::npos || slash == 0) return std::nullopt;
  try {
    std::size_t used = 0;
    r.procs_running = std::stoi(running_total.substr(0, slash), &used);
    if (used != slash || r.procs_running < 0) return std::nullopt;
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return r;
}

bool parse_proc_stat(const std::string& text, LoadReading& into) {
  // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu ", 0) != 0) continue;
    std::istringstream f(line.substr(4));
    uint64_t v[8] = {};
    for (uint64_t& x : v)
      if (!(f >> x)) return false;
    into.steal_ticks = v[7];
    into.total_ticks = 0;
    for (uint64_t x : v) into.total_ticks += x;
    return true;
  }
  return false;
}

namespace {
std::optional<std::string> slurp(const char* path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

std::optional<LoadReading> read_loadavg() {
  const std::optional<std::string> la = slurp("/proc/loadavg");
  return la ? parse_loadavg(*la) : std::nullopt;
}

std::optional<LoadReading> read_load_reading() {
  const std::optional<std::string> la = slurp("/proc/loadavg"), st = slurp("/proc/stat");
  if (!la || !st) return std::nullopt;
  std::optional<LoadReading> r = parse_loadavg(*la);
  if (!r || !parse_proc_stat(*st, *r)) return std::nullopt;
  return r;
}

ContentionVerdict judge_contention(const ContentionReadings& r, const ContentionRule& rule) {
  ContentionVerdict v;
  if (!r.running_samples.empty()) {
    double sum = 0;
    for (int s : r.running_samples) sum += std::max(0, s - 1 - rule.worker_threads);
    v.others = sum / static_cast<double>(r.running_samples.size());
    v.readable = true;
  }
  if (r.before && r.after && r.after->total_ticks > r.before->total_ticks && r.after->steal_ticks >= r.before->steal_ticks) {
    v.steal_share = static_cast<double>(r.after->steal_ticks - r.before->steal_ticks) /
                    static_cast<double>(r.after->total_ticks - r.before->total_ticks);
    v.readable = true;
  }
  char buf[96];
  if (v.others > rule.max_others) {
    std::snprintf(buf, sizeof buf, "others %.2f > %.2f", v.others, rule.max_others);
    v.why = buf;
  }
  if (v.steal_share > rule.max_steal) {
    std::snprintf(buf, sizeof buf, "steal %.1f %% > %.1f %%", 100 * v.steal_share, 100 * rule.max_steal);
    v.why += (v.why.empty() ? "" : ", ") + std::string(buf);
  }
  v.heavy = !v.why.empty();
  return v;
}

}  // namespace bsbr

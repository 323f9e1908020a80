// Load figures from /proc and the contention rule (see contention.hpp).
#include "bench/contention.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace bsbr {

namespace {

// State letter of /proc/<pid>/task/<tid>/stat: the field after the ")" that ends the command name.
char thread_state(const std::filesystem::path& stat) {
  std::ifstream in(stat);
  std::string line;
  if (!std::getline(in, line)) return '?';
  auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return '?';
  return line[close + 2];
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

int machine_cores() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

LoadSnapshot read_load() {
  LoadSnapshot s;
  std::ifstream la("/proc/loadavg");
  if (!(la >> s.loadavg1 >> s.loadavg5)) return s;
  std::ifstream st("/proc/stat");
  std::string line;
  bool have_cpu = false, have_running = false;
  while (std::getline(st, line)) {
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    if (key == "cpu") {  // user nice system idle iowait irq softirq steal guest guest_nice
      uint64_t v;
      for (int field = 0; ls >> v; ++field) {
        if (field < 8) s.total_ticks += v;  // guest time is already inside user time
        if (field == 7) s.steal_ticks = v;
      }
      have_cpu = true;
    } else if (key == "procs_running") {
      have_running = static_cast<bool>(ls >> s.procs_running);
    }
  }
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec))
    if (thread_state(task.path() / "stat") == 'R') ++s.own_running;
  s.valid = have_cpu && have_running && !ec;
  return s;
}

ContentionRecord assess_contention(const LoadSnapshot& before, const LoadSnapshot& after, int threads, int cores) {
  ContentionRecord c;
  c.before = before;
  c.after = after;
  if (!before.valid || !after.valid) return c;
  if (after.total_ticks > before.total_ticks && after.steal_ticks >= before.steal_ticks)
    c.steal_fraction = static_cast<double>(after.steal_ticks - before.steal_ticks) / static_cast<double>(after.total_ticks - before.total_ticks);
  const int64_t idle = std::max(0, cores - threads);
  auto add = [&](const std::string& why) {
    c.contended = true;
    c.reason += (c.reason.empty() ? "" : "; ") + why;
  };
  for (const auto& [when, s] : {std::pair<const char*, const LoadSnapshot&>{"before", before}, {"after", after}}) {
    std::string why;
    if (s.others_running() > idle)
      why = std::to_string(s.others_running()) + " other runnable threads > " + std::to_string(idle) + " idle cores";
    if (s.loadavg1 > cores + 1.0)
      why += (why.empty() ? "" : ", ") + std::string("load average ") + fmt("%.2f", s.loadavg1) + " > cores + 1 = " + std::to_string(cores + 1);
    if (!why.empty()) add(std::string(when) + ": " + why);
  }
  if (c.steal_fraction > kMaxStealFraction)
    add("CPU steal " + fmt("%.1f", 100 * c.steal_fraction) + " % > " + fmt("%.0f", 100 * kMaxStealFraction) + " % over the point");
  return c;
}

std::string calibration_drift(double start, double end) {
  if (!(start > 0) || !(end > 0)) return "";
  const double drift = (end - start) / start;
  if (std::fabs(drift) <= kMaxCalibrationDrift) return "";
  return "calibration moved from " + fmt("%.1f", start) + " to " + fmt("%.1f", end) + " GFLOP/s over the sweep (" + fmt("%+.0f", 100 * drift) +
         " % > " + fmt("%.0f", 100 * kMaxCalibrationDrift) + " %)";
}

}  // namespace bsbr

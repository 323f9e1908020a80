// Machine contention readings for `bsbr-bench ab` (README "bsbr-bench ab", contention rule).
// Deliberately tiny and self-contained: /proc/loadavg (1-minute load, procs_running) and the
// aggregate `cpu` line of /proc/stat (steal and total ticks). The lead will unify it with
// src/bench/contention.* later.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bsbr {

struct LoadReading {
  double load1 = 0;          // 1-minute load average
  int procs_running = 0;     // runnable tasks now, including the reader itself
  uint64_t steal_ticks = 0;  // /proc/stat cpu line: steal
  uint64_t total_ticks = 0;  // /proc/stat cpu line: sum of the first 8 fields (user .. steal)
};

// Parsers of the two files' text; nullopt when the text is not in the kernel's format.
std::optional<LoadReading> parse_loadavg(const std::string& text);           // load1, procs_running
bool parse_proc_stat(const std::string& text, LoadReading& into);            // steal, total
// /proc/loadavg alone (steal ticks left 0): the cheap reading taken while a worker runs.
std::optional<LoadReading> read_loadavg();
// Reads both files; nullopt if either is missing or malformed (e.g. not Linux).
std::optional<LoadReading> read_load_reading();

// One worker run's readings: before, after, and samples taken while it ran (every ~100 ms).
struct ContentionReadings {
  std::optional<LoadReading> before, after;
  std::vector<int> running_samples;  // procs_running while the worker ran
};

// The rule. others = mean over the samples of procs_running - 1 (the reader) - worker_threads,
// floored at 0: tasks competing with the worker. A run is heavily contended when
//   others > max_others            (default: cores - worker_threads, i.e. more runnable tasks than cores), or
//   steal share > max_steal        (steal ticks / all ticks between before and after; default 0.10).
struct ContentionRule {
  double max_others = 1;
  double max_steal = 0.10;
  int worker_threads = 1;
};

struct ContentionVerdict {
  double others = 0;       // as defined above; 0 without samples
  double steal_share = 0;  // 0 when /proc/stat was unreadable
  bool readable = false;   // any reading was available
  bool heavy = false;
  std::string why;         // "others 2.4 > 1.0", "steal 14 % > 10 %"
};
ContentionVerdict judge_contention(const ContentionReadings& r, const ContentionRule& rule);

}  // namespace bsbr

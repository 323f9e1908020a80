// Is the machine busy? Load figures read around every point and the rule that flags a point as
// contended (README "How it measures" states the rule; these constants are its thresholds).
// Timings on a busy machine are not wrong but not the machine's: a descheduled OpenMP thread
// stalls its partners at every barrier, so a point slows far more than the lost CPU share.
#pragma once
#include <cstdint>
#include <string>

namespace bsbr {

// One reading of the kernel's load figures (Linux /proc; valid false elsewhere).
struct LoadSnapshot {
  bool valid = false;
  double loadavg1 = 0, loadavg5 = 0;  // /proc/loadavg: runnable + uninterruptible threads, 1- and 5-minute averages
  int64_t procs_running = 0;          // /proc/stat: threads runnable right now, machine-wide (this process's included)
  int64_t own_running = 0;            // this process's threads in state R (/proc/self/task/*/stat), the reader included
  uint64_t steal_ticks = 0;           // /proc/stat "cpu" line: time the hypervisor ran something else (all CPUs)
  uint64_t total_ticks = 0;           // /proc/stat "cpu" line: every field summed (all CPUs)
  // Runnable threads of other processes: procs_running - own_running.
  int64_t others_running() const { return procs_running > own_running ? procs_running - own_running : 0; }
};
LoadSnapshot read_load();
// CPUs online machine-wide (the load figures are machine-wide too), at least 1.
int machine_cores();

// Thresholds of the contention rule.
inline constexpr double kMaxStealFraction = 0.05;        // > 5 % of CPU time stolen over the point
inline constexpr double kMaxCalibrationDrift = 0.20;     // sweep end vs start calibration differ by > 20 %

struct ContentionRecord {
  LoadSnapshot before, after;
  double steal_fraction = 0;  // (steal after - before) / (total after - before); 0 when no tick passed
  bool contended = false;
  std::string reason;  // why, when contended ("before: 3 other runnable threads > 0 idle cores, load average 4.10 > cores + 1 = 3; after: ...")
};

// Applies the rule to a point run with `threads` worker threads on a machine of `cores` CPUs:
// contended when, before or after the point, other processes' runnable threads outnumber the
// cores this run leaves idle (others_running > cores - threads), or the 1-minute load average
// exceeds cores + 1 (it counts this run's own threads), or more than kMaxStealFraction of the CPU
// time over the point was stolen.
ContentionRecord assess_contention(const LoadSnapshot& before, const LoadSnapshot& after, int threads, int cores);
// The sweep-level rule: the calibration at the end differs from the one at the start by more
// than kMaxCalibrationDrift (relative to the start). Returns the reason, or "" when within it.
std::string calibration_drift(double gflops_start, double gflops_end);

}  // namespace bsbr

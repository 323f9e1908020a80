// The rounds of `bsbr-bench ab` (README "bsbr-bench ab"). A round runs both sides once, A then B or
// B then A: each pair of rounds has one of each, the first chosen by a seeded coin. Each side is a worker process: the side's own executable
// running `compare --no-analysis --no-calibration --repeats k --out DIR` on the point set, whose
// results file is then read with the ordinary loader. Every time comes from inside the worker (its
// samples), so the process start (exec, oneDNN start-up, config, weight init) is outside the timed
// region by construction; it is measured anyway (spawn -> the worker's first progress line).
// A round run under heavy contention (bench/ab_contention.hpp) is discarded and repeated while the
// budget lasts.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "analysis/ab.hpp"
#include "bench/ab_contention.hpp"
#include "report/results.hpp"

namespace bsbr {

struct WorkerSpec {
  std::string exe;
  std::vector<std::string> args;  // everything after the executable except --out
  double timeout_s = 0;           // a worker running longer is killed and the run stops (exit 2); 0: none
};

// One side's worker in one round.
struct LegRun {
  char side = 'A';
  int exit_code = 0;
  double wall_s = 0;        // spawn -> exit
  double start_cost_s = -1; // spawn -> the first point begins (first "[" progress line); -1: never seen
  double timed_s = 0;       // sum of the timed samples (decode: per-token samples x n_tokens)
  ContentionReadings readings;
  ContentionVerdict contention;  // set by run_rounds
  Results results;
};

struct Round {
  int index = 0;
  std::string order;      // "AB" or "BA"
  std::vector<LegRun> legs;  // in run order
  bool discarded = false;
  std::string why;        // heavy contention on side X: ...
};

struct RoundsOptions {
  WorkerSpec a, b;
  std::string work_dir;    // worker outputs go to work_dir/round-NNN-X (removed after reading)
  double budget_s = 600;   // no new round starts when it would end past this (mean round time)
  int max_rounds = 20;     // valid rounds wanted
  int max_attempts = 0;    // rounds tried at most (valid + discarded); 0: 3 x max_rounds
  uint64_t seed = 1;
  ContentionRule rule;
  void validate() const;   // UserError naming the flag
};

struct RoundsResult {
  std::vector<Round> rounds;
  int valid = 0, discarded = 0;
  double elapsed_s = 0;
  std::string stopped;  // "max rounds", "budget", "attempts"
};

// Runs one worker to completion and reads its results: throws UserError when the worker exits 2
// (e.g. an executable older than the ab protocol: it names the side, the executable and the
// worker's last error line), InvariantError for any other non-zero exit.
using LegLauncher = std::function<LegRun(char side, const WorkerSpec& w, const std::string& out_dir)>;
LegRun launch_worker(char side, const WorkerSpec& w, const std::string& out_dir);

RoundsResult run_rounds(const RoundsOptions& o, const LegLauncher& launch = launch_worker);

// Per point, one value per valid round and side: the median of that round's samples (per token
// for decode). Points in the order of the first valid round's A side. Points pair by (model,
// workload, n, threads); match_threads = false (B's threads changed on purpose: --b-set
// benchmark.threads) pairs them by (model, workload, n).
std::vector<analysis::AbPointInput> collect_points(const RoundsResult& r, bool match_threads = true);

}  // namespace bsbr

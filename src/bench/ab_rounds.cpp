// The rounds of `bsbr-bench ab` (see ab_rounds.hpp).
#include "bench/ab_rounds.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <tuple>

#include "core/errors.hpp"

extern char** environ;

namespace bsbr {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The last non-empty line of a worker's stderr (its error line, if it failed).
std::string last_line(const std::string& log) {
  std::size_t end = log.find_last_not_of("\r\n ");
  if (end == std::string::npos) return "(no output)";
  const std::size_t start = log.rfind('\n', end);
  return log.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

double timed_seconds(const Results& r) {
  double s = 0;
  for (const RunRecord& rec : r.runs)
    for (double x : rec.samples_s) s += rec.problem.workload == Workload::kDecode ? x * static_cast<double>(rec.n_tokens) : x;
  return s;
}

}  // namespace

void RoundsOptions::validate() const {
  if (!(budget_s > 0)) throw UserError("--budget-s must be positive, got " + std::to_string(budget_s));
  if (max_rounds < 1 || max_rounds > 10000) throw UserError("--max-rounds must be in 1 .. 10000, got " + std::to_string(max_rounds));
  if (!(rule.max_others >= 0)) throw UserError("--max-others must be >= 0");
  if (!(rule.max_steal >= 0 && rule.max_steal <= 1)) throw UserError("--max-steal must be in [0, 1]");
}

LegRun launch_worker(char side, const WorkerSpec& w, const std::string& out_dir) {
  std::filesystem::create_directories(out_dir);
  std::vector<std::string> argv_s{w.exe};
  argv_s.insert(argv_s.end(), w.args.begin(), w.args.end());
  argv_s.push_back("--out");
  argv_s.push_back(out_dir);
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);

  int pipe_fd[2];
  BSBR_CHECK(pipe2(pipe_fd, O_CLOEXEC) == 0, "pipe for the worker's stderr");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const std::string stdout_path = out_dir + "/worker.stdout";
  posix_spawn_file_actions_addopen(&fa, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, pipe_fd[1], 2);

  LegRun leg;
  leg.side = side;
  leg.readings.before = read_load_reading();
  const Clock::time_point t0 = Clock::now();
  pid_t pid = 0;
  const int spawn_rc = posix_spawn(&pid, w.exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pipe_fd[1]);
  if (spawn_rc != 0) {
    close(pipe_fd[0]);
    throw UserError(std::string("ab: cannot run side ") + side + " executable " + w.exe + ": " + std::strerror(spawn_rc));
  }
  // Read the worker's stderr until it closes, sampling procs_running every ~100 ms meanwhile.
  std::string log;
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    pollfd p{pipe_fd[0], POLLIN, 0};
    const int ready = poll(&p, 1, 100);
    if (std::optional<LoadReading> r = read_loadavg()) leg.readings.running_samples.push_back(r->procs_running);
    if (w.timeout_s > 0 && !timed_out && seconds_since(t0) > w.timeout_s) {
      kill(pid, SIGKILL);  // its stderr then closes and the loop ends
      timed_out = true;
    }
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t got = read(pipe_fd[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    const std::size_t before = log.size();
    log.append(buf, static_cast<std::size_t>(got));
    if (leg.start_cost_s < 0)
      for (std::size_t i = before; i < log.size(); ++i)
        if (log[i] == '[' && (i == 0 || log[i - 1] == '\n')) {
          leg.start_cost_s = seconds_since(t0);
          break;
        }
  }
  close(pipe_fd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  leg.wall_s = seconds_since(t0);
  leg.readings.after = read_load_reading();
  leg.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (timed_out)
    throw UserError(std::string("ab: side ") + side + " (" + w.exe + ") ran past " + std::to_string(static_cast<int>(w.timeout_s)) +
                    " s and was killed: the machine is far too slow or the worker hangs");
  if (leg.exit_code != 0) {
    std::FILE* f = std::fopen((out_dir + "/worker.stderr").c_str(), "w");
    if (f) {
      std::fwrite(log.data(), 1, log.size(), f);
      std::fclose(f);
    }
    const std::string what = std::string("ab: side ") + side + " (" + w.exe + ") exited " + std::to_string(leg.exit_code) +
                             ": " + last_line(log) + " (its output: " + out_dir + "/worker.stderr)";
    if (leg.exit_code == 2) throw UserError(what + "; an executable older than the ab protocol (compare --no-analysis) cannot be side A");
    throw InvariantError(what);
  }
  leg.results = load_results(out_dir + "/comparison_results.json");
  leg.timed_s = timed_seconds(leg.results);
  std::error_code ec;
  std::filesystem::remove_all(out_dir, ec);  // its samples are kept in ab_results.json
  return leg;
}

RoundsResult run_rounds(const RoundsOptions& o, const LegLauncher& launch) {
  o.validate();
  std::mt19937_64 rng(o.seed);
  const int max_attempts = o.max_attempts > 0 ? o.max_attempts : 3 * o.max_rounds;
  RoundsResult r;
  const Clock::time_point t0 = Clock::now();
  double round_time_sum = 0;
  bool pair_starts_ba = false;
  for (int attempt = 0;; ++attempt) {
    if (r.valid >= o.max_rounds) {
      r.stopped = "max rounds";
      break;
    }
    if (attempt >= max_attempts) {
      r.stopped = "attempts";
      break;
    }
    const double elapsed = seconds_since(t0);
    if (attempt > 0 && elapsed + round_time_sum / attempt > o.budget_s) {
      r.stopped = "budget";
      break;
    }
    const Clock::time_point round_start = Clock::now();
    Round round;
    round.index = attempt;
    // Balanced in pairs: each pair of rounds runs AB once and BA once, a seeded coin says which first,
    // so a position effect (the second worker of a round finding warmer caches) hits both sides alike.
    if (attempt % 2 == 0) pair_starts_ba = (rng() & 1) != 0;
    round.order = (attempt % 2 == 0) == pair_starts_ba ? "BA" : "AB";
    for (char side : round.order) {
      char dir[32];
      std::snprintf(dir, sizeof dir, "/round-%03d-%c", attempt, side);
      LegRun leg = launch(side, side == 'A' ? o.a : o.b, o.work_dir + dir);
      leg.side = side;
      leg.contention = judge_contention(leg.readings, o.rule);
      if (leg.contention.heavy) {
        round.discarded = true;
        round.why += (round.why.empty() ? "" : "; ") + std::string("heavy contention on side ") + side + ": " + leg.contention.why;
      }
      round.legs.push_back(std::move(leg));
    }
    (round.discarded ? r.discarded : r.valid)++;
    std::fprintf(stderr, "ab: round %d (%s) %s in %.1f s%s%s\n", attempt, round.order.c_str(),
                 round.discarded ? "discarded" : "ok", seconds_since(round_start), round.discarded ? ": " : "", round.why.c_str());
    r.rounds.push_back(std::move(round));
    round_time_sum += seconds_since(round_start);
  }
  r.elapsed_s = seconds_since(t0);
  return r;
}

std::vector<analysis::AbPointInput> collect_points(const RoundsResult& r, bool match_threads) {
  using Key = std::tuple<std::string, Workload, int64_t, int64_t>;  // model, workload, n, threads
  std::vector<analysis::AbPointInput> out;
  std::map<Key, std::size_t> index;
  auto point = [&](const RunRecord& rec) -> analysis::AbPointInput& {
    const Key k{rec.problem.model, rec.problem.workload, rec.problem.n, match_threads ? rec.threads : 0};
    auto it = index.find(k);
    if (it == index.end()) {
      it = index.emplace(k, out.size()).first;
      analysis::AbPointInput in;
      in.model = rec.problem.model;
      in.workload = rec.problem.workload;
      in.n = rec.problem.n;
      in.threads = rec.threads;
      out.push_back(std::move(in));
    }
    return out[it->second];
  };
  for (const Round& round : r.rounds) {
    if (round.discarded) continue;
    // A first, so a point's order and "ok in A" are known before B's record.
    for (char side : {'A', 'B'})
      for (const LegRun& leg : round.legs) {
        if (leg.side != side) continue;
        for (const RunRecord& rec : leg.results.runs) {
          analysis::AbPointInput& p = point(rec);
          if (rec.status != "ok" || rec.samples_s.empty()) {
            if (p.problem.empty()) {
              p.problem = std::string(rec.status) + " in " + side + " (round " + std::to_string(round.index) + "): " + rec.reason;
              p.failed_in_b = side == 'B' && !p.a.empty();
            }
            continue;
          }
          (side == 'A' ? p.a : p.b).push_back(rec.stats.median);
        }
      }
  }
  for (analysis::AbPointInput& p : out)
    if (p.problem.empty() && (p.a.empty() || p.b.empty() || p.a.size() != p.b.size()))
      p.problem = "present in " + std::to_string(p.a.size()) + " A and " + std::to_string(p.b.size()) + " B rounds";
  return out;
}

}  // namespace bsbr

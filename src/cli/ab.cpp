// `bsbr-bench ab`: interleaved A/B of two builds on the same points (README "bsbr-bench ab").
// Parses, builds the worker command lines, and wires bench/ab_rounds (the rounds),
// analysis/ab (the statistics), report/fingerprint and report/ab_report.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <thread>
#include <type_traits>

#include "analysis/ab.hpp"
#include "bench/ab_rounds.hpp"
#include "cli/commands.hpp"
#include "core/config.hpp"
#include "core/errors.hpp"
#include "core/io.hpp"
#include "report/ab_report.hpp"
#include "report/fingerprint.hpp"

namespace bsbr::cli {

namespace {

struct AbCliOptions {
  std::string exe_a, exe_b, config_path, out_dir = "results/ab", correction = "holm";
  std::vector<std::string> models, workloads, overrides, b_overrides;
  std::vector<int64_t> seq_lengths;
  int64_t n_tokens = -1, threads = -1, warmup = 1, samples_per_round = 3;
  double budget_s = 300, max_others = -1, max_steal = 0.10;
  int max_rounds = 15, min_rounds = 5;
  uint64_t seed = 1;
  bool aa = false;
  analysis::AbOptions stats;
};

void require_executable(const std::string& path, const char* flag) {
  if (path.empty()) throw UserError(std::string(flag) + " is required");
  if (access(path.c_str(), X_OK) != 0 || std::filesystem::is_directory(path))
    throw UserError(std::string(flag) + ": '" + path + "' is not an executable file");
}

// The worker command shared by both sides: compare on the point set, k samples, no calibration and
// no analysis (neither is used, both cost time per round).
std::vector<std::string> worker_args(const AbCliOptions& o) {
  std::vector<std::string> a{"compare", "--no-analysis", "--no-calibration", "--repeats", std::to_string(o.samples_per_round),
                             "--warmup", std::to_string(o.warmup)};
  if (!o.config_path.empty()) a.insert(a.end(), {"--config", o.config_path});
  auto list = [&](const char* flag, const auto& values) {
    if (values.empty()) return;
    a.push_back(flag);
    for (const auto& v : values) {
      if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::string>) a.push_back(v);
      else a.push_back(std::to_string(v));
    }
  };
  list("--models", o.models);
  list("--seq_lengths", o.seq_lengths);
  list("--workloads", o.workloads);
  if (o.n_tokens >= 0) a.insert(a.end(), {"--n_tokens", std::to_string(o.n_tokens)});
  if (o.threads >= 0) a.insert(a.end(), {"--threads", std::to_string(o.threads)});
  for (const std::string& kv : o.overrides) a.insert(a.end(), {"--set", kv});
  return a;
}

// The threads one worker uses, from the same config and flags the workers get (0 = all cores).
int worker_threads(const AbCliOptions& o, int cores) {
  Config cfg = o.config_path.empty() ? Config{} : load_config(o.config_path);
  for (const std::string& kv : o.overrides) apply_override(cfg, kv);
  const int64_t t = o.threads >= 0 ? o.threads : cfg.bench.threads;
  return t == 0 ? cores : static_cast<int>(t);
}

// Fingerprint fields a --b-set override changes on purpose.
std::set<std::string> exempt_fields(const std::vector<std::string>& b_overrides) {
  std::set<std::string> out;
  for (const std::string& kv : b_overrides) {
    const std::size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw UserError("--b-set: '" + kv + "' is not section.key=value");
    const std::string key = kv.substr(0, eq);
    out.insert("config." + key);
    if (key == "benchmark.threads") out.insert({"environment.threads", "environment.thread_counts", "config.benchmark.thread_counts", "runs.threads"});
    if (key == "benchmark.n_tokens") out.insert("runs.n_tokens");
    if (key == "model.batch_size") out.insert("runs.batch");
  }
  return out;
}

int run_ab(AbCliOptions o) {
  if (o.aa) {
    if (!o.exe_b.empty() && o.exe_b != o.exe_a) throw UserError("--aa runs A against itself: give --a only (not --b)");
    if (!o.b_overrides.empty()) throw UserError("--aa runs A against itself: --b-set makes B different");
    o.exe_b = o.exe_a;
  }
  require_executable(o.exe_a, "--a");
  require_executable(o.exe_b, "--b");
  o.stats.correction = analysis::parse_correction(o.correction);
  o.stats.validate();
  if (o.samples_per_round < 1 || o.samples_per_round > 1000) throw UserError("--samples-per-round must be in 1 .. 1000");
  if (o.warmup < 0 || o.warmup > 1000) throw UserError("--warmup must be in 0 .. 1000");
  if (o.min_rounds < 2 || o.min_rounds > o.max_rounds)
    throw UserError("--min-rounds must be in 2 .. --max-rounds (" + std::to_string(o.max_rounds) + ")");
  if (!o.config_path.empty()) load_config(o.config_path);  // a bad config is one error line here, not a worker failure

  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  AbRun run;
  run.aa = o.aa;
  run.samples_per_round = static_cast<int>(o.samples_per_round);
  run.stats = o.stats;
  RoundsOptions& ro = run.rounds_options;
  ro.a = {o.exe_a, worker_args(o)};
  ro.b = {o.exe_b, worker_args(o)};
  for (const std::string& kv : o.b_overrides) {
    ro.b.args.insert(ro.b.args.end(), {"--set", kv});
    run.b_only_args.push_back("--set " + kv);
  }
  const std::set<std::string> exempt = exempt_fields(o.b_overrides);
  run.exempt_fields.assign(exempt.begin(), exempt.end());
  // A worker may take longer than the budget (the first round always runs), not without bound.
  ro.a.timeout_s = ro.b.timeout_s = std::max(600.0, 2 * o.budget_s);
  ro.work_dir = o.out_dir + "/ab_work";
  ro.budget_s = o.budget_s;
  ro.max_rounds = o.max_rounds;
  ro.seed = o.seed;
  ro.rule.worker_threads = worker_threads(o, cores);
  ro.rule.max_others = o.max_others >= 0 ? o.max_others : std::max(0, cores - ro.rule.worker_threads) + 0.25;
  ro.rule.max_steal = o.max_steal;
  ro.validate();

  run.rounds = run_rounds(ro);

  // Every valid worker run must have the settings of the first valid A run.
  const LegRun* reference = nullptr;
  for (const Round& round : run.rounds.rounds)
    for (const LegRun& leg : round.legs) {
      if (round.discarded) continue;
      if (!reference && leg.side == 'A') reference = &leg;
    }
  if (reference)
    for (const Round& round : run.rounds.rounds)
      for (const LegRun& leg : round.legs)
        if (!round.discarded && &leg != reference)
          require_same_fingerprint(reference->results, "side A (" + o.exe_a + ")", leg.results,
                                   std::string("side ") + leg.side + " (" + (leg.side == 'A' ? o.exe_a : o.exe_b) + ", round " +
                                       std::to_string(round.index) + ")",
                                   FingerprintScope::kSettingsAndMachine, leg.side == 'B' ? exempt : std::set<std::string>{});

  run.analysis = analysis::analyze_ab(collect_points(run.rounds, !exempt.count("runs.threads")), o.stats);
  if (o.aa) run.aa_summary = analysis::summarize_aa(run.analysis, o.stats);
  run.unusable = assess_usability(run.rounds, run.analysis, o.min_rounds, o.aa);
  std::error_code ec;
  std::filesystem::remove(ro.work_dir, ec);  // empty unless a worker failed (its output is kept there)
  write_file_atomic(o.out_dir + "/ab_results.json", ab_to_json(run).dump(1) + "\n");
  write_file_atomic(o.out_dir + "/ab_report.md", ab_markdown(run));
  std::printf("%s", ab_text(run).c_str());
  std::printf("written: %s/ab_results.json, %s/ab_report.md\n", o.out_dir.c_str(), o.out_dir.c_str());
  const int code = ab_exit_code(run);
  if (code == 2) std::fprintf(stderr, "error: ab: %s\n", run.unusable.c_str());
  return code;
}

}  // namespace

void add_ab(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<AbCliOptions>();
  CLI::App* sub = app.add_subcommand(
      "ab", "Interleaved A/B of two builds on the same points: exit 1 if B is slower beyond the noise floor, 2 if unusable");
  sub->add_option("--a", o->exe_a, "Baseline executable (a bsbr-bench from the commit that introduced ab or later)")->required();
  sub->add_option("--b", o->exe_b, "Candidate executable (required unless --aa)");
  sub->add_flag("--aa", o->aa, "A/A: run A against itself and report the spread of ratios and p-values (to choose --delta)");
  sub->add_option("--config", o->config_path, "Config both sides run (e.g. configs/ci.yaml)");
  sub->add_option("--models", o->models, "Models (default: the config's)")->expected(1, -1);
  sub->add_option("--seq_lengths,--seq-lengths", o->seq_lengths, "Sequence lengths (default: the config's)")->expected(1, -1);
  sub->add_option("--workloads", o->workloads, "Workloads (default: the config's)")->expected(1, -1);
  sub->add_option("--n_tokens,--n-tokens", o->n_tokens, "Decode/generate steps per sample (default: the config's)");
  sub->add_option("--threads", o->threads, "Worker threads (default: the config's)");
  sub->add_option("--set", o->overrides, "Config override for both sides, e.g. --set model.chunk_size=64 (repeatable)");
  sub->add_option("--b-set", o->b_overrides,
                  "Config override for B alone (power checks: e.g. --b-set model.compression_factor=1 is more work for BSBR alone); the fingerprint "
                  "then accepts that field differing")
      ->expected(1, -1);
  sub->add_option("--samples-per-round", o->samples_per_round, "Timed samples per point per round (k)")->capture_default_str();
  sub->add_option("--warmup", o->warmup, "Untimed warm-up runs per point per round")->capture_default_str();
  sub->add_option("--budget-s", o->budget_s, "No round starts that would end past this many seconds")->capture_default_str();
  sub->add_option("--max-rounds", o->max_rounds, "Stop after this many valid rounds")->capture_default_str();
  sub->add_option("--min-rounds", o->min_rounds, "Fewer valid rounds than this is an unusable run (exit 2)")->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the rounds' A/B order")->capture_default_str();
  sub->add_option("--delta", o->stats.delta, "Noise floor: slower only when the ratio's 95% interval lies above 1 + delta")
      ->capture_default_str();
  sub->add_option("--alpha", o->stats.alpha, "... and the adjusted one-sided p is below alpha")->capture_default_str();
  sub->add_option("--correction", o->correction, "Multiple-testing correction across points: holm | bh")->capture_default_str();
  sub->add_option("--max-others", o->max_others,
                  "Contention: discard a round when the mean count of other runnable tasks exceeds this (default: cores - threads + 0.25)");
  sub->add_option("--max-steal", o->max_steal, "Contention: discard a round when the hypervisor's steal share exceeds this")
      ->capture_default_str();
  sub->add_option("--out", o->out_dir, "Output directory for ab_results.json and ab_report.md")->capture_default_str();
  sub->callback([o, &exit_code]() { exit_code = run_ab(*o); });
}

}  // namespace bsbr::cli

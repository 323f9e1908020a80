// `bsbr-bench compare`: sweep models x workloads x sequence lengths, write comparison_results.json.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "bench/calibration.hpp"
#include "bench/contention.hpp"
#include "bench/environment.hpp"
#include "bench/runner.hpp"
#include "cli/commands.hpp"
#include "core/config.hpp"
#include "core/errors.hpp"
#include "core/interrupt.hpp"
#include "core/io.hpp"
#include "core/limits.hpp"
#include "io/weights.hpp"
#include "model/model.hpp"
#include "report/analysis_report.hpp"
#include "report/console.hpp"
#include "report/results.hpp"

namespace bsbr::cli {

namespace {

struct CompareOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set section.key=value
  std::vector<std::string> models;
  std::vector<std::string> seq_lengths;  // numeric flags as given: parsed and range-checked in effective_config
  std::vector<std::string> workloads;
  std::optional<std::string> n_tokens, repeats, warmup;
  std::vector<std::string> threads;  // --threads T ...: one count, or a sweep
  bool no_memory_guard = false;
  bool no_verify = false;
  bool no_calibration = false, no_analysis = false;  // what `ab` workers skip (README "bsbr-bench ab")
  std::string out_dir = "results";
  std::string weights_dir, save_weights_dir;  // DIR/<Model>.safetensors (io/weights.hpp)
};

Config effective_config(const CompareOptions& o) {
  Config cfg = o.config_path.empty() ? Config{} : load_config(o.config_path);
  for (const std::string& kv : o.overrides) apply_override(cfg, kv);
  BenchConfig& b = cfg.bench;
  if (!o.models.empty()) b.models = o.models;
  // Every numeric flag is parsed strictly and range-checked (core/limits.hpp), naming the flag.
  if (!o.seq_lengths.empty()) b.seq_lengths = parse_ints_in("--seq_lengths", o.seq_lengths, limits::kSeqLength);
  if (!o.workloads.empty()) {
    b.workloads.clear();
    for (const std::string& w : o.workloads) b.workloads.push_back(parse_workload(w));
  }
  if (o.n_tokens) b.n_tokens = parse_int_in("--n_tokens", *o.n_tokens, limits::kNTokens);
  if (o.repeats) b.repeats = parse_int_in("--repeats", *o.repeats, limits::kRepeats);
  if (o.warmup) b.warmup = parse_int_in("--warmup", *o.warmup, limits::kWarmup);
  if (!o.threads.empty()) {
    const std::vector<int64_t> counts = parse_ints_in("--threads", o.threads, threads_limit());
    for (std::size_t i = 1; i < counts.size(); ++i)
      if (std::find(counts.begin(), counts.begin() + static_cast<std::ptrdiff_t>(i), counts[i]) != counts.begin() + static_cast<std::ptrdiff_t>(i))
        throw UserError("--threads lists " + std::to_string(counts[i]) + " twice");
    b.threads = counts.front();
    b.thread_counts = counts.size() > 1 ? counts : std::vector<int64_t>{};
  }
  if (o.no_memory_guard) b.memory_guard = false;
  if (o.no_verify) b.verify = false;
  if (b.models.empty())
    for (const Architecture& a : architectures()) b.models.push_back(a.name);
  for (const std::string& m : b.models) find_architecture(m);  // unknown names are a UserError
  validate_overridden(cfg, o.overrides);  // the end state, after the config, every --set and the flags
  return cfg;
}

// The exact command that re-runs one point (benchdnn's repro line).
std::string repro_line(const CompareOptions& o, const Config& cfg, const Problem& p, int threads) {
  std::string s = "bsbr-bench compare";
  if (!o.config_path.empty()) s += " --config " + o.config_path;
  for (const std::string& kv : o.overrides) s += " --set " + kv;
  s += " --models " + p.model + " --workloads " + to_string(p.workload) + " --seq_lengths " + std::to_string(p.n);
  s += " --n_tokens " + std::to_string(cfg.bench.n_tokens) + " --repeats " + std::to_string(cfg.bench.repeats) +
       " --warmup " + std::to_string(cfg.bench.warmup) + " --threads " + std::to_string(threads);
  if (!cfg.bench.memory_guard) s += " --no-memory-guard";
  if (!cfg.bench.verify) s += " --no-verify";
  if (!o.weights_dir.empty()) s += " --weights " + o.weights_dir;
  return s;
}

nlohmann::json config_json(const Config& cfg, const CompareOptions& o) {
  std::vector<std::string> workloads;
  for (Workload w : cfg.bench.workloads) workloads.push_back(to_string(w));
  return {{"source", cfg.source},
          {"model", model_config_json(cfg.model)},
          {"weights", o.weights_dir.empty() ? nlohmann::json() : nlohmann::json(o.weights_dir)},
          {"benchmark",
           {{"models", cfg.bench.models}, {"seq_lengths", cfg.bench.seq_lengths}, {"workloads", workloads},
            {"n_tokens", cfg.bench.n_tokens}, {"repeats", cfg.bench.repeats}, {"warmup", cfg.bench.warmup},
            {"threads", cfg.bench.threads}, {"thread_counts", cfg.bench.thread_sweep()}, {"memory_guard", cfg.bench.memory_guard},
            {"verify", cfg.bench.verify}, {"verify_length", cfg.bench.verify_length}}}};
}

// The model `name` with its weights: loaded from --weights DIR (else the seeded initialisation),
// and written to --save-weights DIR when asked.
std::unique_ptr<Model> make_model(ops::Context& ctx, const Config& cfg, const CompareOptions& o, const std::string& name) {
  auto model = std::make_unique<Model>(ctx, cfg.model, find_architecture(name));
  if (!o.weights_dir.empty()) load_weights(*model, weights_path_in(o.weights_dir, name));
  if (!o.save_weights_dir.empty()) save_weights(*model, weights_path_in(o.save_weights_dir, name));
  return model;
}

// The sweep-level contention warnings (bench/contention.hpp): points run on a busy machine, and a
// calibration that moved over the sweep (which marks every timed point).
// `threads`: only the points run at that count (its own calibrations); -1: every point.
void flag_contention(Results& results, double gflops_start, double gflops_end, int64_t threads = -1) {
  const std::string drift = calibration_drift(gflops_start, gflops_end);
  std::size_t contended = 0, timed = 0;
  std::string names;
  for (RunRecord& r : results.runs) {
    if (r.status != "ok" || (threads >= 0 && r.threads != threads)) continue;
    ++timed;
    if (r.contention.contended && ++contended <= 3)
      names += std::string(names.empty() ? "" : ", ") + r.problem.model + " " + to_string(r.problem.workload) + " n=" + std::to_string(r.problem.n);
    if (!drift.empty()) {
      r.contention.contended = true;
      r.contention.reason += (r.contention.reason.empty() ? "" : "; ") + drift;
    }
  }
  if (contended > 0)
    results.warnings.push_back("busy machine: " + std::to_string(contended) + " of " + std::to_string(timed) + " points" +
                               (threads >= 0 ? " at " + std::to_string(threads) + " threads" : "") + " ran contended (" + names +
                               (contended > 3 ? ", ..." : "") + "; see each run's contention.reason); their times are not the machine's: rerun on a quiet machine");
  if (!drift.empty())
    results.warnings.push_back("busy machine: " + drift + "; every point" + (threads >= 0 ? " at " + std::to_string(threads) + " threads" : "") +
                               " is marked contended");
}

// A record for a point that did not run (its model's weights did not fit or could not be allocated).
RunRecord not_run(const Problem& p, const Config& cfg, int threads, const std::string& status, const std::string& reason) {
  RunRecord rec;
  rec.problem = p;
  rec.batch = cfg.model.batch_size;
  rec.n_tokens = generates_tokens(p.workload) ? cfg.bench.n_tokens : 0;
  rec.threads = threads;
  rec.warmup = cfg.bench.warmup;
  rec.repeats = cfg.bench.repeats;
  rec.unit = p.workload == Workload::kDecode ? "s/token" : "s";
  rec.status = status;
  rec.reason = reason;
  return rec;
}

// Runs every point into `results`. Throws Interrupted on SIGINT / SIGTERM (between samples or
// points), and whatever a point throws that is not a point's failure.
// `done` counts points over the whole thread sweep; a sweep of several counts shows each point's.
void sweep(ops::Context& ctx, const Config& cfg, const CompareOptions& o, Results& results, std::size_t& not_ok, std::size_t& done) {
  Runner runner(ctx, cfg);
  const std::size_t total = cfg.bench.models.size() * cfg.bench.seq_lengths.size() * cfg.bench.workloads.size() * cfg.bench.thread_sweep().size();
  const bool several = cfg.bench.thread_sweep().size() > 1;
  for (const std::string& name : cfg.bench.models) {
    throw_if_interrupted();
    std::string skip = cfg.bench.memory_guard ? weights_guard(ctx, cfg.model, find_architecture(name)) : "", status = "skipped";
    std::unique_ptr<Model> owned;
    if (skip.empty()) {
      try {
        owned = make_model(ctx, cfg, o, name);
      } catch (const std::bad_alloc&) {
        status = "failed";
        skip = "out of memory while allocating the weights of " + name + " (about " +
               format_bytes(static_cast<double>(Model::weight_bytes(ctx, cfg.model, find_architecture(name)))) +
               "; model.vocab_size, hidden_dim, ff_dim, num_layers)";
      }
    }
    if (owned) results.model_info[name] = ModelInfo{name, owned->param_count(false), owned->param_count(true)};
    for (const Problem& p : expand_sweep(cfg.bench, {name}, {ctx.threads()})) {
      throw_if_interrupted();
      ++done;
      std::fprintf(stderr, "[%3zu/%zu] %-13s %-9s n=%-6lld ", done, total, name.c_str(), to_string(p.workload),
                   static_cast<long long>(p.n));
      if (several) std::fprintf(stderr, "t=%-3d ", ctx.threads());
      std::fflush(stderr);
      RunRecord rec = owned ? runner.run(*owned, p) : not_run(p, cfg, ctx.threads(), status, skip);
      rec.repro = repro_line(o, cfg, p, static_cast<int>(p.threads));
      if (rec.status == "ok") {
        const std::string train = is_train(p.workload) ? "  " + format_fixed(rec.tokens_per_second, 0) + " tokens/s  saved " +
                                                             format_bytes(static_cast<double>(rec.memory.saved_activation_bytes))
                                                       : "";
        std::fprintf(stderr, "median %-10s cv %4.1f%%  %7.1f GFLOP/s  peak %s%s%s%s\n", format_seconds(rec.stats.median).c_str(),
                     100 * rec.stats.cv, rec.gflops, format_bytes(static_cast<double>(rec.memory.peak_working_bytes)).c_str(), train.c_str(),
                     rec.noisy ? "  [noisy: cv > 10%]" : "", rec.contention.contended ? "  [contended]" : "");
        if (rec.contention.contended) std::fprintf(stderr, "      contended: %s\n", rec.contention.reason.c_str());
      } else {
        ++not_ok;
        std::fprintf(stderr, "%s: %s\n", rec.status.c_str(), rec.reason.c_str());
      }
      results.runs.push_back(std::move(rec));
    }
  }
}

// The files compare writes into --out (checked before the first point runs).
const std::vector<std::string> kCompareOutputs{"comparison_results.json", "report.md"};

int run_compare(const CompareOptions& o) {
  Config cfg = effective_config(o);
  const std::string path = o.out_dir + "/comparison_results.json";
  check_output_dir(o.out_dir, kCompareOutputs, "--out");
  if (!o.save_weights_dir.empty()) {
    std::vector<std::string> files;
    for (const std::string& m : cfg.bench.models) files.push_back(std::filesystem::path(weights_path_in(o.save_weights_dir, m)).filename().string());
    check_output_dir(o.save_weights_dir, files, "--save-weights");
  }
  // The thread counts, resolved (0 = all cores) and each at most once.
  std::vector<int> counts;
  for (int64_t t : cfg.bench.thread_sweep()) {
    const int resolved = t > 0 ? static_cast<int>(t) : ops::Context(0).threads();
    if (std::find(counts.begin(), counts.end(), resolved) != counts.end())
      throw UserError("--threads / benchmark.threads: " + std::to_string(t) + (t == 0 ? " (all cores)" : "") + " is " + std::to_string(resolved) +
                      " threads, listed twice");
    counts.push_back(resolved);
  }
  Results results;
  {
    ops::Context ctx(counts.front());
    // Every model's weights file is checked before any time is spent measuring.
    if (!o.weights_dir.empty())
      for (const std::string& name : cfg.bench.models) {
        Model model(ctx, cfg.model, find_architecture(name));
        check_weights(model, weights_path_in(o.weights_dir, name));
      }
    results.environment = to_json(collect_environment(ctx.threads()));
  }
  results.models = cfg.bench.models;
  results.seq_lengths = cfg.bench.seq_lengths;
  results.config = config_json(cfg, o);
  results.environment["thread_counts"] = counts;

  InterruptScope interrupts;  // SIGINT / SIGTERM now stop the sweep and save what it measured
  Calibration cal;            // at the first count: the top-level calibration block
  std::size_t not_ok = 0, done = 0;
  nlohmann::json per_threads = nlohmann::json::array();
  // One context per thread count (its OpenMP team, scratchpads and models), in the sweep's order;
  // each count gets its own calibrations before its points and the matmul again after them.
  auto run_count = [&](int threads, bool first) {
    ops::Context ctx(threads);
    if (o.no_calibration) {
      sweep(ctx, cfg, o, results, not_ok, done);
      return;
    }
    std::fprintf(stderr, "calibrating: %lldx%lldx%lld f32 matmul on %d threads ... ", 2048LL, 2048LL, 2048LL, ctx.threads());
    const Calibration c = out_of_memory_as_error("calibrating (a 2048x2048x2048 f32 matmul on " + std::to_string(ctx.threads()) + " threads; lower --threads)",
                                                 [&] { return calibrate(ctx); });
    std::fprintf(stderr, "%.1f GFLOP/s (%s)\n", c.gflops, c.impl.c_str());
    std::fprintf(stderr, "calibrating: read bandwidth on %d threads ... ", ctx.threads());
    const BandwidthCalibration bw = out_of_memory_as_error("calibrating the read bandwidth (a buffer of 4 x the last-level cache)",
                                                           [&] { return calibrate_bandwidth(ctx); });
    std::fprintf(stderr, "%.1f GB/s over %s, %.1f GB/s within %s (LLC %s, %s)\n", bw.large.gbps, format_bytes(static_cast<double>(bw.large.bytes)).c_str(),
                 bw.small.gbps, format_bytes(static_cast<double>(bw.small.bytes)).c_str(), format_bytes(static_cast<double>(bw.llc.bytes)).c_str(),
                 bw.llc.source.c_str());
    if (first) {
      cal = c;
      results.calibration = to_json(c);
    }
    per_threads.push_back(per_threads_json(c, bw));
    results.calibration["per_threads"] = per_threads;  // before the points: a partial save has it
    sweep(ctx, cfg, o, results, not_ok, done);
    // The calibration again: a machine that got busier (or quieter) during the sweep shows here.
    if (counts.size() > 1) std::fprintf(stderr, "calibrating again after the %d-thread points ... ", ctx.threads());
    else std::fprintf(stderr, "calibrating again after the sweep ... ");
    const Calibration c_end = out_of_memory_as_error("calibrating after the sweep (lower --threads)", [&] { return calibrate(ctx); });
    std::fprintf(stderr, "%.1f GFLOP/s\n", c_end.gflops);
    if (first) results.calibration_end = to_json(c_end);
    per_threads.back()["matmul_end"] = to_json(c_end);
    results.calibration["per_threads"] = per_threads;
    flag_contention(results, c.gflops, c_end.gflops, counts.size() > 1 ? ctx.threads() : -1);
  };

  try {
    for (std::size_t i = 0; i < counts.size(); ++i) run_count(counts[i], i == 0);
  } catch (const Interrupted& e) {
    // The points measured so far are kept, marked partial; no analysis (the sweep is incomplete).
    results.partial_reason = std::string(e.what()) + " after " + std::to_string(results.runs.size()) + " points";
    if (!results.runs.empty()) {
      save_results(results, path);
      std::fprintf(stderr, "%zu points measured so far written to %s, marked partial\n", results.runs.size(), path.c_str());
    }
    throw;
  } catch (const std::exception& e) {
    // A later point threw (a bug, an unusable input found late): keep the points before it.
    results.partial_reason = std::string("stopped by an error: ") + e.what();
    if (!results.runs.empty()) {
      try {
        save_results(results, path);
        std::fprintf(stderr, "%zu points measured so far written to %s, marked partial\n", results.runs.size(), path.c_str());
      } catch (const std::exception&) {  // the original error is the one to report
      }
    }
    throw;
  }
  if (o.no_calibration) flag_contention(results, 0, 0);  // ab's workers: per-point contention only, no drift
  results.environment["process_threads_after_sweep"] = process_threads();

  const std::string analysis_summary = o.no_analysis ? "" : analyze_for_compare(results, path);  // fits into results, report.md next to it
  save_results(results, path);

  for (int threads : counts)
    for (Workload w : cfg.bench.workloads) {
      std::printf("\n%s: median %s over %lld repeats%s (~ marks cv > 10%%)\n", to_string(w), w == Workload::kDecode ? "time per token" : "time",
                  static_cast<long long>(cfg.bench.repeats), counts.size() > 1 ? (", " + std::to_string(threads) + " threads").c_str() : "");
      std::printf("%s", time_table(counts.size() > 1 ? results.at_threads(threads) : results, w).c_str());
    }
  std::printf("\npeak working memory (activations + state + scratchpad), %s workload\n", to_string(cfg.bench.workloads.back()));
  std::printf("%s", memory_table(counts.size() > 1 ? results.at_threads(counts.front()) : results, cfg.bench.workloads.back()).c_str());
  std::printf("\nparameters\n%s", params_table(results).c_str());
  for (const std::string& w : results.warnings) spdlog::warn("{}", w);
  std::size_t noisy = 0;
  for (const RunRecord& r : results.runs) noisy += r.noisy;
  if (noisy > 0)
    spdlog::warn("{} of {} points are noisy (cv > {:.0f}%): their medians are marked ~; rerun on a quieter machine or raise --repeats",
                 noisy, results.runs.size(), 100 * kNoisyCv);
  std::printf("\ncalibration: %s; results written to %s%s\n",
              o.no_calibration ? "skipped" : (format_fixed(cal.gflops, 1) + " GFLOP/s").c_str(), path.c_str(),
              not_ok ? (" (" + std::to_string(not_ok) + " points skipped or failed; see their reasons above)").c_str() : "");
  std::printf("\n%s", analysis_summary.c_str());
  return 0;
}

}  // namespace

void add_compare(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CompareOptions>();
  CLI::App* sub = app.add_subcommand("compare", "Benchmark architectures over sequence lengths and write comparison_results.json");
  sub->add_option("--config", o->config_path, "YAML or JSON config (SPEC §1); default: the built-in SPEC defaults");
  sub->add_option("--set", o->overrides, "Override one config key, e.g. --set model.chunk_size=64 (repeatable)");
  std::string known;
  for (const Architecture& a : architectures()) known += (known.empty() ? "" : ", ") + std::string(a.name);
  sub->add_option("--models", o->models, "Models to run (default: all, in the study's order): " + known)->expected(1, -1);
  sub->add_option("--seq_lengths,--seq-lengths", o->seq_lengths, "Sequence lengths n")->expected(1, -1);
  auto optional_text = [&](const char* names, std::optional<std::string>& target, const char* help) {
    sub->add_option_function<std::string>(names, [&target](const std::string& s) { target = s; }, help);
  };
  sub->add_option("--workloads", o->workloads, "Workloads: prefill decode generate recompute train train_recompute")->expected(1, -1);
  optional_text("--n_tokens,--n-tokens", o->n_tokens, "Tokens generated after the prefill (decode, generate, recompute)");
  optional_text("--repeats", o->repeats, "Timed repeats per point (every sample is kept)");
  optional_text("--warmup", o->warmup, "Untimed warm-up runs per point");
  sub->add_option("--threads", o->threads,
                  "Worker threads (0 = all cores); several counts sweep them: every point runs at each, e.g. --threads 1 2 4 16")
      ->expected(1, -1);
  sub->add_flag("--no-memory-guard", o->no_memory_guard, "Run points even if their estimated memory exceeds what is available");
  sub->add_flag("--no-verify", o->no_verify,
                "Skip the check of every point against the plain-loop oracle at min(n, benchmark.verify_length) tokens before timing");
  sub->add_flag("--no-calibration", o->no_calibration, "Skip the calibration matmul (the results file then has none; check needs it)");
  sub->add_flag("--no-analysis", o->no_analysis, "Skip the fits, report.md and plots (ab's workers)");
  sub->add_option("--out", o->out_dir, "Output directory for comparison_results.json")->capture_default_str();
  sub->add_option("--weights", o->weights_dir,
                  "Directory of weights to run instead of the seeded initialisation: DIR/<Model>.safetensors for every model");
  sub->add_option("--save-weights,--save_weights", o->save_weights_dir,
                  "Write every model's weights to DIR/<Model>.safetensors (safetensors F32; tensor names in the README)");
  sub->callback([o, &exit_code]() { exit_code = run_compare(*o); });
}

}  // namespace bsbr::cli

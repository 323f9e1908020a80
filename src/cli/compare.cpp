// `bsbr-bench compare`: sweep models x workloads x sequence lengths, write comparison_results.json.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>

#include "bench/calibration.hpp"
#include "bench/contention.hpp"
#include "bench/environment.hpp"
#include "bench/runner.hpp"
#include "cli/commands.hpp"
#include "core/config.hpp"
#include "core/errors.hpp"
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
  std::vector<int64_t> seq_lengths;
  std::vector<std::string> workloads;
  int64_t n_tokens = -1, repeats = -1, warmup = -1, threads = -1;
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
  if (!o.seq_lengths.empty()) b.seq_lengths = o.seq_lengths;
  if (!o.workloads.empty()) {
    b.workloads.clear();
    for (const std::string& w : o.workloads) b.workloads.push_back(parse_workload(w));
  }
  if (o.n_tokens >= 0) b.n_tokens = o.n_tokens;
  if (o.repeats >= 0) b.repeats = o.repeats;
  if (o.warmup >= 0) b.warmup = o.warmup;
  if (o.threads >= 0) b.threads = o.threads;
  if (o.no_memory_guard) b.memory_guard = false;
  if (o.no_verify) b.verify = false;
  if (b.models.empty())
    for (const Architecture& a : architectures()) b.models.push_back(a.name);
  for (const std::string& m : b.models) find_architecture(m);  // unknown names are a UserError
  b.validate("command line");
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
            {"threads", cfg.bench.threads}, {"memory_guard", cfg.bench.memory_guard},
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
void flag_contention(Results& results, double gflops_start, double gflops_end) {
  const std::string drift = calibration_drift(gflops_start, gflops_end);
  std::size_t contended = 0, timed = 0;
  std::string names;
  for (RunRecord& r : results.runs) {
    if (r.status != "ok") continue;
    ++timed;
    if (r.contention.contended && ++contended <= 3)
      names += std::string(names.empty() ? "" : ", ") + r.problem.model + " " + to_string(r.problem.workload) + " n=" + std::to_string(r.problem.n);
    if (!drift.empty()) {
      r.contention.contended = true;
      r.contention.reason += (r.contention.reason.empty() ? "" : "; ") + drift;
    }
  }
  if (contended > 0)
    results.warnings.push_back("busy machine: " + std::to_string(contended) + " of " + std::to_string(timed) + " points ran contended (" + names +
                               (contended > 3 ? ", ..." : "") + "; see each run's contention.reason); their times are not the machine's: rerun on a quiet machine");
  if (!drift.empty()) results.warnings.push_back("busy machine: " + drift + "; every point is marked contended");
}

int run_compare(const CompareOptions& o) {
  Config cfg = effective_config(o);
  ops::Context ctx(static_cast<int>(cfg.bench.threads));
  // Every model's weights file is checked before any time is spent measuring.
  if (!o.weights_dir.empty())
    for (const std::string& name : cfg.bench.models) {
      Model model(ctx, cfg.model, find_architecture(name));
      check_weights(model, weights_path_in(o.weights_dir, name));
    }
  Results results;
  results.models = cfg.bench.models;
  results.seq_lengths = cfg.bench.seq_lengths;
  results.config = config_json(cfg, o);
  results.environment = to_json(collect_environment(ctx.threads()));

  Calibration cal;
  if (!o.no_calibration) {
    std::fprintf(stderr, "calibrating: %lldx%lldx%lld f32 matmul on %d threads ... ", 2048LL, 2048LL, 2048LL, ctx.threads());
    cal = calibrate(ctx);
    std::fprintf(stderr, "%.1f GFLOP/s (%s)\n", cal.gflops, cal.impl.c_str());
    results.calibration = to_json(cal);
  }

  Runner runner(ctx, cfg);
  std::size_t total = cfg.bench.models.size() * cfg.bench.seq_lengths.size() * cfg.bench.workloads.size(), done = 0, not_ok = 0;
  for (const std::string& name : cfg.bench.models) {
    std::unique_ptr<Model> owned = make_model(ctx, cfg, o, name);
    Model& model = *owned;
    results.model_info[name] = ModelInfo{name, model.param_count(false), model.param_count(true)};
    for (const Problem& p : expand(cfg.bench, {name})) {
      ++done;
      std::fprintf(stderr, "[%3zu/%zu] %-13s %-9s n=%-6lld ", done, total, name.c_str(), to_string(p.workload),
                   static_cast<long long>(p.n));
      std::fflush(stderr);
      RunRecord rec = runner.run(model, p);
      rec.repro = repro_line(o, cfg, p, ctx.threads());
      if (rec.status == "ok") {
        std::fprintf(stderr, "median %-10s cv %4.1f%%  %7.1f GFLOP/s  peak %s%s%s\n", format_seconds(rec.stats.median).c_str(),
                     100 * rec.stats.cv, rec.gflops, format_bytes(static_cast<double>(rec.memory.peak_working_bytes)).c_str(),
                     rec.noisy ? "  [noisy: cv > 10%]" : "", rec.contention.contended ? "  [contended]" : "");
        if (rec.contention.contended) std::fprintf(stderr, "      contended: %s\n", rec.contention.reason.c_str());
      } else {
        ++not_ok;
        std::fprintf(stderr, "%s: %s\n", rec.status.c_str(), rec.reason.c_str());
      }
      results.runs.push_back(std::move(rec));
    }
  }

  // The calibration again: a machine that got busier (or quieter) during the sweep shows here.
  double gflops_end = cal.gflops;  // without calibration (ab's workers): no drift to flag
  if (!o.no_calibration) {
    std::fprintf(stderr, "calibrating again after the sweep ... ");
    Calibration cal_end = calibrate(ctx);
    std::fprintf(stderr, "%.1f GFLOP/s\n", cal_end.gflops);
    results.calibration_end = to_json(cal_end);
    gflops_end = cal_end.gflops;
  }
  flag_contention(results, cal.gflops, gflops_end);
  results.environment["process_threads_after_sweep"] = process_threads();

  const std::string path = o.out_dir + "/comparison_results.json";
  const std::string analysis_summary = o.no_analysis ? "" : analyze_for_compare(results, path);  // fits, report.md
  save_results(results, path);

  for (Workload w : cfg.bench.workloads) {
    std::printf("\n%s: median %s over %lld repeats (~ marks cv > 10%%)\n", to_string(w),
                w == Workload::kDecode ? "time per token" : "time", static_cast<long long>(cfg.bench.repeats));
    std::printf("%s", time_table(results, w).c_str());
  }
  std::printf("\npeak working memory (activations + state + scratchpad), %s workload\n", to_string(cfg.bench.workloads.back()));
  std::printf("%s", memory_table(results, cfg.bench.workloads.back()).c_str());
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
  sub->add_option("--workloads", o->workloads, "Workloads: prefill decode generate recompute")->expected(1, -1);
  sub->add_option("--n_tokens,--n-tokens", o->n_tokens, "Tokens generated after the prefill (decode, generate, recompute)");
  sub->add_option("--repeats", o->repeats, "Timed repeats per point (every sample is kept)");
  sub->add_option("--warmup", o->warmup, "Untimed warm-up runs per point");
  sub->add_option("--threads", o->threads, "Worker threads (0 = all cores)");
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

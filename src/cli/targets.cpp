// `bsbr-bench targets`: evaluates issue 4's performance targets from a long-context and a default
// results file and prints each figure with its bound; exit 1 when a target is missed.
#include <cstdio>
#include <memory>
#include <vector>

#include "analysis/targets.hpp"
#include "cli/commands.hpp"
#include "report/console.hpp"
#include "report/results.hpp"

namespace bsbr::cli {

namespace {

struct TargetsOptions {
  std::string long_path = "results/long-context/comparison_results.json";
  std::string default_path = "results/comparison_results.json";
  std::vector<std::string> scaling_paths;  // --scaling: issue 14's targets from these files instead
};

// Issue 14's targets (analysis::evaluate_scaling_targets) from the --scaling files.
int run_scaling_targets(const TargetsOptions& o) {
  std::vector<Results> loaded;
  loaded.reserve(o.scaling_paths.size());
  for (const std::string& p : o.scaling_paths) loaded.push_back(load_results(p));
  std::vector<analysis::ScalingTargetFile> files;
  for (std::size_t i = 0; i < loaded.size(); ++i) files.push_back({o.scaling_paths[i], &loaded[i]});
  const analysis::ScalingTargets r = analysis::evaluate_scaling_targets(files);
  ReportTable t{"issue 14 targets: every core count", {"target", "model", "point", "measured", "required", "result"}};
  int failed = 0, failed_noisy = 0;
  std::vector<std::string> notes;
  for (const analysis::TargetCheck& c : r.checks) {
    const bool missed = !c.pass;
    failed += missed;
    failed_noisy += missed && !c.noisy_points.empty();
    t.rows.push_back({c.target, c.model, c.point, c.measured, c.required, std::string(c.pass ? "pass" : "MISSED") + (c.noisy_points.empty() ? "" : " ~")});
    for (const std::string& p : c.noisy_points) notes.push_back("  ~ noisy point (cv > 10%) " + p);
  }
  std::printf("%s", render_text(t).c_str());
  for (const std::string& n : notes) std::printf("%s\n", n.c_str());
  for (const std::string& a : r.absent) std::printf("not checked: %s\n", a.c_str());
  if (failed_noisy)
    std::printf("%d missed check(s) rest on noisy points: rerun on a quiet machine before concluding\n", failed_noisy);
  std::printf("%s\n", failed ? (std::to_string(failed) + " of " + std::to_string(r.checks.size()) + " check(s) missed").c_str()
                              : ("every check met (" + std::to_string(r.checks.size()) + ")").c_str());
  return failed ? 1 : 0;
}

int run_targets(const TargetsOptions& o) {
  if (!o.scaling_paths.empty()) return run_scaling_targets(o);
  const Results lc = load_results(o.long_path), def = load_results(o.default_path);
  const std::vector<analysis::TargetCheck> checks = analysis::evaluate_targets(lc, def);
  ReportTable t{"performance targets (" + o.long_path + ", " + o.default_path + ")", {"target", "model", "measured", "required", "result"}};
  int failed = 0, failed_noisy = 0;
  std::vector<std::string> notes;
  for (const analysis::TargetCheck& c : checks) {
    const bool missed = c.checked && !c.pass;
    failed += missed;
    failed_noisy += missed && !c.noisy_points.empty();
    t.rows.push_back({c.target, c.model, c.measured, c.required,
                      std::string(c.checked ? (c.pass ? "pass" : "MISSED") : "(reported)") + (c.noisy_points.empty() ? "" : " ~")});
    for (const std::string& p : c.noisy_points) notes.push_back("  ~ " + c.target + ": noisy point (cv > 10%) " + p);
  }
  std::printf("%s", render_text(t).c_str());
  for (const std::string& n : notes) std::printf("%s\n", n.c_str());
  if (failed_noisy)
    std::printf("%d missed target(s) rest on noisy points: rerun the compare command on a quiet machine before concluding\n",
                failed_noisy);
  std::printf("%s\n", failed ? (std::to_string(failed) + " target(s) missed").c_str() : "every target met");
  return failed ? 1 : 0;
}

}  // namespace

void add_targets(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<TargetsOptions>();
  CLI::App* sub = app.add_subcommand("targets", "Check the performance targets from a long-context run and a default run (exit 1 if one is missed)");
  sub->add_option("--long", o->long_path, "Results of: compare --config configs/long-context.yaml")->capture_default_str();
  sub->add_option("--default", o->default_path, "Results of: compare --config configs/default.yaml")->capture_default_str();
  sub->add_option("--scaling", o->scaling_paths,
                  "Check issue 14's targets (every core count: efficiency, speed-up 1->16, decode roofline) from these results files "
                  "instead (compare --threads 1 2 4 16 ...)")
      ->expected(1, -1);
  sub->callback([o, &exit_code]() { exit_code = run_targets(*o); });
}

}  // namespace bsbr::cli

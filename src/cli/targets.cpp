// `bsbr-bench targets`: evaluates issue 4's performance targets from a long-context and a default
// results file and prints each figure with its bound; exit 1 when a target is missed.
#include <cstdio>
#include <memory>

#include "analysis/targets.hpp"
#include "cli/commands.hpp"
#include "report/console.hpp"
#include "report/results.hpp"

namespace bsbr::cli {

namespace {

struct TargetsOptions {
  std::string long_path = "results/long-context/comparison_results.json";
  std::string default_path = "results/comparison_results.json";
};

int run_targets(const TargetsOptions& o) {
  const Results lc = load_results(o.long_path), def = load_results(o.default_path);
  const std::vector<analysis::TargetCheck> checks = analysis::evaluate_targets(lc, def);
  ReportTable t{"performance targets (" + o.long_path + ", " + o.default_path + ")", {"target", "model", "measured", "required", "result"}};
  int failed = 0;
  for (const analysis::TargetCheck& c : checks) {
    failed += c.checked && !c.pass;
    t.rows.push_back({c.target, c.model, c.measured, c.required, c.checked ? (c.pass ? "pass" : "MISSED") : "(reported)"});
  }
  std::printf("%s", render_text(t).c_str());
  std::printf("%s\n", failed ? (std::to_string(failed) + " target(s) missed").c_str() : "every target met");
  return failed ? 1 : 0;
}

}  // namespace

void add_targets(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<TargetsOptions>();
  CLI::App* sub = app.add_subcommand("targets", "Check the performance targets from a long-context run and a default run (exit 1 if one is missed)");
  sub->add_option("--long", o->long_path, "Results of: compare --config configs/long-context.yaml")->capture_default_str();
  sub->add_option("--default", o->default_path, "Results of: compare --config configs/default.yaml")->capture_default_str();
  sub->callback([o, &exit_code]() { exit_code = run_targets(*o); });
}

}  // namespace bsbr::cli

// `bsbr-bench check`: compare a current results file with a baseline; exit 1 on a regression.
#include <cstdio>
#include <memory>

#include "analysis/check.hpp"
#include "cli/commands.hpp"
#include "core/config.hpp"
#include "core/io.hpp"
#include "report/check_report.hpp"
#include "report/fingerprint.hpp"
#include "report/results.hpp"

namespace bsbr::cli {

namespace {

struct CheckCliOptions {
  std::string baseline_path, current_path, confirm_path, markdown_path;
  std::vector<std::string> workloads;
  analysis::CheckOptions check;
};

int run_check(CheckCliOptions o) {
  for (const std::string& w : o.workloads) o.check.workloads.push_back(parse_workload(w));
  o.check.validate();
  const Results baseline = load_results(o.baseline_path);
  const Results current = load_results(o.current_path);
  require_same_fingerprint(baseline, o.baseline_path, current, o.current_path, FingerprintScope::kSettings);  // exit 2 naming the field
  analysis::CheckResult r = analysis::check_regressions(baseline, current, o.check);
  if (!o.confirm_path.empty()) {
    const Results confirm = load_results(o.confirm_path);
    require_same_fingerprint(baseline, o.baseline_path, confirm, o.confirm_path, FingerprintScope::kSettings);
    analysis::require_confirmation(r, analysis::check_regressions(baseline, confirm, o.check), o.confirm_path);
  }
  const CheckSources sources{o.baseline_path, o.current_path};
  std::printf("%s", check_text(r, o.check, sources).c_str());
  if (!o.markdown_path.empty()) write_file_atomic(o.markdown_path, check_markdown(r, o.check, sources));
  return r.regressions() > 0 ? 1 : 0;
}

}  // namespace

void add_check(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CheckCliOptions>();
  CLI::App* sub = app.add_subcommand("check",
                                     "Compare a results file with a baseline: exit 1 if a point got slower beyond noise or a "
                                     "model's exponent grew, 2 if the input is unusable");
  sub->add_option("--baseline", o->baseline_path, "Baseline results file (e.g. results/baseline.json)")->required();
  sub->add_option("--current", o->current_path, "Current results file (e.g. results/comparison_results.json)")->required();
  sub->add_option("--threshold", o->check.threshold, "A point regresses when its normalised median is slower by more than this fraction ...")
      ->capture_default_str();
  sub->add_option("--alpha", o->check.alpha, "... and a one-sided Mann-Whitney U test over the samples gives p below this")
      ->capture_default_str();
  sub->add_option("--exponent-tolerance", o->check.exponent_tolerance,
                  "Fail when a model's fitted exponent b grows by more than this (an accidental O(n²))")
      ->capture_default_str();
  sub->add_option("--workloads", o->workloads, "Only these workloads (default: all in both files)")->expected(1, -1);
  sub->add_option("--models", o->check.models, "Only these models (default: all in both files)")->expected(1, -1);
  sub->add_option("--confirm", o->confirm_path,
                  "Results of an independent second sweep: a regression counts only if it regresses there too (CI's retry)");
  sub->add_option("--markdown", o->markdown_path, "Also write the report as Markdown (e.g. a CI job summary)");
  sub->callback([o, &exit_code]() { exit_code = run_check(*o); });
}

}  // namespace bsbr::cli

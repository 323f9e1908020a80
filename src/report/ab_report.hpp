// Output of `bsbr-bench ab`: ab_results.json (everything: both sides' samples per round, the
// rounds' order, contention readings, process start costs, fingerprints, ratios, intervals,
// p-values, verdicts) and the report, for the terminal or Markdown (ab_report.md).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/ab.hpp"
#include "bench/ab_rounds.hpp"

namespace bsbr {

inline constexpr int kAbSchemaVersion = 1;

// One whole ab run, as the CLI assembled it.
struct AbRun {
  bool aa = false;                 // A against itself (B = A)
  RoundsOptions rounds_options;    // executables, worker arguments, budget, seed, contention rule
  std::vector<std::string> b_only_args;  // --b-set overrides given to B alone (power checks)
  std::vector<std::string> exempt_fields;  // fingerprint fields those overrides change on purpose
  int samples_per_round = 0;
  analysis::AbOptions stats;
  RoundsResult rounds;
  analysis::AbAnalysis analysis;
  analysis::AaSummary aa_summary;  // when aa
  // Non-empty: the run is unusable (never quiet, too few rounds for the test to flag anything):
  // exit code 2 and the report says why.
  std::string unusable;
};

// Why the run is unusable, or "": fewer than min_rounds valid rounds (after discarding contended
// ones: "the machine never got quiet" when any were discarded), or, outside --aa, so few rounds
// that no point could reach an adjusted p below alpha (analysis.blind).
std::string assess_usability(const RoundsResult& rounds, const analysis::AbAnalysis& analysis, int min_rounds, bool aa);

// 2 when unusable, else 1 when a point is slower or failed in B, else 0.
int ab_exit_code(const AbRun& r);

nlohmann::json ab_to_json(const AbRun& r);
std::string ab_text(const AbRun& r);
std::string ab_markdown(const AbRun& r);
// "ab: 84 points, 0 slower, 1 faster ... ; 12 valid rounds (2 discarded)" (last line of both reports).
std::string ab_summary_line(const AbRun& r);

}  // namespace bsbr

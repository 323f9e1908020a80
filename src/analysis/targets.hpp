// The performance targets of issue 4, evaluated from results files (never by a timed unit test):
//   1. Standard and BSBR prefill at n = 4,096 attain >= 50% of the same run's calibration GFLOP/s;
//   2. decode time per token of Linear and DeltaNet is flat in n: fitted exponent < 0.1;
//   3. Standard's decode time per token grows linearly (fitted exponent in [0.7, 1.3]);
//   4. BSBR's decode per token is within 1.5x of Linear's at the largest n;
//   5. generate (n = 1,024, 50 tokens) takes under 50 ms for every model.
// Targets 1-4 read a long-context run (configs/long-context.yaml), target 5 a default run
// (configs/default.yaml). Every model's figure is reported; the targets name which must pass.
#pragma once
#include <string>
#include <vector>

#include "report/results.hpp"

namespace bsbr::analysis {

struct TargetCheck {
  std::string target;    // what is required
  std::string model;
  std::string measured;  // the figure, formatted
  std::string required;  // the bound, formatted ("" when only reported)
  bool checked = false;  // part of a target (else: reported for comparison)
  bool pass = true;
  std::vector<std::string> noisy_points;  // points behind the figure with cv > 10% ("BSBR decode n=65536 cv 33%")
};

// Throws UserError when a file lacks what a target needs (names the missing point).
std::vector<TargetCheck> evaluate_targets(const Results& long_context, const Results& default_run);

}  // namespace bsbr::analysis

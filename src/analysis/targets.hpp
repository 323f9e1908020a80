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
  std::string point;     // issue 14: the point(s) and file behind the figure ("prefill n=4096 t=2, a.json")
};

// Throws UserError when a file lacks what a target needs (names the missing point).
std::vector<TargetCheck> evaluate_targets(const Results& long_context, const Results& default_run);

// Issue 14's targets ("fast on every core count"), from one or more results files, each judged
// against its own calibrations (a file is one machine; README "bsbr-bench targets"):
//   1. prefill at n >= 4,096: efficiency (executed GFLOP/s over the calibration matmul at the
//      point's thread count) >= 60 % at 1, 2 and 16 threads, every architecture;
//   2. prefill at n >= 4,096: speed-up 1 -> 16 threads >= 0.7 x the calibration's own speed-up
//      (parallel efficiency >= 0.7), every architecture;
//   3. decode per token within 1.5x of its bandwidth roofline (roofline_fraction >= 1 / 1.5) at
//      1, 2 and 16 threads, for Standard at n = 65,536 and for the bounded-state models at any n.
inline constexpr int64_t kScalingPrefillMinN = 4096, kScalingStandardDecodeN = 65536;
inline constexpr double kScalingMinEfficiency = 0.6, kScalingMinParallelEfficiency = 0.7, kScalingMaxRooflineFactor = 1.5;
inline constexpr int64_t kScalingThreadCounts[] = {1, 2, 16};
// The architectures whose decode state does not grow with n (SPEC §2: Linear's S and z, DeltaNet's
// S, SlidingWindow's ring of w + 1 keys, GAU's E x E prefix sum and one chunk). BSBR's chunk list
// grows as n / B, Standard's and Hopfield's KV cache as n.
const std::vector<std::string>& bounded_state_models();

struct ScalingTargetFile {
  std::string path;
  const Results* results = nullptr;
};
struct ScalingTargets {
  std::vector<TargetCheck> checks;
  std::vector<std::string> absent;  // what could not be checked, and why ("a.json: no runs at 16 threads")
};
// Throws UserError (exit 2) for an unusable file: no runs, a point without the calibration at its
// thread count (efficiency, speed-up) or without a bandwidth calibration or bytes_per_token
// (roofline), or nothing at all to check in any file.
ScalingTargets evaluate_scaling_targets(const std::vector<ScalingTargetFile>& files);

}  // namespace bsbr::analysis

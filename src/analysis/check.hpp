// Regression check between two results files (bsbr-bench check): pairs every (model, workload, n,
// threads) present in both, normalises each file's times by its own calibration GFLOP/s at the
// point's thread count, and decides per
// point whether the current run is slower beyond noise; a complexity gate flags a model whose
// fitted exponent grew.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/mann_whitney.hpp"
#include "report/results.hpp"

namespace bsbr::analysis {

// Below this many samples on either side the U test cannot reach small p-values (with 4 + 4 the
// smallest one-sided p is 1/70), so check decides on the threshold alone and says so.
inline constexpr int kMinSamplesForTest = 5;
// The complexity gate needs this many lengths common to both files.
inline constexpr int kMinLengthsForGate = 3;

struct CheckOptions {
  double threshold = 0.10;          // slower by more than this fraction (normalised medians)
  double alpha = 0.05;              // and one-sided Mann-Whitney p below this
  double exponent_tolerance = 0.15; // exponent growth that fails the complexity gate
  std::vector<std::string> models;  // empty: every model in both files
  std::vector<Workload> workloads;  // empty: every workload in both files
  void validate() const;            // UserError on out-of-range values
};

enum class Verdict { kFaster, kSame, kSlower };
const char* to_string(Verdict v);

struct PointComparison {
  std::string model;
  Workload workload = Workload::kPrefill;
  int64_t n = 0;
  int64_t threads = 0;  // points pair by (model, workload, n, threads)
  double baseline_median_s = 0, current_median_s = 0;  // as measured (per token for decode)
  int baseline_samples = 0, current_samples = 0;
  // (median_current · gflops_current) / (median_baseline · gflops_baseline): the slowdown on
  // machines of equal speed. A run on a machine twice as fast has half the times and twice the
  // GFLOP/s, so its ratio is 1. gflops: Results::calibration_attainable_gflops().
  double ratio = 1;
  std::optional<MannWhitneyResult> test;  // on the normalised samples; nullopt when underpowered
  bool underpowered = false;
  Verdict verdict = Verdict::kSame;
  bool regression = false;  // slower, and p < alpha (or underpowered: threshold alone)
  bool unconfirmed = false; // would regress, but the confirmation sweep did not reproduce it
};

// The power-law exponent of one model and workload in both files, over the lengths they share.
struct ExponentComparison {
  std::string model;
  Workload workload = Workload::kPrefill;
  int64_t threads = 0;  // one series per thread count
  std::vector<int64_t> seq_lengths;
  double baseline_b = 0, current_b = 0;
  bool regression = false;  // current_b - baseline_b > exponent_tolerance
  bool unconfirmed = false;
};

// A point in one file and not comparable in the other.
struct UnpairedPoint {
  std::string model;
  Workload workload = Workload::kPrefill;
  int64_t n = 0;
  std::string what;         // e.g. "missing from current", "failed in current: <reason>"
  bool regression = false;  // ok in the baseline, failed in the current run
  bool unconfirmed = false;
  int64_t threads = 0;
};

struct CheckResult {
  double baseline_gflops = 0, current_gflops = 0;  // at the files' first thread count (each point uses its own count's)
  std::vector<PointComparison> points;
  std::vector<ExponentComparison> exponents;
  std::vector<std::string> gate_skipped;  // "Model workload: why" when the gate could not run
  std::vector<UnpairedPoint> unpaired;
  std::string confirmed_by;  // set by require_confirmation
  int regressions() const;  // points + exponents + failed points
};

// Throws UserError if a file has no calibration figure, a named model or workload is in neither
// file, or no point is present in both (after the filters).
CheckResult check_regressions(const Results& baseline, const Results& current, const CheckOptions& options);

// Replication: keeps only the regressions of `r` that `confirmation` (the same check of the same
// baseline against an independent sweep, `confirmation_source`) reproduces: the same point, the
// same model and workload for the exponent gate. The others stay in the report, marked
// unconfirmed. On a busy shared machine one sweep can be 2-3x slow at a point (another job held
// the core through all its samples); the same point in two sweeps rarely is.
void require_confirmation(CheckResult& r, const CheckResult& confirmation, const std::string& confirmation_source);

}  // namespace bsbr::analysis

// Performance targets from results files.
#include "analysis/targets.hpp"

#include <algorithm>
#include <cstdio>

#include "analysis/fit.hpp"
#include "core/errors.hpp"
#include "report/console.hpp"

namespace bsbr::analysis {

namespace {

constexpr int64_t kPrefillN = 4096, kGenerateN = 1024, kGenerateTokens = 50;
constexpr double kMinCalibrationShare = 0.5, kFlatExponent = 0.1, kLinearLow = 0.7, kLinearHigh = 1.3, kBsbrVsLinear = 1.5,
                 kGenerateSeconds = 0.050;

std::string pct(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f%%", 100 * x);
  return b;
}

const RunRecord& need(const Results& r, const std::string& model, Workload w, int64_t n, const std::string& file) {
  const RunRecord* rec = r.find(model, w, n);
  if (!rec)
    throw UserError(file + ": no ok " + std::string(to_string(w)) + " run of " + model + " at n=" + std::to_string(n) +
                    " (needed for the performance targets)");
  return *rec;
}

std::string noisy_label(const RunRecord& r) {
  return r.problem.model + " " + std::string(to_string(r.problem.workload)) + " n=" + std::to_string(r.problem.n) + " cv " +
         pct(r.stats.cv);
}

// Labels of the noisy points among `records`.
std::vector<std::string> noisy_among(std::initializer_list<const RunRecord*> records) {
  std::vector<std::string> out;
  for (const RunRecord* r : records)
    if (r->noisy) out.push_back(noisy_label(*r));
  return out;
}

// Power-law exponent of the decode time per token over every length the file has for the model.
// Noisy points used are appended to `noisy`.
double decode_exponent(const Results& r, const std::string& model, std::vector<std::string>& noisy) {
  std::vector<int64_t> n;
  std::vector<double> t;
  for (int64_t len : r.seq_lengths)
    if (const RunRecord* rec = r.find(model, Workload::kDecode, len)) {
      n.push_back(len);
      t.push_back(rec->stats.median);
      if (rec->noisy) noisy.push_back(noisy_label(*rec));
    }
  if (n.size() < 3) throw UserError("long-context results: fewer than 3 decode lengths for " + model + " (needed for the exponent)");
  return fit_power_law(n, t).b;
}

}  // namespace

std::vector<TargetCheck> evaluate_targets(const Results& lc, const Results& def) {
  const auto calibration = lc.calibration_gflops();
  if (!calibration) throw UserError("long-context results: no calibration figure");
  if (lc.seq_lengths.empty()) throw UserError("long-context results: no sequence lengths");
  const int64_t largest = *std::max_element(lc.seq_lengths.begin(), lc.seq_lengths.end());
  auto named = [](const std::string& m, std::initializer_list<const char*> names) {
    return std::any_of(names.begin(), names.end(), [&](const char* x) { return m == x; });
  };
  std::vector<TargetCheck> out;

  for (const std::string& m : lc.models) {
    const RunRecord& p = need(lc, m, Workload::kPrefill, kPrefillN, "long-context results");
    const double share = p.gflops / *calibration;
    const bool checked = named(m, {"Standard", "BSBR"});
    char measured[64];
    std::snprintf(measured, sizeof measured, "%.1f / %.1f GFLOP/s = %s", p.gflops, *calibration, pct(share).c_str());
    out.push_back({"prefill n=4096 attains >= 50% of calibration", m, measured, checked ? ">= 50%" : "", checked,
                   !checked || share >= kMinCalibrationShare, noisy_among({&p})});
  }
  for (const std::string& m : lc.models) {
    std::vector<std::string> noisy;
    const double b = decode_exponent(lc, m, noisy);
    TargetCheck c{"decode per token vs n: fitted exponent", m, format_fixed(b, 3), "", false, true, std::move(noisy)};
    if (named(m, {"Linear", "DeltaNet"})) {
      c.required = "< 0.1 (flat)";
      c.checked = true;
      c.pass = b < kFlatExponent;
    } else if (m == "Standard") {
      c.required = "0.7 .. 1.3 (linear)";
      c.checked = true;
      c.pass = b >= kLinearLow && b <= kLinearHigh;
    }
    out.push_back(c);
  }
  {
    const RunRecord& bsbr = need(lc, "BSBR", Workload::kDecode, largest, "long-context results");
    const RunRecord& linear = need(lc, "Linear", Workload::kDecode, largest, "long-context results");
    const double ratio = bsbr.stats.median / linear.stats.median;
    out.push_back({"BSBR decode within 1.5x of Linear's at n=" + std::to_string(largest), "BSBR",
                   format_seconds(bsbr.stats.median) + " / " + format_seconds(linear.stats.median) + " = " + format_fixed(ratio, 2) + "x",
                   "<= 1.5x", true, ratio <= kBsbrVsLinear, noisy_among({&bsbr, &linear})});
  }
  for (const std::string& m : def.models) {
    const RunRecord& g = need(def, m, Workload::kGenerate, kGenerateN, "default results");
    if (g.n_tokens != kGenerateTokens)
      throw UserError("default results: generate ran with n_tokens=" + std::to_string(g.n_tokens) + ", the target is for 50");
    out.push_back({"generate n=1024, 50 tokens, under 50 ms", m, format_seconds(g.stats.median), "< 50 ms", true,
                   g.stats.median < kGenerateSeconds, noisy_among({&g})});
  }
  return out;
}

}  // namespace bsbr::analysis

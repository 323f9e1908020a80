// Performance targets from results files.
#include "analysis/targets.hpp"

#include <algorithm>
#include <cstdio>

#include "analysis/fit.hpp"
#include "analysis/scaling.hpp"
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
                   !checked || share >= kMinCalibrationShare, noisy_among({&p}), ""});
  }
  for (const std::string& m : lc.models) {
    std::vector<std::string> noisy;
    const double b = decode_exponent(lc, m, noisy);
    TargetCheck c{"decode per token vs n: fitted exponent", m, format_fixed(b, 3), "", false, true, std::move(noisy), ""};
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
                   "<= 1.5x", true, ratio <= kBsbrVsLinear, noisy_among({&bsbr, &linear}), ""});
  }
  for (const std::string& m : def.models) {
    const RunRecord& g = need(def, m, Workload::kGenerate, kGenerateN, "default results");
    if (g.n_tokens != kGenerateTokens)
      throw UserError("default results: generate ran with n_tokens=" + std::to_string(g.n_tokens) + ", the target is for 50");
    out.push_back({"generate n=1024, 50 tokens, under 50 ms", m, format_seconds(g.stats.median), "< 50 ms", true,
                   g.stats.median < kGenerateSeconds, noisy_among({&g}), ""});
  }
  return out;
}

const std::vector<std::string>& bounded_state_models() {
  static const std::vector<std::string> models = {"Linear", "DeltaNet", "SlidingWindow", "GAU"};
  return models;
}

namespace {

std::string point_label(const RunRecord& r, const std::string& path) {
  return std::string(to_string(r.problem.workload)) + " n=" + std::to_string(r.problem.n) + " t=" + std::to_string(r.threads) + ", " + path;
}

bool has_threads(const Results& r, int64_t t) {
  const std::vector<int64_t> counts = r.thread_counts();
  return std::find(counts.begin(), counts.end(), t) != counts.end();
}

}  // namespace

ScalingTargets evaluate_scaling_targets(const std::vector<ScalingTargetFile>& files) {
  ScalingTargets out;
  if (files.empty()) throw UserError("targets: no results file given");
  const std::string t1 = "prefill n>=4096 attains >= 60% of calibration at 1, 2, 16 threads";
  const std::string t2 = "prefill n>=4096 speed-up 1->16 threads >= 0.7x calibration's";
  const std::string t3 = "decode within 1.5x of its bandwidth roofline at 1, 2, 16 threads";
  const auto& bounded = bounded_state_models();
  bool standard_65536 = false;
  for (const ScalingTargetFile& f : files) {
    const Results& r = *f.results;
    if (r.runs.empty()) throw UserError(f.path + ": no runs (the file must come from bsbr-bench compare)");
    std::string lacking;
    for (int64_t t : kScalingThreadCounts)
      if (!has_threads(r, t)) lacking += (lacking.empty() ? "" : ", ") + std::to_string(t);
    if (!lacking.empty())
      out.absent.push_back(f.path + ": no runs at " + lacking + " thread(s): targets 1 and 3 are checked at the counts it has" +
                           (has_threads(r, 1) && has_threads(r, 16) ? "" : ", target 2 (1 and 16 threads) not at all"));
    for (const RunRecord& run : r.runs) {
      const bool counted = std::find(std::begin(kScalingThreadCounts), std::end(kScalingThreadCounts), run.threads) != std::end(kScalingThreadCounts);
      if (run.status != "ok" || !counted) continue;
      const std::string& m = run.problem.model;
      if (run.problem.workload == Workload::kPrefill && run.problem.n >= kScalingPrefillMinN) {
        const std::optional<double> e = efficiency(r, run);
        if (!e) throw UserError(f.path + ": no calibration at " + std::to_string(run.threads) + " threads (needed for " + m + " " + point_label(run, f.path) + ")");
        out.checks.push_back({t1, m, format_fixed(run.gflops, 1) + " / " + format_fixed(*r.calibration_gflops_at(run.threads), 1) + " GFLOP/s = " + pct(*e),
                              ">= 60%", true, *e >= kScalingMinEfficiency, noisy_among({&run}), point_label(run, f.path)});
      }
      if (run.problem.workload == Workload::kDecode) {
        const bool is_bounded = std::find(bounded.begin(), bounded.end(), m) != bounded.end();
        const bool is_standard = m == "Standard" && run.problem.n == kScalingStandardDecodeN;
        if (!is_bounded && !is_standard) continue;
        standard_65536 = standard_65536 || is_standard;
        if (run.bytes_per_token <= 0)
          throw UserError(f.path + ": " + m + " " + point_label(run, f.path) + " has no bytes_per_token (written by compare since thread sweeps)");
        const std::optional<double> fr = roofline_fraction(r, run);
        if (!fr) throw UserError(f.path + ": no bandwidth calibration at " + std::to_string(run.threads) + " threads (needed for " + m + " " + point_label(run, f.path) + ")");
        out.checks.push_back({t3, m,
                              format_seconds(run.stats.median) + "/token, roofline " + format_seconds(*fr * run.stats.median) + " (" +
                                  format_bytes(run.bytes_per_token) + ") = " + pct(*fr),
                              ">= " + pct(1 / kScalingMaxRooflineFactor), true, *fr >= 1 / kScalingMaxRooflineFactor, noisy_among({&run}),
                              point_label(run, f.path)});
      }
    }
    if (has_threads(r, 1) && has_threads(r, 16)) {
      const std::optional<double> g1 = r.calibration_gflops_at(1), g16 = r.calibration_gflops_at(16);
      if (!g1 || !g16) throw UserError(f.path + ": no calibration at " + std::string(!g1 ? "1" : "16") + " thread(s) (needed for the speed-up target)");
      for (const RunRecord& run : r.runs) {
        if (run.status != "ok" || run.threads != 16 || run.problem.workload != Workload::kPrefill || run.problem.n < kScalingPrefillMinN) continue;
        const RunRecord* one = r.find_at(run.problem.model, Workload::kPrefill, run.problem.n, 1);
        if (!one) {
          out.absent.push_back(f.path + ": " + run.problem.model + " prefill n=" + std::to_string(run.problem.n) + " has no ok run at 1 thread (target 2)");
          continue;
        }
        const double pe = parallel_efficiency(one->stats.median, run.stats.median, *g1, *g16);
        out.checks.push_back({t2, run.problem.model,
                              format_fixed(speedup(one->stats.median, run.stats.median), 2) + "x vs calibration " + format_fixed(*g16 / *g1, 2) +
                                  "x = " + format_fixed(pe, 2),
                              ">= 0.70", true, pe >= kScalingMinParallelEfficiency, noisy_among({one, &run}),
                              "prefill n=" + std::to_string(run.problem.n) + " t=1->16, " + f.path});
      }
    }
  }
  if (!standard_65536) out.absent.push_back("Standard decode n=65536 at 1, 2 or 16 threads: in no file (target 3)");
  for (const std::string& t : {t1, t2, t3})
    if (std::none_of(out.checks.begin(), out.checks.end(), [&](const TargetCheck& c) { return c.target == t; }))
      out.absent.push_back("target \"" + t + "\": no point to check in any file");
  if (out.checks.empty()) throw UserError("targets: nothing to check: no prefill at n >= 4096 or decode point at 1, 2 or 16 threads in the files given");
  return out;
}

}  // namespace bsbr::analysis

// Reading and writing comparison_results.json.
#include "report/results.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "core/json_input.hpp"

namespace bsbr {

using nlohmann::json;

namespace {

// The matmul's GFLOP/s of one calibration block ({"gflops", "m", "n", "k", "samples_s"}).
std::optional<double> block_gflops(const json& calibration) {
  if (calibration.is_object() && calibration.contains("gflops") && calibration["gflops"].is_number()) {
    double g = calibration["gflops"].get<double>();
    if (g > 0) return g;
  }
  return std::nullopt;
}

// 2mnk over the block's fastest sample, else its figure (see calibration_attainable_gflops).
std::optional<double> block_attainable_gflops(const json& c) {
  if (c.is_object() && c.contains("samples_s") && c["samples_s"].is_array() && !c["samples_s"].empty()) {
    double m = 0, n = 0, k = 0, fastest = INFINITY;
    try {
      m = c.at("m").get<double>();
      n = c.at("n").get<double>();
      k = c.at("k").get<double>();
      for (const json& s : c["samples_s"]) fastest = std::min(fastest, s.get<double>());
    } catch (const json::exception&) {
      return block_gflops(c);  // samples without the matmul's shape: fall back to the figure
    }
    if (m > 0 && n > 0 && k > 0 && fastest > 0 && std::isfinite(fastest)) return 2 * m * n * k / fastest / 1e9;
  }
  return block_gflops(c);
}

// The calibration.per_threads entry of `threads`, nullptr when absent (or the file has none).
const json* per_threads_entry(const json& calibration, int64_t threads) {
  if (!calibration.is_object() || !calibration.contains("per_threads") || !calibration["per_threads"].is_array()) return nullptr;
  for (const json& e : calibration["per_threads"])
    if (e.is_object() && e.contains("threads") && e["threads"].is_number_integer() && e["threads"].get<int64_t>() == threads) return &e;
  return nullptr;
}

bool has_per_threads(const json& calibration) { return calibration.is_object() && calibration.contains("per_threads"); }

// The matmul block at `threads`: its per_threads entry's, or the top level for files without per_threads.
const json* matmul_block_at(const json& calibration, int64_t threads) {
  if (!has_per_threads(calibration)) return &calibration;
  const json* e = per_threads_entry(calibration, threads);
  return e && e->contains("matmul") ? &(*e)["matmul"] : nullptr;
}

}  // namespace

std::optional<double> Results::calibration_gflops() const { return block_gflops(calibration); }

std::optional<double> Results::calibration_attainable_gflops() const { return block_attainable_gflops(calibration); }

std::optional<double> Results::calibration_gflops_at(int64_t threads) const {
  const json* b = matmul_block_at(calibration, threads);
  return b ? block_gflops(*b) : std::nullopt;
}

std::optional<double> Results::calibration_attainable_gflops_at(int64_t threads) const {
  const json* b = matmul_block_at(calibration, threads);
  return b ? block_attainable_gflops(*b) : std::nullopt;
}

std::optional<double> Results::bandwidth_gbps_for(int64_t threads, double bytes) const {
  const json* e = per_threads_entry(calibration, threads);
  if (!e || !e->contains("bandwidth") || !(*e)["bandwidth"].is_object()) return std::nullopt;
  const json& b = (*e)["bandwidth"];
  // The ladder (written since the multi-stream read kernel): the largest size at most `bytes`, else
  // the smallest; a smaller buffer reads at least as fast, so the roofline is not flattered.
  if (b.contains("ladder") && b["ladder"].is_array() && !b["ladder"].empty()) {
    const json* below = nullptr;     // the largest size <= bytes
    const json* smallest = nullptr;
    for (const json& s : b["ladder"]) {
      if (!s.is_object() || !s.contains("bytes") || !s["bytes"].is_number() || !s.contains("gbps") || !s["gbps"].is_number()) return std::nullopt;
      const double sb = s["bytes"].get<double>();
      if (sb <= bytes && (!below || sb > (*below)["bytes"].get<double>())) below = &s;
      if (!smallest || sb < (*smallest)["bytes"].get<double>()) smallest = &s;
    }
    const json* pick = below ? below : smallest;
    const double g = (*pick)["gbps"].get<double>();
    return g > 0 ? std::optional<double>(g) : std::nullopt;
  }
  if (!b.contains("llc_bytes") || !b["llc_bytes"].is_number()) return std::nullopt;
  const char* which = bytes > b["llc_bytes"].get<double>() ? "larger_than_llc" : "smaller_than_llc";
  if (!b.contains(which) || !b[which].is_object() || !b[which].contains("gbps") || !b[which]["gbps"].is_number()) return std::nullopt;
  const double g = b[which]["gbps"].get<double>();
  return g > 0 ? std::optional<double>(g) : std::nullopt;
}

std::vector<int64_t> Results::thread_counts() const {
  std::vector<int64_t> out;
  for (const RunRecord& r : runs)
    if (std::find(out.begin(), out.end(), r.threads) == out.end()) out.push_back(r.threads);
  return out;
}

const RunRecord* Results::find_at(const std::string& model, Workload w, int64_t n, int64_t threads) const {
  for (const RunRecord& r : runs)
    if (r.status == "ok" && r.threads == threads && r.problem.model == model && r.problem.workload == w && r.problem.n == n) return &r;
  return nullptr;
}

Results Results::at_threads(int64_t threads) const {
  Results out = *this;
  out.runs.clear();
  for (const RunRecord& r : runs)
    if (r.threads == threads) out.runs.push_back(r);
  return out;
}

std::optional<double> efficiency(const Results& r, const RunRecord& run) {
  const std::optional<double> g = r.calibration_gflops_at(run.threads);
  if (!g || run.status != "ok") return std::nullopt;
  return run.gflops / *g;
}

std::optional<double> roofline_fraction(const Results& r, const RunRecord& run) {
  if (run.status != "ok" || run.problem.workload != Workload::kDecode || run.bytes_per_token <= 0 || run.stats.median <= 0) return std::nullopt;
  const std::optional<double> gbps = r.bandwidth_gbps_for(run.threads, run.bytes_per_token);
  if (!gbps) return std::nullopt;
  return run.bytes_per_token / (*gbps * 1e9) / run.stats.median;
}

const RunRecord* Results::find(const std::string& model, Workload w, int64_t n) const {
  for (const RunRecord& r : runs)
    if (r.status == "ok" && r.problem.model == model && r.problem.workload == w && r.problem.n == n) return &r;
  return nullptr;
}

json to_json(const RunRecord& r) {
  const SampleStats& s = r.stats;
  json j = {{"model", r.problem.model},
            {"workload", to_string(r.problem.workload)},
            {"n", r.problem.n},
            {"batch", r.batch},
            {"n_tokens", r.n_tokens},
            {"tokens_generated", r.tokens_generated},
            {"threads", r.threads},
            {"warmup", r.warmup},
            {"repeats", r.repeats},
            {"status", r.status},
            {"reason", r.reason},
            {"unit", r.unit},
            {"samples_s", r.samples_s},
            {"stats",
             {{"count", s.count}, {"min", s.min}, {"max", s.max}, {"median", s.median}, {"mean", s.mean},
              {"stddev", s.stddev}, {"q1", s.q1}, {"q3", s.q3}, {"iqr", s.iqr}, {"cv", s.cv}}},
            {"noisy", r.noisy},
            {"flops_model", r.flops_model},
            {"flops_executed", r.flops_executed},
            {"gflops", r.gflops},
            {"model_gflops", r.model_gflops},
            {"allocations_in_timed_region", r.allocations},
            {"onednn_allocations_in_timed_region", r.library_allocations},
            {"memory",
             {{"peak_working_bytes", r.memory.peak_working_bytes},
              {"peak_activation_bytes", r.memory.peak_activation_bytes},
              {"scratchpad_bytes", r.memory.scratchpad_bytes},
              {"state_bytes", r.memory.state_bytes},
              {"state_allocated_bytes", r.memory.state_allocated_bytes},
              {"params_bytes", r.memory.params_bytes},
              {"packed_params_bytes", r.memory.packed_params_bytes},
              {"snapshot_bytes", r.memory.snapshot_bytes},
              {"peak_rss_bytes", r.memory.peak_rss_bytes},
              {"estimate_bytes", r.memory.estimate_bytes},
              {"saved_activation_bytes", r.memory.saved_activation_bytes},
              {"gradient_bytes", r.memory.gradient_bytes},
              {"optimizer_bytes", r.memory.optimizer_bytes}}},
            {"generated_tokens", r.generated},
            {"repro", r.repro}};
  // The verify pass against the oracle (bench/verify.hpp); null when --no-verify.
  j["verify"] = !r.verify.ran ? json(nullptr)
                              : json{{"ok", r.verify.ok},
                                     {"length", r.verify.length},
                                     {"decode_from", r.verify.decode_from},
                                     {"atol", r.verify.tol.atol},
                                     {"rtol", r.verify.tol.rtol},
                                     {"max_abs_error", r.verify.max_abs_error},
                                     {"max_error_ratio", r.verify.max_error_ratio},
                                     {"reason", r.verify.reason}};
  // Machine load around the point (bench/contention.hpp).
  auto snapshot = [](const LoadSnapshot& s) {
    return !s.valid ? json(nullptr)
                    : json{{"loadavg1", s.loadavg1}, {"loadavg5", s.loadavg5}, {"procs_running", s.procs_running}, {"own_running", s.own_running}};
  };
  const ContentionRecord& c = r.contention;
  j["contention"] = {{"before", snapshot(c.before)}, {"after", snapshot(c.after)}, {"steal_fraction", c.steal_fraction},
                     {"contended", c.contended}, {"reason", c.reason}};
  if (!r.positions.empty()) j["positions"] = r.positions;
  if (r.problem.workload == Workload::kDecode) j["bytes_per_token"] = r.bytes_per_token;
  if (is_train(r.problem.workload)) {  // README "train"
    j["train_recompute"] = r.problem.workload == Workload::kTrainRecompute;
    j["tokens_per_second"] = r.tokens_per_second;
    j["train_loss"] = r.train_loss;
  }
  return j;
}

namespace {

// Ranges a results file's values must lie in. Every value read goes through one of the typed
// getters below, so a wrong type or a value that would break later arithmetic (a negative, zero or
// astronomically large time, a length or count that overflows n² or a product) is a UserError
// naming the field, never a silent default.
constexpr int64_t kMaxLength = int64_t{1} << 40;      // tokens: n² stays exact in double
constexpr int64_t kMaxCount = int64_t{1} << 40;       // repeats, warm-up runs, tokens, batch
constexpr int64_t kMaxThreads = int64_t{1} << 20;
constexpr int64_t kMaxBytes = int64_t{1} << 60;       // memory figures (1 EiB)
constexpr int64_t kMaxParams = int64_t{1} << 50;
constexpr double kMinSeconds = 1e-12, kMaxSeconds = 1e9;  // a picosecond .. 30 years
constexpr double kMaxFlops = 1e30, kMaxGflops = 1e12;
constexpr std::size_t kMaxNameBytes = 200;

[[noreturn]] void bad(const std::string& where, const std::string& what) { throw UserError(where + ": " + what); }

std::string field(const std::string& key) { return "'" + key + "'"; }

const json& need(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) bad(where, std::string("missing key '") + key + "'");
  return j.at(key);
}

// An integer in [lo, hi] (JSON integers only: 3.0 is not a count). `name` is the field's name.
int64_t as_int(const json& v, const std::string& name, const std::string& where, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) bad(where, name + " must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    bad(where, name + " = " + v.dump() + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) bad(where, name + " = " + std::to_string(x) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

// A finite number in [lo, hi].
double as_number(const json& v, const std::string& name, const std::string& where, double lo, double hi) {
  if (!v.is_number()) bad(where, name + " must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) bad(where, name + " = " + v.dump() + " is out of range [" + json(lo).dump() + ", " + json(hi).dump() + "]");
  return x;
}

// A time: positive and finite, at least a picosecond (a zero or denormal time would make ratios and
// logarithms meaningless) and at most 1e9 s.
double as_seconds(const json& v, const std::string& name, const std::string& where) {
  if (!v.is_number() || !(v.get<double>() >= kMinSeconds && v.get<double>() <= kMaxSeconds))
    bad(where, name + " = " + v.dump() + " must be a positive number of seconds in [1e-12, 1e9]");
  return v.get<double>();
}

double need_number(const json& j, const char* key, const std::string& where, double lo = -1e300, double hi = 1e300) {
  return as_number(need(j, key, where), field(key), where, lo, hi);
}

int64_t need_int(const json& j, const char* key, const std::string& where, int64_t lo = 0, int64_t hi = kMaxCount) {
  return as_int(need(j, key, where), field(key), where, lo, hi);
}

std::string need_string(const json& j, const char* key, const std::string& where) {
  const json& v = need(j, key, where);
  if (!v.is_string()) bad(where, std::string("'") + key + "' must be a string");
  return v.get<std::string>();
}

// A model name: printed on terminals, in Markdown and in plot titles, so it must be a short line of
// printable text (no control characters).
std::string check_model_name(const std::string& name, const std::string& where) {
  if (name.empty() || name.size() > kMaxNameBytes) bad(where, "model name must be 1.." + std::to_string(kMaxNameBytes) + " bytes");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) bad(where, "model name '" + json(name).dump() + "' contains a control character");
  return name;
}

Workload need_workload(const json& j, const std::string& where) {
  const std::string name = need_string(j, "workload", where);
  try {
    return parse_workload(name);
  } catch (const UserError& e) {
    bad(where, e.what());
  }
}

bool present(const json& j, const char* key) { return j.is_object() && j.contains(key) && !j.at(key).is_null(); }

int64_t opt_int(const json& j, const char* key, const std::string& where, int64_t lo, int64_t hi, int64_t fallback) {
  return present(j, key) ? as_int(j.at(key), field(key), where, lo, hi) : fallback;
}
double opt_number(const json& j, const char* key, const std::string& where, double lo, double hi, double fallback) {
  return present(j, key) ? as_number(j.at(key), field(key), where, lo, hi) : fallback;
}
std::string opt_string(const json& j, const char* key, const std::string& where, const std::string& fallback) {
  if (!present(j, key)) return fallback;
  if (!j.at(key).is_string()) bad(where, field(key) + " must be a string");
  return j.at(key).get<std::string>();
}
bool opt_bool(const json& j, const char* key, const std::string& where, bool fallback) {
  if (!present(j, key)) return fallback;
  if (!j.at(key).is_boolean()) bad(where, field(key) + " must be true or false");
  return j.at(key).get<bool>();
}

int64_t parse_length_key(const std::string& key, const std::string& where) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(key.data(), key.data() + key.size(), v);
  if (key.empty() || ec != std::errc() || p != key.data() + key.size() || v <= 0 || v > kMaxLength)
    bad(where, "sequence length key '" + key + "' is not a positive integer (at most " + std::to_string(kMaxLength) + ")");
  return v;
}

std::vector<int64_t> parse_seq_lengths(const json& root, const std::string& where) {
  const json& sl = need(root, "seq_lengths", where);
  if (!sl.is_array()) bad(where, "'seq_lengths' must be a list of integers");
  std::vector<int64_t> out;
  for (std::size_t i = 0; i < sl.size(); ++i) {
    const int64_t n = as_int(sl[i], "'seq_lengths[" + std::to_string(i) + "]'", where, 1, kMaxLength);
    if (std::find(out.begin(), out.end(), n) != out.end()) bad(where, "'seq_lengths' lists n = " + std::to_string(n) + " twice");
    out.push_back(n);
  }
  return out;
}

// The calibration block: only the figures check reads are validated (gflops, the matmul's shape
// and its samples), the rest is kept as it is.
void check_calibration(const json& c, const std::string& where) {
  if (!c.is_object()) bad(where, "'calibration' must be an object");
  opt_number(c, "gflops", where, 0, kMaxGflops, 0);
  for (const char* dim : {"m", "n", "k"}) opt_number(c, dim, where, 1, 1e9, 1);
  if (present(c, "samples_s")) {
    const json& s = c.at("samples_s");
    if (!s.is_array()) bad(where, "'samples_s' must be a list of seconds");
    for (std::size_t i = 0; i < s.size(); ++i) as_seconds(s[i], "'samples_s[" + std::to_string(i) + "]'", where);
  }
  // A thread sweep's calibrations: one entry per count, each a matmul block and a bandwidth block.
  if (present(c, "per_threads")) {
    const json& pt = c.at("per_threads");
    if (!pt.is_array()) bad(where, "'per_threads' must be a list");
    std::vector<int64_t> seen;
    for (std::size_t i = 0; i < pt.size(); ++i) {
      const std::string w = where + ".per_threads[" + std::to_string(i) + "]";
      if (!pt[i].is_object()) bad(w, "must be an object");
      const int64_t t = need_int(pt[i], "threads", w, 0, kMaxThreads);
      if (std::find(seen.begin(), seen.end(), t) != seen.end()) bad(w, "a second entry for threads = " + std::to_string(t));
      seen.push_back(t);
      if (present(pt[i], "matmul")) {
        if (present(pt[i].at("matmul"), "per_threads")) bad(w, "'matmul' must not nest per_threads");
        check_calibration(pt[i].at("matmul"), w + ".matmul");
      }
      if (present(pt[i], "bandwidth")) {
        const json& b = pt[i].at("bandwidth");
        const std::string bw = w + ".bandwidth";
        if (!b.is_object()) bad(bw, "must be an object");
        opt_number(b, "llc_bytes", bw, 0, static_cast<double>(kMaxBytes), 0);
        for (const char* which : {"larger_than_llc", "smaller_than_llc"})
          if (present(b, which)) {
            if (!b.at(which).is_object()) bad(bw, std::string("'") + which + "' must be an object");
            opt_number(b.at(which), "gbps", bw + "." + which, 0, 1e9, 0);
            opt_number(b.at(which), "bytes", bw + "." + which, 0, static_cast<double>(kMaxBytes), 0);
          }
        if (present(b, "ladder")) {
          const json& l = b.at("ladder");
          if (!l.is_array()) bad(bw, "'ladder' must be a list");
          for (std::size_t k = 0; k < l.size(); ++k) {
            const std::string lw = bw + ".ladder[" + std::to_string(k) + "]";
            if (!l[k].is_object()) bad(lw, "must be an object");
            need_number(l[k], "bytes", lw, 1, static_cast<double>(kMaxBytes));
            need_number(l[k], "gbps", lw, 0, 1e9);
          }
        }
      }
    }
  }
}

}  // namespace

RunRecord run_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) bad(where, "run record must be an object");
  RunRecord r;
  r.problem.model = check_model_name(need_string(j, "model", where), where);
  r.problem.workload = need_workload(j, where);
  r.problem.n = need_int(j, "n", where, 1, kMaxLength);
  r.status = need_string(j, "status", where);
  if (r.status != "ok" && r.status != "skipped" && r.status != "failed") bad(where, "'status' must be ok, skipped or failed");
  r.reason = opt_string(j, "reason", where, "");
  r.batch = opt_int(j, "batch", where, 1, kMaxCount, 1);
  r.n_tokens = opt_int(j, "n_tokens", where, 0, kMaxCount, 0);
  r.tokens_generated = opt_int(j, "tokens_generated", where, 0, kMaxCount, 0);
  r.threads = opt_int(j, "threads", where, 0, kMaxThreads, 0);
  r.warmup = opt_int(j, "warmup", where, 0, kMaxCount, 0);
  r.repeats = opt_int(j, "repeats", where, 0, kMaxCount, 0);
  r.unit = opt_string(j, "unit", where, "s");
  r.repro = opt_string(j, "repro", where, "");
  r.noisy = opt_bool(j, "noisy", where, false);
  r.flops_model = opt_number(j, "flops_model", where, 0, kMaxFlops, opt_number(j, "flops", where, 0, kMaxFlops, 0.0));  // "flops": schema 1
  r.flops_executed = opt_number(j, "flops_executed", where, 0, kMaxFlops, 0.0);
  r.gflops = opt_number(j, "gflops", where, 0, kMaxGflops, 0.0);
  r.model_gflops = opt_number(j, "model_gflops", where, 0, kMaxGflops, 0.0);
  r.allocations = opt_int(j, "allocations_in_timed_region", where, -1, kMaxCount, -1);
  r.library_allocations = opt_int(j, "onednn_allocations_in_timed_region", where, -1, kMaxCount, -1);
  r.bytes_per_token = opt_number(j, "bytes_per_token", where, 0, static_cast<double>(kMaxBytes), 0.0);
  if (present(j, "positions")) {
    const json& ps = j.at("positions");
    if (!ps.is_array() || ps.size() != 2) bad(where, "'positions' must be a list [first, last]");
    for (std::size_t i = 0; i < 2; ++i) r.positions.push_back(as_int(ps[i], "'positions[" + std::to_string(i) + "]'", where, 0, kMaxLength));
  }
  if (r.status == "ok") {
    const json& samples = need(j, "samples_s", where);
    if (!samples.is_array() || samples.empty()) bad(where, "'samples_s' must be a non-empty list for an ok run");
    for (std::size_t i = 0; i < samples.size(); ++i)
      r.samples_s.push_back(as_seconds(samples[i], "'samples_s[" + std::to_string(i) + "]'", where));
    r.stats = compute_stats(r.samples_s);
  }
  if (present(j, "memory")) {
    const json& m = j.at("memory");
    if (!m.is_object()) bad(where, "'memory' must be an object");
    const std::string mw = where + ": memory";
    auto bytes = [&](const char* key) { return static_cast<std::size_t>(opt_int(m, key, mw, 0, kMaxBytes, 0)); };
    r.memory.peak_working_bytes = bytes("peak_working_bytes");
    r.memory.peak_activation_bytes = bytes("peak_activation_bytes");
    r.memory.scratchpad_bytes = bytes("scratchpad_bytes");
    r.memory.state_bytes = bytes("state_bytes");
    r.memory.state_allocated_bytes = bytes("state_allocated_bytes");
    r.memory.params_bytes = bytes("params_bytes");
    r.memory.packed_params_bytes = bytes("packed_params_bytes");
    r.memory.peak_rss_bytes = bytes("peak_rss_bytes");
    r.memory.snapshot_bytes = bytes("snapshot_bytes");
    r.memory.estimate_bytes = bytes("estimate_bytes");
    r.memory.saved_activation_bytes = bytes("saved_activation_bytes");
    r.memory.gradient_bytes = bytes("gradient_bytes");
    r.memory.optimizer_bytes = bytes("optimizer_bytes");
  }
  r.tokens_per_second = opt_number(j, "tokens_per_second", where, 0, kMaxFlops, 0.0);
  r.train_loss = opt_number(j, "train_loss", where, 0, 1e9, 0.0);
  if (present(j, "generated_tokens")) {
    const json& g = j.at("generated_tokens");
    if (!g.is_array()) bad(where, "'generated_tokens' must be a list of token ids");
    for (std::size_t i = 0; i < g.size(); ++i)
      r.generated.push_back(static_cast<int32_t>(as_int(g[i], "'generated_tokens[" + std::to_string(i) + "]'", where, 0, INT32_MAX)));
  }
  if (present(j, "verify")) {
    const json& v = j.at("verify");
    if (!v.is_object()) bad(where, "'verify' must be an object or null");
    const std::string vw = where + ": verify";
    r.verify.ran = true;
    r.verify.ok = opt_bool(v, "ok", vw, true);
    r.verify.length = opt_int(v, "length", vw, 0, kMaxLength, 0);
    r.verify.decode_from = opt_int(v, "decode_from", vw, 0, kMaxLength, 0);
    r.verify.tol = {opt_number(v, "atol", vw, 0, 1e30, 0.0), opt_number(v, "rtol", vw, 0, 1e30, 0.0)};
    r.verify.max_abs_error = opt_number(v, "max_abs_error", vw, 0, 1e300, 0.0);
    r.verify.max_error_ratio = opt_number(v, "max_error_ratio", vw, 0, 1e300, 0.0);
    r.verify.reason = opt_string(v, "reason", vw, "");
  }
  if (present(j, "contention")) {
    const json& c = j.at("contention");
    if (!c.is_object()) bad(where, "'contention' must be an object");
    const std::string cw = where + ": contention";
    auto snapshot = [&](const char* key) {
      LoadSnapshot l;
      if (!present(c, key)) return l;
      const json& s = c.at(key);
      if (!s.is_object()) bad(cw, std::string("'") + key + "' must be an object or null");
      const std::string sw = cw + "." + key;
      l.valid = true;
      l.loadavg1 = opt_number(s, "loadavg1", sw, 0, 1e9, 0.0);
      l.loadavg5 = opt_number(s, "loadavg5", sw, 0, 1e9, 0.0);
      l.procs_running = opt_int(s, "procs_running", sw, 0, kMaxCount, 0);
      l.own_running = opt_int(s, "own_running", sw, 0, kMaxCount, 0);
      return l;
    };
    r.contention.before = snapshot("before");
    r.contention.after = snapshot("after");
    r.contention.steal_fraction = opt_number(c, "steal_fraction", cw, 0, 1, 0.0);
    r.contention.contended = opt_bool(c, "contended", cw, false);
    r.contention.reason = opt_string(c, "reason", cw, "");
  }
  return r;
}

json to_json(const FitRecord& f) {
  auto optional_number = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  const analysis::PowerLawFit& p = f.fit.power_law;
  const analysis::LinearQuadraticFit& lq = f.fit.linear_quadratic;
  return {{"model", f.model},
          {"workload", to_string(f.workload)},
          {"unit", f.unit},
          {"seq_lengths", f.seq_lengths},
          {"power_law",
           {{"a", p.a}, {"b", p.b}, {"r_squared", p.r_squared}, {"points", p.points},
            {"b_ci95", p.b_low ? json::array({*p.b_low, *p.b_high}) : json(nullptr)}}},
          {"complexity", f.complexity},
          {"local_exponent", optional_number(f.fit.local_exponent)},
          {"linear_quadratic",
           {{"alpha_s_per_token", lq.alpha}, {"gamma_s_per_token2", lq.gamma}, {"quadratic_share_at_largest_n", lq.quadratic_share},
            {"largest_n", lq.largest_n}, {"rms_relative_error", lq.rms_relative_error}}},
          {"notes", f.notes}};
}

namespace {

FitRecord fit_from_json(const json& j, const std::string& where) {
  FitRecord f;
  if (!j.is_object()) bad(where, "fit record must be an object");
  f.model = check_model_name(need_string(j, "model", where), where);
  f.workload = need_workload(j, where);
  f.unit = need_string(j, "unit", where);
  const json& lengths = need(j, "seq_lengths", where);
  if (!lengths.is_array()) bad(where, "'seq_lengths' must be a list");
  for (std::size_t i = 0; i < lengths.size(); ++i)
    f.seq_lengths.push_back(as_int(lengths[i], "'seq_lengths[" + std::to_string(i) + "]'", where, 1, kMaxLength));
  const json& p = need(j, "power_law", where);
  f.fit.power_law.a = need_number(p, "a", where);
  f.fit.power_law.b = need_number(p, "b", where);
  f.fit.power_law.r_squared = need_number(p, "r_squared", where);
  f.fit.power_law.points = static_cast<int>(need_int(p, "points", where, 0, int64_t{1} << 30));
  const json& ci = need(p, "b_ci95", where);
  if (ci.is_array() && ci.size() == 2 && ci[0].is_number() && ci[1].is_number()) {
    f.fit.power_law.b_low = ci[0].get<double>();
    f.fit.power_law.b_high = ci[1].get<double>();
  } else if (!ci.is_null()) {
    bad(where, "'b_ci95' must be [low, high] or null");
  }
  f.complexity = need_string(j, "complexity", where);
  const json& local = need(j, "local_exponent", where);
  if (local.is_number()) f.fit.local_exponent = local.get<double>();
  else if (!local.is_null()) bad(where, "'local_exponent' must be a number or null");
  const json& lq = need(j, "linear_quadratic", where);
  f.fit.linear_quadratic.alpha = need_number(lq, "alpha_s_per_token", where);
  f.fit.linear_quadratic.gamma = need_number(lq, "gamma_s_per_token2", where);
  f.fit.linear_quadratic.quadratic_share = need_number(lq, "quadratic_share_at_largest_n", where);
  f.fit.linear_quadratic.largest_n = need_int(lq, "largest_n", where, 0, kMaxLength);
  f.fit.linear_quadratic.rms_relative_error = need_number(lq, "rms_relative_error", where);
  const json& notes = need(j, "notes", where);
  if (!notes.is_array()) bad(where, "'notes' must be a list of strings");
  for (const json& s : notes) {
    if (!s.is_string()) bad(where, "'notes' must be a list of strings");
    f.notes.push_back(s.get<std::string>());
  }
  return f;
}

}  // namespace

std::optional<Workload> memory_workload(const Results& r) {
  for (Workload w : {Workload::kPrefill, Workload::kGenerate, Workload::kDecode, Workload::kRecompute, Workload::kTrain, Workload::kTrainRecompute})
    for (const RunRecord& run : r.runs)
      if (run.status == "ok" && run.problem.workload == w && run.memory.peak_working_bytes > 0) return w;
  return std::nullopt;
}

json to_json(const Results& r) {
  json time_results = json::object(), memory_results = json::object(), params = json::object(), params_head = json::object();
  const std::optional<Workload> mem_workload = memory_workload(r);
  // A thread sweep: the study's keys hold the points of its first count.
  const std::vector<int64_t> counts = r.thread_counts();
  auto find = [&](const std::string& m, Workload w, int64_t n) { return counts.size() > 1 ? r.find_at(m, w, n, counts.front()) : r.find(m, w, n); };
  for (const std::string& m : r.models) {
    json t = json::object(), mem = json::object();
    for (int64_t n : r.seq_lengths) {
      if (const RunRecord* g = find(m, Workload::kGenerate, n)) t[std::to_string(n)] = g->stats.median;
      const RunRecord* run = mem_workload ? find(m, *mem_workload, n) : nullptr;
      if (run && run->memory.peak_working_bytes > 0) mem[std::to_string(n)] = static_cast<double>(run->memory.peak_working_bytes) / (1024.0 * 1024.0);
    }
    time_results[m] = t;
    memory_results[m] = mem;
    if (auto it = r.model_info.find(m); it != r.model_info.end()) {
      params[m] = it->second.params;
      params_head[m] = it->second.params_with_head;
    }
  }
  json runs = json::array();
  for (const RunRecord& run : r.runs) {
    json j = to_json(run);
    // Model FLOPs per second over the calibration matmul's GFLOP/s at the run's thread count (null
    // without a calibration); executed FLOPs the same way; decode: the bandwidth roofline.
    const std::optional<double> calibration = r.calibration_gflops_at(run.threads);
    j["model_efficiency"] = calibration && run.status == "ok" ? json(run.model_gflops / *calibration) : json(nullptr);
    const std::optional<double> e = efficiency(r, run);
    j["efficiency"] = e ? json(*e) : json(nullptr);
    if (run.problem.workload == Workload::kDecode) {
      const std::optional<double> f = roofline_fraction(r, run);
      j["roofline_fraction"] = f ? json(*f) : json(nullptr);
    }
    runs.push_back(std::move(j));
  }
  json out = {{"schema_version", r.schema_version},
              {"time_results", time_results},
              {"time_results_workload", "generate"},
              {"memory_results", memory_results},
              {"memory_results_workload", mem_workload ? json(to_string(*mem_workload)) : json(nullptr)},
              {"memory_results_meaning", "peak working memory (activations + decode state + oneDNN scratchpad) in MB of the "
                                         "memory_results_workload points (the first of prefill, generate, decode, recompute, train, train_recompute the file has)"},
              {"param_counts", params},
              {"param_counts_with_head", params_head},
              {"seq_lengths", r.seq_lengths},
              {"models", r.models},
              {"environment", r.environment},
              {"config", r.config},
              {"calibration", r.calibration},
              {"calibration_end", r.calibration_end},
              {"warnings", r.warnings},
              {"runs", runs}};
  if (!r.partial_reason.empty()) {
    out["partial"] = true;
    out["partial_reason"] = r.partial_reason;
  }
  if (!r.fits.empty()) {
    json fits = json::array();
    for (const FitRecord& f : r.fits) fits.push_back(to_json(f));
    out["fits"] = {{"estimator", "least squares on log t = a + b log n (R² on the log scale); 95% t interval for b; "
                                 "non-negative t = alpha n + gamma n² on relative residuals; local exponent over the 3 largest n"},
                   {"series", fits}};
  }
  return out;
}

Results load_results(const std::string& path) { return parse_results(read_file(path, "results file"), path); }

Results parse_results(const std::string& text, const std::string& path) {
  const std::string where = "results file " + path;
  // Depth-bounded: environment and config are kept as json values and copied (recursively) later.
  const json root = parse_json_input(text, where);
  if (!root.is_object()) bad(where, "top level must be a JSON object");
  Results r;
  r.seq_lengths = parse_seq_lengths(root, where);
  if (present(root, "param_counts")) {
    const json& pc = root.at("param_counts");
    if (!pc.is_object()) bad(where, "'param_counts' must be an object {model: count}");
    for (auto& [m, v] : pc.items()) {
      const int64_t count = as_int(v, "'param_counts." + m + "'", where, 0, kMaxParams);
      r.model_info[m] = ModelInfo{m, count, count};
    }
  }
  if (present(root, "param_counts_with_head")) {
    const json& pc = root.at("param_counts_with_head");
    if (!pc.is_object()) bad(where, "'param_counts_with_head' must be an object {model: count}");
    for (auto& [m, v] : pc.items()) {
      const int64_t count = as_int(v, "'param_counts_with_head." + m + "'", where, 0, kMaxParams);
      if (r.model_info.count(m)) r.model_info[m].params_with_head = count;
    }
  }
  // One record per point: a second one would make every per-point figure ambiguous.
  auto refuse_duplicate = [&](const RunRecord& run, const std::string& w) {
    for (const RunRecord& other : r.runs)
      if (other.problem.model == run.problem.model && other.problem.workload == run.problem.workload && other.problem.n == run.problem.n &&
          other.threads == run.threads)
        bad(w, "a second record for model " + run.problem.model + ", workload " + to_string(run.problem.workload) +
                   ", n = " + std::to_string(run.problem.n) + ", threads = " + std::to_string(run.threads) + " (duplicate length)");
  };

  if (root.contains("runs")) {
    int64_t version = need_int(root, "schema_version", where, INT64_MIN, INT64_MAX);
    if (version < 1 || version > kSchemaVersion)
      bad(where, "schema_version " + std::to_string(version) + " is not supported (this build reads 1.." + std::to_string(kSchemaVersion) + ")");
    r.schema_version = static_cast<int>(version);
    const json& runs = root["runs"];
    if (!runs.is_array()) bad(where, "'runs' must be a list");
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const std::string w = where + ": runs[" + std::to_string(i) + "]";
      RunRecord run = run_from_json(runs[i], w);
      refuse_duplicate(run, w);
      if (std::find(r.models.begin(), r.models.end(), run.problem.model) == r.models.end()) r.models.push_back(run.problem.model);
      r.runs.push_back(std::move(run));
    }
    if (root.contains("environment")) r.environment = root["environment"];
    if (root.contains("config")) r.config = root["config"];
    if (present(root, "calibration")) {
      check_calibration(root["calibration"], where + ": calibration");
      r.calibration = root["calibration"];
    }
    if (present(root, "calibration_end")) {
      check_calibration(root["calibration_end"], where + ": calibration_end");
      r.calibration_end = root["calibration_end"];
    }
    if (present(root, "partial_reason")) r.partial_reason = opt_string(root, "partial_reason", where, "");
    if (present(root, "warnings")) {
      const json& w = root["warnings"];
      if (!w.is_array()) bad(where, "'warnings' must be a list of strings");
      for (std::size_t i = 0; i < w.size(); ++i) {
        if (!w[i].is_string()) bad(where, "'warnings[" + std::to_string(i) + "]' must be a string");
        r.warnings.push_back(w[i].get<std::string>());
      }
    }
    if (root.contains("fits")) {
      const json& series = need(root["fits"], "series", where + ": fits");
      if (!series.is_array()) bad(where, "'fits.series' must be a list");
      for (std::size_t i = 0; i < series.size(); ++i)
        r.fits.push_back(fit_from_json(series[i], where + ": fits.series[" + std::to_string(i) + "]"));
    }
    return r;
  }

  // The study's plain schema: one generate timing per (model, n), memory in MB.
  r.study_schema = true;
  const json& tr = need(root, "time_results", where);
  if (!tr.is_object() || tr.empty()) bad(where, "'time_results' must be a non-empty object {model: {n: seconds}}");
  const json* mr = nullptr;
  if (present(root, "memory_results")) {
    if (!root["memory_results"].is_object()) bad(where, "'memory_results' must be an object {model: {n: MB}}");
    mr = &root["memory_results"];
  }
  // Models in the file's order (json objects iterate sorted; the study listed its models in run order).
  const nlohmann::ordered_json in_file_order = parse_ordered_json_input(text, where);
  for (auto& [model, series] : in_file_order["time_results"].items()) r.models.push_back(check_model_name(model, where + ": time_results"));
  for (auto& [model, series] : tr.items()) {
    if (!series.is_object()) bad(where, "time_results." + model + " must be an object {n: seconds}");
    const json* mem = mr && mr->contains(model) ? &mr->at(model) : nullptr;
    if (mem && !mem->is_object()) bad(where, "memory_results." + model + " must be an object {n: MB}");
    for (auto& [key, v] : series.items()) {
      std::string w = where + ": time_results." + model + "." + key;
      int64_t n = parse_length_key(key, w);
      RunRecord run;
      run.problem = {model, Workload::kGenerate, n};
      run.samples_s = {as_seconds(v, "the time", w)};
      run.stats = compute_stats(run.samples_s);
      run.repeats = 1;
      if (mem && mem->contains(key) && !mem->at(key).is_null()) {
        const double mb = as_number(mem->at(key), "the memory (MB)", where + ": memory_results." + model + "." + key, 0,
                                    static_cast<double>(kMaxBytes >> 20));
        run.memory.peak_working_bytes = static_cast<std::size_t>(mb * 1024.0 * 1024.0);
      }
      refuse_duplicate(run, w);
      r.runs.push_back(std::move(run));
    }
  }
  return r;
}

void save_results(const Results& r, const std::string& path) { write_file_atomic(path, to_json(r).dump(2) + "\n"); }

}  // namespace bsbr

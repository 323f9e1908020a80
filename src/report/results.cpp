// Reading and writing comparison_results.json.
#include "report/results.hpp"

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"
#include "core/io.hpp"

namespace bsbr {

using nlohmann::json;

std::optional<double> Results::calibration_gflops() const {
  if (calibration.is_object() && calibration.contains("gflops") && calibration["gflops"].is_number()) {
    double g = calibration["gflops"].get<double>();
    if (g > 0) return g;
  }
  return std::nullopt;
}

std::optional<double> Results::calibration_attainable_gflops() const {
  const json& c = calibration;
  if (c.is_object() && c.contains("samples_s") && c["samples_s"].is_array() && !c["samples_s"].empty()) {
    double m = 0, n = 0, k = 0, fastest = INFINITY;
    try {
      m = c.at("m").get<double>();
      n = c.at("n").get<double>();
      k = c.at("k").get<double>();
      for (const json& s : c["samples_s"]) fastest = std::min(fastest, s.get<double>());
    } catch (const json::exception&) {
      return calibration_gflops();  // samples without the matmul's shape: fall back to the figure
    }
    if (m > 0 && n > 0 && k > 0 && fastest > 0 && std::isfinite(fastest)) return 2 * m * n * k / fastest / 1e9;
  }
  return calibration_gflops();
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
              {"snapshot_bytes", r.memory.snapshot_bytes},
              {"peak_rss_bytes", r.memory.peak_rss_bytes},
              {"estimate_bytes", r.memory.estimate_bytes}}},
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
  return j;
}

namespace {

[[noreturn]] void bad(const std::string& where, const std::string& what) { throw UserError(where + ": " + what); }

const json& need(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) bad(where, std::string("missing key '") + key + "'");
  return j.at(key);
}

double need_number(const json& j, const char* key, const std::string& where) {
  const json& v = need(j, key, where);
  if (!v.is_number()) bad(where, std::string("'") + key + "' must be a number");
  return v.get<double>();
}

int64_t need_int(const json& j, const char* key, const std::string& where) {
  const json& v = need(j, key, where);
  if (!v.is_number_integer()) bad(where, std::string("'") + key + "' must be an integer");
  return v.get<int64_t>();
}

std::string need_string(const json& j, const char* key, const std::string& where) {
  const json& v = need(j, key, where);
  if (!v.is_string()) bad(where, std::string("'") + key + "' must be a string");
  return v.get<std::string>();
}

Workload need_workload(const json& j, const std::string& where) {
  const std::string name = need_string(j, "workload", where);
  try {
    return parse_workload(name);
  } catch (const UserError& e) {
    bad(where, e.what());
  }
}

template <class T>
T opt(const json& j, const char* key, T fallback) {
  if (j.is_object() && j.contains(key) && !j.at(key).is_null()) {
    try {
      return j.at(key).get<T>();
    } catch (const json::exception&) {
    }
  }
  return fallback;
}

int64_t parse_length_key(const std::string& key, const std::string& where) {
  char* end = nullptr;
  long long v = std::strtoll(key.c_str(), &end, 10);
  if (key.empty() || end != key.c_str() + key.size() || v <= 0) bad(where, "sequence length key '" + key + "' is not a positive integer");
  return v;
}

std::vector<int64_t> parse_seq_lengths(const json& root, const std::string& where) {
  const json& sl = need(root, "seq_lengths", where);
  if (!sl.is_array()) bad(where, "'seq_lengths' must be a list of integers");
  std::vector<int64_t> out;
  for (const json& v : sl) {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) bad(where, "'seq_lengths' must hold positive integers");
    out.push_back(v.get<int64_t>());
  }
  return out;
}

}  // namespace

RunRecord run_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) bad(where, "run record must be an object");
  RunRecord r;
  r.problem.model = need_string(j, "model", where);
  r.problem.workload = need_workload(j, where);
  r.problem.n = need_int(j, "n", where);
  if (r.problem.n <= 0) bad(where, "'n' must be positive");
  r.status = need_string(j, "status", where);
  if (r.status != "ok" && r.status != "skipped" && r.status != "failed") bad(where, "'status' must be ok, skipped or failed");
  r.reason = opt<std::string>(j, "reason", "");
  r.batch = opt<int64_t>(j, "batch", 1);
  r.n_tokens = opt<int64_t>(j, "n_tokens", 0);
  r.tokens_generated = opt<int64_t>(j, "tokens_generated", 0);
  r.threads = opt<int64_t>(j, "threads", 0);
  r.warmup = opt<int64_t>(j, "warmup", 0);
  r.repeats = opt<int64_t>(j, "repeats", 0);
  r.unit = opt<std::string>(j, "unit", "s");
  r.repro = opt<std::string>(j, "repro", "");
  r.noisy = opt<bool>(j, "noisy", false);
  r.flops_model = opt<double>(j, "flops_model", opt<double>(j, "flops", 0.0));  // "flops": schema 1
  r.flops_executed = opt<double>(j, "flops_executed", 0.0);
  r.gflops = opt<double>(j, "gflops", 0.0);
  r.model_gflops = opt<double>(j, "model_gflops", 0.0);
  r.allocations = opt<int64_t>(j, "allocations_in_timed_region", -1);
  r.library_allocations = opt<int64_t>(j, "onednn_allocations_in_timed_region", -1);
  r.positions = opt<std::vector<int64_t>>(j, "positions", {});
  if (r.status == "ok") {
    const json& samples = need(j, "samples_s", where);
    if (!samples.is_array() || samples.empty()) bad(where, "'samples_s' must be a non-empty list for an ok run");
    for (const json& s : samples) {
      if (!s.is_number() || !(s.get<double>() > 0) || !std::isfinite(s.get<double>()))
        bad(where, "'samples_s' must hold positive finite seconds");
      r.samples_s.push_back(s.get<double>());
    }
    r.stats = compute_stats(r.samples_s);
  }
  if (j.contains("memory") && j["memory"].is_object()) {
    const json& m = j["memory"];
    r.memory.peak_working_bytes = opt<std::size_t>(m, "peak_working_bytes", 0);
    r.memory.peak_activation_bytes = opt<std::size_t>(m, "peak_activation_bytes", 0);
    r.memory.scratchpad_bytes = opt<std::size_t>(m, "scratchpad_bytes", 0);
    r.memory.state_bytes = opt<std::size_t>(m, "state_bytes", 0);
    r.memory.state_allocated_bytes = opt<std::size_t>(m, "state_allocated_bytes", 0);
    r.memory.params_bytes = opt<std::size_t>(m, "params_bytes", 0);
    r.memory.peak_rss_bytes = opt<std::size_t>(m, "peak_rss_bytes", 0);
    r.memory.snapshot_bytes = opt<std::size_t>(m, "snapshot_bytes", 0);
    r.memory.estimate_bytes = opt<std::size_t>(m, "estimate_bytes", 0);
  }
  r.generated = opt<std::vector<int32_t>>(j, "generated_tokens", {});
  if (j.contains("verify") && j["verify"].is_object()) {
    const json& v = j["verify"];
    r.verify.ran = true;
    r.verify.ok = opt<bool>(v, "ok", true);
    r.verify.length = opt<int64_t>(v, "length", 0);
    r.verify.decode_from = opt<int64_t>(v, "decode_from", 0);
    r.verify.tol = {opt<double>(v, "atol", 0.0), opt<double>(v, "rtol", 0.0)};
    r.verify.max_abs_error = opt<double>(v, "max_abs_error", 0.0);
    r.verify.max_error_ratio = opt<double>(v, "max_error_ratio", 0.0);
    r.verify.reason = opt<std::string>(v, "reason", "");
  }
  if (j.contains("contention") && j["contention"].is_object()) {
    const json& c = j["contention"];
    auto snapshot = [](const json& s) {
      LoadSnapshot l;
      if (!s.is_object()) return l;
      l.valid = true;
      l.loadavg1 = opt<double>(s, "loadavg1", 0.0);
      l.loadavg5 = opt<double>(s, "loadavg5", 0.0);
      l.procs_running = opt<int64_t>(s, "procs_running", 0);
      l.own_running = opt<int64_t>(s, "own_running", 0);
      return l;
    };
    if (c.contains("before")) r.contention.before = snapshot(c["before"]);
    if (c.contains("after")) r.contention.after = snapshot(c["after"]);
    r.contention.steal_fraction = opt<double>(c, "steal_fraction", 0.0);
    r.contention.contended = opt<bool>(c, "contended", false);
    r.contention.reason = opt<std::string>(c, "reason", "");
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
  f.model = need_string(j, "model", where);
  f.workload = need_workload(j, where);
  f.unit = need_string(j, "unit", where);
  const json& lengths = need(j, "seq_lengths", where);
  if (!lengths.is_array()) bad(where, "'seq_lengths' must be a list");
  for (const json& n : lengths) {
    if (!n.is_number_integer()) bad(where, "'seq_lengths' must hold integers");
    f.seq_lengths.push_back(n.get<int64_t>());
  }
  const json& p = need(j, "power_law", where);
  f.fit.power_law.a = need_number(p, "a", where);
  f.fit.power_law.b = need_number(p, "b", where);
  f.fit.power_law.r_squared = need_number(p, "r_squared", where);
  f.fit.power_law.points = static_cast<int>(need_int(p, "points", where));
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
  f.fit.linear_quadratic.largest_n = need_int(lq, "largest_n", where);
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
  for (Workload w : {Workload::kPrefill, Workload::kGenerate, Workload::kDecode, Workload::kRecompute})
    for (const RunRecord& run : r.runs)
      if (run.status == "ok" && run.problem.workload == w && run.memory.peak_working_bytes > 0) return w;
  return std::nullopt;
}

json to_json(const Results& r) {
  json time_results = json::object(), memory_results = json::object(), params = json::object(), params_head = json::object();
  const std::optional<Workload> mem_workload = memory_workload(r);
  for (const std::string& m : r.models) {
    json t = json::object(), mem = json::object();
    for (int64_t n : r.seq_lengths) {
      if (const RunRecord* g = r.find(m, Workload::kGenerate, n)) t[std::to_string(n)] = g->stats.median;
      const RunRecord* run = mem_workload ? r.find(m, *mem_workload, n) : nullptr;
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
  const std::optional<double> calibration = r.calibration_gflops();
  for (const RunRecord& run : r.runs) {
    json j = to_json(run);
    // Model FLOPs per second over the calibration matmul's GFLOP/s (null without a calibration).
    j["model_efficiency"] = calibration && run.status == "ok" ? json(run.model_gflops / *calibration) : json(nullptr);
    runs.push_back(std::move(j));
  }
  json out = {{"schema_version", r.schema_version},
              {"time_results", time_results},
              {"time_results_workload", "generate"},
              {"memory_results", memory_results},
              {"memory_results_workload", mem_workload ? json(to_string(*mem_workload)) : json(nullptr)},
              {"memory_results_meaning", "peak working memory (activations + decode state + oneDNN scratchpad) in MB of the "
                                         "memory_results_workload points (the first of prefill, generate, decode, recompute the file has)"},
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

Results load_results(const std::string& path) {
  std::string text = read_file(path, "results file");
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw UserError("results file " + path + " is not valid JSON: " + e.what());
  }
  const std::string where = "results file " + path;
  if (!root.is_object()) bad(where, "top level must be a JSON object");
  Results r;
  r.seq_lengths = parse_seq_lengths(root, where);
  if (root.contains("param_counts") && root["param_counts"].is_object())
    for (auto& [m, v] : root["param_counts"].items())
      if (v.is_number_integer()) r.model_info[m] = ModelInfo{m, v.get<int64_t>(), v.get<int64_t>()};
  if (root.contains("param_counts_with_head") && root["param_counts_with_head"].is_object())
    for (auto& [m, v] : root["param_counts_with_head"].items())
      if (v.is_number_integer() && r.model_info.count(m)) r.model_info[m].params_with_head = v.get<int64_t>();

  if (root.contains("runs")) {
    int64_t version = need_int(root, "schema_version", where);
    if (version < 1 || version > kSchemaVersion)
      bad(where, "schema_version " + std::to_string(version) + " is not supported (this build reads 1.." + std::to_string(kSchemaVersion) + ")");
    r.schema_version = static_cast<int>(version);
    const json& runs = root["runs"];
    if (!runs.is_array()) bad(where, "'runs' must be a list");
    for (std::size_t i = 0; i < runs.size(); ++i) {
      RunRecord run = run_from_json(runs[i], where + ": runs[" + std::to_string(i) + "]");
      if (std::find(r.models.begin(), r.models.end(), run.problem.model) == r.models.end()) r.models.push_back(run.problem.model);
      r.runs.push_back(std::move(run));
    }
    if (root.contains("environment")) r.environment = root["environment"];
    if (root.contains("config")) r.config = root["config"];
    if (root.contains("calibration")) r.calibration = root["calibration"];
    if (root.contains("calibration_end")) r.calibration_end = root["calibration_end"];
    r.warnings = opt<std::vector<std::string>>(root, "warnings", {});
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
  const json* mr = root.contains("memory_results") && root["memory_results"].is_object() ? &root["memory_results"] : nullptr;
  // Models in the file's order (json objects iterate sorted; the study listed its models in run order).
  const nlohmann::ordered_json in_file_order = nlohmann::ordered_json::parse(text);
  for (auto& [model, series] : in_file_order["time_results"].items()) r.models.push_back(model);
  for (auto& [model, series] : tr.items()) {
    if (!series.is_object()) bad(where, "time_results." + model + " must be an object {n: seconds}");
    for (auto& [key, v] : series.items()) {
      std::string w = where + ": time_results." + model + "." + key;
      int64_t n = parse_length_key(key, w);
      if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>())) bad(w, "must be a positive number of seconds");
      RunRecord run;
      run.problem = {model, Workload::kGenerate, n};
      run.samples_s = {v.get<double>()};
      run.stats = compute_stats(run.samples_s);
      run.repeats = 1;
      if (mr && mr->contains(model) && (*mr)[model].is_object() && (*mr)[model].contains(key) && (*mr)[model][key].is_number())
        run.memory.peak_working_bytes = static_cast<std::size_t>((*mr)[model][key].get<double>() * 1024.0 * 1024.0);
      r.runs.push_back(std::move(run));
    }
  }
  return r;
}

void save_results(const Results& r, const std::string& path) { write_file_atomic(path, to_json(r).dump(2) + "\n"); }

}  // namespace bsbr

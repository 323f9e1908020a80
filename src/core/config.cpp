// Config loading: one table of known keys per section, each with a strict typed setter.
#include "core/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>

#include "core/errors.hpp"
#include "core/limits.hpp"
#include "core/io.hpp"

namespace bsbr {

const char* to_string(Workload w) {
  switch (w) {
    case Workload::kPrefill: return "prefill";
    case Workload::kDecode: return "decode";
    case Workload::kGenerate: return "generate";
    case Workload::kRecompute: return "recompute";
    case Workload::kTrain: return "train";
    case Workload::kTrainRecompute: return "train_recompute";
  }
  return "?";
}

bool generates_tokens(Workload w) { return w == Workload::kDecode || w == Workload::kGenerate || w == Workload::kRecompute; }
bool is_train(Workload w) { return w == Workload::kTrain || w == Workload::kTrainRecompute; }

Workload parse_workload(const std::string& s) {
  for (Workload w : {Workload::kPrefill, Workload::kDecode, Workload::kGenerate, Workload::kRecompute, Workload::kTrain, Workload::kTrainRecompute})
    if (s == to_string(w)) return w;
  throw UserError("unknown workload '" + s + "' (known: prefill, decode, generate, recompute, train, train_recompute)");
}

namespace {

std::string scalar_text(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : std::string("<") + (n.IsSequence() ? "list" : n.IsMap() ? "mapping" : "null") + ">"; }

[[noreturn]] void bad(const std::string& where, const std::string& what, const YAML::Node& n) {
  throw UserError(where + " must be " + what + ", got '" + scalar_text(n) + "'");
}

int64_t to_int(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) bad(where, "an integer", n);
  const std::string& s = n.Scalar();
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) bad(where, "an integer", n);
  return v;
}

double to_double(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) bad(where, "a number", n);
  const std::string& s = n.Scalar();
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) bad(where, "a finite number", n);
  return v;
}

bool to_bool(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) bad(where, "true or false", n);
  const std::string& s = n.Scalar();
  if (s == "true" || s == "True") return true;
  if (s == "false" || s == "False") return false;
  bad(where, "true or false", n);
}

std::string to_str(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) bad(where, "a string", n);
  return n.Scalar();
}

template <class T>
std::vector<T> to_list(const YAML::Node& n, const std::string& where, T (*conv)(const YAML::Node&, const std::string&)) {
  if (!n.IsSequence()) bad(where, "a list", n);
  std::vector<T> out;
  for (std::size_t i = 0; i < n.size(); ++i) out.push_back(conv(n[i], where + "[" + std::to_string(i) + "]"));
  return out;
}

Workload to_workload(const YAML::Node& n, const std::string& where) {
  std::string s = to_str(n, where);
  try {
    return parse_workload(s);
  } catch (const UserError& e) {
    throw UserError(where + ": " + e.what());
  }
}

using Setter = std::function<void(Config&, const YAML::Node&, const std::string&)>;
using Getter = std::function<std::string(const Config&)>;
struct Field {
  Setter set;
  Getter get;
};

template <class V, class F>
std::string join_words(const V& values, F to_text) {
  std::string s;
  for (const auto& v : values) s += (s.empty() ? "" : " ") + to_text(v);
  return s;
}

std::string fmt_double(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

const std::map<std::string, std::map<std::string, Field>>& sections() {
  static const std::map<std::string, std::map<std::string, Field>> table = [] {
    std::map<std::string, std::map<std::string, Field>> t;
    auto& m = t["model"];
    auto int_field = [](int64_t ModelConfig::*p) {
      return Field{[p](Config& c, const YAML::Node& n, const std::string& w) { c.model.*p = to_int(n, w); },
                   [p](const Config& c) { return std::to_string(c.model.*p); }};
    };
    auto dbl_field = [](double ModelConfig::*p) {
      return Field{[p](Config& c, const YAML::Node& n, const std::string& w) { c.model.*p = to_double(n, w); },
                   [p](const Config& c) { return fmt_double(c.model.*p); }};
    };
    m["vocab_size"] = int_field(&ModelConfig::vocab_size);
    m["hidden_dim"] = int_field(&ModelConfig::hidden_dim);
    m["num_layers"] = int_field(&ModelConfig::num_layers);
    m["num_heads"] = int_field(&ModelConfig::num_heads);
    m["ff_dim"] = int_field(&ModelConfig::ff_dim);
    m["chunk_size"] = int_field(&ModelConfig::chunk_size);
    m["window_size"] = int_field(&ModelConfig::window_size);
    m["expansion_factor"] = int_field(&ModelConfig::expansion_factor);
    m["batch_size"] = int_field(&ModelConfig::batch_size);
    m["linear_chunk_size"] = int_field(&ModelConfig::linear_chunk_size);
    m["beta"] = dbl_field(&ModelConfig::beta);
    m["temperature"] = dbl_field(&ModelConfig::temperature);
    m["layer_norm_eps"] = dbl_field(&ModelConfig::layer_norm_eps);
    m["init_std"] = dbl_field(&ModelConfig::init_std);
    m["compression_factor"] = Field{
        [](Config& c, const YAML::Node& n, const std::string& w) {
          if (n.IsNull() || (n.IsScalar() && (n.Scalar() == "none" || n.Scalar() == "null"))) {
            c.model.compression_factor = 0;
          } else {
            int64_t v = to_int(n, w);
            if (v <= 0) throw UserError(w + " must be a positive integer or none, got '" + n.Scalar() + "'");
            c.model.compression_factor = v;
          }
        },
        [](const Config& c) { return c.model.compression_factor == 0 ? std::string("none") : std::to_string(c.model.compression_factor); }};
    m["seed"] = Field{[](Config& c, const YAML::Node& n, const std::string& w) {
                        int64_t v = to_int(n, w);
                        if (v < 0) throw UserError(w + " must be >= 0, got '" + n.Scalar() + "'");
                        c.model.seed = static_cast<uint64_t>(v);
                      },
                      [](const Config& c) { return std::to_string(c.model.seed); }};
    m["normalize"] = Field{[](Config& c, const YAML::Node& n, const std::string& w) { c.model.normalize = to_bool(n, w); },
                           [](const Config& c) { return std::string(c.model.normalize ? "true" : "false"); }};
    m["feature_map"] = Field{
        [](Config& c, const YAML::Node& n, const std::string& w) {
          std::string s = to_str(n, w);
          if (s == "elu1") c.model.feature_map = FeatureMap::kElu1;
          else if (s == "identity") c.model.feature_map = FeatureMap::kIdentity;
          else throw UserError(w + " must be elu1 or identity, got '" + s + "'");
        },
        [](const Config& c) { return std::string(c.model.feature_map == FeatureMap::kElu1 ? "elu1" : "identity"); }};
    m["beta_mode"] = Field{
        [](Config& c, const YAML::Node& n, const std::string& w) {
          std::string s = to_str(n, w);
          if (s == "constant") c.model.beta_mode = BetaMode::kConstant;
          else if (s == "learned") c.model.beta_mode = BetaMode::kLearned;
          else throw UserError(w + " must be constant or learned, got '" + s + "'");
        },
        [](const Config& c) { return std::string(c.model.beta_mode == BetaMode::kConstant ? "constant" : "learned"); }};

    auto& b = t["benchmark"];
    auto bint = [](int64_t BenchConfig::*p) {
      return Field{[p](Config& c, const YAML::Node& n, const std::string& w) { c.bench.*p = to_int(n, w); },
                   [p](const Config& c) { return std::to_string(c.bench.*p); }};
    };
    b["n_tokens"] = bint(&BenchConfig::n_tokens);
    b["repeats"] = bint(&BenchConfig::repeats);
    b["warmup"] = bint(&BenchConfig::warmup);
    // A count or a list of counts (a sweep: every point runs at each, README "bsbr-bench compare").
    b["threads"] = Field{[](Config& c, const YAML::Node& n, const std::string& w) {
                           if (n.IsSequence()) {
                             c.bench.thread_counts = to_list<int64_t>(n, w, to_int);
                             if (c.bench.thread_counts.empty()) throw UserError(w + " is an empty list");
                             c.bench.threads = c.bench.thread_counts.front();
                           } else {
                             c.bench.threads = to_int(n, w);
                             c.bench.thread_counts.clear();
                           }
                         },
                         [](const Config& c) { return join_words(c.bench.thread_sweep(), [](int64_t v) { return std::to_string(v); }); }};
    b["verify_length"] = bint(&BenchConfig::verify_length);
    b["verify"] = Field{[](Config& c, const YAML::Node& n, const std::string& w) { c.bench.verify = to_bool(n, w); },
                        [](const Config& c) { return std::string(c.bench.verify ? "true" : "false"); }};
    b["memory_guard"] = Field{[](Config& c, const YAML::Node& n, const std::string& w) { c.bench.memory_guard = to_bool(n, w); },
                              [](const Config& c) { return std::string(c.bench.memory_guard ? "true" : "false"); }};
    b["models"] = Field{[](Config& c, const YAML::Node& n, const std::string& w) { c.bench.models = to_list<std::string>(n, w, to_str); },
                        [](const Config& c) { return join_words(c.bench.models, [](const std::string& m) { return m; }); }};
    b["seq_lengths"] = Field{[](Config& c, const YAML::Node& n, const std::string& w) { c.bench.seq_lengths = to_list<int64_t>(n, w, to_int); },
                             [](const Config& c) { return join_words(c.bench.seq_lengths, [](int64_t v) { return std::to_string(v); }); }};
    b["workloads"] = Field{[](Config& c, const YAML::Node& n, const std::string& w) { c.bench.workloads = to_list<Workload>(n, w, to_workload); },
                           [](const Config& c) { return join_words(c.bench.workloads, [](Workload w) { return std::string(to_string(w)); }); }};
    return t;
  }();
  return table;
}

std::string known_keys(const std::map<std::string, Field>& sec) {
  std::string s;
  for (auto& [k, _] : sec) s += (s.empty() ? "" : ", ") + k;
  return s;
}

void apply_node(Config& cfg, const std::string& section, const std::string& key, const YAML::Node& value,
                const std::string& origin) {
  auto& table = sections();
  auto sit = table.find(section);
  if (sit == table.end()) throw UserError(origin + ": unknown section '" + section + "' (known: model, benchmark)");
  auto fit = sit->second.find(key);
  if (fit == sit->second.end())
    throw UserError(origin + ": unknown key '" + section + "." + key + "' (known " + section + " keys: " + known_keys(sit->second) + ")");
  fit->second.set(cfg, value, origin + ": " + section + "." + key);
}

}  // namespace

void ModelConfig::validate(const std::string& origin) const {
  // Ranges first (core/limits.hpp: chosen so no size product of one point overflows), then the
  // joint constraints between keys.
  auto in = [&](const Limit& l, int64_t v) { check_range(origin + ": model." + l.name, l, v); };
  in(limits::kVocabSize, vocab_size);
  in(limits::kHiddenDim, hidden_dim);
  in(limits::kNumLayers, num_layers);
  in(limits::kNumHeads, num_heads);
  in(limits::kFfDim, ff_dim);
  in(limits::kChunkSize, chunk_size);
  // w = 0 is meaningful for SlidingWindow: each token attends to itself only.
  in(limits::kWindowSize, window_size);
  in(limits::kExpansionFactor, expansion_factor);
  in(limits::kBatchSize, batch_size);
  in(limits::kLinearChunkSize, linear_chunk_size);
  in(limits::kCompressionFactor, compression_factor);
  if (seed > static_cast<uint64_t>(limits::kSeed.hi))
    throw UserError(origin + ": model.seed must be an integer in [0, " + std::to_string(limits::kSeed.hi) + "], got " + std::to_string(seed));
  if (hidden_dim % num_heads != 0)
    throw UserError(origin + ": model.hidden_dim (" + std::to_string(hidden_dim) + ") must be divisible by model.num_heads (" +
                    std::to_string(num_heads) + ")");
  if (compression_factor > 0 && hidden_dim % compression_factor != 0)
    throw UserError(origin + ": model.hidden_dim (" + std::to_string(hidden_dim) + ") must be divisible by model.compression_factor (" +
                    std::to_string(compression_factor) + ")");
  if (!(beta > 0.0 && beta < 2.0))
    throw UserError(origin + ": model.beta must be in (0, 2) so the delta rule is stable for unit keys, got " + fmt_double(beta));
  if (!(temperature > 0.0)) throw UserError(origin + ": model.temperature must be positive, got " + fmt_double(temperature));
  if (!(layer_norm_eps > 0.0)) throw UserError(origin + ": model.layer_norm_eps must be positive, got " + fmt_double(layer_norm_eps));
  if (!(init_std > 0.0)) throw UserError(origin + ": model.init_std must be positive, got " + fmt_double(init_std));
}

void BenchConfig::validate(const std::string& origin) const {
  if (seq_lengths.empty()) throw UserError(origin + ": benchmark.seq_lengths is empty");
  for (int64_t n : seq_lengths) check_range(origin + ": benchmark.seq_lengths", limits::kSeqLength, n);
  if (workloads.empty()) throw UserError(origin + ": benchmark.workloads is empty");
  check_range(origin + ": benchmark.n_tokens", limits::kNTokens, n_tokens);
  check_range(origin + ": benchmark.repeats", limits::kRepeats, repeats);
  check_range(origin + ": benchmark.warmup", limits::kWarmup, warmup);
  for (int64_t t : thread_sweep()) check_range(origin + ": benchmark.threads (0 = all cores)", threads_limit(), t);
  for (std::size_t i = 0; i < thread_counts.size(); ++i)
    if (std::find(thread_counts.begin(), thread_counts.begin() + static_cast<std::ptrdiff_t>(i), thread_counts[i]) != thread_counts.begin() + static_cast<std::ptrdiff_t>(i))
      throw UserError(origin + ": benchmark.threads lists " + std::to_string(thread_counts[i]) + " twice");
  check_range(origin + ": benchmark.verify_length", limits::kVerifyLength, verify_length);
  // decode and generate step on from n to position n + n_tokens - 1 (every sample restarts at n),
  // recompute runs lengths up to n + n_tokens: the last position must stay a valid length.
  if (std::any_of(workloads.begin(), workloads.end(), generates_tokens)) {
    const int64_t n = *std::max_element(seq_lengths.begin(), seq_lengths.end());
    const int64_t last = n + n_tokens;  // < 2^22 + 2^16: no overflow
    if (last > limits::kMaxLength)
      throw UserError(origin + ": the decode/generate/recompute workloads would reach position " + std::to_string(last) +
                      " = max seq_lengths + n_tokens, above the largest length " + std::to_string(limits::kMaxLength) +
                      ": lower n_tokens or seq_lengths");
  }
}

namespace {

// yaml-cpp parses collections by recursive descent and stops itself at about 500 levels with the
// bare message "bad file". A config is at most three levels deep (section, key, list), so anything
// nested deeper than this is refused first with a message that says what is wrong. The scan
// over-counts ('[' inside a quoted string counts too), which can only refuse a file far deeper
// than any real config.
constexpr std::size_t kMaxYamlDepth = 32;

void check_yaml_depth(const std::string& text, const std::string& what) {
  std::size_t flow = 0, line = 1, col = 0, markers = 0;
  std::vector<std::size_t> indents;  // indentation of the enclosing block lines
  bool at_line_start = true;
  auto too_deep = [&](std::size_t depth) {
    if (depth > kMaxYamlDepth)
      throw UserError(what + ": nesting deeper than " + std::to_string(kMaxYamlDepth) + " levels (line " + std::to_string(line) +
                      "); a config holds sections, keys and lists of values");
  };
  for (char c : text) {
    if (c == '\n') {
      ++line;
      at_line_start = true;
      col = markers = 0;
      continue;
    }
    if (at_line_start) {
      if (c == ' ' || c == '-' || c == '?' || c == ':') {  // indentation, and "- - x" / "? x" block markers
        ++col;
        markers += c != ' ';
        continue;
      }
      at_line_start = false;
      if (c != '#') {
        while (!indents.empty() && indents.back() >= col) indents.pop_back();
        indents.push_back(col);
        too_deep(indents.size() + markers);
      }
    }
    if (c == '[' || c == '{') too_deep(++flow);
    else if ((c == ']' || c == '}') && flow > 0) --flow;
  }
}

// A mapping key must be a plain scalar ("model", "chunk_size"), not a list or mapping
// ("? [a, b]\n: 64" is valid YAML).
std::string key_text(const YAML::Node& key, const std::string& where) {
  if (!key.IsScalar())
    throw UserError(where + ": a key must be a plain name, got a " + (key.IsSequence() ? std::string("list") : key.IsMap() ? "mapping" : "null") +
                    " (line " + std::to_string(key.Mark().line + 1) + ")");
  return key.Scalar();
}

// Records `name` (first seen at `key`'s line) in `seen`; a second occurrence is refused, naming both lines.
void refuse_duplicate(std::map<std::string, int>& seen, const std::string& name, const std::string& label, const YAML::Node& key,
                      const std::string& what) {
  const int line = key.Mark().line + 1;
  auto [it, added] = seen.emplace(name, line);
  if (!added)
    throw UserError(what + ": " + label + " appears twice (lines " + std::to_string(it->second) + " and " + std::to_string(line) +
                    "); give each key once");
}

Config load_config_text(const std::string& text, const std::string& path) {
  const std::string what = "config " + path;
  check_yaml_depth(text, what);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw UserError(what + ": not valid YAML/JSON (line " + std::to_string(e.mark.line + 1) + "): " + e.msg);
  }
  Config cfg;
  cfg.source = path;
  if (root.IsNull()) throw UserError(what + ": file is empty");
  if (!root.IsMap()) throw UserError(what + ": top level must be a mapping with sections 'model' and/or 'benchmark'");
  // yaml-cpp keeps both entries of a key given twice (YAML and JSON forbid it; the walk below would
  // apply both, the last silently winning), so every key is refused the second time it appears.
  std::map<std::string, int> section_lines;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string section = key_text(it->first, what);
    const YAML::Node body = it->second;  // a handle (yaml-cpp nodes are shared): a copy, not a reference to the iterator's temporary
    if (section != "model" && section != "benchmark")
      throw UserError(what + ": unknown section '" + section + "' (known: model, benchmark)");
    refuse_duplicate(section_lines, section, "section '" + section + "'", it->first, what);
    if (body.IsNull()) continue;
    if (!body.IsMap()) throw UserError(what + ": section '" + section + "' must be a mapping");
    std::map<std::string, int> key_lines;
    for (auto kv = body.begin(); kv != body.end(); ++kv) {
      const YAML::Node key = kv->first, value = kv->second;
      const std::string name = key_text(key, what + ": section '" + section + "'");
      refuse_duplicate(key_lines, name, "key '" + section + "." + name + "'", key, what);
      apply_node(cfg, section, name, value, what);
    }
  }
  cfg.model.validate(what);
  cfg.bench.validate(what);
  return cfg;
}

}  // namespace

Config load_config(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw UserError("config file not found: " + path);
  if (fs::is_directory(path)) throw UserError("config path is a directory, not a file: " + path);
  return parse_config(read_file(path, "config file"), path);
}

Config parse_config(const std::string& text, const std::string& path) {
  try {
    return load_config_text(text, path);
  } catch (const YAML::Exception& e) {  // any yaml-cpp error the walk above did not foresee
    throw UserError("config " + path + ": " + e.msg + " (line " + std::to_string(e.mark.line + 1) + ")");
  }
}

void apply_override(Config& cfg, const std::string& assignment) {
  auto eq = assignment.find('=');
  auto dot = assignment.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq)
    throw UserError("--set expects section.key=value (e.g. model.chunk_size=64), got '" + assignment + "'");
  std::string section = assignment.substr(0, dot);
  std::string key = assignment.substr(dot + 1, eq - dot - 1);
  std::string value = assignment.substr(eq + 1);
  YAML::Node node;
  try {
    check_yaml_depth(value, "--set " + assignment);
    node = YAML::Load(value);
    apply_node(cfg, section, key, node, "--set");
  } catch (const YAML::Exception& e) {
    throw UserError("--set " + assignment + ": value is not valid YAML: " + e.msg);
  }
  apply_node(cfg, section, key, node, "--set");
  // No validation here: a value may only make sense together with a later --set
  // (hidden_dim=250 then num_heads=5). The caller validates the end state (validate_overridden).
}

void validate_overridden(const Config& cfg, const std::vector<std::string>& overrides) {
  std::string origin = cfg.source.empty() ? std::string("built-in defaults") : "config " + cfg.source;
  if (!overrides.empty()) origin += " with --set";
  cfg.model.validate(origin);
  cfg.bench.validate(origin);
}

std::vector<std::pair<std::string, std::string>> describe(const ModelConfig& m) {
  Config c;
  c.model = m;
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [k, f] : sections().at("model")) out.emplace_back(k, f.get(c));
  return out;
}

}  // namespace bsbr

// The lm study's settings: the `lm:` key table with typed, range-checked setters; the `model:`
// section goes through core/config's own parser.
#include "lm/settings.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "core/limits.hpp"
#include "io/weights.hpp"
#include "model/mixer.hpp"

namespace bsbr::lm {

namespace {

// Ranges of the lm keys (README "bsbr-bench lm"). Sizes are bounded so batch x length x vocabulary
// floats stay far below 2^63 and a run's step count fits comfortably in 64 bits.
constexpr int64_t kMaxTokens = int64_t{1} << 40;
constexpr int64_t kMaxLength = int64_t{1} << 16;  // 65,536 tokens: evaluation contexts and training length

std::string scalar_text(const YAML::Node& n) {
  return n.IsScalar() ? n.Scalar() : std::string("<") + (n.IsSequence() ? "list" : n.IsMap() ? "mapping" : "null") + ">";
}

int64_t to_int(const YAML::Node& n, const std::string& where, int64_t lo, int64_t hi) {
  int64_t v = 0;
  bool ok = n.IsScalar();
  if (ok) {
    const std::string& s = n.Scalar();
    std::size_t pos = 0;
    try {
      v = std::stoll(s, &pos);
    } catch (const std::exception&) {
      ok = false;
    }
    ok = ok && pos == s.size() && !s.empty();
  }
  if (!ok || v < lo || v > hi)
    throw UserError(where + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + scalar_text(n) + "'");
  return v;
}

double to_double(const YAML::Node& n, const std::string& where, double lo, double hi) {
  double v = 0;
  bool ok = n.IsScalar();
  if (ok) {
    const std::string& s = n.Scalar();
    std::size_t pos = 0;
    try {
      v = std::stod(s, &pos);
    } catch (const std::exception&) {
      ok = false;
    }
    ok = ok && pos == s.size() && std::isfinite(v);
  }
  if (!ok || v < lo || v > hi) {
    char buf[128];
    std::snprintf(buf, sizeof buf, " must be a number in [%g, %g], got '", lo, hi);
    throw UserError(where + buf + scalar_text(n) + "'");
  }
  return v;
}

std::vector<int64_t> to_ints(const YAML::Node& n, const std::string& where, int64_t lo, int64_t hi, bool allow_empty) {
  if (!n.IsSequence()) throw UserError(where + " must be a list of integers, got '" + scalar_text(n) + "'");
  std::vector<int64_t> v;
  for (std::size_t i = 0; i < n.size(); ++i) v.push_back(to_int(n[i], where + "[" + std::to_string(i) + "]", lo, hi));
  if (v.empty() && !allow_empty) throw UserError(where + " must not be empty");
  return v;
}

using Setter = std::function<void(LmSettings&, const YAML::Node&, const std::string&)>;

const std::map<std::string, Setter>& lm_keys() {
  static const std::map<std::string, Setter> keys = [] {
    std::map<std::string, Setter> m;
    auto integer = [](int64_t LmSettings::*p, int64_t lo, int64_t hi) {
      return Setter{[p, lo, hi](LmSettings& s, const YAML::Node& n, const std::string& w) { s.*p = to_int(n, w, lo, hi); }};
    };
    auto real = [](double LmSettings::*p, double lo, double hi) {
      return Setter{[p, lo, hi](LmSettings& s, const YAML::Node& n, const std::string& w) { s.*p = to_double(n, w, lo, hi); }};
    };
    m["seeds"] = integer(&LmSettings::seeds, 1, 1000);
    m["tokens"] = integer(&LmSettings::tokens, 1, kMaxTokens);
    m["time_budget"] = real(&LmSettings::time_budget, 0, 1e7);
    m["train_length"] = integer(&LmSettings::train_length, 2, kMaxLength);
    m["batch"] = integer(&LmSettings::batch, 1, 256);
    m["lr"] = real(&LmSettings::lr, 0, 10);
    m["beta1"] = real(&LmSettings::beta1, 0, 0.999999);
    m["beta2"] = real(&LmSettings::beta2, 0, 0.999999);
    m["weight_decay"] = real(&LmSettings::weight_decay, 0, 10);
    m["clip_norm"] = real(&LmSettings::clip_norm, 0, 1e6);
    m["min_lr_ratio"] = real(&LmSettings::min_lr_ratio, 0, 1);
    m["warmup_steps"] = integer(&LmSettings::warmup_steps, 0, kMaxTokens);
    m["log_every"] = integer(&LmSettings::log_every, 1, kMaxTokens);
    m["eval_every"] = integer(&LmSettings::eval_every, 1, kMaxTokens);
    m["val_windows"] = integer(&LmSettings::val_windows, 1, 100000);
    m["target_val_loss"] = real(&LmSettings::target_val_loss, 0, 1e3);
    m["eval_docs"] = integer(&LmSettings::eval_docs, 0, 100000);
    m["cost_repeats"] = integer(&LmSettings::cost_repeats, 1, 10000);
    m["cost_warmup"] = integer(&LmSettings::cost_warmup, 0, 10000);
    m["decode_tokens"] = integer(&LmSettings::decode_tokens, 1, 65536);
    m["threads"] = integer(&LmSettings::threads, 0, 1024);
    m["eval_contexts"] = [](LmSettings& s, const YAML::Node& n, const std::string& w) { s.eval_contexts = to_ints(n, w, 1, kMaxLength, false); };
    m["position_buckets"] = [](LmSettings& s, const YAML::Node& n, const std::string& w) { s.position_buckets = to_ints(n, w, 0, kMaxLength, false); };
    m["cost_lengths"] = [](LmSettings& s, const YAML::Node& n, const std::string& w) { s.cost_lengths = to_ints(n, w, 1, kMaxLength, true); };
    m["models"] = [](LmSettings& s, const YAML::Node& n, const std::string& w) {
      if (!n.IsSequence() || n.size() == 0) throw UserError(w + " must be a non-empty list of model names");
      s.models.clear();
      for (std::size_t i = 0; i < n.size(); ++i) {
        if (!n[i].IsScalar()) throw UserError(w + "[" + std::to_string(i) + "] must be a model name");
        s.models.push_back(n[i].Scalar());
      }
    };
    return m;
  }();
  return keys;
}

std::string known_lm_keys() {
  std::string k;
  for (const auto& [name, setter] : lm_keys()) k += (k.empty() ? "" : ", ") + name;
  return k;
}

void apply_lm_key(LmSettings& s, const std::string& key, const YAML::Node& value, const std::string& origin) {
  auto it = lm_keys().find(key);
  if (it == lm_keys().end()) throw UserError(origin + ": unknown key 'lm." + key + "' (known lm keys: " + known_lm_keys() + ")");
  it->second(s, value, origin + ": lm." + key);
}

std::string key_of(const YAML::Node& key, const std::string& where) {
  if (!key.IsScalar()) throw UserError(where + ": a key must be a plain name (line " + std::to_string(key.Mark().line + 1) + ")");
  return key.Scalar();
}

void once(std::map<std::string, int>& seen, const std::string& name, const YAML::Node& key, const std::string& what) {
  const int line = key.Mark().line + 1;
  auto [it, added] = seen.emplace(name, line);
  if (!added)
    throw UserError(what + ": key '" + name + "' appears twice (lines " + std::to_string(it->second) + " and " + std::to_string(line) + ")");
}

}  // namespace

ModelConfig default_lm_model() {
  ModelConfig m;
  m.vocab_size = 16384;
  m.hidden_dim = 128;
  m.num_layers = 2;
  m.num_heads = 4;
  m.ff_dim = 512;
  return m;
}

std::vector<std::string> all_models() {
  std::vector<std::string> v;
  for (const Architecture& a : architectures()) v.push_back(a.name);
  return v;
}

int64_t LmSettings::max_context() const { return *std::max_element(eval_contexts.begin(), eval_contexts.end()); }

int64_t LmSettings::gpt2_positions() const {
  int64_t p = std::max(max_context(), train_length);
  for (int64_t n : cost_lengths) p = std::max(p, n + decode_tokens);
  return p;
}

void LmSettings::validate(const std::string& origin) const {
  model.validate(origin);
  if (models.empty()) throw UserError(origin + ": lm.models is empty");
  for (const std::string& m : models)
    if (m != kGpt2Model) find_architecture(m);  // unknown names are a UserError
  for (std::size_t i = 0; i < models.size(); ++i)
    if (std::find(models.begin(), models.begin() + static_cast<std::ptrdiff_t>(i), models[i]) != models.begin() + static_cast<std::ptrdiff_t>(i))
      throw UserError(origin + ": lm.models lists " + models[i] + " twice");
  if (model.vocab_size < 3) throw UserError(origin + ": model.vocab_size must be at least 3 (<|endoftext|>, <unk> and one token)");
  if (!std::is_sorted(eval_contexts.begin(), eval_contexts.end()) ||
      std::adjacent_find(eval_contexts.begin(), eval_contexts.end()) != eval_contexts.end())
    throw UserError(origin + ": lm.eval_contexts must be strictly increasing");
  if (position_buckets.front() != 0) throw UserError(origin + ": lm.position_buckets must start at 0");
  for (std::size_t i = 1; i < position_buckets.size(); ++i)
    if (position_buckets[i] <= position_buckets[i - 1]) throw UserError(origin + ": lm.position_buckets must be strictly increasing");
  if (position_buckets.back() >= max_context())
    throw UserError(origin + ": lm.position_buckets' last start " + std::to_string(position_buckets.back()) +
                    " must be below the largest evaluation context " + std::to_string(max_context()));
  if (batch * train_length > (int64_t{1} << 24))
    throw UserError(origin + ": lm.batch x lm.train_length = " + std::to_string(batch * train_length) + " tokens a step is above 16,777,216");
  check_range(origin + ": lm.threads", threads_limit(), threads);
  if (model.batch_size != 1) throw UserError(origin + ": model.batch_size must be 1 for lm (the training batch is lm.batch)");
}

LmSettings parse_lm_settings(const std::string& text, const std::string& path) {
  const std::string what = "config " + path;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw UserError(what + ": not valid YAML/JSON (line " + std::to_string(e.mark.line + 1) + "): " + e.msg);
  }
  if (root.IsNull()) throw UserError(what + ": file is empty");
  if (!root.IsMap()) throw UserError(what + ": top level must be a mapping with sections 'model' and/or 'lm'");
  LmSettings s;
  s.source = path;
  std::map<std::string, int> sections;
  try {
    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string section = key_of(it->first, what);
      const YAML::Node body = it->second;
      if (section != "model" && section != "lm") throw UserError(what + ": unknown section '" + section + "' (known: model, lm)");
      once(sections, section, it->first, what);
      if (body.IsNull()) continue;
      if (!body.IsMap()) throw UserError(what + ": section '" + section + "' must be a mapping");
      std::map<std::string, int> keys;
      for (auto kv = body.begin(); kv != body.end(); ++kv) once(keys, section + "." + key_of(kv->first, what), kv->first, what);
      if (section == "lm") {
        for (auto kv = body.begin(); kv != body.end(); ++kv) apply_lm_key(s, kv->first.Scalar(), kv->second, what);
      } else {
        // The model section through core/config's own parser (its key table, types and ranges).
        // Through core/config's parser; the skeleton's sizes the file leaves out keep lm's
        // defaults (default_lm_model), not SPEC's.
        const ModelConfig d = default_lm_model();
        YAML::Emitter e;
        e << YAML::BeginMap << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
        for (const auto& [k, v] : {std::pair<const char*, int64_t>{"vocab_size", d.vocab_size}, {"hidden_dim", d.hidden_dim},
                                   {"num_layers", d.num_layers}, {"num_heads", d.num_heads}, {"ff_dim", d.ff_dim}})
          if (!body[k]) e << YAML::Key << k << YAML::Value << v;
        for (auto kv = body.begin(); kv != body.end(); ++kv) e << YAML::Key << kv->first << YAML::Value << kv->second;
        e << YAML::EndMap << YAML::EndMap;
        s.model = parse_config(e.c_str(), path).model;
      }
    }
  } catch (const YAML::Exception& e) {
    throw UserError(what + ": " + e.msg + " (line " + std::to_string(e.mark.line + 1) + ")");
  }
  s.validate(what);
  return s;
}

LmSettings load_lm_settings(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw UserError("config file not found: " + path);
  if (fs::is_directory(path)) throw UserError("config path is a directory, not a file: " + path);
  return parse_lm_settings(read_file(path, "config file"), path);
}

void apply_lm_override(LmSettings& s, const std::string& assignment) {
  const auto eq = assignment.find('='), dot = assignment.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq)
    throw UserError("--set expects section.key=value (e.g. lm.tokens=100000), got '" + assignment + "'");
  const std::string section = assignment.substr(0, dot);
  if (section == "model") {
    Config c;
    c.model = s.model;
    apply_override(c, assignment);
    s.model = c.model;
    return;
  }
  if (section != "lm") throw UserError("--set " + assignment + ": unknown section '" + section + "' (known: model, lm)");
  YAML::Node node;
  try {
    node = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw UserError("--set " + assignment + ": value is not valid YAML: " + e.msg);
  }
  apply_lm_key(s, assignment.substr(dot + 1, eq - dot - 1), node, "--set");
}

nlohmann::json to_json(const LmSettings& s) {
  return {{"source", s.source},
          {"model", model_config_json(s.model)},
          {"lm",
           {{"models", s.models},
            {"seeds", s.seeds},
            {"tokens", s.tokens},
            {"steps", s.steps()},
            {"time_budget", s.time_budget},
            {"train_length", s.train_length},
            {"batch", s.batch},
            {"lr", s.lr},
            {"beta1", s.beta1},
            {"beta2", s.beta2},
            {"weight_decay", s.weight_decay},
            {"clip_norm", s.clip_norm},
            {"min_lr_ratio", s.min_lr_ratio},
            {"warmup_steps", s.warmup_steps},
            {"log_every", s.log_every},
            {"eval_every", s.eval_every},
            {"val_windows", s.val_windows},
            {"target_val_loss", s.target_val_loss},
            {"eval_contexts", s.eval_contexts},
            {"position_buckets", s.position_buckets},
            {"eval_docs", s.eval_docs},
            {"cost_lengths", s.cost_lengths},
            {"cost_repeats", s.cost_repeats},
            {"cost_warmup", s.cost_warmup},
            {"decode_tokens", s.decode_tokens},
            {"threads", s.threads}}}};
}

}  // namespace bsbr::lm

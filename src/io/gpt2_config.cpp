// GPT-2 config.json parsing (declared in gpt2_checkpoint.hpp). Apart from the checkpoint loader so
// the fuzz target links only the parser.
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "core/json_input.hpp"
#include "io/gpt2_checkpoint.hpp"

namespace bsbr {

using nlohmann::json;

namespace {

[[noreturn]] void bad_config(const std::string& path, const std::string& what) { throw UserError("GPT-2 config " + path + ": " + what); }

// Sizes config.json may give, checked before anything is allocated from them. GPT-2 XL has
// n_embd 1600, n_layer 48, vocab 50257, n_positions 1024; the limits leave room for far larger
// models while keeping every size product (V x d, P x d, d x ff) well inside int64.
constexpr int64_t kMaxVocab = int64_t{1} << 24, kMaxEmbd = int64_t{1} << 16, kMaxLayers = 1024, kMaxPositions = int64_t{1} << 20,
                  kMaxInner = int64_t{1} << 20;

int64_t positive_int(const json& j, const std::string& key, const std::string& path, int64_t max) {
  if (!j.contains(key)) bad_config(path, "missing key '" + key + "'");
  const json& v = j[key];
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() <= 0) || v.get<uint64_t>() > static_cast<uint64_t>(max))
    bad_config(path, "'" + key + "' = " + v.dump() + " must be an integer in [1, " + std::to_string(max) + "]");
  return v.get<int64_t>();
}

// A key that must hold `want` when present (GPT-2 features this skeleton does not implement).
template <typename T>
void require_value(const json& j, const std::string& key, const T& want, const std::string& path, const std::string& why) {
  if (!j.contains(key) || j[key].is_null()) return;
  bool ok = false;
  try {
    ok = j[key].get<T>() == want;
  } catch (const json::exception&) {
  }
  if (!ok) bad_config(path, "'" + key + "' = " + j[key].dump() + " is not supported (" + why + ")");
}

}  // namespace

SkeletonOptions gpt2_skeleton(int64_t n_positions) {
  SkeletonOptions s;
  s.positions = SkeletonOptions::Positions::kLearned;
  s.learned_positions = n_positions;
  s.ffn_activation = ops::Eltwise::kGeluTanh;
  s.tied_lm_head = true;
  return s;
}

Gpt2Config read_gpt2_config(const std::string& path) { return parse_gpt2_config(read_file(path, "GPT-2 config"), path); }

Gpt2Config parse_gpt2_config(const std::string& text, const std::string& path) {
  const json j = parse_json_input(text, "GPT-2 config " + path);
  if (!j.is_object()) bad_config(path, "must be a JSON object");
  if (j.contains("model_type") && j["model_type"] != "gpt2") bad_config(path, "model_type is " + j["model_type"].dump() + ", expected \"gpt2\"");
  Gpt2Config c;
  ModelConfig& m = c.model;
  m.vocab_size = positive_int(j, "vocab_size", path, kMaxVocab);
  m.hidden_dim = positive_int(j, "n_embd", path, kMaxEmbd);
  m.num_layers = positive_int(j, "n_layer", path, kMaxLayers);
  m.num_heads = positive_int(j, "n_head", path, m.hidden_dim);
  c.n_positions = positive_int(j, "n_positions", path, kMaxPositions);
  // Hugging Face's aliases of the same settings: a file giving both names with different values says
  // two things (transformers keeps whichever it sets last), so it is refused.
  for (const auto& [alias, key, value] : {std::tuple{"hidden_size", "n_embd", m.hidden_dim}, {"num_hidden_layers", "n_layer", m.num_layers},
                                          {"num_attention_heads", "n_head", m.num_heads}, {"max_position_embeddings", "n_positions", c.n_positions}})
    if (j.contains(alias) && j[alias] != json(value))
      bad_config(path, std::string("'") + alias + "' = " + j[alias].dump() + " disagrees with '" + key + "' = " + std::to_string(value) +
                           " (the same setting under Hugging Face's alias); give one value");
  if (j.contains("n_inner") && !j["n_inner"].is_null()) {
    m.ff_dim = positive_int(j, "n_inner", path, kMaxInner);
  } else {
    m.ff_dim = 4 * m.hidden_dim;
    c.defaults_used.push_back("n_inner = 4 * n_embd = " + std::to_string(m.ff_dim));
  }
  if (j.contains("layer_norm_epsilon")) {
    const json& eps = j["layer_norm_epsilon"];
    if (!eps.is_number() || !(eps.get<double>() > 0 && eps.get<double>() <= 1))
      bad_config(path, "'layer_norm_epsilon' = " + eps.dump() + " must be a number in (0, 1]");
    m.layer_norm_eps = j["layer_norm_epsilon"].get<double>();
  } else {
    m.layer_norm_eps = 1e-5;
    c.defaults_used.push_back("layer_norm_epsilon = 1e-05");
  }
  c.skeleton = gpt2_skeleton(c.n_positions);  // the activation below may differ
  std::string act = "gelu_new";
  if (j.contains("activation_function")) {
    if (!j["activation_function"].is_string()) bad_config(path, "'activation_function' must be a string");
    act = j["activation_function"].get<std::string>();
  } else {
    c.defaults_used.push_back("activation_function = gelu_new");
  }
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast")
    c.skeleton.ffn_activation = ops::Eltwise::kGeluTanh;
  else if (act == "gelu")
    c.skeleton.ffn_activation = ops::Eltwise::kGeluErf;
  else
    bad_config(path, "activation_function '" + act + "' is not supported (gelu_new, gelu_pytorch_tanh, gelu_fast, gelu)");
  require_value(j, "scale_attn_weights", true, path, "attention is scaled by 1/sqrt(dh)");
  require_value(j, "scale_attn_by_inverse_layer_idx", false, path, "no per-layer attention scaling");
  require_value(j, "add_cross_attention", false, path, "decoder-only");
  require_value(j, "tie_word_embeddings", true, path, "the LM head is tied to the token embedding");
  m.validate("GPT-2 config " + path);
  return c;
}

}  // namespace bsbr

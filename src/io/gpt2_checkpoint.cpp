// GPT-2 checkpoint loading: config.json parsing, the HF -> ours name mapping, weight copy.
#include "io/gpt2_checkpoint.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/errors.hpp"
#include "core/io.hpp"

namespace bsbr {

using nlohmann::json;

namespace {

[[noreturn]] void bad_config(const std::string& path, const std::string& what) { throw UserError("GPT-2 config " + path + ": " + what); }

int64_t positive_int(const json& j, const std::string& key, const std::string& path) {
  if (!j.contains(key)) bad_config(path, "missing key '" + key + "'");
  const json& v = j[key];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0) bad_config(path, "'" + key + "' must be a positive integer");
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

Gpt2Config read_gpt2_config(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path, "GPT-2 config"));
  } catch (const json::exception& e) {
    bad_config(path, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) bad_config(path, "must be a JSON object");
  if (j.contains("model_type") && j["model_type"] != "gpt2") bad_config(path, "model_type is " + j["model_type"].dump() + ", expected \"gpt2\"");
  Gpt2Config c;
  ModelConfig& m = c.model;
  m.vocab_size = positive_int(j, "vocab_size", path);
  m.hidden_dim = positive_int(j, "n_embd", path);
  m.num_layers = positive_int(j, "n_layer", path);
  m.num_heads = positive_int(j, "n_head", path);
  c.n_positions = positive_int(j, "n_positions", path);
  if (j.contains("n_inner") && !j["n_inner"].is_null()) {
    m.ff_dim = positive_int(j, "n_inner", path);
  } else {
    m.ff_dim = 4 * m.hidden_dim;
    c.defaults_used.push_back("n_inner = 4 * n_embd = " + std::to_string(m.ff_dim));
  }
  if (j.contains("layer_norm_epsilon")) {
    if (!j["layer_norm_epsilon"].is_number() || !(j["layer_norm_epsilon"].get<double>() > 0)) bad_config(path, "'layer_norm_epsilon' must be a positive number");
    m.layer_norm_eps = j["layer_norm_epsilon"].get<double>();
  } else {
    m.layer_norm_eps = 1e-5;
    c.defaults_used.push_back("layer_norm_epsilon = 1e-05");
  }
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
  c.skeleton.positions = SkeletonOptions::Positions::kLearned;
  c.skeleton.learned_positions = c.n_positions;
  c.skeleton.tied_lm_head = true;
  m.validate("GPT-2 config " + path);
  return c;
}

Gpt2Checkpoint::Gpt2Checkpoint(const std::string& dir)
    : dir_(dir),
      config_([&] {
        if (!std::filesystem::is_directory(dir)) throw UserError("checkpoint directory not found: " + dir);
        const std::string cfg = dir + "/config.json", st = dir + "/model.safetensors";
        for (const std::string& f : {cfg, st})
          if (!std::filesystem::is_regular_file(f))
            throw UserError("checkpoint directory " + dir + " has no " + std::filesystem::path(f).filename().string() +
                            " (a Hugging Face GPT-2 directory holds config.json and model.safetensors)");
        return read_gpt2_config(cfg);
      }()),
      file_(dir + "/model.safetensors") {
  prefix_ = file_.find("transformer.wte.weight") ? "transformer." : "";
}

std::optional<std::pair<std::string, std::string>> Gpt2Checkpoint::tokenizer_files() const {
  std::string v = dir_ + "/vocab.json", m = dir_ + "/merges.txt";
  if (std::filesystem::is_regular_file(v) && std::filesystem::is_regular_file(m)) return std::make_pair(v, m);
  return std::nullopt;
}

std::unique_ptr<Model> Gpt2Checkpoint::make_model(ops::Context& ctx, const ModelConfig& cfg) const {
  auto model = std::make_unique<Model>(ctx, cfg, find_architecture("Standard"), config_.skeleton);
  load_into(model->params());
  return model;
}

void Gpt2Checkpoint::load_into(ParamStore& params) const {
  const int64_t d = config_.model.hidden_dim;
  std::set<std::string> used;
  auto tensor = [&](const std::string& hf, const Shape& want) -> const TensorInfo& {
    const TensorInfo* t = file_.find(prefix_ + hf);
    if (!t) throw UserError("checkpoint " + file_.path() + " has no tensor '" + prefix_ + hf + "'");
    if (t->shape != want)
      throw UserError("checkpoint tensor '" + t->name + "' has shape " + shape_str(t->shape) + ", config.json implies " + shape_str(want));
    used.insert(t->name);
    return *t;
  };
  for (Param& p : params.all()) {
    const std::string& name = p.name;
    const Shape& shape = p.value.shape();
    float* out = p.value.data();
    auto copy = [&](const std::string& hf) { file_.read_f32(tensor(hf, shape), out); };
    auto ends_with = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
    const std::string kind = ends_with(".weight") ? "weight" : "bias";
    if (name == "embed.weight") {
      copy("wte.weight");
    } else if (name == "pos_embed.weight") {
      copy("wpe.weight");
    } else if (name.rfind("final_ln.", 0) == 0) {
      copy("ln_f." + kind);
    } else if (name.rfind("layers.", 0) == 0) {
      const std::size_t dot = name.find('.', 7);
      const std::string layer = name.substr(7, dot - 7), rest = name.substr(dot + 1);
      const std::string h = "h." + layer + ".";
      const std::string module = rest.substr(0, rest.rfind('.'));
      static const std::vector<std::pair<std::string, std::string>> direct = {
          {"ln1", "ln_1"}, {"ln2", "ln_2"}, {"attn.out_proj", "attn.c_proj"}, {"ff1", "mlp.c_fc"}, {"ff2", "mlp.c_proj"}};
      bool done = false;
      for (const auto& [ours, hf] : direct)
        if (module == ours) {
          copy(h + hf + "." + kind);
          done = true;
        }
      for (int part = 0; part < 3 && !done; ++part) {
        if (module != std::string("attn.") + "qkv"[part] + "_proj") continue;
        // c_attn: [d, 3d] weight / [3d] bias; q, k, v are column blocks [part*d, (part+1)*d).
        if (kind == "weight") {
          std::vector<float> all = file_.read_f32(tensor(h + "attn.c_attn.weight", {d, 3 * d}));
          for (int64_t r = 0; r < d; ++r)
            for (int64_t c = 0; c < d; ++c) out[r * d + c] = all[r * 3 * d + part * d + c];
        } else {
          std::vector<float> all = file_.read_f32(tensor(h + "attn.c_attn.bias", {3 * d}));
          std::copy(all.begin() + part * d, all.begin() + (part + 1) * d, out);
        }
        done = true;
      }
      if (!done) throw UserError("GPT-2 loader: model parameter '" + name + "' has no GPT-2 checkpoint tensor");
    } else {
      throw UserError("GPT-2 loader: model parameter '" + name + "' has no GPT-2 checkpoint tensor");
    }
  }
  for (const TensorInfo& t : file_.tensors()) {
    if (used.count(t.name)) continue;
    std::string n = t.name.rfind(prefix_, 0) == 0 ? t.name.substr(prefix_.size()) : t.name;
    auto ends_with = [&](const std::string& s) { return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0; };
    if (n.rfind("h.", 0) == 0 && (ends_with(".attn.bias") || ends_with(".attn.masked_bias"))) continue;  // causal-mask buffers
    if (t.name == "lm_head.weight") {
      const TensorInfo& wte = tensor("wte.weight", {config_.model.vocab_size, d});
      if (t.shape != wte.shape || file_.read_f32(t) != file_.read_f32(wte))
        throw UserError("checkpoint has an lm_head.weight that differs from wte.weight; only GPT-2's tied LM head is supported");
      continue;
    }
    throw UserError("checkpoint " + file_.path() + " has an unexpected tensor '" + t.name + "' (is it a GPT-2 checkpoint?)");
  }
}

}  // namespace bsbr

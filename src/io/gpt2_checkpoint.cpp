// GPT-2 checkpoint loading: config.json parsing, the HF -> ours name mapping, weight copy.
#include "io/gpt2_checkpoint.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/errors.hpp"
#include "core/io.hpp"

namespace bsbr {

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
  check_tensor_shapes();
}

// Every tensor the model will read, with the shape config.json implies, compared before any model
// is built: a config that disagrees with the tensors is a shape error naming both, not an
// allocation sized by the config's numbers.
void Gpt2Checkpoint::check_tensor_shapes() const {
  const ModelConfig& m = config_.model;
  const int64_t d = m.hidden_dim, ff = m.ff_dim;
  std::vector<std::pair<std::string, Shape>> want = {
      {"wte.weight", {m.vocab_size, d}}, {"wpe.weight", {config_.n_positions, d}}, {"ln_f.weight", {d}}, {"ln_f.bias", {d}}};
  for (int64_t i = 0; i < m.num_layers; ++i) {
    const std::string h = "h." + std::to_string(i) + ".";
    for (const auto& [name, shape] : std::vector<std::pair<std::string, Shape>>{
             {"ln_1.weight", {d}}, {"ln_1.bias", {d}}, {"attn.c_attn.weight", {d, 3 * d}}, {"attn.c_attn.bias", {3 * d}},
             {"attn.c_proj.weight", {d, d}}, {"attn.c_proj.bias", {d}}, {"ln_2.weight", {d}}, {"ln_2.bias", {d}},
             {"mlp.c_fc.weight", {d, ff}}, {"mlp.c_fc.bias", {ff}}, {"mlp.c_proj.weight", {ff, d}}, {"mlp.c_proj.bias", {d}}})
      want.emplace_back(h + name, shape);
  }
  for (const auto& [name, shape] : want) {
    const TensorInfo* t = file_.find(prefix_ + name);
    if (!t) throw UserError("checkpoint " + file_.path() + " has no tensor '" + prefix_ + name + "' (config.json: n_layer = " +
                            std::to_string(m.num_layers) + ")");
    if (t->shape != shape)
      throw UserError("checkpoint tensor '" + t->name + "' has shape " + shape_str(t->shape) + ", config.json implies " + shape_str(shape));
  }
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

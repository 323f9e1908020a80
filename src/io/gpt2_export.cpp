// GPT-2 export: our parameters under Hugging Face's names (the inverse of Gpt2Checkpoint::load_into).
#include "io/gpt2_export.hpp"

#include <nlohmann/json.hpp>
#include <set>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "io/safetensors.hpp"

namespace bsbr {

namespace {

// Our name -> HF name for every parameter but q/k/v (which c_attn concatenates).
std::string hf_name(const std::string& ours) {
  if (ours == "embed.weight") return "wte.weight";
  if (ours == "pos_embed.weight") return "wpe.weight";
  if (ours.rfind("final_ln.", 0) == 0) return "ln_f." + ours.substr(9);
  const std::size_t dot = ours.find('.', 7);
  const std::string h = "h." + ours.substr(7, dot - 7) + ".", rest = ours.substr(dot + 1);
  static const std::vector<std::pair<std::string, std::string>> direct = {
      {"ln1.", "ln_1."}, {"ln2.", "ln_2."}, {"attn.out_proj.", "attn.c_proj."}, {"ff1.", "mlp.c_fc."}, {"ff2.", "mlp.c_proj."}};
  for (const auto& [from, to] : direct)
    if (rest.rfind(from, 0) == 0) return h + to + rest.substr(from.size());
  return "";
}

}  // namespace

void check_gpt2_shaped(const Model& model) {
  const SkeletonOptions& o = model.options();
  const std::string why = "GPT-2 export: model " + model.name() + " is not GPT-2-shaped: ";
  if (model.name() != "Standard") throw UserError(why + "GPT-2 is the Standard architecture");
  if (o.positions != SkeletonOptions::Positions::kLearned) throw UserError(why + "it has sinusoidal positions (GPT-2 learns them)");
  if (!o.tied_lm_head) throw UserError(why + "its LM head is not tied to the embedding");
  if (o.ffn_activation != ops::Eltwise::kGeluTanh && o.ffn_activation != ops::Eltwise::kGeluErf)
    throw UserError(why + "its FFN activation is not a GELU");
  // Exactly GPT-2's parameters: the names (and shapes) the loader maps.
  const ModelConfig& c = model.config();
  const int64_t d = c.hidden_dim, ff = c.ff_dim;
  std::vector<std::pair<std::string, Shape>> want = {{"embed.weight", {c.vocab_size, d}}, {"pos_embed.weight", {o.learned_positions, d}}};
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    for (const auto& [name, shape] : std::vector<std::pair<std::string, Shape>>{
             {"ln1.weight", {d}}, {"ln1.bias", {d}}, {"attn.q_proj.weight", {d, d}}, {"attn.q_proj.bias", {d}}, {"attn.k_proj.weight", {d, d}},
             {"attn.k_proj.bias", {d}}, {"attn.v_proj.weight", {d, d}}, {"attn.v_proj.bias", {d}}, {"attn.out_proj.weight", {d, d}},
             {"attn.out_proj.bias", {d}}, {"ln2.weight", {d}}, {"ln2.bias", {d}}, {"ff1.weight", {d, ff}}, {"ff1.bias", {ff}},
             {"ff2.weight", {ff, d}}, {"ff2.bias", {d}}})
      want.emplace_back(p + name, shape);
  }
  want.push_back({"final_ln.weight", {d}});
  want.push_back({"final_ln.bias", {d}});
  std::set<std::string> names;
  for (const auto& [name, shape] : want) {
    const Param* p = model.params().find(name);
    if (!p) throw UserError(why + "it has no parameter " + name);
    if (p->value.shape() != shape) throw UserError(why + "parameter " + name + " has shape " + shape_str(p->value.shape()) + ", expected " + shape_str(shape));
    names.insert(name);
  }
  for (const Param& p : model.params().all())
    if (!names.count(p.name)) throw UserError(why + "GPT-2 has no parameter like " + p.name);
}

void save_gpt2_checkpoint(const std::string& dir, const Model& model, const LmVocab* vocab, const std::string& flag) {
  std::vector<std::string> files = {"model.safetensors", "config.json"};
  if (vocab) files.push_back("lm_vocab.json");
  check_output_dir(dir, files, flag);
  check_gpt2_shaped(model);
  const ModelConfig& c = model.config();
  if (vocab && vocab->size() != c.vocab_size)
    throw UserError("GPT-2 export: the vocabulary has " + std::to_string(vocab->size()) + " ids, the model " + std::to_string(c.vocab_size));
  const int64_t d = c.hidden_dim, P = model.options().learned_positions;

  // c_attn [d, 3d] = [q | k | v] column blocks; bias [3d] the same.
  std::vector<std::vector<float>> c_attn;  // per layer: weight then bias (kept alive for the write)
  std::vector<TensorToWrite> tensors;
  for (const Param& p : model.params().all()) {
    const std::string hf = hf_name(p.name);
    if (!hf.empty()) tensors.push_back({hf, p.value.shape(), p.value.data()});
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".attn.", h = "h." + std::to_string(l) + ".attn.c_attn.";
    std::vector<float> w(d * 3 * d), b(3 * d);
    for (int part = 0; part < 3; ++part) {
      const std::string proj = p + "qkv"[part] + "_proj.";
      const float* pw = model.params().find(proj + "weight")->value.data();
      const float* pb = model.params().find(proj + "bias")->value.data();
      for (int64_t r = 0; r < d; ++r)
        for (int64_t col = 0; col < d; ++col) w[r * 3 * d + part * d + col] = pw[r * d + col];
      std::copy(pb, pb + d, b.begin() + part * d);
    }
    c_attn.push_back(std::move(w));
    tensors.push_back({h + "weight", {d, 3 * d}, c_attn.back().data()});
    c_attn.push_back(std::move(b));
    tensors.push_back({h + "bias", {3 * d}, c_attn.back().data()});
  }
  write_safetensors(dir + "/model.safetensors", tensors, DType::kF32, {{"format", "pt"}});
  if (vocab) vocab->save(dir + "/lm_vocab.json");

  nlohmann::ordered_json j;
  j["model_type"] = "gpt2";
  j["architectures"] = {"GPT2LMHeadModel"};
  j["vocab_size"] = c.vocab_size;
  j["n_positions"] = P;
  j["n_ctx"] = P;
  j["n_embd"] = d;
  j["n_layer"] = c.num_layers;
  j["n_head"] = c.num_heads;
  j["n_inner"] = c.ff_dim;
  j["activation_function"] = model.options().ffn_activation == ops::Eltwise::kGeluTanh ? "gelu_new" : "gelu";
  j["layer_norm_epsilon"] = c.layer_norm_eps;
  j["initializer_range"] = c.init_std;
  j["resid_pdrop"] = 0.0;
  j["embd_pdrop"] = 0.0;
  j["attn_pdrop"] = 0.0;
  j["scale_attn_weights"] = true;
  j["scale_attn_by_inverse_layer_idx"] = false;
  j["reorder_and_upcast_attn"] = false;
  j["tie_word_embeddings"] = true;
  j["use_cache"] = true;
  if (vocab) {  // the compact vocabulary's <|endoftext|>
    j["bos_token_id"] = LmVocab::kEot;
    j["eos_token_id"] = LmVocab::kEot;
  }
  j["torch_dtype"] = "float32";
  j["producer"] = "bsbr-bench";
  write_file_atomic(dir + "/config.json", j.dump(2) + "\n");
}

}  // namespace bsbr

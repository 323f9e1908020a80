// A Hugging Face GPT-2 checkpoint directory (config.json + model.safetensors, optional vocab.json +
// merges.txt) loaded into the shared skeleton (SPEC §6): GPT-2 = the Standard architecture with
// learned positions, tanh-approximated GELU, LayerNorm eps from the config and the LM head tied
// to the token embedding.
//
// Name mapping (HF name, with or without the "transformer." prefix -> ours). Conv1D weights are
// stored [in, out], our Linear layout, so they copy as they are; c_attn's columns split into q/k/v:
//   wte.weight [V, d]                      -> embed.weight
//   wpe.weight [P, d]                      -> pos_embed.weight
//   h.i.ln_1.{weight,bias}                 -> layers.i.ln1.*
//   h.i.attn.c_attn.weight [d, 3d]         -> layers.i.attn.{q,k,v}_proj.weight = columns [0,d), [d,2d), [2d,3d)
//   h.i.attn.c_attn.bias [3d]              -> layers.i.attn.{q,k,v}_proj.bias (same split)
//   h.i.attn.c_proj.{weight,bias}          -> layers.i.attn.out_proj.*
//   h.i.ln_2.{weight,bias}                 -> layers.i.ln2.*
//   h.i.mlp.c_fc.{weight,bias} [d, ff]     -> layers.i.ff1.*
//   h.i.mlp.c_proj.{weight,bias} [ff, d]   -> layers.i.ff2.*
//   ln_f.{weight,bias}                     -> final_ln.*
// Ignored: the causal-mask buffers h.i.attn.bias / h.i.attn.masked_bias, and lm_head.weight when
// it equals wte (the tie). Any other tensor, a missing tensor or a wrong shape is a UserError.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "io/safetensors.hpp"
#include "model/model.hpp"

namespace bsbr {

struct Gpt2Config {
  ModelConfig model;         // vocab_size, hidden_dim, num_layers, num_heads, ff_dim, layer_norm_eps
  SkeletonOptions skeleton;  // learned positions (n_positions rows), GELU, tied LM head
  int64_t n_positions = 0;
  // config.json keys that were absent and took Hugging Face's GPT2Config default (for the report).
  std::vector<std::string> defaults_used;
};

// GPT-2's skeleton (SPEC §6): learned positions (n_positions rows of pos_embed.weight), the tanh
// GELU (activation_function "gelu_new"), the LM head tied to the token embedding.
SkeletonOptions gpt2_skeleton(int64_t n_positions);

// Parses config.json; throws UserError for bad JSON, missing or invalid keys, or a GPT-2 variant
// this skeleton cannot run (cross-attention, per-layer attention scaling, untied head, ...).
// Sizes are checked against ranges (gpt2_config.cpp) before anything is built from them.
Gpt2Config read_gpt2_config(const std::string& path);
// The same from config.json's text (`path` names it in errors).
Gpt2Config parse_gpt2_config(const std::string& text, const std::string& path);

class Gpt2Checkpoint {
 public:
  // Opens DIR/config.json and DIR/model.safetensors (validated); throws UserError.
  explicit Gpt2Checkpoint(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const Gpt2Config& config() const { return config_; }
  const SafetensorsFile& file() const { return file_; }
  // DIR/vocab.json and DIR/merges.txt when both exist.
  std::optional<std::pair<std::string, std::string>> tokenizer_files() const;

  // The GPT-2 model: the Standard architecture in GPT-2's skeleton, weights from the checkpoint.
  // `cfg` may differ from config().model only in fields GPT-2 does not use (batch size, ...).
  std::unique_ptr<Model> make_model(ops::Context& ctx, const ModelConfig& cfg) const;
  std::unique_ptr<Model> make_model(ops::Context& ctx) const { return make_model(ctx, config_.model); }
  // Fills a GPT-2-shaped Standard model's parameters (every one must map to a checkpoint tensor).
  void load_into(ParamStore& params) const;

 private:
  void check_tensor_shapes() const;  // throws UserError
  std::string dir_;
  Gpt2Config config_;
  SafetensorsFile file_;
  std::string prefix_;  // "transformer." or ""
};

}  // namespace bsbr

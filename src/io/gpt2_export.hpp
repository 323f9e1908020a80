// Saving a GPT-2-shaped model as a Hugging Face GPT-2 checkpoint directory, the inverse of
// io/gpt2_checkpoint.hpp: `lm --models GPT-2 --export-gpt2 DIR` writes what `convert --checkpoint
// DIR` (and transformers' GPT2LMHeadModel.from_pretrained) loads.
//
//   config.json        model_type "gpt2", architectures ["GPT2LMHeadModel"], vocab_size,
//                      n_positions, n_ctx, n_embd, n_layer, n_head, n_inner, activation_function
//                      ("gelu_new" = tanh GELU, or "gelu"), layer_norm_epsilon,
//                      tie_word_embeddings true, dropouts 0 (training here uses none), ...
//   model.safetensors  F32, HF names without the "transformer." prefix (as openai-community/gpt2):
//                      wte, wpe, h.i.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj},
//                      ln_f; Conv1D weights [in, out] (our Linear layout); c_attn = [q | k | v]
//                      column blocks; no lm_head.weight (tied to wte); metadata format "pt".
//   lm_vocab.json      the compact vocabulary (data/lm_vocab.hpp) when one is given.
// gpt2_skeleton(n_positions) (the SkeletonOptions such a model uses) is declared in
// io/gpt2_checkpoint.hpp.
#pragma once
#include <string>

#include "data/lm_vocab.hpp"
#include "io/gpt2_checkpoint.hpp"
#include "model/model.hpp"

namespace bsbr {

// UserError unless `model` is GPT-2-shaped: the Standard architecture in GPT-2's skeleton (learned
// positions, tied LM head, a GELU) with exactly GPT-2's parameters.
void check_gpt2_shaped(const Model& model);

// Writes DIR/{model.safetensors, lm_vocab.json (when vocab), config.json}, each atomically (config.json
// last: a directory interrupted midway does not load). Checks first (check_output_dir: DIR usable,
// none of the three a symlink, FIFO or other non-regular file; the model GPT-2-shaped; the vocabulary's
// size equal to the model's), naming `flag` in errors.
void save_gpt2_checkpoint(const std::string& dir, const Model& model, const LmVocab* vocab, const std::string& flag = "--export-gpt2");

}  // namespace bsbr

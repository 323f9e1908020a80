// A plain-loop GPT-2 forward straight from Hugging Face tensors (tests/ref/ref_gpt2.cpp), and a
// tiny GPT-2 checkpoint the tests write themselves (tests/ref/tiny_gpt2.cpp). The forward knows
// nothing of our parameter names, so it checks the loader's mapping, not just the skeleton.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.hpp"
#include "ref/ref_common.hpp"

namespace bsbr::ref {

// HF GPT-2 tensors by name without the "transformer." prefix (Conv1D weights [in, out]).
using HfTensors = std::map<std::string, std::vector<float>>;

struct TinyGpt2 {
  int64_t vocab = 264, d = 32, layers = 2, heads = 4, positions = 48;  // vocab: 256 byte symbols + 8 merges
  double eps = 1e-5;
  HfTensors tensors;
};

// Random weights (normal, large enough that attention is far from uniform). round_to_half: every
// value exactly representable in F16 and BF16, so files of any dtype load to identical values.
TinyGpt2 make_tiny_gpt2(uint64_t seed, bool round_to_half = true);
struct TinyWriteOptions {
  DType dtype = DType::kF32;
  bool transformer_prefix = true;   // "transformer.wte.weight" (GPT2LMHeadModel) or "wte.weight" (GPT2Model)
  bool mask_buffers = true;         // h.i.attn.bias / masked_bias, as older checkpoints carry
  bool tokenizer = true;            // vocab.json + merges.txt matching `vocab`
};
// Writes config.json, model.safetensors (+ vocab.json, merges.txt) into dir.
void write_tiny_gpt2(const TinyGpt2& m, const std::string& dir, const TinyWriteOptions& opts = {});
// The tiny tokenizer's merges (priority order), over GPT-2's byte symbols ("Ġ" = space).
std::vector<std::pair<std::string, std::string>> tiny_merges();

// Logits [n, V] of the plain GPT-2 forward (learned positions, gelu tanh, tied head).
Mat gpt2_forward(const HfTensors& t, int64_t layers, int64_t heads, double eps, const std::vector<int32_t>& tokens);

}  // namespace bsbr::ref

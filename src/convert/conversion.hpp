// The GPT-2 -> BSBR conversion (SPEC §6): the same skeleton (learned positions, tanh GELU, tied LM
// head) with every attention block replaced by BSBR (SPEC §2), keeping every weight the two share.
//
// Parameter rules, per block prefix p = "layers.i.attn":
//   shared names (embeddings, LayerNorms, FFN, p.{q,k,v,out}_proj)  copied unchanged;
//   p.meta_r_proj (meta query R = W_r x_last(i-1) + b_r)            mean: (W_q + W_k)/2, qk: W_q (bias alike);
//   p.meta_h_proj (meta key   H = W_h x_last(j)   + b_h)            mean: (W_k + W_v)/2, qk: W_k (bias alike);
//   p.compress_proj [dh², d/c] and p.decompress_proj [d/c, dh²]     W_c = Q, W_d = Qᵀ, biases 0, where Q has
//       orthonormal columns (or rows, when d/c > dh²) drawn from the seed: decompress(compress(F)) is then
//       the orthogonal projection of vec(F) onto a random (d/c)-dimensional subspace (the identity when
//       d/c >= dh²), the closest an untrained compressor gets to passing chunk states through. One Q
//       per shape, shared by all layers.
// A converted parameter no rule covers is a broken invariant (the converter and the mixer disagree).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "model/model.hpp"

namespace bsbr {

enum class MetaInit { kMean, kQk };
const char* to_string(MetaInit m);
MetaInit parse_meta_init(const std::string& s);  // "mean" | "qk"; throws UserError

struct ConversionOptions {
  int64_t chunk_size = 64;
  int64_t compression_factor = 0;  // 0 = none
  MetaInit meta_init = MetaInit::kMean;
  uint64_t seed = 0;               // the compression projection
  std::string architecture = "BSBR";
  std::string label() const;       // "B=64, c=none"
};

// Builds the converted model from the original GPT-2 model (same config and skeleton).
std::unique_ptr<Model> convert_model(ops::Context& ctx, const Model& original, const ConversionOptions& opts);
// Fills `converted` from `original` by the rules above (exposed for tests).
void init_converted_params(const ParamStore& original, ParamStore& converted, const ConversionOptions& opts);

}  // namespace bsbr

// Double-precision forward of the training loss, for finite-difference gradient checks: a plain-loop
// forward of the skeleton (SPEC §1) and of each mixer (SPEC §2) in double, written from the SPEC
// (not from the fast code), ending in the mean next-token cross-entropy of src/train/train_model.hpp.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "model/model.hpp"
#include "model/params.hpp"

namespace bsbr::ref {

using DVec = std::vector<double>;
using DParams = std::map<std::string, DVec>;  // parameter name -> values (the store's layout)

DParams to_double(const ParamStore& params);

// Input embeddings [b, n, d]: token rows of embed.weight + sinusoidal positions (or, with
// skeleton.positions kLearned, rows 0..n-1 of pos_embed.weight).
DVec input_embeddings(const ModelConfig& cfg, const DParams& P, const std::vector<int32_t>& tokens, int64_t batch,
                      const SkeletonOptions& skeleton = {});

// Mean over the b (n - 1) positions t < n - 1 of -log softmax(logits_t)[tokens[t + 1]], for
// architecture `arch`, starting from the input embeddings x0 [b, n, d]. The skeleton's FFN
// activation (exact or tanh GELU) and LM head (lm_head Linear, or tied: logits = h.embed^T).
double train_loss(const ModelConfig& cfg, const std::string& arch, const DParams& P, const std::vector<int32_t>& tokens, int64_t batch,
                  const DVec& x0, const SkeletonOptions& skeleton = {});

// Whether `arch` has a double mixer here.
bool has_double_mixer(const std::string& arch);

}  // namespace bsbr::ref

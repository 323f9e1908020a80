// A model's weights in and out, as safetensors (io/safetensors.hpp): every ParamStore tensor under
// its PyTorch-style name ("layers.0.attn.q_proj.weight"; Linear weights [in, out]) in F32, with
// metadata {"format": "pt", "producer": "bsbr-bench", "architecture": <name>,
// "model_config": <the model config as a JSON object, serialised>}.
//
// Loading is strict, and checks everything before it changes a single weight: the architecture in
// the metadata must be the model's, every parameter must be present with exactly its shape, and
// the file may hold no other tensor. Each mismatch is a UserError naming the file and the tensor
// with both shapes (or the two architecture names). F16/BF16 tensors are converted to F32.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "core/config.hpp"
#include "model/model.hpp"

namespace bsbr {

// The model config as a JSON object of "key": "value" strings (the config file's spelling).
nlohmann::json model_config_json(const ModelConfig& cfg);

// Writes every parameter of `model` to `path` (atomically; parent directories are created).
void save_weights(const Model& model, const std::string& path);
// Reads every parameter of `model` from `path`; throws UserError on any mismatch (see above).
void load_weights(Model& model, const std::string& path);
// The same checks without reading the data (to reject a bad file before a long run starts).
void check_weights(const Model& model, const std::string& path);

// Where `compare --save-weights DIR` / `--weights DIR` keep one model's file: DIR/<Model>.safetensors.
std::string weights_path_in(const std::string& dir, const std::string& model);

}  // namespace bsbr

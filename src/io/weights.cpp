// Model weights as safetensors: save everything, load strictly (all checks before any copy).
#include "io/weights.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <unordered_set>

#include "core/errors.hpp"
#include "core/json_input.hpp"
#include "io/safetensors.hpp"

namespace bsbr {

namespace {

// Config keys that do not change what the weights mean: a difference is expected, not a warning.
bool irrelevant_to_weights(const std::string& key) { return key == "seed" || key == "init_std" || key == "batch_size"; }

// The saved model config against the running one: shapes are checked tensor by tensor, but keys
// such as window_size or temperature change the function without changing a shape, so say so.
void warn_on_config_differences(const SafetensorsFile& file, const ModelConfig& running) {
  auto it = file.metadata().find("model_config");
  if (it == file.metadata().end()) return;
  nlohmann::json saved;
  try {  // depth-bounded: saved values are dumped (recursively) into the warning below
    saved = parse_json_input(it->second, "weights " + file.path() + ": metadata model_config");
  } catch (const UserError& e) {
    spdlog::warn("{}; not compared with the running config", e.what());
    return;
  }
  if (!saved.is_object()) {
    spdlog::warn("weights {}: metadata model_config is not a JSON object; not compared with the running config", file.path());
    return;
  }
  const nlohmann::json now = model_config_json(running);
  std::string diffs;
  for (auto& [key, value] : now.items()) {
    if (irrelevant_to_weights(key) || !saved.contains(key) || saved[key] == value) continue;
    diffs += (diffs.empty() ? "" : ", ") + key + " " + saved[key].dump() + " -> " + value.dump();
  }
  if (!diffs.empty()) spdlog::warn("weights {} were saved with a different model config ({}); running with the current one", file.path(), diffs);
}

// Every check load_weights makes, before it changes anything.
void check_against(const SafetensorsFile& file, const Model& model) {
  const std::string where = "weights " + file.path() + ": ";
  auto arch = file.metadata().find("architecture");
  if (arch == file.metadata().end())
    throw UserError(where + "no 'architecture' in the metadata, so not a bsbr-bench weights file (write one with compare --save-weights)");
  if (arch->second != model.name())
    throw UserError(where + "saved for architecture " + arch->second + ", but the model is " + model.name());
  std::unordered_set<std::string> names;
  for (const Param& p : model.params().all()) {
    names.insert(p.name);
    const TensorInfo* t = file.find(p.name);
    if (t == nullptr) throw UserError(where + "missing tensor '" + p.name + "' " + shape_str(p.value.shape()) + " of " + model.name());
    if (t->shape != p.value.shape())
      throw UserError(where + "tensor '" + p.name + "' has shape " + shape_str(t->shape) + ", the model expects " + shape_str(p.value.shape()));
  }
  for (const TensorInfo& t : file.tensors())
    if (!names.count(t.name))
      throw UserError(where + "unexpected tensor '" + t.name + "' " + shape_str(t.shape) + ": not a parameter of " + model.name() +
                      " with this config");
}

}  // namespace

nlohmann::json model_config_json(const ModelConfig& cfg) {
  nlohmann::json j = nlohmann::json::object();
  for (auto& [key, value] : describe(cfg)) j[key] = value;
  return j;
}

std::string weights_path_in(const std::string& dir, const std::string& model) {
  return (std::filesystem::path(dir) / (model + ".safetensors")).string();
}

void save_weights(const Model& model, const std::string& path) {
  std::vector<TensorToWrite> tensors;
  for (const Param& p : model.params().all()) tensors.push_back({p.name, p.value.shape(), p.value.data()});
  write_safetensors(path, tensors, DType::kF32,
                    {{"format", "pt"},
                     {"producer", "bsbr-bench"},
                     {"architecture", model.name()},
                     {"model_config", model_config_json(model.config()).dump()}});
}

void check_weights(const Model& model, const std::string& path) { check_against(SafetensorsFile(path), model); }

void load_weights(Model& model, const std::string& path) {
  SafetensorsFile file(path);
  check_against(file, model);
  for (Param& p : model.params().all()) file.read_f32(*file.find(p.name), p.value.data());
  warn_on_config_differences(file, model.config());
}

}  // namespace bsbr

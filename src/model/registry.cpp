// The architecture registry: one explicit table, in the study's order. Adding an architecture
// means one file in model/arch/, one row here, and its oracle in src/ref/.
#include "core/errors.hpp"
#include "model/mixer.hpp"

namespace bsbr {

std::unique_ptr<Mixer> make_bsbr(const ModelConfig&, ParamStore&, const std::string&);
std::unique_ptr<Mixer> make_linear(const ModelConfig&, ParamStore&, const std::string&);
std::unique_ptr<Mixer> make_deltanet(const ModelConfig&, ParamStore&, const std::string&);
std::unique_ptr<Mixer> make_standard(const ModelConfig&, ParamStore&, const std::string&);
std::unique_ptr<Mixer> make_sliding_window(const ModelConfig&, ParamStore&, const std::string&);
std::unique_ptr<Mixer> make_hopfield(const ModelConfig&, ParamStore&, const std::string&);
std::unique_ptr<Mixer> make_gau(const ModelConfig&, ParamStore&, const std::string&);

const std::vector<Architecture>& architectures() {
  static const std::vector<Architecture> table = {
      {"BSBR", make_bsbr, "block sparse attention with block retrieval: softmax inside chunks + retrieval of past chunk states"},
      {"Linear", make_linear, "causal linear attention, phi = elu+1, chunkwise prefill, O(dh^2) recurrent decode"},
      {"DeltaNet", make_deltanet, "delta-rule linear attention, chunkwise WY/UT prefill, O(dh^2) recurrent decode"},
      {"Standard", make_standard, "full causal softmax attention, tiled online softmax, KV-cache decode"},
      {"SlidingWindow", make_sliding_window, "softmax attention over the last w+1 keys, banded prefill, ring-buffer decode"},
      {"Hopfield", make_hopfield, "modern-Hopfield retrieval: softmax(q.k / (T sqrt(dh))) over the past"},
      {"GAU", make_gau, "chunked gated attention unit: softmax inside chunks + running K^T V prefix sum, sigmoid gate"},
  };
  return table;
}

std::vector<std::string> architecture_names() {
  std::vector<std::string> names;
  for (const Architecture& a : architectures()) names.emplace_back(a.name);
  return names;
}

const Architecture& find_architecture(const std::string& name) {
  for (const Architecture& a : architectures())
    if (name == a.name) return a;
  std::string known;
  for (const Architecture& a : architectures()) known += (known.empty() ? "" : ", ") + std::string(a.name);
  throw UserError("unknown model '" + name + "' (known: " + known + ")");
}

}  // namespace bsbr

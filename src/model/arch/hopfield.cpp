// Hopfield: modern-Hopfield retrieval, energy q.k^T / (T sqrt(dh)), softmax over s <= t, times V
// (SPEC §2). With T = 1 it is exactly Standard; that is expected and tested.
#include <cmath>

#include "model/arch/softmax_attention.hpp"

namespace bsbr {

std::unique_ptr<Mixer> make_hopfield(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  double scale = 1.0 / (cfg.temperature * std::sqrt(static_cast<double>(cfg.head_dim())));
  return std::make_unique<SoftmaxAttention>(cfg, params, prefix, static_cast<float>(scale));
}

}  // namespace bsbr

// Standard: full causal softmax attention, softmax(q.k^T / sqrt(dh)) over s <= t (SPEC §2).
#include <cmath>

#include "model/arch/softmax_attention.hpp"

namespace bsbr {

std::unique_ptr<Mixer> make_standard(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return std::make_unique<SoftmaxAttention>(cfg, params, prefix, static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg.head_dim()))));
}

}  // namespace bsbr

// Training of GAU (SPEC §2, the study's chunked gated attention unit): one head of width E = e d;
// Q, K, V, G = Linear(d, E); chunk i (B = chunk_size):
//   a_t = softmax_{u in [iB, t]}(q_t.k_u / sqrt(E)) v_u + q_t S_i,   S_i = sum_{j<i} K_j^T V_j
//   o_t = a_t ⊙ sigmoid(g_t),   out = o.W_o + b_o.
// The local part is SoftmaxAttentionGrad with a chunk boundary; the cross-chunk part is ChunkStateCross.
#pragma once
#include <memory>
#include <string>

#include "train/trainable.hpp"

namespace bsbr::train {

// a_t += q_t S_{c(t)} with S_c = sum of K_j^T V_j over the complete chunks j < c (per sequence; one
// head of width E: q, k, v, a are [b, n, E]). Backward, from da:
//   dq_t += da_t S_c^T (forward sweep), and with dS_c = sum_{c' > c} Q_{c'}^T dA_{c'} (reverse sweep)
//   dk_u += dS_c v_u, dv_u += dS_c^T k_u. O(n E^2); one [E, E] state per thread.
class ChunkStateCross {
 public:
  enum class Fault { kNone, kDropStateGrad };  // kDropStateGrad: no dk, dv through the states
  ChunkStateCross() = default;
  // One [E, E] state per thread from buffers->work() (owned when buffers is null).
  ChunkStateCross(ops::Context& ctx, int64_t batch, int64_t n, int64_t width, int64_t chunk, MixerBuffers* buffers = nullptr);
  void forward(ops::Context& ctx, const float* q, const float* k, const float* v, float* a) const;
  void backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* da, float* dq, float* dk, float* dv,
                Fault fault = Fault::kNone) const;
  // Multiply-adds of forward (backward: of backward), counted into flops_executed (they are loops).
  double macs(bool backward) const;

 private:
  int64_t batch_ = 0, n_ = 0, width_ = 0, chunk_ = 0;
  mutable std::vector<Tensor> state_;  // per thread [E, E]
};

// What the trainable GAU mixer's prepare(batch, n) allocates (see MixerFloats).
MixerFloats gau_train_floats(const ModelConfig& cfg, int64_t batch, int64_t n, int threads);

std::unique_ptr<TrainableMixer> make_gau_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix);

}  // namespace bsbr::train

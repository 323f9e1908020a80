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
//   dk_u += dS_c v_u, dv_u += dS_c^T k_u. O(n E^2); one [E, E] state per thread. Every product is a
// oneDNN matmul per chunk ([C, E] x [E, E] and [E, C] x [C, E], accumulating; a partial last
// chunk has its own ops), sequences in parallel.
class ChunkStateCross {
 public:
  enum class Fault { kNone, kDropStateGrad };  // kDropStateGrad: no dk, dv through the states
  ChunkStateCross() = default;
  // One [E, E] state per thread from buffers->work() (owned when buffers is null).
  ChunkStateCross(ops::Context& ctx, int64_t batch, int64_t n, int64_t width, int64_t chunk, MixerBuffers* buffers = nullptr);
  void forward(ops::Context& ctx, const float* q, const float* k, const float* v, float* a) const;
  void backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* da, float* dq, float* dk, float* dv,
                Fault fault = Fault::kNone) const;

 private:
  int64_t batch_ = 0, n_ = 0, width_ = 0, chunk_ = 0, tail_ = 0;  // tail: rows of a partial last chunk (0: none)
  // Per chunk (the _tail ops: for the partial last chunk), all accumulating into their output:
  ops::MatMul qs_, qs_tail_;  // A_c [C, E] += Q_c S
  ops::MatMul kv_;            // S [E, E] += K_c^T V_c (complete chunks)
  ops::MatMul gs_, gs_tail_;  // dQ_c += dA_c S^T
  ops::MatMul vd_;            // dK_c += V_c dS^T
  ops::MatMul kd_;            // dV_c += K_c dS
  ops::MatMul qg_, qg_tail_;  // dS += Q_c^T dA_c
  mutable std::vector<Tensor> state_;  // per thread [E, E]
};

// What the trainable GAU mixer's prepare(batch, n) allocates (see MixerFloats).
MixerFloats gau_train_floats(const ModelConfig& cfg, int64_t batch, int64_t n, int threads);

std::unique_ptr<TrainableMixer> make_gau_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix);

}  // namespace bsbr::train

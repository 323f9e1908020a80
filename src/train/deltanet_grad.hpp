// Training of DeltaNet (SPEC §2): per head, q and k L2-normalised,
//   S_t = S_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T,   o_t = S_t q_t   (S [dv, dk]).
// This first backward is the exact reverse of the recurrence, token by token, with S checkpointed
// at chunk starts (O(n/C dh^2) saved) and recomputed inside a chunk in backward (one [C+1, dh, dh]
// workspace per thread). With A = dL/dS_t running backwards, e = v_t - S_{t-1} k_t:
//   A += do_t q_t^T;  dq_t = S_t^T do_t;  dbeta_t = e.(A k_t);  dv_t = beta_t A k_t;
//   dk_t = beta_t (A^T e - S_{t-1}^T A k_t);  A <- A - beta_t (A k_t) k_t^T,
// then through the L2 normalisations and (beta_mode learned) the sigmoid and beta_proj.
// Work O(n dh^2) like the forward, but per token: the chunkwise WY form (flash-linear-attention's
// backward) is the next step; this version is the gradient-checked reference it must match.
#pragma once
#include <memory>
#include <string>

#include "train/trainable.hpp"

namespace bsbr::train {

struct DeltaRuleGradGeometry {
  int64_t batch = 1, heads = 1, head_dim = 1, n = 1;
  int64_t chunk = 64;  // checkpoint interval
};

class DeltaRuleGrad {
 public:
  enum class Fault {
    kNone,
    kDropStateKeyTerm,  // dk_t without -beta_t S_{t-1}^T A k_t
    kDropStateDecay,    // A not multiplied by (I - beta_t k_t k_t^T) going back
  };
  DeltaRuleGrad() = default;
  DeltaRuleGrad(ops::Context& ctx, const DeltaRuleGradGeometry& g);
  // q, k (before normalisation), v, o: [b, n, heads * dh]; beta: [b, n, heads]. Saves the chunk-start states.
  void forward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, float* o) const;
  // dq, dk, dv [b, n, d] and dbeta [b, n, heads] (overwritten) from do.
  void backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, const float* dout, float* dq,
                float* dk, float* dv, float* dbeta, Fault fault = Fault::kNone) const;
  int64_t saved_floats() const { return checkpoints_.size(); }

 private:
  struct Workspace {
    Tensor s;       // [C + 1, dh, dh]: S before each token of the chunk, then after the last
    Tensor a;       // [dh, dh]: dL/dS
    Tensor vec;     // [4, dh]: normalised q, k; e; A k
  };
  int64_t chunks() const { return (g_.n + g_.chunk - 1) / g_.chunk; }
  DeltaRuleGradGeometry g_;
  mutable Tensor checkpoints_;  // [b, heads, chunks, dh, dh]: S before each chunk
  mutable std::vector<Workspace> ws_;
};

std::unique_ptr<TrainableMixer> make_deltanet_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix);

}  // namespace bsbr::train

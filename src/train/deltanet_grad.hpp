// Training of DeltaNet (SPEC §2): per head, q and k L2-normalised,
//   S_t = S_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T,   o_t = S_t q_t   (S [dv, dk]).
// backward() is the exact reverse of the recurrence, token by token, with S checkpointed
// at chunk starts (O(n/C dh^2) saved) and recomputed inside a chunk in backward (one [C+1, dh, dh]
// workspace per thread). With A = dL/dS_t running backwards, e = v_t - S_{t-1} k_t:
//   A += do_t q_t^T;  dq_t = S_t^T do_t;  dbeta_t = e.(A k_t);  dv_t = beta_t A k_t;
//   dk_t = beta_t (A^T e - S_{t-1}^T A k_t);  A <- A - beta_t (A k_t) k_t^T,
// then through the L2 normalisations and (beta_mode learned) the sigmoid and beta_proj.
// Work O(n dh^2) like the forward, but per token.
//
// backward_wy() is the chunkwise form (Yang et al. 2024; flash-linear-attention's chunk_delta_rule
// backward), per chunk c with normalised Q, K [C, dh], V, D = diag(beta), S the state before the
// chunk (checkpoint) and M the causal mask (diagonal included):
//   X = (I + L)^-1, L = tril(D K K^T, -1);  T = X D;  W = T K;  U' = T V - W S^T
//   O = Q S^T + (Q K^T ⊙ M) U';  S_next = S + U'^T K.
// Going back with dS_next (from the later chunks):
//   dU' = (Q K^T ⊙ M)^T dO + K dS_next^T;   P = (dO U'^T) ⊙ M
//   dQ = dO S + P K;   dK = P^T Q + U' dS_next + T^T dW + (G + G^T) K
//   dS = dS_next + dO^T Q - dU'^T W  (passed to chunk c - 1);   dW = -dU' S;   dV = T^T dU'
//   dT = dW K^T + dU' V^T;  dX = dT D;  dbeta_j = sum_i X_ij dT_ij + sum_{m<j} dL_jm (k_j.k_m)
//   dL = -X^T dX X^T (strictly lower part),  G_jm = beta_j dL_jm.
// O(n C dh + n dh^2 + n C^2) work in [C, C] / [C, dh] tiles; the mixer uses this one, and the
// recurrent backward() is its independent reference (tests/test_train_grad.cpp checks they agree).
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
    kDropWyKeyTerm,     // backward_wy: dK without the (G + G^T) K term (the gradient through X's K K^T)
  };
  DeltaRuleGrad() = default;
  // Chunk-start checkpoints from buffers->saved(), per-thread workspaces from buffers->work()
  // (owned when buffers is null).
  DeltaRuleGrad(ops::Context& ctx, const DeltaRuleGradGeometry& g, MixerBuffers* buffers = nullptr);
  // Floats of the checkpoints (saved) and of the per-thread workspaces (work).
  static MixerFloats floats(const DeltaRuleGradGeometry& g, int threads);
  // q, k (before normalisation), v, o: [b, n, heads * dh]; beta: [b, n, heads]. Saves the chunk-start
  // states. forward() is chunkwise (WY form: O = Q S^T + (Q K^T ⊙ M) U', S += U'^T K);
  // forward_recurrent() is the token-by-token reference (same outputs and checkpoints).
  void forward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, float* o) const;
  void forward_recurrent(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, float* o) const;
  // dq, dk, dv [b, n, d] and dbeta [b, n, heads] (overwritten) from do.
  void backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, const float* dout, float* dq,
                float* dk, float* dv, float* dbeta, Fault fault = Fault::kNone) const;
  // The same gradients by the chunkwise WY algebra (see above).
  void backward_wy(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, const float* dout, float* dq,
                   float* dk, float* dv, float* dbeta, Fault fault = Fault::kNone) const;
  int64_t saved_floats() const { return checkpoints_.size(); }
  // Multiply-adds of the loop left in forward() / backward_wy() (the substitution for X; every
  // product is a matmul, counted by the op layer), counted into flops_executed.
  double wy_macs(bool backward) const;

 private:
  struct Workspace {
    Tensor s;       // [C + 1, dh, dh]: S before each token of the chunk, then after the last
    Tensor a;       // [dh, dh]: dL/dS
    Tensor vec;     // [4, dh]: normalised q, k; e; A k
    // backward_wy: [C, dh] normalised Q, K, W, U', dU', dW; [C, C] X, T, dT, scratch, K K^T;
    // [dh, dh] dS; [2, C] norms.
    Tensor qc, kc, wm, up, dup, dwm, x, t, dt, tmp, kk, ds, norms;
  };
  // The WY chunk's products on oneDNN, for chunks of `rows` rows (single-threaded inside the
  // worker threads' items, as SoftmaxAttentionGrad's); names as in the header's formulas.
  struct ChunkOps {
    ChunkOps() = default;
    ChunkOps(ops::Context& ctx, int64_t rows, int64_t dh, int64_t chunk, int64_t d);
    ops::MatMul kk, tk, tv, ws_sub, qs, qk, au_acc, utk_acc;                                 // wy_chunk, forward
    ops::MatMul du, kds, qkt_do_acc, dos, pk_acc, ptq, uds_acc, dotq_acc, duw_sub, dus_neg;  // backward_wy
    ops::MatMul tdu, tdw_acc, dwk, duv_acc, xtdx, yxt, gk_acc, gtk_acc;
  };
  int64_t chunks() const { return (g_.n + g_.chunk - 1) / g_.chunk; }
  // For the chunk of rows [r0, r0 + L) of (b, h) with state S before it: normalised Q, K (and
  // their norms), X, T = X D, W = T K and U' = T V - W S^T into the workspace.
  void wy_chunk(ops::Context& ctx, const ChunkOps& op, Workspace& w, const float* q, const float* k, const float* v, const float* beta,
                int64_t b, int64_t h, int64_t r0, int64_t L, const float* S) const;
  // fn(workspace, item, b, h) for every (sequence b, head h) item = b * heads + h, in parallel.
  template <class Fn>
  void for_each_head(ops::Context& ctx, Fn&& fn) const {
    const int64_t items = g_.batch * g_.heads;
    ops::parallel_items(ctx, items, items > 1, [&](int64_t item) { fn(ws_[ops::Context::thread_id()], item, item / g_.heads, item % g_.heads); });
  }
  DeltaRuleGradGeometry g_;
  mutable Tensor checkpoints_;  // [b, heads, chunks, dh, dh]: S before each chunk
  ChunkOps full_, tail_;        // chunks of C rows; the partial last chunk (n mod C rows)
  mutable std::vector<Workspace> ws_;
};

// What the trainable DeltaNet mixer's prepare(batch, n) allocates (see MixerFloats).
MixerFloats deltanet_train_floats(const ModelConfig& cfg, int64_t batch, int64_t n, int threads);

std::unique_ptr<TrainableMixer> make_deltanet_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix);

}  // namespace bsbr::train

// Training of Linear attention (Katharopoulos et al. 2020, SPEC §2): a chunkwise forward and
// backward (the chunk algorithm of flash-linear-attention), and the trainable mixer around it.
//
// Per head, with phi the feature map and v'_s = [v_s, 1] (the ones column carries the normaliser):
//   A_ts = phi(q_t).phi(k_s) (s <= t),  [num_t, den_t - eps] = sum_s A_ts v'_s,  o_t = num_t / den_t.
// Backward from dO: G_t = [dO_t / den_t, -(dO_t.o_t) / den_t] (the gradient of [num, den]), then the
// same chunk algebra as the forward, with S_c = sum_{j<c} phi(K_j)^T V'_j and
// dS_c = sum_{j>c} phi(Q_j)^T G_j (a reverse running sum):
//   dphi(Q_c) = G_c S_c^T + ((G_c V'_c^T) ⊙ M) phi(K_c)
//   dphi(K_c) = V'_c dS_c^T + ((G_c V'_c^T) ⊙ M)^T phi(Q_c)
//   dV'_c     = phi(K_c) dS_c + ((phi(Q_c) phi(K_c)^T) ⊙ M)^T G_c
// M: causal mask inside the chunk (diagonal included). O(n C dh + n dh^2); no n x n buffer.
#pragma once
#include <memory>
#include <string>

#include "train/trainable.hpp"

namespace bsbr::train {

struct LinearAttentionGradGeometry {
  int64_t batch = 1, heads = 1, head_dim = 1, n = 1;
  int64_t chunk = 64;
  bool elu1 = true;       // phi = elu + 1 (else identity)
  bool normalize = true;  // divide by phi(q).z + 1e-6
};

class LinearAttentionGrad {
 public:
  using Geometry = LinearAttentionGradGeometry;
  enum class Fault {
    kNone,
    kDropNormalizerGrad,  // G_t's last column (the gradient through den) set to 0
    kDropStateKeyGrad,    // dphi(K_c) without the inter-chunk term V'_c dS_c^T
  };
  LinearAttentionGrad() = default;
  // Per-thread workspaces from buffers->work() (owned when buffers is null).
  LinearAttentionGrad(ops::Context& ctx, const LinearAttentionGradGeometry& g, MixerBuffers* buffers = nullptr);
  // q, k: projections before the feature map; all [b, n, heads * dh]; den: [b, heads, n].
  void forward(ops::Context& ctx, const float* q, const float* k, const float* v, float* o, float* den) const;
  void backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* o, const float* den, const float* dout,
                float* dq, float* dk, float* dv, Fault fault = Fault::kNone) const;

 private:
  struct Workspace {
    Tensor fq, fk;  // [C, dh]: phi of the chunk's queries and keys
    Tensor g;       // [C, dh + 1]: G of the chunk's rows (forward: [num, den - eps])
    Tensor vp;      // [C, dh + 1]: V' = [V, 1] of the chunk's rows
    Tensor s;       // [dh, dh + 1]: running state S (or dS)
    Tensor a;       // [C, C]: a masked intra-chunk product
    Tensor t1, t2;  // [C, dh]: dphi(Q) or dphi(K), dV of the chunk's rows
  };
  // The tile products of a chunk of `rows` rows on oneDNN (single-threaded inside the worker
  // threads' items, as SoftmaxAttentionGrad's), all dense in the workspace except G[:, :dh] and
  // dS[:, :dh] (row stride dh + 1).
  struct ChunkOps {
    ChunkOps() = default;
    ChunkOps(ops::Context& ctx, int64_t rows, int64_t dh);
    int64_t rows = 0;
    ops::MatMul qs, qk, av_acc, kv_acc, ws, wv, ad_acc, ks, atg_acc, atd_acc;
  };
  float phi(float x) const;
  float dphi(float x) const;
  void load_chunk(Workspace& w, const float* qb, const float* kb, const float* vb, int64_t r0, int64_t r1) const;
  static void mask_upper(float* a, int64_t rows);
  LinearAttentionGradGeometry g_;
  ChunkOps full_, tail_;  // chunks of C rows; the partial last chunk (n mod C rows)
  mutable std::vector<Workspace> ws_;
};

// Floats of the per-thread workspaces of the trainable Linear mixer's kernel.
double linear_attention_workspace_floats(const ModelConfig& cfg, int threads);

std::unique_ptr<TrainableMixer> make_linear_attention_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix);

}  // namespace bsbr::train

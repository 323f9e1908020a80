// Training of full and windowed causal softmax attention (Standard, Hopfield, SlidingWindow):
// a flash-style kernel that saves the log-sum-exp in forward and recomputes the probabilities per
// tile in backward (FlashAttention-2's backward), and the trainable mixer around it.
#pragma once
#include <memory>
#include <string>

#include "train/trainable.hpp"

namespace bsbr::train {

// q, k, v, o, dq, dk, dv, do: [b, n, heads * head_dim] dense; head h at columns [h*dh, (h+1)*dh).
// lse: [b, heads, n]. For query t the visible keys are s in [lo(t), t], lo(t) the largest of 0,
// t - window (a window) and floor(t / chunk) chunk (attention inside chunks: GAU's and BSBR's local part).
struct SoftmaxAttentionGradGeometry {
  int64_t batch = 1, heads = 1, head_dim = 1, n = 1;
  float scale = 1.f;
  int64_t window = -1;  // -1: all earlier keys
  int64_t q_tile = 64, k_tile = 64;
  int64_t chunk = 0;    // 0: no chunk boundary
};

class SoftmaxAttentionGrad {
 public:
  using Geometry = SoftmaxAttentionGradGeometry;
  // Test hook (see TrainableMixer::inject_fault): a broken term in backward.
  enum class Fault {
    kNone,
    kDropRowTerm,     // dS = P.dP instead of P.(dP - D)
    kUnscaledScores,  // dQ, dK scaled by 1/sqrt(dh) instead of the mixer's scale
    kNarrowBand,      // backward visits keys [t - w + 1, t] instead of [t - w, t]
  };

  SoftmaxAttentionGrad() = default;
  // Per-thread tiles from buffers->work() (owned when buffers is null).
  SoftmaxAttentionGrad(ops::Context& ctx, const SoftmaxAttentionGradGeometry& g, MixerBuffers* buffers = nullptr);
  // Floats of those tiles.
  static double workspace_floats(const SoftmaxAttentionGradGeometry& g, int threads);

  // o = softmax(scale q.k^T) v over the visible keys; lse_t = log sum_s exp(scale q_t.k_s).
  void forward(ops::Context& ctx, const float* q, const float* k, const float* v, float* o, float* lse) const;
  // dq, dk, dv (overwritten) from do, with the forward's q, k, v, o and lse.
  void backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* o, const float* lse, const float* dout,
                float* dq, float* dk, float* dv, Fault fault = Fault::kNone) const;

 private:
  struct Workspace {
    Tensor s, dp;          // [q_tile, k_tile]: scores / probabilities, dP / dS
    Tensor m, l, dd;       // [q_tile]: running max, running sum (forward); D = dO.O (backward)
    Tensor acc;            // [q_tile, dh]: output accumulator (forward), dQ of the tile (backward)
    Tensor qt, dot;        // [q_tile, dh]: the query tile and its dO (zero rows past the end)
    Tensor kt, vt;         // [k_tile, dh]: the key and value tile (zero rows past the end)
    Tensor dkt, dvt;       // [k_tile, dh]: dK, dV of the key tile (backward)
  };
  // Copies rows [r0, r1) of one head (row stride d) into a dense [tile, dh] buffer, zero-padded.
  void load_tile(const float* src, int64_t r0, int64_t r1, int64_t tile, float* dst) const;
  // First visible key of query t (lo_shift: the kNarrowBand fault moves a window's edge).
  int64_t first_key(int64_t t, int64_t lo_shift) const;
  // Key tile range [first, last] that a query tile [r0, r1) touches (band for a window or chunk).
  void key_tiles(int64_t r0, int64_t r1, int64_t lo_shift, int64_t& first, int64_t& last) const;
  SoftmaxAttentionGradGeometry g_;
  // Tile products on oneDNN (single-threaded inside the worker threads' items):
  ops::MatMul qk_;      // S [qt, kt] = A [qt, dh] . B^T (Q K^T, and dO V^T)
  ops::MatMul pv_acc_;  // acc [qt, dh] += P [qt, kt] . V [kt, dh]
  ops::MatMul pv_;      // dQ tile [qt, dh] = dS [qt, kt] . K [kt, dh]
  ops::MatMul tv_acc_;  // [kt, dh] += P^T [kt, qt] . A [qt, dh] (dV += P^T dO, dK += dS^T Q)
  mutable std::vector<Workspace> ws_;  // one per worker thread
};

// The tile size of the trainable mixers (Standard, Hopfield, SlidingWindow; GAU's and BSBR's local part).
inline constexpr int64_t kTrainAttentionTile = 64;
// Per-thread tile floats of a SoftmaxAttentionGrad of head width dh with kTrainAttentionTile tiles.
double softmax_attention_workspace_floats(int64_t head_dim, int threads);

// Standard, Hopfield or SlidingWindow (nullptr for another name).
std::unique_ptr<TrainableMixer> make_softmax_attention_train(const std::string& arch, const ModelConfig& cfg, ParamStore& params,
                                                             const std::string& prefix);

}  // namespace bsbr::train

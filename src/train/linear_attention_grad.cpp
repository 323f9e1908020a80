// Linear attention, chunkwise forward and backward (see the header for the algebra), and its
// trainable mixer (q_proj, k_proj, v_proj, out_proj as in src/model/arch/linear.cpp).
#include "train/linear_attention_grad.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"

namespace bsbr::train {

namespace {
constexpr float kDenominatorEps = 1e-6f;  // SPEC §2
}

using Fault = LinearAttentionGrad::Fault;

LinearAttentionGrad::ChunkOps::ChunkOps(ops::Context& ctx, int64_t rows, int64_t dh) : rows(rows) {
  ops::SingleThreadOps single(ctx);  // the chunk products run per (sequence, head, chunk block) inside parallel_items
  using ops::MatLayout;
  using ops::PostOp;
  const int64_t W = dh + 1;
  const std::vector<PostOp> acc{PostOp::accumulate()};
  const MatLayout rd = MatLayout::dense(rows, dh), rw = MatLayout::dense(rows, W), rr = MatLayout::dense(rows, rows);
  const MatLayout sw = MatLayout::dense(dh, W), gd = MatLayout::strided(rows, dh, W), sd = MatLayout::strided(dh, dh, W);
  qs = ops::MatMul(ctx, {rd, sw, rw, false, 1.f, {}});                  // [R, W] = FQ S
  qk = ops::MatMul(ctx, {rd, rd.transposed(), rr, false, 1.f, {}});     // [R, R] = FQ FK^T
  av_acc = ops::MatMul(ctx, {rr, rw, rw, false, 1.f, acc});             // [R, W] += A V'
  kv_acc = ops::MatMul(ctx, {rd.transposed(), rw, sw, false, 1.f, acc});  // [dh, W] += FK^T V' (FQ^T G)
  ws = ops::MatMul(ctx, {rw, sw.transposed(), rd, false, 1.f, {}});     // [R, dh] = G S^T (V' dS^T)
  wv = ops::MatMul(ctx, {rw, rw.transposed(), rr, false, 1.f, {}});     // [R, R] = G V'^T
  ad_acc = ops::MatMul(ctx, {rr, rd, rd, false, 1.f, acc});             // [R, dh] += B FK
  ks = ops::MatMul(ctx, {rd, sd, rd, false, 1.f, {}});                  // [R, dh] = FK dS[:, :dh]
  atg_acc = ops::MatMul(ctx, {rr.transposed(), gd, rd, false, 1.f, acc});  // [R, dh] += A^T G[:, :dh]
  atd_acc = ops::MatMul(ctx, {rr.transposed(), rd, rd, false, 1.f, acc});  // [R, dh] += B^T FQ
}

LinearAttentionGrad::LinearAttentionGrad(ops::Context& ctx, const LinearAttentionGradGeometry& g, MixerBuffers* buffers) : g_(g) {
  BSBR_CHECK(g.chunk > 0 && g.n > 0, "linear attention chunk and length must be positive");
  const int64_t C = g.chunk, dh = g.head_dim;
  if (g.n >= C) full_ = ChunkOps(ctx, C, dh);
  if (g.n % C > 0) tail_ = ChunkOps(ctx, g.n % C, dh);
  MixerBuffers own(ctx);
  MixerBuffers& buf = buffers ? *buffers : own;
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    for (Tensor* t : {&w.fq, &w.fk, &w.t1, &w.t2}) *t = buf.work({C, dh});
    for (Tensor* t : {&w.g, &w.vp}) *t = buf.work({C, dh + 1});
    w.s = buf.work({dh, dh + 1});
    w.a = buf.work({C, C});
  }
}

double linear_attention_workspace_floats(const ModelConfig& cfg, int threads) {
  const double C = static_cast<double>(cfg.linear_chunk_size), dh = static_cast<double>(cfg.head_dim());
  return threads * (4 * C * dh + 2 * C * (dh + 1) + dh * (dh + 1) + C * C);
}

float LinearAttentionGrad::phi(float x) const { return g_.elu1 ? (x > 0.f ? x + 1.f : std::exp(x)) : x; }
float LinearAttentionGrad::dphi(float x) const { return g_.elu1 ? (x > 0.f ? 1.f : std::exp(x)) : 1.f; }

// phi(Q), phi(K) [R, dh] and V' = [V, 1] [R, W] of the chunk's rows [r0, r1), dense.
void LinearAttentionGrad::load_chunk(Workspace& w, const float* qb, const float* kb, const float* vb, int64_t r0, int64_t r1) const {
  const int64_t dh = g_.head_dim, d = g_.heads * dh, W = dh + 1;
  for (int64_t t = r0; t < r1; ++t) {
    for (int64_t i = 0; i < dh; ++i) {
      w.fq[(t - r0) * dh + i] = phi(qb[t * d + i]);
      w.fk[(t - r0) * dh + i] = phi(kb[t * d + i]);
      w.vp[(t - r0) * W + i] = vb[t * d + i];
    }
    w.vp[(t - r0) * W + dh] = 1.f;
  }
}

// Zeroes the strictly upper part (s > t) of a dense [R, R] matrix: the causal mask inside a chunk.
void LinearAttentionGrad::mask_upper(float* a, int64_t R) {
  for (int64_t t = 0; t < R; ++t) std::fill(a + t * R + t + 1, a + (t + 1) * R, 0.f);
}

void LinearAttentionGrad::forward(ops::Context& ctx, const float* q, const float* k, const float* v, float* o, float* den) const {
  const int64_t dh = g_.head_dim, d = g_.heads * dh, n = g_.n, C = g_.chunk, W = dh + 1;
  const int64_t items = g_.batch * g_.heads;
  ops::parallel_items(ctx, items, items > 1, [&](int64_t item) {
    Workspace& w = ws_[ops::Context::thread_id()];
    const int64_t b = item / g_.heads, h = item % g_.heads, off = b * n * d + h * dh;
    const float *qb = q + off, *kb = k + off, *vb = v + off;
    float* ob = o + off;
    float* db = den + item * n;
    float* S = w.s.data();  // [dh, W]: sum over earlier chunks of phi(k) [v, 1]^T
    std::fill(S, S + dh * W, 0.f);
    for (int64_t r0 = 0; r0 < n; r0 += C) {
      const int64_t r1 = std::min(n, r0 + C), R = r1 - r0;
      const ChunkOps& op = R == C ? full_ : tail_;
      load_chunk(w, qb, kb, vb, r0, r1);
      op.qs.run(ctx, w.fq.data(), S, w.g.data());              // [num, den - eps] = phi(Q) S ...
      op.qk.run(ctx, w.fq.data(), w.fk.data(), w.a.data());    // A = phi(Q) phi(K)^T
      mask_upper(w.a.data(), R);
      op.av_acc.run(ctx, w.a.data(), w.vp.data(), w.g.data());  // ... + (A ⊙ M) V'
      for (int64_t t = r0; t < r1; ++t) {
        const float* acc = w.g.data() + (t - r0) * W;
        const float dn = g_.normalize ? acc[dh] + kDenominatorEps : 1.f;
        db[t] = dn;
        for (int64_t j = 0; j < dh; ++j) ob[t * d + j] = acc[j] / dn;
      }
      op.kv_acc.run(ctx, w.fk.data(), w.vp.data(), S);  // S += phi(K_c)^T V'_c
    }
  });
}

void LinearAttentionGrad::backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* o, const float* den,
                                   const float* dout, float* dq, float* dk, float* dv, Fault fault) const {
  const int64_t dh = g_.head_dim, d = g_.heads * dh, n = g_.n, C = g_.chunk, W = dh + 1;
  const int64_t items = g_.batch * g_.heads;
  const int64_t last_r0 = (n - 1) / C * C;
  ops::parallel_items(ctx, items, items > 1, [&](int64_t item) {
    Workspace& w = ws_[ops::Context::thread_id()];
    const int64_t b = item / g_.heads, h = item % g_.heads, off = b * n * d + h * dh;
    const float *qb = q + off, *kb = k + off, *vb = v + off, *ob = o + off, *gb = dout + off;
    float *dqb = dq + off, *dkb = dk + off, *dvb = dv + off;
    const float* db = den + item * n;
    auto load_g = [&](int64_t r0, int64_t r1) {  // G = [dO / den, -(dO.o) / den], dense [R, W]
      for (int64_t t = r0; t < r1; ++t) {
        float* gt = w.g.data() + (t - r0) * W;
        float dot = 0.f;
        for (int64_t j = 0; j < dh; ++j) {
          gt[j] = gb[t * d + j] / db[t];
          dot += gb[t * d + j] * ob[t * d + j];
        }
        gt[dh] = (g_.normalize && fault != Fault::kDropNormalizerGrad) ? -dot / db[t] : 0.f;
      }
    };
    float* S = w.s.data();
    float *A = w.a.data(), *t1 = w.t1.data(), *t2 = w.t2.data();
    // Sweep 1 (chunks in order, S = state before the chunk): dphi(Q) = G S^T + ((G V'^T) ⊙ M) phi(K).
    std::fill(S, S + dh * W, 0.f);
    for (int64_t r0 = 0; r0 < n; r0 += C) {
      const int64_t r1 = std::min(n, r0 + C), R = r1 - r0;
      const ChunkOps& op = R == C ? full_ : tail_;
      load_chunk(w, qb, kb, vb, r0, r1);
      load_g(r0, r1);
      op.ws.run(ctx, w.g.data(), S, t1);       // G S^T
      op.wv.run(ctx, w.g.data(), w.vp.data(), A);  // G V'^T
      mask_upper(A, R);
      op.ad_acc.run(ctx, A, w.fk.data(), t1);  // + (G V'^T ⊙ M) phi(K)
      for (int64_t t = r0; t < r1; ++t)
        for (int64_t i = 0; i < dh; ++i) dqb[t * d + i] = t1[(t - r0) * dh + i] * dphi(qb[t * d + i]);
      op.kv_acc.run(ctx, w.fk.data(), w.vp.data(), S);  // S += phi(K_c)^T V'_c
    }
    // Sweep 2 (chunks in reverse, S = dS = sum over later chunks of phi(Q)^T G):
    //   dphi(K) = V' dS^T + ((G V'^T) ⊙ M)^T phi(Q),  dV = phi(K) dS[:, :dh] + ((phi(Q) phi(K)^T) ⊙ M)^T G[:, :dh].
    std::fill(S, S + dh * W, 0.f);
    for (int64_t r0 = last_r0; r0 >= 0; r0 -= C) {
      const int64_t r1 = std::min(n, r0 + C), R = r1 - r0;
      const ChunkOps& op = R == C ? full_ : tail_;
      load_chunk(w, qb, kb, vb, r0, r1);
      load_g(r0, r1);
      if (fault == Fault::kDropStateKeyGrad) std::fill(t1, t1 + R * dh, 0.f);
      else op.ws.run(ctx, w.vp.data(), S, t1);       // V' dS^T
      op.ks.run(ctx, w.fk.data(), S, t2);            // phi(K) dS[:, :dh]
      op.qk.run(ctx, w.fq.data(), w.fk.data(), A);   // phi(Q) phi(K)^T
      mask_upper(A, R);
      op.atg_acc.run(ctx, A, w.g.data(), t2);        // dV += (.. ⊙ M)^T G[:, :dh]
      op.wv.run(ctx, w.g.data(), w.vp.data(), A);    // G V'^T
      mask_upper(A, R);
      op.atd_acc.run(ctx, A, w.fq.data(), t1);       // dphi(K) += (.. ⊙ M)^T phi(Q)
      for (int64_t s = r0; s < r1; ++s)
        for (int64_t i = 0; i < dh; ++i) {
          dkb[s * d + i] = t1[(s - r0) * dh + i] * dphi(kb[s * d + i]);
          dvb[s * d + i] = t2[(s - r0) * dh + i];
        }
      op.kv_acc.run(ctx, w.fq.data(), w.g.data(), S);  // dS += phi(Q_c)^T G_c
    }
  });
}

std::unique_ptr<TrainableMixer> make_linear_attention_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  using Mixer = KernelAttentionTrain<LinearAttentionGrad>;
  const LinearAttentionGradGeometry base{1, cfg.num_heads, cfg.head_dim(), 1, cfg.linear_chunk_size, cfg.feature_map == FeatureMap::kElu1,
                                         cfg.normalize};
  return std::make_unique<Mixer>(
      cfg, params, prefix,
      [base](int64_t batch, int64_t n) {
        LinearAttentionGradGeometry g = base;
        g.batch = batch;
        g.n = n;
        return g;
      },
      Mixer::Faults{{"linear.drop_normalizer_grad", Fault::kDropNormalizerGrad}, {"linear.drop_state_key_grad", Fault::kDropStateKeyGrad}});
}

}  // namespace bsbr::train

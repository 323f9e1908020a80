// DeltaNet forward with chunk-start checkpoints and the reverse of the delta-rule recurrence (see
// the header); the trainable mixer (q/k/v/out projections, optional beta_proj).
#include "train/deltanet_grad.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"

namespace bsbr::train {

using Fault = DeltaRuleGrad::Fault;

namespace {


// out = x / ||x|| (dh floats); returns ||x||. No epsilon (SPEC §2: no clamping).
float unit(const float* x, int64_t dh, float* out) {
  float s = 0.f;
  for (int64_t i = 0; i < dh; ++i) s += x[i] * x[i];
  const float norm = std::sqrt(s);
  for (int64_t i = 0; i < dh; ++i) out[i] = x[i] / norm;
  return norm;
}

// S [dv, dk] <- S + beta (v - S k) k^T; e (dv) receives v - S k.
void delta_update(float* S, const float* k, const float* v, float beta, int64_t dh, float* e) {
  for (int64_t i = 0; i < dh; ++i) {
    float u = 0.f;
    for (int64_t j = 0; j < dh; ++j) u += S[i * dh + j] * k[j];
    e[i] = v[i] - u;
  }
  for (int64_t i = 0; i < dh; ++i)
    for (int64_t j = 0; j < dh; ++j) S[i * dh + j] += beta * e[i] * k[j];
}

}  // namespace

DeltaRuleGrad::DeltaRuleGrad(ops::Context& ctx, const DeltaRuleGradGeometry& g, MixerBuffers* buffers) : g_(g) {
  BSBR_CHECK(g.chunk > 0 && g.n > 0, "DeltaNet chunk and length must be positive");
  const int64_t dh = g.head_dim;
  MixerBuffers own(ctx);
  MixerBuffers& buf = buffers ? *buffers : own;
  checkpoints_ = buf.saved({g.batch, g.heads, chunks(), dh, dh});
  const int64_t d = g.heads * dh;
  if (g.n >= g.chunk) full_ = ChunkOps(ctx, g.chunk, dh, g.chunk, d);
  if (g.n % g.chunk > 0) tail_ = ChunkOps(ctx, g.n % g.chunk, dh, g.chunk, d);
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    w.s = buf.work({g.chunk + 1, dh, dh});
    w.a = buf.work({dh, dh});
    w.vec = buf.work({4, dh});
    for (Tensor* t : {&w.qc, &w.kc, &w.wm, &w.up, &w.dup, &w.dwm}) *t = buf.work({g.chunk, dh});
    for (Tensor* t : {&w.x, &w.t, &w.dt, &w.tmp, &w.kk}) *t = buf.work({g.chunk, g.chunk});
    w.ds = buf.work({dh, dh});
    w.norms = buf.work({2, g.chunk});
  }
}

MixerFloats DeltaRuleGrad::floats(const DeltaRuleGradGeometry& g, int threads) {
  const double dh = static_cast<double>(g.head_dim), C = static_cast<double>(g.chunk);
  const double chunks = static_cast<double>((g.n + g.chunk - 1) / g.chunk);
  return {static_cast<double>(g.batch) * static_cast<double>(g.heads) * chunks * dh * dh,
          threads * ((C + 1) * dh * dh + 2 * dh * dh + 4 * dh + 6 * C * dh + 5 * C * C + 2 * C), 0};
}

void DeltaRuleGrad::forward_recurrent(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta,
                                      float* o) const {
  const int64_t dh = g_.head_dim, H = g_.heads, d = H * dh, n = g_.n, C = g_.chunk, dd = dh * dh;
  for_each_head(ctx, [&](Workspace& w, int64_t item, int64_t b, int64_t h) {
    float* S = w.a.data();
    float *qn = w.vec.data(), *kn = qn + dh, *e = kn + dh;
    std::fill(S, S + dd, 0.f);
    for (int64_t t = 0; t < n; ++t) {
      if (t % C == 0) std::copy(S, S + dd, checkpoints_.data() + (item * chunks() + t / C) * dd);
      const int64_t off = (b * n + t) * d + h * dh;
      unit(q + off, dh, qn);
      unit(k + off, dh, kn);
      delta_update(S, kn, v + off, beta[(b * n + t) * H + h], dh, e);
      for (int64_t i = 0; i < dh; ++i) {
        float acc = 0.f;
        for (int64_t j = 0; j < dh; ++j) acc += S[i * dh + j] * qn[j];
        o[off + i] = acc;
      }
    }
  });
}

void DeltaRuleGrad::backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, const float* dout,
                             float* dq, float* dk, float* dv, float* dbeta, Fault fault) const {
  const int64_t dh = g_.head_dim, H = g_.heads, d = H * dh, n = g_.n, C = g_.chunk, dd = dh * dh;
  for_each_head(ctx, [&](Workspace& w, int64_t item, int64_t b, int64_t h) {
    float* A = w.a.data();
    float *qn = w.vec.data(), *kn = qn + dh, *e = kn + dh, *ak = e + dh;
    std::fill(A, A + dd, 0.f);
    for (int64_t c = chunks() - 1; c >= 0; --c) {
      const int64_t r0 = c * C, r1 = std::min(n, r0 + C);
      // Recompute S before each token of the chunk: s[t - r0] = S_{t-1}, s[r1 - r0] = S_{r1 - 1}.
      float* s = w.s.data();
      std::copy_n(checkpoints_.data() + (item * chunks() + c) * dd, dd, s);
      for (int64_t t = r0; t < r1; ++t) {
        const int64_t off = (b * n + t) * d + h * dh;
        std::copy_n(s + (t - r0) * dd, dd, s + (t - r0 + 1) * dd);
        unit(k + off, dh, kn);
        delta_update(s + (t - r0 + 1) * dd, kn, v + off, beta[(b * n + t) * H + h], dh, e);
      }
      for (int64_t t = r1 - 1; t >= r0; --t) {
        const int64_t off = (b * n + t) * d + h * dh;
        const float* S_prev = s + (t - r0) * dd;
        const float* S_t = S_prev + dd;
        const float bt = beta[(b * n + t) * H + h];
        const float qnorm = unit(q + off, dh, qn), knorm = unit(k + off, dh, kn);
        const float* g = dout + off;
        // o_t = S_t q_t: A += do q^T, dq = S_t^T do (through the normalisation below).
        for (int64_t i = 0; i < dh; ++i)
          for (int64_t j = 0; j < dh; ++j) A[i * dh + j] += g[i] * qn[j];
        for (int64_t j = 0; j < dh; ++j) {
          float acc = 0.f;
          for (int64_t i = 0; i < dh; ++i) acc += S_t[i * dh + j] * g[i];
          dq[off + j] = acc;
        }
        // S_t = S_{t-1} + beta e k^T, e = v - S_{t-1} k.
        float db = 0.f;
        for (int64_t i = 0; i < dh; ++i) {
          float u = 0.f, a = 0.f;
          for (int64_t j = 0; j < dh; ++j) {
            u += S_prev[i * dh + j] * kn[j];
            a += A[i * dh + j] * kn[j];
          }
          e[i] = v[off + i] - u;
          ak[i] = a;
          db += e[i] * a;
          dv[off + i] = bt * a;
        }
        dbeta[(b * n + t) * H + h] = db;
        for (int64_t j = 0; j < dh; ++j) {
          float ae = 0.f, sak = 0.f;
          for (int64_t i = 0; i < dh; ++i) {
            ae += A[i * dh + j] * e[i];
            sak += S_prev[i * dh + j] * ak[i];
          }
          dk[off + j] = bt * (ae - (fault == Fault::kDropStateKeyTerm ? 0.f : sak));
        }
        if (fault != Fault::kDropStateDecay)
          for (int64_t i = 0; i < dh; ++i)
            for (int64_t j = 0; j < dh; ++j) A[i * dh + j] -= bt * ak[i] * kn[j];
        // Through x / ||x||: dx = (dxn - xn (xn.dxn)) / ||x||.
        for (auto [xn, dx, norm] : {std::tuple<const float*, float*, float>{qn, dq + off, qnorm}, {kn, dk + off, knorm}}) {
          float dot = 0.f;
          for (int64_t j = 0; j < dh; ++j) dot += xn[j] * dx[j];
          for (int64_t j = 0; j < dh; ++j) dx[j] = (dx[j] - xn[j] * dot) / norm;
        }
      }
    }
  });
}

DeltaRuleGrad::ChunkOps::ChunkOps(ops::Context& ctx, int64_t rows, int64_t dh, int64_t chunk, int64_t d) {
  ops::SingleThreadOps single(ctx);  // the chunk products run per (sequence, head) inside parallel_items
  using ops::MatLayout;
  using ops::PostOp;
  const std::vector<PostOp> acc{PostOp::accumulate()};
  // [R, R] in the workspace's [C, C] tiles (row stride C); [R, dh] dense tiles; [dh, dh] states;
  // one head's rows of a [b*n, d] buffer (q, k, v, o, dO, dq, dk, dv: row stride d).
  const MatLayout rr = MatLayout::strided(rows, rows, chunk), rd = MatLayout::dense(rows, dh), ee = MatLayout::dense(dh, dh);
  const MatLayout hd = MatLayout::strided(rows, dh, d);
  auto mm = [&](const MatLayout& x, const MatLayout& y, const MatLayout& z, bool accumulate, float scale = 1.f) {
    return ops::MatMul(ctx, {x, y, z, false, scale, accumulate ? acc : std::vector<PostOp>{}});
  };
  kk = mm(rd, rd.transposed(), rr, false);                 // K K^T
  tk = mm(rr, rd, rd, false);                              // W = T K
  tv = mm(rr, hd, rd, false);                              // U' = T V
  ws_sub = mm(rd, ee.transposed(), rd, true, -1.f);        // U' -= W S^T
  qs = mm(rd, ee.transposed(), hd, false);                 // O = Q S^T
  qk = mm(rd, rd.transposed(), rr, false);                 // Q K^T
  au_acc = mm(rr, rd, hd, true);                           // O += (Q K^T ⊙ M) U'
  utk_acc = mm(rd.transposed(), rd, ee, true);             // S += U'^T K
  du = mm(hd, rd.transposed(), rr, false);                 // P = dO U'^T
  kds = mm(rd, ee.transposed(), rd, false);                // dU' = K dS^T
  qkt_do_acc = mm(rr.transposed(), hd, rd, true);          // dU' += (Q K^T ⊙ M)^T dO
  dos = mm(hd, ee, hd, false);                             // dQ = dO S
  pk_acc = mm(rr, rd, hd, true);                           // dQ += P K
  ptq = mm(rr.transposed(), rd, hd, false);                // dK = P^T Q
  uds_acc = mm(rd, ee, hd, true);                          // dK += U' dS
  dotq_acc = mm(hd.transposed(), rd, ee, true);            // dS += dO^T Q
  duw_sub = mm(rd.transposed(), rd, ee, true, -1.f);       // dS -= dU'^T W
  dus_neg = mm(rd, ee, rd, false, -1.f);                   // dW = -dU' S
  tdu = mm(rr.transposed(), rd, hd, false);                // dV = T^T dU'
  tdw_acc = mm(rr.transposed(), rd, hd, true);             // dK += T^T dW
  dwk = mm(rd, rd.transposed(), rr, false);                // dT = dW K^T
  duv_acc = mm(rd, hd.transposed(), rr, true);             // dT += dU' V^T
  xtdx = mm(rr.transposed(), rr, rr, false);               // Y = X^T dX
  yxt = mm(rr, rr.transposed(), rr, false);                // Z = Y X^T
  gk_acc = mm(rr, rd, hd, true);                           // dK += G K
  gtk_acc = mm(rr.transposed(), rd, hd, true);             // dK += G^T K
}

namespace {
// Zeroes the strictly upper part (column > row) of an [L, L] block with row stride C.
void zero_upper(float* a, int64_t L, int64_t C) {
  for (int64_t i = 0; i < L; ++i) std::fill(a + i * C + i + 1, a + i * C + L, 0.f);
}
}  // namespace

void DeltaRuleGrad::wy_chunk(ops::Context& ctx, const ChunkOps& op, Workspace& w, const float* q, const float* k, const float* v,
                             const float* beta, int64_t b, int64_t h, int64_t r0, int64_t L, const float* S) const {
  const int64_t dh = g_.head_dim, H = g_.heads, d = H * dh, n = g_.n, C = g_.chunk;
  float *Q = w.qc.data(), *K = w.kc.data(), *Wm = w.wm.data(), *Up = w.up.data(), *X = w.x.data(), *T = w.t.data(), *KK = w.kk.data();
  float *qnorm = w.norms.data(), *knorm = qnorm + C;
  auto row = [&](int64_t i) { return (b * n + r0 + i) * d + h * dh; };
  auto bt = [&](int64_t i) { return beta[(b * n + r0 + i) * H + h]; };
  for (int64_t i = 0; i < L; ++i) {
    qnorm[i] = unit(q + row(i), dh, Q + i * dh);
    knorm[i] = unit(k + row(i), dh, K + i * dh);
  }
  op.kk.run(ctx, K, K, KK);
  // X = (I + L)^-1 by forward substitution (row i = e_i - sum_{m<i} L_im X_m), T = X D; both lower
  // triangular (zero above the diagonal: the matmuls below read whole tiles).
  for (int64_t i = 0; i < L; ++i) {
    for (int64_t j = 0; j < L; ++j) X[i * C + j] = i == j ? 1.f : 0.f;
    for (int64_t m = 0; m < i; ++m) {
      const float l = bt(i) * KK[i * C + m];
      for (int64_t j = 0; j <= m; ++j) X[i * C + j] -= l * X[m * C + j];
    }
    for (int64_t j = 0; j < L; ++j) T[i * C + j] = X[i * C + j] * bt(j);
  }
  op.tk.run(ctx, T, K, Wm);              // W = T K
  op.tv.run(ctx, T, v + row(0), Up);     // U' = T V
  op.ws_sub.run(ctx, Wm, S, Up);         // U' -= W S^T
}

// Per (sequence, head) and chunk: the substitution for X, R dh + (L-1) L (L+1) / 6 multiply-adds
// with R = L (L - 1) / 2 (flops_executed counts them; every product is a matmul, counted by the op
// layer). Backward adds the Y/Z loops' O(L^2) bookkeeping, not counted (elementwise).
double DeltaRuleGrad::wy_macs(bool backward) const {
  double per_item = 0;
  for (int64_t c = 0; c < chunks(); ++c) {
    const double L = static_cast<double>(std::min(g_.n, (c + 1) * g_.chunk) - c * g_.chunk);
    per_item += (L - 1) * L * (L + 1) / 6;
  }
  return per_item * static_cast<double>(g_.batch * g_.heads);
}

void DeltaRuleGrad::forward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, float* o) const {
  const int64_t dh = g_.head_dim, H = g_.heads, d = H * dh, n = g_.n, C = g_.chunk, dd = dh * dh;
  if (ctx.counting_flops()) ctx.count_flops(2 * wy_macs(false));
  for_each_head(ctx, [&](Workspace& w, int64_t item, int64_t b, int64_t h) {
    float* S = w.a.data();  // [dv, dk], the state before the chunk
    const float *Q = w.qc.data(), *K = w.kc.data(), *Up = w.up.data();
    float* QK = w.dt.data();
    std::fill(S, S + dd, 0.f);
    for (int64_t c = 0; c < chunks(); ++c) {
      const int64_t r0 = c * C, L = std::min(n, r0 + C) - r0;
      const ChunkOps& op = L == C ? full_ : tail_;
      float* ob = o + (b * n + r0) * d + h * dh;
      std::copy(S, S + dd, checkpoints_.data() + (item * chunks() + c) * dd);
      wy_chunk(ctx, op, w, q, k, v, beta, b, h, r0, L, S);
      op.qs.run(ctx, Q, S, ob);       // O = Q S^T
      op.qk.run(ctx, Q, K, QK);
      zero_upper(QK, L, C);           // ⊙ M
      op.au_acc.run(ctx, QK, Up, ob);  // O += (Q K^T ⊙ M) U'
      op.utk_acc.run(ctx, Up, K, S);   // S += U'^T K
    }
  });
}

void DeltaRuleGrad::backward_wy(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, const float* dout,
                                float* dq, float* dk, float* dv, float* dbeta, Fault fault) const {
  const int64_t dh = g_.head_dim, H = g_.heads, d = H * dh, n = g_.n, C = g_.chunk, dd = dh * dh;
  if (ctx.counting_flops()) ctx.count_flops(2 * wy_macs(true));
  for_each_head(ctx, [&](Workspace& w, int64_t item, int64_t b, int64_t h) {
    float *Q = w.qc.data(), *K = w.kc.data(), *Wm = w.wm.data(), *Up = w.up.data(), *dUp = w.dup.data(), *dW = w.dwm.data();
    float *X = w.x.data(), *T = w.t.data(), *dT = w.dt.data(), *P = w.tmp.data(), *KK = w.kk.data();
    float *dSn = w.a.data(), *dS = w.ds.data(), *qnorm = w.norms.data(), *knorm = qnorm + C;
    std::fill(dSn, dSn + dd, 0.f);
    for (int64_t c = chunks() - 1; c >= 0; --c) {
      const int64_t r0 = c * C, L = std::min(n, r0 + C) - r0;  // rows of this chunk
      const ChunkOps& op = L == C ? full_ : tail_;
      const float* S = checkpoints_.data() + (item * chunks() + c) * dd;  // [dv, dk]
      const int64_t base = (b * n + r0) * d + h * dh;                      // the chunk's first row of this head
      auto row = [&](int64_t i) { return base + i * d; };
      auto bt = [&](int64_t i) { return beta[(b * n + r0 + i) * H + h]; };
      wy_chunk(ctx, op, w, q, k, v, beta, b, h, r0, L, S);
      // P = (dO U'^T) ⊙ M; dU' = K dS_next^T + (Q K^T ⊙ M)^T dO (Q K^T in dT's tile for now).
      op.du.run(ctx, dout + base, Up, P);
      zero_upper(P, L, C);
      op.kds.run(ctx, K, dSn, dUp);
      op.qk.run(ctx, Q, K, dT);
      zero_upper(dT, L, C);
      op.qkt_do_acc.run(ctx, dT, dout + base, dUp);
      // dQ (normalised) = dO S + P K; dK (normalised) = P^T Q + U' dS_next (more terms below).
      op.dos.run(ctx, dout + base, S, dq + base);
      op.pk_acc.run(ctx, P, K, dq + base);
      op.ptq.run(ctx, P, Q, dk + base);
      op.uds_acc.run(ctx, Up, dSn, dk + base);
      // dS = dS_next + dO^T Q - dU'^T W.
      std::copy(dSn, dSn + dd, dS);
      op.dotq_acc.run(ctx, dout + base, Q, dS);
      op.duw_sub.run(ctx, dUp, Wm, dS);
      // dW = -dU' S; dV = T^T dU'; dK += T^T dW; dT = dW K^T + dU' V^T (lower triangle used).
      op.dus_neg.run(ctx, dUp, S, dW);
      op.tdu.run(ctx, T, dUp, dv + base);
      op.tdw_acc.run(ctx, T, dW, dk + base);
      op.dwk.run(ctx, dW, K, dT);
      op.duv_acc.run(ctx, dUp, v + base, dT);
      zero_upper(dT, L, C);
      // T = X D: dbeta_j = sum_i X_ij dT_ij; dX = dT D. dL = -X^T dX X^T (strictly lower).
      for (int64_t j = 0; j < L; ++j) {
        float acc = 0.f;
        for (int64_t i = j; i < L; ++i) acc += X[i * C + j] * dT[i * C + j];
        dbeta[(b * n + r0 + j) * H + h] = acc;
      }
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j <= i; ++j) dT[i * C + j] *= bt(j);  // dX (lower triangular)
      op.xtdx.run(ctx, X, dT, P);  // Y = X^T dX
      op.yxt.run(ctx, P, X, dT);   // Z = Y X^T, then G_ij = beta_i dL_ij = -beta_i Z_ij (i > j) in place
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < L; ++j) {
          float& z = dT[i * C + j];
          if (j >= i) {
            z = 0.f;
            continue;
          }
          const float dl = -z;
          dbeta[(b * n + r0 + i) * H + h] += dl * KK[i * C + j];  // L_ij = beta_i k_i.k_j
          z = fault == Fault::kDropWyKeyTerm ? 0.f : bt(i) * dl;
        }
      op.gk_acc.run(ctx, dT, K, dk + base);   // dk_i += sum_j G_ij k_j
      op.gtk_acc.run(ctx, dT, K, dk + base);  // dk_j += sum_i G_ij k_i
      // Through the normalisations.
      for (int64_t i = 0; i < L; ++i)
        for (auto [xn, dx, norm] : {std::tuple<const float*, float*, float>{Q + i * dh, dq + row(i), qnorm[i]}, {K + i * dh, dk + row(i), knorm[i]}}) {
          float dot = 0.f;
          for (int64_t e = 0; e < dh; ++e) dot += xn[e] * dx[e];
          for (int64_t e = 0; e < dh; ++e) dx[e] = (dx[e] - xn[e] * dot) / norm;
        }
      std::copy(dS, dS + dd, dSn);
    }
  });
}

namespace {

class DeltaNetTrain final : public TrainableMixer {
 public:
  DeltaNetTrain(const ModelConfig& cfg, ParamStore& params, const std::string& prefix)
      : cfg_(cfg),
        learned_(cfg.beta_mode == BetaMode::kLearned),
        q_(find_linear(params, prefix + ".q_proj")),
        k_(find_linear(params, prefix + ".k_proj")),
        v_(find_linear(params, prefix + ".v_proj")),
        out_(find_linear(params, prefix + ".out_proj")) {
    if (learned_) beta_proj_ = find_linear(params, prefix + ".beta_proj");
  }

  void prepare(ops::Context& ctx, MixerBuffers& buffers, int64_t batch, int64_t n) override {
    release();
    const int64_t rows = batch * n, d = cfg_.hidden_dim, H = cfg_.num_heads;
    ops_.q = LinearTrain(ctx, q_, rows, d, d);
    ops_.k = LinearTrain(ctx, k_, rows, d, d);
    ops_.v = LinearTrain(ctx, v_, rows, d, d);
    ops_.out = LinearTrain(ctx, out_, rows, d, d, /*accumulate=*/true);
    if (learned_) {
      ops_.beta = LinearTrain(ctx, beta_proj_, rows, d, H);
      const ops::MatLayout bl = ops::MatLayout::dense(rows, H);
      sigmoid_ = ops::EltwiseOp(ctx, bl, bl, {ops::Eltwise::kSigmoid});
      sigmoid_back_ = ops::EltwiseBackwardOp(ctx, rows, H, {ops::Eltwise::kSigmoid});
    }
    kernel_ = DeltaRuleGrad(ctx, {batch, H, cfg_.head_dim(), n, cfg_.linear_chunk_size}, &buffers);
    for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_}) *t = buffers.saved({rows, d});
    for (Tensor* t : {&beta_logit_, &beta_}) *t = buffers.saved({rows, H});
    for (Tensor* t : {&dq_, &dk_, &dv_, &do_}) *t = buffers.work({rows, d});
    dbeta_ = buffers.work({rows, H});
    if (!learned_) std::fill(beta_.data(), beta_.data() + beta_.size(), static_cast<float>(cfg_.beta));
    saved_ = 4 * rows * d + 2 * rows * H + kernel_.saved_floats();
  }

  void release() override {
    ops_ = Ops{};
    kernel_ = DeltaRuleGrad();
    sigmoid_ = {};
    sigmoid_back_ = {};
    for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_, &dq_, &dk_, &dv_, &do_, &beta_logit_, &beta_, &dbeta_}) t->reset();
    saved_ = 0;
  }

  void forward(ops::Context& ctx, const float* x, float* out) override {
    ops_.q.forward(ctx, x, q_buf_.data());
    ops_.k.forward(ctx, x, k_buf_.data());
    ops_.v.forward(ctx, x, v_buf_.data());
    if (learned_) {
      ops_.beta.forward(ctx, x, beta_logit_.data());
      sigmoid_.run(ctx, beta_logit_.data(), beta_.data());
    }
    kernel_.forward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), beta_.data(), o_buf_.data());
    ops_.out.forward(ctx, o_buf_.data(), out);
  }

  void backward(ops::Context& ctx, const float* x, const float* dout, float* dx, Grads& grads) override {
    ops_.out.backward(ctx, o_buf_.data(), dout, grads, do_.data());
    kernel_.backward_wy(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), beta_.data(), do_.data(), dq_.data(), dk_.data(), dv_.data(),
                        dbeta_.data(), fault_);
    ops_.q.backward(ctx, x, dq_.data(), grads, dx);
    ops_.k.backward(ctx, x, dk_.data(), grads, dx, /*accumulate_dx=*/true);
    ops_.v.backward(ctx, x, dv_.data(), grads, dx, /*accumulate_dx=*/true);
    if (learned_) {  // beta = sigmoid(x W + b): the constant beta has no parameter
      sigmoid_back_.run(ctx, beta_logit_.data(), dbeta_.data(), dbeta_.data());
      ops_.beta.backward(ctx, x, dbeta_.data(), grads, dx, /*accumulate_dx=*/true);
    }
  }

  int64_t saved_floats() const override { return saved_; }

  bool inject_fault(std::string_view name) override {
    if (name != "deltanet.drop_wy_key_term") return false;
    fault_ = Fault::kDropWyKeyTerm;
    return true;
  }
  std::vector<std::string> faults() const override { return {"deltanet.drop_wy_key_term"}; }

 private:
  struct Ops {
    LinearTrain q, k, v, out, beta;
  };
  ModelConfig cfg_;
  bool learned_;
  ParamStore::LinearRef q_, k_, v_, out_, beta_proj_{};
  Ops ops_;
  DeltaRuleGrad kernel_;
  ops::EltwiseOp sigmoid_;
  ops::EltwiseBackwardOp sigmoid_back_;
  Tensor q_buf_, k_buf_, v_buf_, o_buf_, beta_logit_, beta_;  // saved [b*n, d] / [b*n, h]
  Tensor dq_, dk_, dv_, do_, dbeta_;
  int64_t saved_ = 0;
  Fault fault_ = Fault::kNone;
};

}  // namespace

MixerFloats deltanet_train_floats(const ModelConfig& cfg, int64_t batch, int64_t n, int threads) {
  const double rows = static_cast<double>(batch) * static_cast<double>(n), d = static_cast<double>(cfg.hidden_dim);
  const double H = static_cast<double>(cfg.num_heads);
  MixerFloats f = DeltaRuleGrad::floats({batch, cfg.num_heads, cfg.head_dim(), n, cfg.linear_chunk_size}, threads);
  f.saved += 4 * rows * d + 2 * rows * H;
  f.work += 4 * rows * d + rows * H;
  f.owned += (cfg.beta_mode == BetaMode::kLearned ? 5 : 4) * rows;  // the Linear ops' ones rows
  return f;
}

std::unique_ptr<TrainableMixer> make_deltanet_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return std::make_unique<DeltaNetTrain>(cfg, params, prefix);
}

}  // namespace bsbr::train

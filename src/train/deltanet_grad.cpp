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

float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

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
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    w.s = buf.work({g.chunk + 1, dh, dh});
    w.a = buf.work({dh, dh});
    w.vec = buf.work({4, dh});
    for (Tensor* t : {&w.qc, &w.kc, &w.wm, &w.up, &w.dup, &w.dwm}) *t = buf.work({g.chunk, dh});
    for (Tensor* t : {&w.x, &w.t, &w.dt, &w.tmp}) *t = buf.work({g.chunk, g.chunk});
    w.ds = buf.work({dh, dh});
    w.norms = buf.work({2, g.chunk});
  }
}

MixerFloats DeltaRuleGrad::floats(const DeltaRuleGradGeometry& g, int threads) {
  const double dh = static_cast<double>(g.head_dim), C = static_cast<double>(g.chunk);
  const double chunks = static_cast<double>((g.n + g.chunk - 1) / g.chunk);
  return {static_cast<double>(g.batch) * static_cast<double>(g.heads) * chunks * dh * dh,
          threads * ((C + 1) * dh * dh + 2 * dh * dh + 4 * dh + 6 * C * dh + 4 * C * C + 2 * C), 0};
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

void DeltaRuleGrad::wy_chunk(Workspace& w, const float* q, const float* k, const float* v, const float* beta, int64_t b, int64_t h,
                             int64_t r0, int64_t L, const float* S) const {
  const int64_t dh = g_.head_dim, H = g_.heads, d = H * dh, n = g_.n, C = g_.chunk;
  float *Q = w.qc.data(), *K = w.kc.data(), *Wm = w.wm.data(), *Up = w.up.data(), *X = w.x.data(), *T = w.t.data();
  float *qnorm = w.norms.data(), *knorm = qnorm + C;
  auto row = [&](int64_t i) { return (b * n + r0 + i) * d + h * dh; };
  auto bt = [&](int64_t i) { return beta[(b * n + r0 + i) * H + h]; };
  for (int64_t i = 0; i < L; ++i) {
    qnorm[i] = unit(q + row(i), dh, Q + i * dh);
    knorm[i] = unit(k + row(i), dh, K + i * dh);
  }
  // X = (I + L)^-1 by forward substitution (row i = e_i - sum_{m<i} L_im X_m), T = X D.
  for (int64_t i = 0; i < L; ++i) {
    for (int64_t j = 0; j < L; ++j) X[i * C + j] = i == j ? 1.f : 0.f;
    for (int64_t m = 0; m < i; ++m) {
      const float l = bt(i) * dot(K + i * dh, K + m * dh, dh);
      for (int64_t j = 0; j <= m; ++j) X[i * C + j] -= l * X[m * C + j];
    }
    for (int64_t j = 0; j < L; ++j) T[i * C + j] = X[i * C + j] * bt(j);
  }
  // W = T K, U' = T V - W S^T.
  for (int64_t i = 0; i < L; ++i)
    for (int64_t e = 0; e < dh; ++e) {
      float wv = 0.f, uv = 0.f;
      for (int64_t j = 0; j <= i; ++j) {
        wv += T[i * C + j] * K[j * dh + e];
        uv += T[i * C + j] * v[row(j) + e];
      }
      Wm[i * dh + e] = wv;
      Up[i * dh + e] = uv;
    }
  for (int64_t i = 0; i < L; ++i)
    for (int64_t a = 0; a < dh; ++a) Up[i * dh + a] -= dot(Wm + i * dh, S + a * dh, dh);
}

// Per (sequence, head) and chunk of L rows, P = L (L + 1) / 2 pairs (diagonal included), R = L (L - 1) / 2
// strictly below: wy_chunk's substitution R dh + (L-1) L (L+1) / 6, W and U' 2 dh P, U' -= W S^T L dh^2;
// forward O (L dh^2 + 2 dh P) and S += U'^T K (L dh^2); backward_wy, besides wy_chunk again: nine
// dh-long products per pair (P, dU' (2), dQ, dK, dV and dK through T (2), dT (2)), six L dh^2
// terms (dU', dQ, dK, dS (2), dW), dbeta P, Y = X^T dX sum_k (2k + 1)(L - k), (Y X^T) (L-1) L (L+1) / 6,
// and 3 dh R for the K K^T terms (the products through the L2 norms are not counted: elementwise).
double DeltaRuleGrad::wy_macs(bool backward) const {
  const double dh = static_cast<double>(g_.head_dim);
  double per_item = 0;
  for (int64_t c = 0; c < chunks(); ++c) {
    const int64_t rows = std::min(g_.n, (c + 1) * g_.chunk) - c * g_.chunk;
    const double L = static_cast<double>(rows), P = L * (L + 1) / 2, R = L * (L - 1) / 2, tri = (L - 1) * L * (L + 1) / 6;
    const double wy = R * dh + tri + 2 * dh * P + L * dh * dh;
    if (!backward) {
      per_item += wy + 2 * L * dh * dh + 2 * dh * P;
      continue;
    }
    double y = 0;
    for (int64_t k = 0; k < rows; ++k) y += static_cast<double>((2 * k + 1) * (rows - k));
    per_item += wy + 9 * dh * P + 6 * L * dh * dh + P + y + tri + 3 * dh * R;
  }
  return per_item * static_cast<double>(g_.batch * g_.heads);
}

void DeltaRuleGrad::forward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, float* o) const {
  const int64_t dh = g_.head_dim, H = g_.heads, d = H * dh, n = g_.n, C = g_.chunk, dd = dh * dh;
  if (ctx.counting_flops()) ctx.count_flops(2 * wy_macs(false));
  for_each_head(ctx, [&](Workspace& w, int64_t item, int64_t b, int64_t h) {
    float* S = w.a.data();  // [dv, dk], the state before the chunk
    const float *Q = w.qc.data(), *K = w.kc.data(), *Up = w.up.data();
    std::fill(S, S + dd, 0.f);
    for (int64_t c = 0; c < chunks(); ++c) {
      const int64_t r0 = c * C, L = std::min(n, r0 + C) - r0;
      std::copy(S, S + dd, checkpoints_.data() + (item * chunks() + c) * dd);
      wy_chunk(w, q, k, v, beta, b, h, r0, L, S);
      // O = Q S^T + (Q K^T ⊙ M) U'.
      for (int64_t t = 0; t < L; ++t) {
        float* ot = o + (b * n + r0 + t) * d + h * dh;
        for (int64_t a = 0; a < dh; ++a) ot[a] = dot(Q + t * dh, S + a * dh, dh);
        for (int64_t s = 0; s <= t; ++s) {
          const float qk = dot(Q + t * dh, K + s * dh, dh);
          for (int64_t a = 0; a < dh; ++a) ot[a] += qk * Up[s * dh + a];
        }
      }
      // S += U'^T K.
      for (int64_t t = 0; t < L; ++t)
        for (int64_t a = 0; a < dh; ++a)
          for (int64_t e = 0; e < dh; ++e) S[a * dh + e] += Up[t * dh + a] * K[t * dh + e];
    }
  });
}

void DeltaRuleGrad::backward_wy(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, const float* dout,
                                float* dq, float* dk, float* dv, float* dbeta, Fault fault) const {
  const int64_t dh = g_.head_dim, H = g_.heads, d = H * dh, n = g_.n, C = g_.chunk, dd = dh * dh;
  if (ctx.counting_flops()) ctx.count_flops(2 * wy_macs(true));
  for_each_head(ctx, [&](Workspace& w, int64_t item, int64_t b, int64_t h) {
    float *Q = w.qc.data(), *K = w.kc.data(), *Wm = w.wm.data(), *Up = w.up.data(), *dUp = w.dup.data(), *dW = w.dwm.data();
    float *X = w.x.data(), *T = w.t.data(), *dT = w.dt.data(), *P = w.tmp.data();
    float *dSn = w.a.data(), *dS = w.ds.data(), *qnorm = w.norms.data(), *knorm = qnorm + C;
    std::fill(dSn, dSn + dd, 0.f);
    for (int64_t c = chunks() - 1; c >= 0; --c) {
      const int64_t r0 = c * C, L = std::min(n, r0 + C) - r0;  // rows of this chunk
      const float* S = checkpoints_.data() + (item * chunks() + c) * dd;  // [dv, dk]
      auto row = [&](int64_t i) { return (b * n + r0 + i) * d + h * dh; };
      auto bt = [&](int64_t i) { return beta[(b * n + r0 + i) * H + h]; };
      wy_chunk(w, q, k, v, beta, b, h, r0, L, S);
      // P = (dO U'^T) ⊙ M; dU' = (Q K^T ⊙ M)^T dO + K dS_next^T.
      for (int64_t t = 0; t < L; ++t)
        for (int64_t s = 0; s < L; ++s) {
          float a = 0.f;
          if (s <= t)
            for (int64_t e = 0; e < dh; ++e) a += dout[row(t) + e] * Up[s * dh + e];
          P[t * C + s] = a;
        }
      for (int64_t s = 0; s < L; ++s)
        for (int64_t a = 0; a < dh; ++a) {
          float acc = 0.f;
          for (int64_t e = 0; e < dh; ++e) acc += K[s * dh + e] * dSn[a * dh + e];
          dUp[s * dh + a] = acc;
        }
      for (int64_t t = 0; t < L; ++t)
        for (int64_t s = 0; s <= t; ++s) {
          float qk = 0.f;
          for (int64_t e = 0; e < dh; ++e) qk += Q[t * dh + e] * K[s * dh + e];
          for (int64_t a = 0; a < dh; ++a) dUp[s * dh + a] += qk * dout[row(t) + a];
        }
      // dQ (normalised) = dO S + P K, into dq's rows.
      for (int64_t t = 0; t < L; ++t)
        for (int64_t e = 0; e < dh; ++e) {
          float acc = 0.f;
          for (int64_t a = 0; a < dh; ++a) acc += dout[row(t) + a] * S[a * dh + e];
          for (int64_t s = 0; s <= t; ++s) acc += P[t * C + s] * K[s * dh + e];
          dq[row(t) + e] = acc;
        }
      // dK (normalised) = P^T Q + U' dS_next, into dk's rows (more terms below).
      for (int64_t s = 0; s < L; ++s)
        for (int64_t e = 0; e < dh; ++e) {
          float acc = 0.f;
          for (int64_t t = s; t < L; ++t) acc += P[t * C + s] * Q[t * dh + e];
          for (int64_t a = 0; a < dh; ++a) acc += Up[s * dh + a] * dSn[a * dh + e];
          dk[row(s) + e] = acc;
        }
      // dS = dS_next + dO^T Q - dU'^T W.
      for (int64_t a = 0; a < dh; ++a)
        for (int64_t e = 0; e < dh; ++e) {
          float acc = dSn[a * dh + e];
          for (int64_t t = 0; t < L; ++t) acc += dout[row(t) + a] * Q[t * dh + e] - dUp[t * dh + a] * Wm[t * dh + e];
          dS[a * dh + e] = acc;
        }
      // dW = -dU' S; dV = T^T dU'; dT = dW K^T + dU' V^T (lower triangle); dK += T^T dW.
      for (int64_t i = 0; i < L; ++i)
        for (int64_t e = 0; e < dh; ++e) {
          float acc = 0.f;
          for (int64_t a = 0; a < dh; ++a) acc -= dUp[i * dh + a] * S[a * dh + e];
          dW[i * dh + e] = acc;
        }
      for (int64_t j = 0; j < L; ++j)
        for (int64_t a = 0; a < dh; ++a) {
          float dvv = 0.f, dkk = 0.f;
          for (int64_t i = j; i < L; ++i) {
            dvv += T[i * C + j] * dUp[i * dh + a];
            dkk += T[i * C + j] * dW[i * dh + a];
          }
          dv[row(j) + a] = dvv;
          dk[row(j) + a] += dkk;
        }
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j <= i; ++j) {
          float acc = 0.f;
          for (int64_t e = 0; e < dh; ++e) acc += dW[i * dh + e] * K[j * dh + e] + dUp[i * dh + e] * v[row(j) + e];
          dT[i * C + j] = acc;
        }
      // T = X D: dbeta_j = sum_i X_ij dT_ij; dX = dT D. dL = -X^T dX X^T (strictly lower) into P.
      for (int64_t j = 0; j < L; ++j) {
        float acc = 0.f;
        for (int64_t i = j; i < L; ++i) acc += X[i * C + j] * dT[i * C + j];
        dbeta[(b * n + r0 + j) * H + h] = acc;
      }
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j <= i; ++j) dT[i * C + j] *= bt(j);  // dX (lower triangular)
      // Y = X^T dX (upper part used: Y_mj for m >= ... ), then dL_ij = -(Y X^T)_ij for i > j.
      for (int64_t m = 0; m < L; ++m)
        for (int64_t j = 0; j < L; ++j) {
          float acc = 0.f;  // Y_mj = sum_i X_im dX_ij, i >= max(m, j)
          for (int64_t i = std::max(m, j); i < L; ++i) acc += X[i * C + m] * dT[i * C + j];
          P[m * C + j] = acc;
        }
      for (int64_t i = 1; i < L; ++i)
        for (int64_t j = 0; j < i; ++j) {
          float acc = 0.f;  // (Y X^T)_ij = sum_m Y_im X_jm, m <= j
          for (int64_t m = 0; m <= j; ++m) acc += P[i * C + m] * X[j * C + m];
          const float dl = -acc;
          dbeta[(b * n + r0 + i) * H + h] += dl * dot(K + i * dh, K + j * dh, dh);
          if (fault == Fault::kDropWyKeyTerm) continue;
          const float gij = bt(i) * dl;  // L_ij = beta_i k_i.k_j
          for (int64_t e = 0; e < dh; ++e) {
            dk[row(i) + e] += gij * K[j * dh + e];
            dk[row(j) + e] += gij * K[i * dh + e];
          }
        }
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

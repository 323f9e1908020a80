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

LinearAttentionGrad::LinearAttentionGrad(ops::Context& ctx, const LinearAttentionGradGeometry& g, MixerBuffers* buffers) : g_(g) {
  BSBR_CHECK(g.chunk > 0 && g.n > 0, "linear attention chunk and length must be positive");
  const int64_t C = g.chunk, dh = g.head_dim;
  MixerBuffers own(ctx);
  MixerBuffers& buf = buffers ? *buffers : own;
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    w.fq = buf.work({C, dh});
    w.fk = buf.work({C, dh});
    w.g = buf.work({C, dh + 1});
    w.s = buf.work({dh, dh + 1});
  }
}

double linear_attention_workspace_floats(const ModelConfig& cfg, int threads) {
  const double C = static_cast<double>(cfg.linear_chunk_size), dh = static_cast<double>(cfg.head_dim());
  return threads * (2 * C * dh + C * (dh + 1) + dh * (dh + 1));
}

float LinearAttentionGrad::phi(float x) const { return g_.elu1 ? (x > 0.f ? x + 1.f : std::exp(x)) : x; }
float LinearAttentionGrad::dphi(float x) const { return g_.elu1 ? (x > 0.f ? 1.f : std::exp(x)) : 1.f; }

void LinearAttentionGrad::load_chunk(Workspace& w, const float* qb, const float* kb, int64_t r0, int64_t r1) const {
  const int64_t dh = g_.head_dim, d = g_.heads * dh;
  for (int64_t t = r0; t < r1; ++t)
    for (int64_t i = 0; i < dh; ++i) {
      w.fq[(t - r0) * dh + i] = phi(qb[t * d + i]);
      w.fk[(t - r0) * dh + i] = phi(kb[t * d + i]);
    }
}

// Per (sequence, head) and chunk of L rows with P = L (L + 1) / 2 causal pairs, W = dh + 1:
// forward phi(q).S and the state update (L dh W each), the pairs (2 dh + 1 each); backward sweep 1
// G S^T and the state (L dh W each), the pairs (W + dh); sweep 2 dS v' and the state (L dh W
// each), dS^T phi(k) (L dh^2), the pairs (3 dh + W).
double LinearAttentionGrad::macs(bool backward) const {
  const double dh = static_cast<double>(g_.head_dim), W = dh + 1;
  double per_item = 0;
  for (int64_t r0 = 0; r0 < g_.n; r0 += g_.chunk) {
    const double L = static_cast<double>(std::min(g_.n, r0 + g_.chunk) - r0), P = L * (L + 1) / 2;
    per_item += backward ? 4 * L * dh * W + L * dh * dh + P * (4 * dh + 2 * W) : 2 * L * dh * W + P * (2 * dh + 1);
  }
  return per_item * static_cast<double>(g_.batch * g_.heads);
}

void LinearAttentionGrad::forward(ops::Context& ctx, const float* q, const float* k, const float* v, float* o, float* den) const {
  const int64_t dh = g_.head_dim, d = g_.heads * dh, n = g_.n, C = g_.chunk, W = dh + 1;
  if (ctx.counting_flops()) ctx.count_flops(2 * macs(false));
  const int64_t items = g_.batch * g_.heads;
  ops::parallel_items(ctx, items, items > 1, [&](int64_t item) {
    Workspace& w = ws_[ops::Context::thread_id()];
    const int64_t b = item / g_.heads, h = item % g_.heads, off = b * n * d + h * dh;
    const float *qb = q + off, *kb = k + off, *vb = v + off;
    float* ob = o + off;
    float* db = den + item * n;
    float* S = w.s.data();  // [dh, dh + 1]: sum over earlier chunks of phi(k) [v, 1]^T
    std::fill(S, S + dh * W, 0.f);
    for (int64_t r0 = 0; r0 < n; r0 += C) {
      const int64_t r1 = std::min(n, r0 + C);
      load_chunk(w, qb, kb, r0, r1);
      for (int64_t t = r0; t < r1; ++t) {
        const float* fq = w.fq.data() + (t - r0) * dh;
        float* acc = w.g.data() + (t - r0) * W;  // [num, den - eps] of row t
        for (int64_t j = 0; j < W; ++j) {
          float a = 0.f;
          for (int64_t i = 0; i < dh; ++i) a += fq[i] * S[i * W + j];
          acc[j] = a;
        }
        for (int64_t s = r0; s <= t; ++s) {
          const float* fk = w.fk.data() + (s - r0) * dh;
          float a = 0.f;
          for (int64_t i = 0; i < dh; ++i) a += fq[i] * fk[i];
          for (int64_t j = 0; j < dh; ++j) acc[j] += a * vb[s * d + j];
          acc[dh] += a;
        }
        const float dn = g_.normalize ? acc[dh] + kDenominatorEps : 1.f;
        db[t] = dn;
        for (int64_t j = 0; j < dh; ++j) ob[t * d + j] = acc[j] / dn;
      }
      for (int64_t s = r0; s < r1; ++s)  // S += phi(K_c)^T V'_c
        for (int64_t i = 0; i < dh; ++i) {
          const float f = w.fk[(s - r0) * dh + i];
          for (int64_t j = 0; j < dh; ++j) S[i * W + j] += f * vb[s * d + j];
          S[i * W + dh] += f;
        }
    }
  });
}

void LinearAttentionGrad::backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* o, const float* den,
                                   const float* dout, float* dq, float* dk, float* dv, Fault fault) const {
  const int64_t dh = g_.head_dim, d = g_.heads * dh, n = g_.n, C = g_.chunk, W = dh + 1;
  const int64_t items = g_.batch * g_.heads;
  const int64_t last_r0 = (n - 1) / C * C;
  if (ctx.counting_flops()) ctx.count_flops(2 * macs(true));
  ops::parallel_items(ctx, items, items > 1, [&](int64_t item) {
    Workspace& w = ws_[ops::Context::thread_id()];
    const int64_t b = item / g_.heads, h = item % g_.heads, off = b * n * d + h * dh;
    const float *qb = q + off, *kb = k + off, *vb = v + off, *ob = o + off, *gb = dout + off;
    float *dqb = dq + off, *dkb = dk + off, *dvb = dv + off;
    const float* db = den + item * n;
    auto vp = [&](int64_t s, int64_t j) { return j < dh ? vb[s * d + j] : 1.f; };  // v'_s
    auto load_g = [&](int64_t r0, int64_t r1) {
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
    // Sweep 1 (chunks in order, S = state before the chunk): dphi(Q).
    std::fill(S, S + dh * W, 0.f);
    for (int64_t r0 = 0; r0 < n; r0 += C) {
      const int64_t r1 = std::min(n, r0 + C);
      load_chunk(w, qb, kb, r0, r1);
      load_g(r0, r1);
      for (int64_t t = r0; t < r1; ++t) {
        const float* gt = w.g.data() + (t - r0) * W;
        for (int64_t i = 0; i < dh; ++i) {
          float a = 0.f;
          for (int64_t j = 0; j < W; ++j) a += gt[j] * S[i * W + j];
          dqb[t * d + i] = a;
        }
        for (int64_t s = r0; s <= t; ++s) {
          float a = 0.f;  // (G_t . v'_s)
          for (int64_t j = 0; j < W; ++j) a += gt[j] * vp(s, j);
          for (int64_t i = 0; i < dh; ++i) dqb[t * d + i] += a * w.fk[(s - r0) * dh + i];
        }
        for (int64_t i = 0; i < dh; ++i) dqb[t * d + i] *= dphi(qb[t * d + i]);
      }
      for (int64_t s = r0; s < r1; ++s)
        for (int64_t i = 0; i < dh; ++i)
          for (int64_t j = 0; j < W; ++j) S[i * W + j] += w.fk[(s - r0) * dh + i] * vp(s, j);
    }
    // Sweep 2 (chunks in reverse, S = dS = sum over later chunks of phi(Q)^T G): dphi(K), dV.
    std::fill(S, S + dh * W, 0.f);
    for (int64_t r0 = last_r0; r0 >= 0; r0 -= C) {
      const int64_t r1 = std::min(n, r0 + C);
      load_chunk(w, qb, kb, r0, r1);
      load_g(r0, r1);
      for (int64_t s = r0; s < r1; ++s) {
        const float* fk = w.fk.data() + (s - r0) * dh;
        for (int64_t i = 0; i < dh; ++i) {  // inter-chunk: dphi(k_s) = dS v'_s, dv_s = dS^T phi(k_s)
          float a = 0.f;
          if (fault != Fault::kDropStateKeyGrad)
            for (int64_t j = 0; j < W; ++j) a += S[i * W + j] * vp(s, j);
          dkb[s * d + i] = a;
        }
        for (int64_t j = 0; j < dh; ++j) {
          float a = 0.f;
          for (int64_t i = 0; i < dh; ++i) a += fk[i] * S[i * W + j];
          dvb[s * d + j] = a;
        }
        for (int64_t t = s; t < r1; ++t) {  // intra-chunk
          const float* fq = w.fq.data() + (t - r0) * dh;
          const float* gt = w.g.data() + (t - r0) * W;
          float a = 0.f, gv = 0.f;
          for (int64_t i = 0; i < dh; ++i) a += fq[i] * fk[i];
          for (int64_t j = 0; j < W; ++j) gv += gt[j] * vp(s, j);
          for (int64_t j = 0; j < dh; ++j) dvb[s * d + j] += a * gt[j];
          for (int64_t i = 0; i < dh; ++i) dkb[s * d + i] += gv * fq[i];
        }
        for (int64_t i = 0; i < dh; ++i) dkb[s * d + i] *= dphi(kb[s * d + i]);
      }
      for (int64_t t = r0; t < r1; ++t)
        for (int64_t i = 0; i < dh; ++i)
          for (int64_t j = 0; j < W; ++j) S[i * W + j] += w.fq[(t - r0) * dh + i] * w.g[(t - r0) * W + j];
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

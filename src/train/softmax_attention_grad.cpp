// Flash-style softmax attention forward (with log-sum-exp) and backward; the trainable mixer of
// Standard (scale 1/sqrt(dh)), Hopfield (1/(T sqrt(dh))) and SlidingWindow (window w).
#include "train/softmax_attention_grad.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"
#include "ops/kernels.hpp"

namespace bsbr::train {

using Fault = SoftmaxAttentionGrad::Fault;

SoftmaxAttentionGrad::SoftmaxAttentionGrad(ops::Context& ctx, const SoftmaxAttentionGradGeometry& g) : g_(g) {
  BSBR_CHECK(g.q_tile > 0 && g.k_tile > 0 && g.n > 0, "attention tiles and length must be positive");
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    w.s = ctx.tensor(MemCategory::kActivations, {g.q_tile, g.k_tile});
    w.dp = ctx.tensor(MemCategory::kActivations, {g.q_tile, g.k_tile});
    w.m = ctx.tensor(MemCategory::kActivations, {g.q_tile});
    w.l = ctx.tensor(MemCategory::kActivations, {g.q_tile});
    w.dd = ctx.tensor(MemCategory::kActivations, {g.q_tile});
    w.acc = ctx.tensor(MemCategory::kActivations, {g.q_tile, g.head_dim});
  }
}

int64_t SoftmaxAttentionGrad::first_key(int64_t t, int64_t lo_shift) const {
  int64_t lo = g_.window < 0 ? 0 : std::max<int64_t>(0, t - g_.window + lo_shift);
  if (g_.chunk > 0) lo = std::max(lo, t / g_.chunk * g_.chunk);
  return lo;
}

// lo(t) never decreases with t, so the tile's first row has the smallest.
void SoftmaxAttentionGrad::key_tiles(int64_t r0, int64_t r1, int64_t lo_shift, int64_t& first, int64_t& last) const {
  const int64_t lo = first_key(r0, lo_shift);
  first = lo / g_.k_tile;
  last = (r1 - 1) / g_.k_tile;
}

void SoftmaxAttentionGrad::forward(ops::Context& ctx, const float* q, const float* k, const float* v, float* o, float* lse) const {
  const int64_t dh = g_.head_dim, d = g_.heads * dh, n = g_.n, qt = g_.q_tile, kt = g_.k_tile;
  const int64_t items = g_.batch * g_.heads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(ctx.threads()) if (items > 1)
  for (int64_t item = 0; item < items; ++item) {
    Workspace& w = ws_[ops::Context::thread_id()];
    const int64_t b = item / g_.heads, h = item % g_.heads;
    const float* qb = q + b * n * d + h * dh;
    const float* kb = k + b * n * d + h * dh;
    const float* vb = v + b * n * d + h * dh;
    float* ob = o + b * n * d + h * dh;
    float* lb = lse + (b * g_.heads + h) * n;
    for (int64_t r0 = 0; r0 < n; r0 += qt) {
      const int64_t r1 = std::min(n, r0 + qt);
      std::fill(w.m.data(), w.m.data() + qt, ops::kNegInf);
      std::fill(w.l.data(), w.l.data() + qt, 0.f);
      std::fill(w.acc.data(), w.acc.data() + qt * dh, 0.f);
      int64_t first = 0, last = 0;
      key_tiles(r0, r1, 0, first, last);
      for (int64_t kti = first; kti <= last; ++kti) {
        const int64_t c0 = kti * kt, c1 = std::min(n, c0 + kt);
        for (int64_t t = r0; t < r1; ++t) {
          const int64_t lo = first_key(t, 0);
          float* srow = w.s.data() + (t - r0) * kt;
          float mx = w.m[t - r0];
          for (int64_t s = c0; s < c1; ++s) {
            float val = ops::kNegInf;
            if (s >= lo && s <= t) {
              float acc = 0.f;
              for (int64_t i = 0; i < dh; ++i) acc += qb[t * d + i] * kb[s * d + i];
              val = g_.scale * acc;
            }
            srow[s - c0] = val;
            mx = std::max(mx, val);
          }
          if (mx == ops::kNegInf) continue;  // no visible key in this tile yet
          const float corr = std::exp(w.m[t - r0] - mx);  // exp(-inf) = 0 on the first visible tile
          float* arow = w.acc.data() + (t - r0) * dh;
          for (int64_t i = 0; i < dh; ++i) arow[i] *= corr;
          float sum = w.l[t - r0] * corr;
          for (int64_t s = c0; s < c1; ++s) {
            if (srow[s - c0] == ops::kNegInf) continue;
            const float p = std::exp(srow[s - c0] - mx);
            sum += p;
            for (int64_t i = 0; i < dh; ++i) arow[i] += p * vb[s * d + i];
          }
          w.m[t - r0] = mx;
          w.l[t - r0] = sum;
        }
      }
      for (int64_t t = r0; t < r1; ++t) {
        const float inv = 1.f / w.l[t - r0];
        for (int64_t i = 0; i < dh; ++i) ob[t * d + i] = w.acc[(t - r0) * dh + i] * inv;
        lb[t] = w.m[t - r0] + std::log(w.l[t - r0]);
      }
    }
  }
}

void SoftmaxAttentionGrad::backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* o, const float* lse,
                                    const float* dout, float* dq, float* dk, float* dv, Fault fault) const {
  const int64_t dh = g_.head_dim, d = g_.heads * dh, n = g_.n, qt = g_.q_tile, kt = g_.k_tile;
  const int64_t items = g_.batch * g_.heads;
  const float grad_scale = fault == Fault::kUnscaledScores ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh))) : g_.scale;
  const int64_t lo_shift = fault == Fault::kNarrowBand ? 1 : 0;
  // Each item (sequence, head) owns its columns of dq, dk, dv: no reduction across threads.
#pragma omp parallel for schedule(dynamic, 1) num_threads(ctx.threads()) if (items > 1)
  for (int64_t item = 0; item < items; ++item) {
    Workspace& w = ws_[ops::Context::thread_id()];
    const int64_t b = item / g_.heads, h = item % g_.heads;
    const int64_t off = b * n * d + h * dh;
    const float *qb = q + off, *kb = k + off, *vb = v + off, *ob = o + off, *gb = dout + off;
    float *dqb = dq + off, *dkb = dk + off, *dvb = dv + off;
    const float* lb = lse + (b * g_.heads + h) * n;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < dh; ++i) dqb[t * d + i] = dkb[t * d + i] = dvb[t * d + i] = 0.f;
    for (int64_t r0 = 0; r0 < n; r0 += qt) {
      const int64_t r1 = std::min(n, r0 + qt);
      for (int64_t t = r0; t < r1; ++t) {  // D_t = dO_t . O_t  (= sum_s P_ts dP_ts)
        float acc = 0.f;
        for (int64_t i = 0; i < dh; ++i) acc += gb[t * d + i] * ob[t * d + i];
        w.dd[t - r0] = fault == Fault::kDropRowTerm ? 0.f : acc;
      }
      int64_t first = 0, last = 0;
      key_tiles(r0, r1, lo_shift, first, last);
      for (int64_t kti = first; kti <= last; ++kti) {
        const int64_t c0 = kti * kt, c1 = std::min(n, c0 + kt);
        // P (recomputed from lse) and dS = P (dP - D) for the tile; 0 outside the band.
        for (int64_t t = r0; t < r1; ++t) {
          const int64_t lo = first_key(t, lo_shift);
          float* prow = w.s.data() + (t - r0) * kt;
          float* dsrow = w.dp.data() + (t - r0) * kt;
          for (int64_t s = c0; s < c1; ++s) {
            if (s < lo || s > t) {
              prow[s - c0] = dsrow[s - c0] = 0.f;
              continue;
            }
            float sc = 0.f, dpv = 0.f;
            for (int64_t i = 0; i < dh; ++i) {
              sc += qb[t * d + i] * kb[s * d + i];
              dpv += gb[t * d + i] * vb[s * d + i];
            }
            const float p = std::exp(g_.scale * sc - lb[t]);
            prow[s - c0] = p;
            dsrow[s - c0] = p * (dpv - w.dd[t - r0]);
          }
        }
        // dV_s += sum_t P_ts dO_t;  dK_s += scale sum_t dS_ts Q_t;  dQ_t += scale sum_s dS_ts K_s.
        for (int64_t t = r0; t < r1; ++t) {
          const float* prow = w.s.data() + (t - r0) * kt;
          const float* dsrow = w.dp.data() + (t - r0) * kt;
          for (int64_t s = c0; s < c1; ++s) {
            const float p = prow[s - c0], ds = grad_scale * dsrow[s - c0];
            if (p == 0.f && ds == 0.f) continue;
            for (int64_t i = 0; i < dh; ++i) {
              dvb[s * d + i] += p * gb[t * d + i];
              dkb[s * d + i] += ds * qb[t * d + i];
              dqb[t * d + i] += ds * kb[s * d + i];
            }
          }
        }
      }
    }
  }
}

std::unique_ptr<TrainableMixer> make_softmax_attention_train(const std::string& arch, const ModelConfig& cfg, ParamStore& params,
                                                             const std::string& prefix) {
  using Mixer = KernelAttentionTrain<SoftmaxAttentionGrad>;
  constexpr int64_t kTile = 64;
  const double rsqrt_dh = 1.0 / std::sqrt(static_cast<double>(cfg.head_dim()));
  const bool hopfield = arch == "Hopfield", window = arch == "SlidingWindow";
  if (!hopfield && !window && arch != "Standard") return nullptr;
  const float scale = static_cast<float>(hopfield ? rsqrt_dh / cfg.temperature : rsqrt_dh);
  const int64_t w = window ? cfg.window_size : -1;
  Mixer::Faults faults{{"attention.drop_row_term", Fault::kDropRowTerm}};
  if (hopfield) faults.push_back({"attention.unscaled_scores", Fault::kUnscaledScores});
  if (window) faults.push_back({"attention.narrow_band", Fault::kNarrowBand});
  const int64_t heads = cfg.num_heads, dh = cfg.head_dim();
  return std::make_unique<Mixer>(
      cfg, params, prefix,
      [=](int64_t batch, int64_t n) { return SoftmaxAttentionGradGeometry{batch, heads, dh, n, scale, w, kTile, kTile, 0}; },
      std::move(faults));
}

}  // namespace bsbr::train

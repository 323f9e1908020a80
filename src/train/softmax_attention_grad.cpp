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

SoftmaxAttentionGrad::SoftmaxAttentionGrad(ops::Context& ctx, const SoftmaxAttentionGradGeometry& g, MixerBuffers* buffers) : g_(g) {
  BSBR_CHECK(g.q_tile > 0 && g.k_tile > 0 && g.n > 0, "attention tiles and length must be positive");
  using ops::MatLayout;
  using ops::PostOp;
  const int64_t qt = g.q_tile, kt = g.k_tile, dh = g.head_dim;
  const MatLayout qd = MatLayout::dense(qt, dh), kd = MatLayout::dense(kt, dh), s = MatLayout::dense(qt, kt);
  ops::SingleThreadOps single(ctx);  // the tile products run inside parallel_items
  qk_ = ops::MatMul(ctx, {qd, kd.transposed(), s, false, 1.f, {}});
  pv_acc_ = ops::MatMul(ctx, {s, kd, qd, false, 1.f, {PostOp::accumulate()}});
  pv_ = ops::MatMul(ctx, {s, kd, qd, false, 1.f, {}});
  tv_acc_ = ops::MatMul(ctx, {s.transposed(), qd, kd, false, 1.f, {PostOp::accumulate()}});
  MixerBuffers own(ctx);
  MixerBuffers& buf = buffers ? *buffers : own;
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    for (Tensor* t : {&w.s, &w.dp}) *t = buf.work({qt, kt});
    for (Tensor* t : {&w.m, &w.l, &w.dd}) *t = buf.work({qt});
    for (Tensor* t : {&w.acc, &w.qt, &w.dot}) *t = buf.work({qt, dh});
    for (Tensor* t : {&w.kt, &w.vt, &w.dkt, &w.dvt}) *t = buf.work({kt, dh});
  }
}

double SoftmaxAttentionGrad::workspace_floats(const SoftmaxAttentionGradGeometry& g, int threads) {
  const double qt = static_cast<double>(g.q_tile), kt = static_cast<double>(g.k_tile), dh = static_cast<double>(g.head_dim);
  return threads * (2 * qt * kt + 3 * qt + 3 * qt * dh + 4 * kt * dh);
}

double softmax_attention_workspace_floats(int64_t head_dim, int threads) {
  SoftmaxAttentionGradGeometry g;
  g.head_dim = head_dim;
  g.q_tile = g.k_tile = kTrainAttentionTile;
  return SoftmaxAttentionGrad::workspace_floats(g, threads);
}

void SoftmaxAttentionGrad::load_tile(const float* src, int64_t r0, int64_t r1, int64_t tile, float* dst) const {
  const int64_t dh = g_.head_dim, d = g_.heads * dh;
  for (int64_t r = 0; r < tile; ++r)
    for (int64_t i = 0; i < dh; ++i) dst[r * dh + i] = r0 + r < r1 ? src[(r0 + r) * d + i] : 0.f;
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
  ops::parallel_items(ctx, items, items > 1, [&](int64_t item) {
    Workspace& w = ws_[ops::Context::thread_id()];
    const int64_t b = item / g_.heads, h = item % g_.heads, off = b * n * d + h * dh;
    const float *qb = q + off, *kb = k + off, *vb = v + off;
    float* ob = o + off;
    float* lb = lse + item * n;
    for (int64_t r0 = 0; r0 < n; r0 += qt) {
      const int64_t r1 = std::min(n, r0 + qt);
      std::fill(w.m.data(), w.m.data() + qt, ops::kNegInf);
      std::fill(w.l.data(), w.l.data() + qt, 0.f);
      std::fill(w.acc.data(), w.acc.data() + qt * dh, 0.f);
      load_tile(qb, r0, r1, qt, w.qt.data());
      int64_t first = 0, last = 0;
      key_tiles(r0, r1, 0, first, last);
      for (int64_t kti = first; kti <= last; ++kti) {
        const int64_t c0 = kti * kt, c1 = std::min(n, c0 + kt);
        load_tile(kb, c0, c1, kt, w.kt.data());
        load_tile(vb, c0, c1, kt, w.vt.data());
        qk_.run(ctx, w.qt.data(), w.kt.data(), w.s.data());  // S = Q K^T
        // Online softmax over the visible part; masked (and padding) columns become p = 0.
        for (int64_t t = r0; t < r1; ++t) {
          const int64_t lo = first_key(t, 0);
          float* srow = w.s.data() + (t - r0) * kt;
          float mx = w.m[t - r0];
          for (int64_t s = 0; s < kt; ++s) {
            const int64_t key = c0 + s;
            srow[s] = key >= lo && key <= t && key < c1 ? g_.scale * srow[s] : ops::kNegInf;
            mx = std::max(mx, srow[s]);
          }
          if (mx == ops::kNegInf) {  // no visible key in this tile yet
            std::fill(srow, srow + kt, 0.f);
            continue;
          }
          const float corr = std::exp(w.m[t - r0] - mx);  // exp(-inf) = 0 on the first visible tile
          float* arow = w.acc.data() + (t - r0) * dh;
          for (int64_t i = 0; i < dh; ++i) arow[i] *= corr;
          float sum = w.l[t - r0] * corr;
          for (int64_t s = 0; s < kt; ++s) sum += (srow[s] = srow[s] == ops::kNegInf ? 0.f : std::exp(srow[s] - mx));
          w.m[t - r0] = mx;
          w.l[t - r0] = sum;
        }
        for (int64_t t = r1; t < r0 + qt; ++t) std::fill_n(w.s.data() + (t - r0) * kt, kt, 0.f);  // padding rows
        pv_acc_.run(ctx, w.s.data(), w.vt.data(), w.acc.data());  // acc += P V
      }
      for (int64_t t = r0; t < r1; ++t) {
        const float inv = 1.f / w.l[t - r0];
        for (int64_t i = 0; i < dh; ++i) ob[t * d + i] = w.acc[(t - r0) * dh + i] * inv;
        lb[t] = w.m[t - r0] + std::log(w.l[t - r0]);
      }
    }
  });
}

void SoftmaxAttentionGrad::backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* o, const float* lse,
                                    const float* dout, float* dq, float* dk, float* dv, Fault fault) const {
  const int64_t dh = g_.head_dim, d = g_.heads * dh, n = g_.n, qt = g_.q_tile, kt = g_.k_tile;
  const int64_t items = g_.batch * g_.heads;
  const float grad_scale = fault == Fault::kUnscaledScores ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh))) : g_.scale;
  const int64_t lo_shift = fault == Fault::kNarrowBand ? 1 : 0;
  // FlashAttention-2's order: key tiles outside (each owns its rows of dK, dV), query tiles inside
  // (dQ accumulated in place). Each item (sequence, head) owns its columns: no cross-thread reduction.
  ops::parallel_items(ctx, items, items > 1, [&](int64_t item) {
    Workspace& w = ws_[ops::Context::thread_id()];
    const int64_t b = item / g_.heads, h = item % g_.heads, off = b * n * d + h * dh;
    const float *qb = q + off, *kb = k + off, *vb = v + off, *ob = o + off, *gb = dout + off;
    float *dqb = dq + off, *dkb = dk + off, *dvb = dv + off;
    const float* lb = lse + item * n;
    for (int64_t t = 0; t < n; ++t) std::fill_n(dqb + t * d, dh, 0.f);
    for (int64_t c0 = 0; c0 < n; c0 += kt) {
      const int64_t c1 = std::min(n, c0 + kt);
      load_tile(kb, c0, c1, kt, w.kt.data());
      load_tile(vb, c0, c1, kt, w.vt.data());
      std::fill(w.dkt.data(), w.dkt.data() + kt * dh, 0.f);
      std::fill(w.dvt.data(), w.dvt.data() + kt * dh, 0.f);
      // Query tiles that see a key of this tile: from the tile holding c0 while the tile's first
      // row can still reach c1 - 1 (the first visible key never decreases with t).
      for (int64_t r0 = c0 / qt * qt; r0 < n && first_key(r0, lo_shift) <= c1 - 1; r0 += qt) {
        const int64_t r1 = std::min(n, r0 + qt);
        load_tile(qb, r0, r1, qt, w.qt.data());
        load_tile(gb, r0, r1, qt, w.dot.data());
        for (int64_t t = r0; t < r1; ++t) {  // D_t = dO_t . O_t  (= sum_s P_ts dP_ts)
          float acc = 0.f;
          for (int64_t i = 0; i < dh; ++i) acc += gb[t * d + i] * ob[t * d + i];
          w.dd[t - r0] = fault == Fault::kDropRowTerm ? 0.f : acc;
        }
        qk_.run(ctx, w.qt.data(), w.kt.data(), w.s.data());    // S = Q K^T
        qk_.run(ctx, w.dot.data(), w.vt.data(), w.dp.data());  // dP = dO V^T
        // P = exp(scale S - lse) (recomputed), dS = grad_scale P (dP - D); 0 outside the band.
        for (int64_t r = 0; r < qt; ++r) {
          const int64_t t = r0 + r, lo = t < r1 ? first_key(t, lo_shift) : 0;
          float* prow = w.s.data() + r * kt;
          float* dsrow = w.dp.data() + r * kt;
          for (int64_t s = 0; s < kt; ++s) {
            const int64_t key = c0 + s;
            if (t >= r1 || key >= c1 || key < lo || key > t) {
              prow[s] = dsrow[s] = 0.f;
              continue;
            }
            const float p = std::exp(g_.scale * prow[s] - lb[t]);
            prow[s] = p;
            dsrow[s] = grad_scale * p * (dsrow[s] - w.dd[r]);
          }
        }
        tv_acc_.run(ctx, w.s.data(), w.dot.data(), w.dvt.data());  // dV += P^T dO
        tv_acc_.run(ctx, w.dp.data(), w.qt.data(), w.dkt.data());  // dK += dS^T Q
        pv_.run(ctx, w.dp.data(), w.kt.data(), w.acc.data());      // dQ tile = dS K
        for (int64_t t = r0; t < r1; ++t)
          for (int64_t i = 0; i < dh; ++i) dqb[t * d + i] += w.acc[(t - r0) * dh + i];
      }
      for (int64_t s = c0; s < c1; ++s)
        for (int64_t i = 0; i < dh; ++i) {
          dkb[s * d + i] = w.dkt[(s - c0) * dh + i];
          dvb[s * d + i] = w.dvt[(s - c0) * dh + i];
        }
    }
  });
}

std::unique_ptr<TrainableMixer> make_softmax_attention_train(const std::string& arch, const ModelConfig& cfg, ParamStore& params,
                                                             const std::string& prefix) {
  using Mixer = KernelAttentionTrain<SoftmaxAttentionGrad>;
  constexpr int64_t kTile = kTrainAttentionTile;
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

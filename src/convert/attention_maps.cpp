// Attention maps (op layer: projections, score matmuls with a fused mask, softmax) and density.
#include "convert/attention_maps.hpp"

#include <cmath>

#include "core/errors.hpp"
#include "model/arch/chunked.hpp"
#include "ops/kernels.hpp"

namespace bsbr {

using ops::MatLayout;
using ops::MatMul;
using ops::PostOp;

AttentionProbe::AttentionProbe(ops::Context& ctx, int64_t d, int64_t heads, int64_t n)
    : d_(d), heads_(heads), dh_(d / heads), n_(n), scale_(static_cast<float>(1.0 / std::sqrt(static_cast<double>(d / heads)))) {
  const MatLayout x = MatLayout::dense(n, d), w_head = MatLayout::strided(d, dh_, d), q = MatLayout::dense(n, dh_);
  const MatLayout kt = MatLayout::dense(n, dh_).transposed(), s = MatLayout::dense(n, n);
  project_ = MatMul(ctx, {x, w_head, q, true, 1.f, {}});
  masked_scores_ = MatMul(ctx, {q, kt, s, false, scale_, {PostOp::add(s)}});
  raw_scores_ = MatMul(ctx, {q, kt, s, false, 1.f, {}});
  softmax_ = ops::SoftmaxOp(ctx, s);
  for (Tensor* t : {&q_, &k_, &r_, &h_}) *t = ctx.tensor(MemCategory::kActivations, {n, dh_});
  mask_ = ctx.tensor(MemCategory::kActivations, {n, n});
  raw_ = ctx.tensor(MemCategory::kActivations, {n, n});
}

void AttentionProbe::project(ops::Context& ctx, const ParamStore& params, const std::string& linear, int64_t head, const float* x,
                             float* out) const {
  const Param* w = params.find(linear + ".weight");
  const Param* b = params.find(linear + ".bias");
  BSBR_CHECK(w && b, "attention map: no parameter " + linear);
  project_.run(ctx, x, w->value.data() + head * dh_, out, b->value.data() + head * dh_);
}

void AttentionProbe::fill_mask(int64_t chunk_size) {
  if (mask_chunk_ == chunk_size) return;
  for (int64_t t = 0; t < n_; ++t) {
    const int64_t lo = chunk_size > 0 ? t / chunk_size * chunk_size : 0;
    for (int64_t s = 0; s < n_; ++s) mask_[t * n_ + s] = (s >= lo && s <= t) ? 0.f : ops::kNegInf;
  }
  mask_chunk_ = chunk_size;
}

void AttentionProbe::softmax_map(ops::Context& ctx, const ParamStore& params, const std::string& prefix, int64_t head, const float* x,
                                 float* out) {
  project(ctx, params, prefix + ".q_proj", head, x, q_.data());
  project(ctx, params, prefix + ".k_proj", head, x, k_.data());
  fill_mask(0);
  masked_scores_.run(ctx, q_.data(), k_.data(), out, nullptr, {mask_.data()});
  softmax_.run(ctx, out, out);
}

void AttentionProbe::bsbr_map(ops::Context& ctx, const ParamStore& params, const std::string& prefix, int64_t head, int64_t chunk_size,
                              const float* x, float* out) {
  BSBR_CHECK(chunk_size > 0, "BSBR map needs a chunk size");
  project(ctx, params, prefix + ".q_proj", head, x, q_.data());
  project(ctx, params, prefix + ".k_proj", head, x, k_.data());
  fill_mask(chunk_size);
  masked_scores_.run(ctx, q_.data(), k_.data(), out, nullptr, {mask_.data()});
  softmax_.run(ctx, out, out);  // local weights; zero outside t's chunk
  const int64_t chunks = (n_ + chunk_size - 1) / chunk_size;
  if (chunks < 2) return;
  raw_scores_.run(ctx, q_.data(), k_.data(), raw_.data());
  project(ctx, params, prefix + ".meta_r_proj", head, x, r_.data());  // R rows: x_last(i-1) W_r + b_r
  project(ctx, params, prefix + ".meta_h_proj", head, x, h_.data());  // H rows: x_last(j) W_h + b_h
  // Retrieval weights p_ij over the (n/B)² chunk pairs: a tiny plain loop.
  for (int64_t i = 1; i < chunks; ++i) {
    const float* R = r_.data() + (i * chunk_size - 1) * dh_;
    std::vector<double> p(static_cast<std::size_t>(i));
    double m = -INFINITY, sum = 0;
    for (int64_t j = 0; j < i; ++j) {
      const float* H = h_.data() + ((j + 1) * chunk_size - 1) * dh_;
      double dot = 0;
      for (int64_t c = 0; c < dh_; ++c) dot += static_cast<double>(R[c]) * H[c];
      p[j] = dot * scale_;
      m = std::max(m, p[j]);
    }
    for (double& v : p) sum += (v = std::exp(v - m));
    for (int64_t t = i * chunk_size; t < std::min(n_, (i + 1) * chunk_size); ++t)
      for (int64_t s = 0; s < i * chunk_size; ++s) out[t * n_ + s] = static_cast<float>(p[s / chunk_size] / sum * raw_[t * n_ + s]);
  }
}

double exact_pair_share(int64_t n, int64_t chunk_size) {
  return chunked::local_pairs(n, chunk_size) / (static_cast<double>(n) * static_cast<double>(n + 1) / 2.0);
}

AttentionDensity attention_density(ops::Context& ctx, const Model& original, const float* mixer_inputs, int64_t n, double threshold,
                                   const std::vector<int64_t>& chunk_sizes) {
  const ModelConfig& c = original.config();
  const int64_t d = c.hidden_dim, H = c.num_heads, L = c.num_layers;
  AttentionProbe probe(ctx, d, H, n);
  std::vector<float> map(static_cast<std::size_t>(n * n));
  AttentionDensity out;
  out.threshold = threshold;
  for (int64_t B : chunk_sizes) out.local_mass[B] = 0;
  const double pairs = static_cast<double>(n) * static_cast<double>(n + 1) / 2.0;
  for (int64_t l = 0; l < L; ++l) {
    double above = 0;
    for (int64_t h = 0; h < H; ++h) {
      probe.softmax_map(ctx, original.params(), "layers." + std::to_string(l) + ".attn", h, mixer_inputs + l * n * d, map.data());
      int64_t count = 0;
      for (int64_t t = 0; t < n; ++t)
        for (int64_t s = 0; s <= t; ++s) count += map[t * n + s] > threshold;
      above += static_cast<double>(count) / pairs;
      for (int64_t B : chunk_sizes) {
        double mass = 0;
        for (int64_t t = 0; t < n; ++t)
          for (int64_t s = t / B * B; s <= t; ++s) mass += map[t * n + s];
        out.local_mass[B] += mass / static_cast<double>(n);
      }
    }
    out.above_threshold_by_layer.push_back(above / static_cast<double>(H));
    out.above_threshold += above / static_cast<double>(H * L);
  }
  for (auto& [B, m] : out.local_mass) m /= static_cast<double>(L * H);
  return out;
}

}  // namespace bsbr

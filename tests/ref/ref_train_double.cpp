// The double-precision training-loss oracle. Plain loops, no tiling, no oneDNN.
#include "ref/ref_train_double.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>

namespace bsbr::ref {

namespace {

const DVec& get(const DParams& P, const std::string& name) {
  auto it = P.find(name);
  if (it == P.end()) throw std::runtime_error("double oracle: parameter not found: " + name);
  return it->second;
}

// y [n, out] = x [n, in] . W [in, out] + b
DVec linear(const DVec& x, int64_t n, int64_t in, int64_t out, const DParams& P, const std::string& name) {
  const DVec &W = get(P, name + ".weight"), &b = get(P, name + ".bias");
  DVec y(n * out);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b[o];
      for (int64_t i = 0; i < in; ++i) acc += x[t * in + i] * W[i * out + o];
      y[t * out + o] = acc;
    }
  return y;
}

DVec layer_norm(const DVec& x, int64_t n, int64_t d, const DParams& P, const std::string& name, double eps) {
  const DVec &g = get(P, name + ".weight"), &b = get(P, name + ".bias");
  DVec y(n * d);
  for (int64_t t = 0; t < n; ++t) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i) mean += x[t * d + i];
    mean /= d;
    for (int64_t i = 0; i < d; ++i) var += (x[t * d + i] - mean) * (x[t * d + i] - mean);
    var /= d;
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < d; ++i) y[t * d + i] = (x[t * d + i] - mean) * inv * g[i] + b[i];
  }
  return y;
}

// out[0, w) += sum_{u in [lo, t]} softmax_u(scale q_t.k_u) v_u for one head: rows of q, k, v have
// stride `stride`, the head starts at column `col` and is `w` wide.
void attend(const DVec& q, const DVec& k, const DVec& v, int64_t stride, int64_t col, int64_t w, int64_t lo, int64_t t, double scale,
            double* out) {
  std::vector<double> p(t - lo + 1);
  for (int64_t u = lo; u <= t; ++u) {
    double a = 0;
    for (int64_t i = 0; i < w; ++i) a += q[t * stride + col + i] * k[u * stride + col + i];
    p[u - lo] = scale * a;
  }
  const double mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (double& e : p) sum += (e = std::exp(e - mx));
  for (int64_t u = lo; u <= t; ++u)
    for (int64_t i = 0; i < w; ++i) out[i] += p[u - lo] / sum * v[u * stride + col + i];
}

// Multi-head causal softmax attention (Standard, Hopfield, SlidingWindow): for query t, softmax over
// s in [lo(t), t] (lo = 0, or max(0, t - window)) of scale q_t.k_s, times v_s; then out_proj.
DVec softmax_attention(const ModelConfig& cfg, const DParams& P, const std::string& prefix, const DVec& x, int64_t n, double scale,
                       int64_t window) {
  const int64_t d = cfg.hidden_dim, H = cfg.num_heads, dh = cfg.head_dim();
  const DVec q = linear(x, n, d, d, P, prefix + ".q_proj"), k = linear(x, n, d, d, P, prefix + ".k_proj"),
             v = linear(x, n, d, d, P, prefix + ".v_proj");
  DVec o(n * d, 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t t = 0; t < n; ++t) {
      const int64_t lo = window < 0 ? 0 : std::max<int64_t>(0, t - window);
      attend(q, k, v, d, h * dh, dh, lo, t, scale, &o[t * d + h * dh]);
    }
  return linear(o, n, d, d, P, prefix + ".out_proj");
}

// Linear attention, the recurrent form token by token: S_t = S_{t-1} + phi(k_t) v_t^T,
// z_t = z_{t-1} + phi(k_t), o_t = phi(q_t)^T S_t / (phi(q_t).z_t + 1e-6) (or without the divide).
DVec linear_attention(const ModelConfig& cfg, const DParams& P, const std::string& prefix, const DVec& x, int64_t n) {
  const int64_t d = cfg.hidden_dim, H = cfg.num_heads, dh = cfg.head_dim();
  const DVec q = linear(x, n, d, d, P, prefix + ".q_proj"), k = linear(x, n, d, d, P, prefix + ".k_proj"),
             v = linear(x, n, d, d, P, prefix + ".v_proj");
  auto phi = [&](double a) { return cfg.feature_map == FeatureMap::kElu1 ? (a > 0 ? a + 1.0 : std::exp(a)) : a; };
  DVec o(n * d, 0.0);
  for (int64_t h = 0; h < H; ++h) {
    DVec S(dh * dh, 0.0), z(dh, 0.0);
    for (int64_t t = 0; t < n; ++t) {
      const int64_t r = t * d + h * dh;
      for (int64_t i = 0; i < dh; ++i) {
        const double fk = phi(k[r + i]);
        z[i] += fk;
        for (int64_t j = 0; j < dh; ++j) S[i * dh + j] += fk * v[r + j];
      }
      double den = 1.0;
      if (cfg.normalize) {
        den = 1e-6;
        for (int64_t i = 0; i < dh; ++i) den += phi(q[r + i]) * z[i];
      }
      for (int64_t j = 0; j < dh; ++j) {
        double num = 0;
        for (int64_t i = 0; i < dh; ++i) num += phi(q[r + i]) * S[i * dh + j];
        o[r + j] = num / den;
      }
    }
  }
  return linear(o, n, d, d, P, prefix + ".out_proj");
}

// GAU: one head of width E; local softmax inside chunks of B plus q_t S_i over the complete
// earlier chunks, gated by sigmoid(x W_g + b_g); then out_proj (E -> d).
DVec gau(const ModelConfig& cfg, const DParams& P, const std::string& prefix, const DVec& x, int64_t n) {
  const int64_t d = cfg.hidden_dim, E = cfg.expansion_factor * d, B = cfg.chunk_size;
  const double scale = 1.0 / std::sqrt(static_cast<double>(E));
  const DVec q = linear(x, n, d, E, P, prefix + ".q_proj"), k = linear(x, n, d, E, P, prefix + ".k_proj"),
             v = linear(x, n, d, E, P, prefix + ".v_proj"), g = linear(x, n, d, E, P, prefix + ".gate_proj");
  DVec o(n * E, 0.0);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t lo = t / B * B;
    DVec a(E, 0.0);
    attend(q, k, v, E, 0, E, lo, t, scale, a.data());
    for (int64_t c = 0; c < E; ++c) {
      for (int64_t u = 0; u < lo; ++u) {  // q_t . S_i, S_i = sum over the earlier (complete) chunks of k_u v_u^T
        double qk = 0;
        for (int64_t e = 0; e < E; ++e) qk += q[t * E + e] * k[u * E + e];
        a[c] += qk * v[u * E + c];
      }
      o[t * E + c] = a[c] / (1.0 + std::exp(-g[t * E + c]));
    }
  }
  return linear(o, n, E, d, P, prefix + ".out_proj");
}

// BSBR, causal form (SPEC §2): local softmax inside chunks; chunk states F_j = K_j^T V_j of the
// complete chunks j < cur = (n-1)/B (compressed: vec(F_j).W_c + b_c); meta keys H_j from the last
// row of chunk j, meta queries R_i from the last row of chunk i-1; p_ij = softmax_{j<i}(s R_i.H_j);
// G_i = sum p_ij state_j (decompressed: .W_d + b_d); out_t = local_t + q_t.G_i; out_proj.
DVec bsbr(const ModelConfig& cfg, const DParams& P, const std::string& prefix, const DVec& x, int64_t n) {
  const int64_t d = cfg.hidden_dim, H = cfg.num_heads, dh = cfg.head_dim(), dd = dh * dh, B = cfg.chunk_size;
  const int64_t coded = cfg.compression_factor > 0 ? d / cfg.compression_factor : 0, W = coded > 0 ? coded : dd;
  const double s = 1.0 / std::sqrt(static_cast<double>(dh));
  const DVec q = linear(x, n, d, d, P, prefix + ".q_proj"), k = linear(x, n, d, d, P, prefix + ".k_proj"),
             v = linear(x, n, d, d, P, prefix + ".v_proj");
  const int64_t cur = (n - 1) / B;
  auto row = [&](int64_t t) { return DVec(x.begin() + t * d, x.begin() + (t + 1) * d); };
  DVec o(n * d, 0.0);
  for (int64_t h = 0; h < H; ++h) {
    // States of the complete chunks.
    std::vector<DVec> state(cur), meta_key(cur);
    for (int64_t j = 0; j < cur; ++j) {
      DVec F(dd, 0.0);
      for (int64_t u = j * B; u < (j + 1) * B; ++u)
        for (int64_t a = 0; a < dh; ++a)
          for (int64_t c = 0; c < dh; ++c) F[a * dh + c] += k[u * d + h * dh + a] * v[u * d + h * dh + c];
      state[j] = coded > 0 ? linear(F, 1, dd, coded, P, prefix + ".compress_proj") : F;
      meta_key[j] = linear(row((j + 1) * B - 1), 1, d, d, P, prefix + ".meta_h_proj");
    }
    for (int64_t t = 0; t < n; ++t) {
      const int64_t i = t / B, lo = i * B;
      attend(q, k, v, d, h * dh, dh, lo, t, s, &o[t * d + h * dh]);  // local
      if (i == 0) continue;
      // Retrieval (recomputed per token: plain, not fast).
      const DVec R = linear(row(i * B - 1), 1, d, d, P, prefix + ".meta_r_proj");
      std::vector<double> p(i);
      for (int64_t j = 0; j < i; ++j) {
        double a = 0;
        for (int64_t c = 0; c < dh; ++c) a += R[h * dh + c] * meta_key[j][h * dh + c];
        p[j] = s * a;
      }
      const double pm = *std::max_element(p.begin(), p.end());
      double ps = 0;
      for (double& e : p) ps += (e = std::exp(e - pm));
      DVec mixed(W, 0.0);
      for (int64_t j = 0; j < i; ++j)
        for (int64_t e = 0; e < W; ++e) mixed[e] += p[j] / ps * state[j][e];
      const DVec G = coded > 0 ? linear(mixed, 1, coded, dd, P, prefix + ".decompress_proj") : mixed;
      for (int64_t c = 0; c < dh; ++c)
        for (int64_t a = 0; a < dh; ++a) o[t * d + h * dh + c] += q[t * d + h * dh + a] * G[a * dh + c];
    }
  }
  return linear(o, n, d, d, P, prefix + ".out_proj");
}

// DeltaNet, the recurrence token by token: q, k L2-normalised per head; beta_t = config beta or
// sigmoid(x_t W_beta + b_beta)[head]; S_t = S_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T; o_t = S_t q_t.
DVec deltanet(const ModelConfig& cfg, const DParams& P, const std::string& prefix, const DVec& x, int64_t n) {
  const int64_t d = cfg.hidden_dim, H = cfg.num_heads, dh = cfg.head_dim();
  const DVec q = linear(x, n, d, d, P, prefix + ".q_proj"), k = linear(x, n, d, d, P, prefix + ".k_proj"),
             v = linear(x, n, d, d, P, prefix + ".v_proj");
  const bool learned = cfg.beta_mode == BetaMode::kLearned;
  const DVec logits = learned ? linear(x, n, d, H, P, prefix + ".beta_proj") : DVec();
  auto unit = [dh](const double* a) {
    double s = 0;
    for (int64_t i = 0; i < dh; ++i) s += a[i] * a[i];
    DVec u(a, a + dh);
    for (double& e : u) e /= std::sqrt(s);
    return u;
  };
  DVec o(n * d, 0.0);
  for (int64_t h = 0; h < H; ++h) {
    DVec S(dh * dh, 0.0);
    for (int64_t t = 0; t < n; ++t) {
      const int64_t r = t * d + h * dh;
      const DVec qn = unit(&q[r]), kn = unit(&k[r]);
      const double beta = learned ? 1.0 / (1.0 + std::exp(-logits[t * H + h])) : cfg.beta;
      DVec e(dh);
      for (int64_t i = 0; i < dh; ++i) {
        double u = 0;
        for (int64_t j = 0; j < dh; ++j) u += S[i * dh + j] * kn[j];
        e[i] = v[r + i] - u;
      }
      for (int64_t i = 0; i < dh; ++i)
        for (int64_t j = 0; j < dh; ++j) S[i * dh + j] += beta * e[i] * kn[j];
      for (int64_t i = 0; i < dh; ++i)
        for (int64_t j = 0; j < dh; ++j) o[r + i] += S[i * dh + j] * qn[j];
    }
  }
  return linear(o, n, d, d, P, prefix + ".out_proj");
}

using DoubleMixer = std::function<DVec(const ModelConfig&, const DParams&, const std::string&, const DVec&, int64_t)>;

const std::map<std::string, DoubleMixer>& mixers() {
  static const std::map<std::string, DoubleMixer> table = {
      {"Linear", linear_attention},
      {"GAU", gau},
      {"BSBR", bsbr},
      {"DeltaNet", deltanet},
      {"Standard",
       [](const ModelConfig& c, const DParams& P, const std::string& p, const DVec& x, int64_t n) {
         return softmax_attention(c, P, p, x, n, 1.0 / std::sqrt(static_cast<double>(c.head_dim())), -1);
       }},
      {"Hopfield",
       [](const ModelConfig& c, const DParams& P, const std::string& p, const DVec& x, int64_t n) {
         return softmax_attention(c, P, p, x, n, 1.0 / (c.temperature * std::sqrt(static_cast<double>(c.head_dim()))), -1);
       }},
      {"SlidingWindow",
       [](const ModelConfig& c, const DParams& P, const std::string& p, const DVec& x, int64_t n) {
         return softmax_attention(c, P, p, x, n, 1.0 / std::sqrt(static_cast<double>(c.head_dim())), c.window_size);
       }},
  };
  return table;
}

}  // namespace

DParams to_double(const ParamStore& params) {
  DParams P;
  for (const Param& p : params.all()) P[p.name] = DVec(p.value.data(), p.value.data() + p.value.size());
  return P;
}

bool has_double_mixer(const std::string& arch) { return mixers().count(arch) > 0; }

DVec input_embeddings(const ModelConfig& cfg, const DParams& P, const std::vector<int32_t>& tokens, int64_t batch,
                      const SkeletonOptions& skeleton) {
  const int64_t d = cfg.hidden_dim, n = static_cast<int64_t>(tokens.size()) / batch;
  const DVec& E = get(P, "embed.weight");
  const bool learned = skeleton.positions == SkeletonOptions::Positions::kLearned;
  const DVec* pos = learned ? &get(P, "pos_embed.weight") : nullptr;
  if (learned && static_cast<int64_t>(pos->size()) < n * d) throw std::runtime_error("double oracle: n exceeds the learned positions");
  DVec x(batch * n * d);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < d; ++i) {
        const double angle = static_cast<double>(t) / std::pow(10000.0, 2.0 * (i / 2) / static_cast<double>(d));
        const double p = learned ? (*pos)[t * d + i] : (i % 2 == 0 ? std::sin(angle) : std::cos(angle));
        x[(b * n + t) * d + i] = E[tokens[b * n + t] * d + i] + p;
      }
  return x;
}

double train_loss(const ModelConfig& cfg, const std::string& arch, const DParams& P, const std::vector<int32_t>& tokens, int64_t batch,
                  const DVec& x0, const SkeletonOptions& skeleton) {
  const int64_t d = cfg.hidden_dim, ff = cfg.ff_dim, V = cfg.vocab_size, n = static_cast<int64_t>(tokens.size()) / batch;
  const DoubleMixer& mixer = mixers().at(arch);
  double loss = 0;
  for (int64_t b = 0; b < batch; ++b) {
    DVec x(x0.begin() + b * n * d, x0.begin() + (b + 1) * n * d);
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      const std::string p = "layers." + std::to_string(l);
      DVec a = mixer(cfg, P, p + ".attn", layer_norm(x, n, d, P, p + ".ln1", cfg.layer_norm_eps), n);
      for (int64_t i = 0; i < n * d; ++i) x[i] += a[i];
      DVec f = linear(layer_norm(x, n, d, P, p + ".ln2", cfg.layer_norm_eps), n, d, ff, P, p + ".ff1");
      if (skeleton.ffn_activation == ops::Eltwise::kGeluTanh) {  // GPT-2's gelu_new
        const double c = std::sqrt(2.0 / 3.14159265358979323846);
        for (double& e : f) e = 0.5 * e * (1.0 + std::tanh(c * (e + 0.044715 * e * e * e)));
      } else {
        for (double& e : f) e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
      }
      DVec g = linear(f, n, ff, d, P, p + ".ff2");
      for (int64_t i = 0; i < n * d; ++i) x[i] += g[i];
    }
    const DVec hf = layer_norm(x, n, d, P, "final_ln", cfg.layer_norm_eps);
    DVec z;
    if (skeleton.tied_lm_head) {  // logits = hf.E^T, no bias
      const DVec& E = get(P, "embed.weight");
      z.assign(n * V, 0.0);
      for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < V; ++j)
          for (int64_t i = 0; i < d; ++i) z[t * V + j] += hf[t * d + i] * E[j * d + i];
    } else {
      z = linear(hf, n, d, V, P, "lm_head");
    }
    for (int64_t t = 0; t + 1 < n; ++t) {
      const double* row = z.data() + t * V;
      const double mx = *std::max_element(row, row + V);
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(row[j] - mx);
      loss += mx + std::log(sum) - row[tokens[b * n + t + 1]];
    }
  }
  return loss / static_cast<double>(batch * (n - 1));
}

}  // namespace bsbr::ref

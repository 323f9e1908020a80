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
      std::vector<double> w(t - lo + 1);
      for (int64_t s = lo; s <= t; ++s) {
        double a = 0;
        for (int64_t i = 0; i < dh; ++i) a += q[t * d + h * dh + i] * k[s * d + h * dh + i];
        w[s - lo] = scale * a;
      }
      const double mx = *std::max_element(w.begin(), w.end());
      double sum = 0;
      for (double& e : w) sum += (e = std::exp(e - mx));
      for (int64_t s = lo; s <= t; ++s)
        for (int64_t i = 0; i < dh; ++i) o[t * d + h * dh + i] += w[s - lo] / sum * v[s * d + h * dh + i];
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
    const int64_t i = t / B, lo = i * B;
    std::vector<double> w(t - lo + 1);
    for (int64_t u = lo; u <= t; ++u) {
      double a = 0;
      for (int64_t c = 0; c < E; ++c) a += q[t * E + c] * k[u * E + c];
      w[u - lo] = scale * a;
    }
    const double mx = *std::max_element(w.begin(), w.end());
    double sum = 0;
    for (double& e : w) sum += (e = std::exp(e - mx));
    for (int64_t c = 0; c < E; ++c) {
      double acc = 0;
      for (int64_t u = lo; u <= t; ++u) acc += w[u - lo] / sum * v[u * E + c];
      for (int64_t u = 0; u < lo; ++u) {  // q_t . S_i, S_i = sum over the earlier (complete) chunks of k_u v_u^T
        double qk = 0;
        for (int64_t a = 0; a < E; ++a) qk += q[t * E + a] * k[u * E + a];
        acc += qk * v[u * E + c];
      }
      o[t * E + c] = acc / (1.0 + std::exp(-g[t * E + c]));
    }
  }
  return linear(o, n, E, d, P, prefix + ".out_proj");
}

using DoubleMixer = std::function<DVec(const ModelConfig&, const DParams&, const std::string&, const DVec&, int64_t)>;

const std::map<std::string, DoubleMixer>& mixers() {
  static const std::map<std::string, DoubleMixer> table = {
      {"Linear", linear_attention},
      {"GAU", gau},
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

DVec input_embeddings(const ModelConfig& cfg, const DParams& P, const std::vector<int32_t>& tokens, int64_t batch) {
  const int64_t d = cfg.hidden_dim, n = static_cast<int64_t>(tokens.size()) / batch;
  const DVec& E = get(P, "embed.weight");
  DVec x(batch * n * d);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < d; ++i) {
        const double angle = static_cast<double>(t) / std::pow(10000.0, 2.0 * (i / 2) / static_cast<double>(d));
        x[(b * n + t) * d + i] = E[tokens[b * n + t] * d + i] + (i % 2 == 0 ? std::sin(angle) : std::cos(angle));
      }
  return x;
}

double train_loss(const ModelConfig& cfg, const std::string& arch, const DParams& P, const std::vector<int32_t>& tokens, int64_t batch,
                  const DVec& x0) {
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
      for (double& e : f) e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
      DVec g = linear(f, n, ff, d, P, p + ".ff2");
      for (int64_t i = 0; i < n * d; ++i) x[i] += g[i];
    }
    DVec z = linear(layer_norm(x, n, d, P, "final_ln", cfg.layer_norm_eps), n, d, V, P, "lm_head");
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

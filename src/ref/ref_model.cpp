// Whole-model oracle and the oracle table.
#include "ref/ref_model.hpp"

#include <map>
#include <stdexcept>

namespace bsbr::ref {

const float* param(ParamStore& params, const std::string& name) {
  Param* p = params.find(name);
  if (!p) throw std::runtime_error("oracle: parameter not found: " + name);
  return p->value.data();
}

Mat linear_param(const Mat& x, int64_t n, ParamStore& params, const std::string& name, int64_t in, int64_t out, MacCounter& macs) {
  return linear(x, n, in, param(params, name + ".weight"), param(params, name + ".bias"), out, &macs);
}

QkvProjections qkv_projections(const ModelConfig& cfg, ParamStore& P, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs) {
  const int64_t d = cfg.hidden_dim;
  return {linear_param(x, n, P, prefix + ".q_proj", d, d, macs), linear_param(x, n, P, prefix + ".k_proj", d, d, macs),
          linear_param(x, n, P, prefix + ".v_proj", d, d, macs)};
}

const MixerOracle& oracle_for(const std::string& arch) {
  static const std::map<std::string, MixerOracle> table = {
      {"BSBR", bsbr_attention},
      {"Linear", linear_attention},
      {"DeltaNet", deltanet_attention},
      {"Standard", standard_attention},
      {"SlidingWindow", sliding_window_attention},
      {"Hopfield", hopfield_attention},
      {"GAU", gau_attention},
  };
  auto it = table.find(arch);
  if (it == table.end()) throw std::runtime_error("no oracle for architecture " + arch);
  return it->second;
}

RefOutput forward(Model& model, const std::vector<int32_t>& tokens, const OracleOptions& opt) {
  const ModelConfig& c = model.config();
  const SkeletonOptions& o = model.options();
  ParamStore& P = model.params();
  const int64_t n = static_cast<int64_t>(tokens.size()), d = c.hidden_dim, V = c.vocab_size, ff = c.ff_dim;
  const float* E = param(P, "embed.weight");
  Mat x(n * d);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < d; ++i) {
      double pe;
      if (o.positions == SkeletonOptions::Positions::kLearned) {
        pe = param(P, "pos_embed.weight")[(t % o.learned_positions) * d + i];
      } else {
        int64_t pair = i / 2;
        double angle = static_cast<double>(t) / std::pow(10000.0, 2.0 * pair / static_cast<double>(d));
        pe = (i % 2 == 0) ? std::sin(angle) : std::cos(angle);
      }
      x[t * d + i] = static_cast<float>(E[tokens[t] * d + i] + pe);
    }
  const MixerOracle& mixer = oracle_for(model.name());
  MacCounter macs;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    std::string p = "layers." + std::to_string(l);
    Mat h = layer_norm(x, n, d, param(P, p + ".ln1.weight"), param(P, p + ".ln1.bias"), c.layer_norm_eps);
    Mat a = mixer(c, P, p + ".attn", h, n, macs, opt);
    for (int64_t i = 0; i < n * d; ++i) x[i] += a[i];
    h = layer_norm(x, n, d, param(P, p + ".ln2.weight"), param(P, p + ".ln2.bias"), c.layer_norm_eps);
    Mat f = linear(h, n, d, param(P, p + ".ff1.weight"), param(P, p + ".ff1.bias"), ff);
    for (float& v : f) v = static_cast<float>(o.ffn_activation == ops::Eltwise::kGeluTanh ? gelu_tanh(v) : gelu_erf(v));
    Mat g = linear(f, n, ff, param(P, p + ".ff2.weight"), param(P, p + ".ff2.bias"), d);
    for (int64_t i = 0; i < n * d; ++i) x[i] += g[i];
  }
  RefOutput out;
  out.mixer_macs = macs.macs;
  out.hidden = layer_norm(x, n, d, param(P, "final_ln.weight"), param(P, "final_ln.bias"), c.layer_norm_eps);
  if (o.tied_lm_head) {
    out.logits.assign(n * V, 0.f);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t v = 0; v < V; ++v) out.logits[t * V + v] = static_cast<float>(dot(out.hidden.data() + t * d, E + v * d, d));
  } else {
    out.logits = linear(out.hidden, n, d, param(P, "lm_head.weight"), param(P, "lm_head.bias"), V);
  }
  return out;
}

}  // namespace bsbr::ref

// Plain-loop GPT-2 forward from Hugging Face tensors, written from the GPT-2 paper / HF modeling_gpt2:
//   x = wte[token] + wpe[position]; per block: a = LN1(x); qkv = a.c_attn + b (split q|k|v);
//   causal softmax(q.k/sqrt(dh)) per head; x += c_proj(o); x += mlp.c_proj(gelu_tanh(mlp.c_fc(LN2(x))));
//   logits = LN_f(x) . wteᵀ.
#include <stdexcept>

#include "ref/ref_gpt2.hpp"

namespace bsbr::ref {

namespace {
const std::vector<float>& get(const HfTensors& t, const std::string& name) {
  auto it = t.find(name);
  if (it == t.end()) throw std::runtime_error("ref_gpt2: no tensor " + name);
  return it->second;
}
}  // namespace

Mat gpt2_forward(const HfTensors& t, int64_t layers, int64_t heads, double eps, const std::vector<int32_t>& tokens) {
  const std::vector<float>& wte = get(t, "wte.weight");
  const std::vector<float>& wpe = get(t, "wpe.weight");
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t d = static_cast<int64_t>(get(t, "ln_f.weight").size()), V = static_cast<int64_t>(wte.size()) / d, dh = d / heads;
  const int64_t ff = static_cast<int64_t>(get(t, "h.0.mlp.c_fc.bias").size());
  Mat x(n * d);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t i = 0; i < d; ++i) x[s * d + i] = wte[tokens[s] * d + i] + wpe[s * d + i];
  for (int64_t l = 0; l < layers; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    Mat a = layer_norm(x, n, d, get(t, h + "ln_1.weight").data(), get(t, h + "ln_1.bias").data(), eps);
    Mat qkv = linear(a, n, d, get(t, h + "attn.c_attn.weight").data(), get(t, h + "attn.c_attn.bias").data(), 3 * d);
    Mat o(n * d, 0.f);
    for (int64_t head = 0; head < heads; ++head)
      for (int64_t q = 0; q < n; ++q) {
        std::vector<double> w(q + 1);
        for (int64_t k = 0; k <= q; ++k)
          w[k] = dot(&qkv[q * 3 * d + head * dh], &qkv[k * 3 * d + d + head * dh], dh) / std::sqrt(static_cast<double>(dh));
        softmax(w);
        for (int64_t i = 0; i < dh; ++i) {
          double acc = 0;
          for (int64_t k = 0; k <= q; ++k) acc += w[k] * qkv[k * 3 * d + 2 * d + head * dh + i];
          o[q * d + head * dh + i] = static_cast<float>(acc);
        }
      }
    Mat proj = linear(o, n, d, get(t, h + "attn.c_proj.weight").data(), get(t, h + "attn.c_proj.bias").data(), d);
    for (int64_t i = 0; i < n * d; ++i) x[i] += proj[i];
    Mat b = layer_norm(x, n, d, get(t, h + "ln_2.weight").data(), get(t, h + "ln_2.bias").data(), eps);
    Mat f = linear(b, n, d, get(t, h + "mlp.c_fc.weight").data(), get(t, h + "mlp.c_fc.bias").data(), ff);
    for (float& v : f) v = static_cast<float>(gelu_tanh(v));
    Mat g = linear(f, n, ff, get(t, h + "mlp.c_proj.weight").data(), get(t, h + "mlp.c_proj.bias").data(), d);
    for (int64_t i = 0; i < n * d; ++i) x[i] += g[i];
  }
  Mat fin = layer_norm(x, n, d, get(t, "ln_f.weight").data(), get(t, "ln_f.bias").data(), eps);
  Mat logits(n * V);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t v = 0; v < V; ++v) logits[s * V + v] = static_cast<float>(dot(&fin[s * d], &wte[v * d], d));
  return logits;
}

}  // namespace bsbr::ref

// A tiny GPT-2 checkpoint directory written by the tests (config.json, model.safetensors in F32,
// F16 or BF16, and a small byte-level BPE vocabulary).
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/io.hpp"
#include "core/rng.hpp"
#include "io/gpt2_tokenizer.hpp"
#include "ref/ref_gpt2.hpp"

namespace bsbr::ref {

std::vector<std::pair<std::string, std::string>> tiny_merges() {
  return {{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"Ġ", "a"}, {"e", "r"}, {"o", "n"}, {"Ġ", "s"}};
}

TinyGpt2 make_tiny_gpt2(uint64_t seed, bool round_to_half) {
  TinyGpt2 m;
  const int64_t d = m.d, V = m.vocab, P = m.positions, ff = 4 * d;
  auto add = [&](const std::string& name, int64_t count, double mean, double std) {
    CounterRng rng(seed, hash_name(name));
    std::vector<float> v(static_cast<std::size_t>(count));
    for (int64_t i = 0; i < count; ++i) {
      float x = static_cast<float>(mean + std * rng.normal(static_cast<uint64_t>(i)));
      if (round_to_half) x = std::fabs(x) < 1e-3f ? 0.f : bf16_to_f32(f32_to_bf16(x));  // exact in F16 and BF16 too
      v[i] = x;
    }
    m.tensors[name] = std::move(v);
  };
  add("wte.weight", V * d, 0, 0.3);
  add("wpe.weight", P * d, 0, 0.1);
  for (int64_t l = 0; l < m.layers; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    add(h + "ln_1.weight", d, 1, 0.1);
    add(h + "ln_1.bias", d, 0, 0.05);
    add(h + "attn.c_attn.weight", d * 3 * d, 0, 0.35);
    add(h + "attn.c_attn.bias", 3 * d, 0, 0.05);
    add(h + "attn.c_proj.weight", d * d, 0, 0.15);
    add(h + "attn.c_proj.bias", d, 0, 0.05);
    add(h + "ln_2.weight", d, 1, 0.1);
    add(h + "ln_2.bias", d, 0, 0.05);
    add(h + "mlp.c_fc.weight", d * ff, 0, 0.15);
    add(h + "mlp.c_fc.bias", ff, 0, 0.05);
    add(h + "mlp.c_proj.weight", ff * d, 0, 0.08);
    add(h + "mlp.c_proj.bias", d, 0, 0.05);
  }
  add("ln_f.weight", d, 1, 0.1);
  add("ln_f.bias", d, 0, 0.05);
  return m;
}

void write_tiny_gpt2(const TinyGpt2& m, const std::string& dir, const TinyWriteOptions& opts) {
  const int64_t d = m.d, ff = 4 * d;
  nlohmann::json cfg = {{"model_type", "gpt2"},        {"vocab_size", m.vocab},      {"n_embd", d},
                        {"n_layer", m.layers},         {"n_head", m.heads},          {"n_positions", m.positions},
                        {"n_inner", nullptr},          {"layer_norm_epsilon", m.eps}, {"activation_function", "gelu_new"},
                        {"architectures", {"GPT2LMHeadModel"}}};
  write_file_atomic(dir + "/config.json", cfg.dump(2));
  auto shape_of = [&](const std::string& name) -> Shape {
    const int64_t count = static_cast<int64_t>(m.tensors.at(name).size());
    if (name == "wte.weight" || name == "wpe.weight") return {count / d, d};
    if (name.find("c_attn.weight") != std::string::npos) return {d, 3 * d};
    if (name.find("mlp.c_fc.weight") != std::string::npos) return {d, ff};
    if (name.find("mlp.c_proj.weight") != std::string::npos) return {ff, d};
    if (name.find("attn.c_proj.weight") != std::string::npos) return {d, d};
    return {count};
  };
  std::vector<TensorToWrite> out;
  const std::string prefix = opts.transformer_prefix ? "transformer." : "";
  for (const auto& [name, v] : m.tensors) out.push_back({prefix + name, shape_of(name), v.data()});
  std::vector<float> mask(static_cast<std::size_t>(m.positions * m.positions));
  for (int64_t i = 0; i < m.positions; ++i)
    for (int64_t j = 0; j <= i; ++j) mask[i * m.positions + j] = 1.f;
  std::vector<std::string> mask_names;
  if (opts.mask_buffers)
    for (int64_t l = 0; l < m.layers; ++l) mask_names.push_back(prefix + "h." + std::to_string(l) + ".attn.bias");
  for (const std::string& n : mask_names) out.push_back({n, {1, 1, m.positions, m.positions}, mask.data()});
  write_safetensors(dir + "/model.safetensors", out, opts.dtype, {{"format", "pt"}});
  if (opts.tokenizer) {
    nlohmann::json vocab = nlohmann::json::object();
    const auto& bytes = Gpt2Tokenizer::byte_symbols();
    for (int b = 0; b < 256; ++b) vocab[bytes[b]] = b;
    std::string merges = "#version: 0.2\n";
    int id = 256;
    for (const auto& [a, b] : tiny_merges()) {
      vocab[a + b] = id++;
      merges += a + " " + b + "\n";
    }
    write_file_atomic(dir + "/vocab.json", vocab.dump());
    write_file_atomic(dir + "/merges.txt", merges);
  }
}

}  // namespace bsbr::ref

// The GPT-2 -> BSBR conversion study (issue 7) on a tiny GPT-2 checkpoint the test writes itself:
// the loader against a plain GPT-2 forward from the HF tensors, F16/BF16 files, bad checkpoints,
// the conversion rules, fidelity metrics, attention maps, the whole study and the CLI.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "convert/attention_maps.hpp"
#include "convert/conversion.hpp"
#include "convert/fidelity.hpp"
#include "convert/study.hpp"
#include "core/errors.hpp"
#include "core/io.hpp"
#include "io/gpt2_checkpoint.hpp"
#include "ref/ref_gpt2.hpp"
#include "ref/ref_model.hpp"
#include "report/conversion_report.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

namespace fs = std::filesystem;
using test::logits_all;
using test::exact;
using test::is_close;
using test::within;

std::string fresh_dir(const std::string& tag) { return test::temp_dir("gpt2_" + tag); }

// A tiny checkpoint directory, written once per option set.
std::string tiny_checkpoint(const std::string& tag, const ref::TinyWriteOptions& opts = {}) {
  std::string dir = fresh_dir(tag);
  ref::write_tiny_gpt2(ref::make_tiny_gpt2(11), dir, opts);
  return dir;
}

// A tiny checkpoint loaded as the original GPT-2 model.
struct LoadedTiny {
  std::string dir;
  Gpt2Checkpoint ckpt;
  ops::Context ctx;
  std::unique_ptr<Model> original;
  LoadedTiny(const std::string& tag, int threads) : dir(tiny_checkpoint(tag)), ckpt(dir), ctx(threads), original(ckpt.make_model(ctx)) {}
};

std::vector<int32_t> some_tokens(int64_t n, int64_t V, uint64_t salt = 0) {
  std::vector<int32_t> t(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 37 + 11 + salt * 101 + (i * i) % 13) % V);
  return t;
}

TEST(Gpt2Loader, LogitsMatchPlainGpt2Forward) {
  ref::TinyGpt2 tiny = ref::make_tiny_gpt2(11);
  for (bool prefix : {true, false}) {
    ref::TinyWriteOptions w;
    w.transformer_prefix = prefix;
    w.mask_buffers = prefix;
    std::string dir = fresh_dir(prefix ? "prefix" : "noprefix");
    ref::write_tiny_gpt2(tiny, dir, w);
    Gpt2Checkpoint ckpt(dir);
    EXPECT_EQ(ckpt.config().n_positions, tiny.positions);
    EXPECT_EQ(ckpt.config().model.ff_dim, 4 * tiny.d);
    EXPECT_EQ(ckpt.config().skeleton.ffn_activation, ops::Eltwise::kGeluTanh);
    ops::Context ctx(2);
    auto model = ckpt.make_model(ctx);
    for (int64_t n : {int64_t{1}, int64_t{13}, tiny.positions}) {
      auto tokens = some_tokens(n, tiny.vocab);
      std::vector<float> got = logits_all(ctx, *model, tokens);
      ref::Mat want = ref::gpt2_forward(tiny.tensors, tiny.layers, tiny.heads, tiny.eps, tokens);
      EXPECT_TRUE(is_close(got, want, within(1e-4))) << "prefix=" << prefix << " n=" << n;
    }
  }
}

TEST(Gpt2Loader, HalfPrecisionFilesLoadToTheSameValues) {
  ref::TinyGpt2 tiny = ref::make_tiny_gpt2(11, /*round_to_half=*/true);
  ops::Context ctx(1);
  std::vector<std::vector<float>> loaded;
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    ref::TinyWriteOptions w;
    w.dtype = dt;
    std::string dir = fresh_dir(std::string("dtype_") + to_string(dt));
    ref::write_tiny_gpt2(tiny, dir, w);
    Gpt2Checkpoint ckpt(dir);
    EXPECT_EQ(ckpt.file().tensors().front().dtype, dt);
    auto model = ckpt.make_model(ctx);
    std::vector<float> all;
    for (const Param& p : model->params().all()) all.insert(all.end(), p.value.data(), p.value.data() + p.value.size());
    loaded.push_back(all);
  }
  ASSERT_EQ(loaded[0].size(), loaded[1].size());
  EXPECT_EQ(loaded[0], loaded[1]) << "F16 file loads to different values than F32";
  EXPECT_EQ(loaded[0], loaded[2]) << "BF16 file loads to different values than F32";
}

TEST(Gpt2Loader, PositionsPastTheTableWrap) {
  LoadedTiny tiny("wrap", 1);
  ops::Context& ctx = tiny.ctx;
  Model* model = tiny.original.get();
  const int64_t P = tiny.ckpt.config().n_positions, n = P + 5, V = tiny.ckpt.config().model.vocab_size;
  auto tokens = some_tokens(n, V);
  std::vector<float> got = logits_all(ctx, *model, tokens);
  for (float v : got) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(ref::forward(*model, tokens).logits.size(), got.size());
  EXPECT_TRUE(is_close(got, ref::forward(*model, tokens).logits, within(1e-4)));  // the skeleton oracle wraps the same way
}

// The capture hook: block inputs and residual streams of a prefill, checked against the skeleton
// oracle's own intermediate relations (LN1 of the embedding; the final LN of the last residual).
TEST(Gpt2Loader, CaptureHookHoldsEachBlocksActivations) {
  LoadedTiny tiny("capture", 1);
  Model& model = *tiny.original;
  const ModelConfig& c = model.config();
  const int64_t n = 17, d = c.hidden_dim, L = c.num_layers;
  auto tokens = some_tokens(n, c.vocab_size);
  std::vector<float> inputs(L * n * d, NAN), residuals(L * n * d, NAN);
  model.set_capture({inputs.data(), residuals.data(), n});
  std::vector<float> logits = logits_all(tiny.ctx, model, tokens);
  model.set_capture({});
  const ParamStore& P = model.params();
  auto p = [&](const std::string& name) { return P.find(name)->value.data(); };
  ref::Mat x(n * d);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < d; ++i) x[t * d + i] = p("embed.weight")[tokens[t] * d + i] + p("pos_embed.weight")[t * d + i];
  ref::Mat ln1 = ref::layer_norm(x, n, d, p("layers.0.ln1.weight"), p("layers.0.ln1.bias"), c.layer_norm_eps);
  EXPECT_TRUE(is_close(inputs.data(), ln1.data(), n * d, within(1e-5))) << "layer 0 mixer input";
  ref::Mat last(residuals.begin() + (L - 1) * n * d, residuals.end());
  ref::Mat fin = ref::layer_norm(last, n, d, p("final_ln.weight"), p("final_ln.bias"), c.layer_norm_eps);
  ref::Mat want = ref::forward(model, tokens).hidden;
  EXPECT_TRUE(is_close(fin, want, within(1e-4))) << "final LN of the last captured residual";
  ref::Mat ln1_l1 = ref::layer_norm(ref::Mat(residuals.begin(), residuals.begin() + n * d), n, d, p("layers.1.ln1.weight"), p("layers.1.ln1.bias"), c.layer_norm_eps);
  EXPECT_TRUE(is_close(inputs.data() + n * d, ln1_l1.data(), n * d, within(1e-5))) << "layer 1 input = LN1(layer 0 residual)";
  // Off again: a later prefill leaves the buffers alone.
  std::fill(inputs.begin(), inputs.end(), 7.f);
  logits_all(tiny.ctx, model, tokens);
  EXPECT_EQ(inputs[0], 7.f);
}

void expect_user_error(const std::function<void()>& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << fragment << "'";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Gpt2Loader, BadCheckpointsAreUserErrors) {
  ops::Context ctx(1);
  auto load = [&](const std::string& dir) { return [dir, &ctx] { Gpt2Checkpoint(dir).make_model(ctx); }; };
  expect_user_error(load("/nonexistent/gpt2"), "checkpoint directory not found");
  {
    std::string dir = tiny_checkpoint("no_st");
    fs::remove(dir + "/model.safetensors");
    expect_user_error(load(dir), "has no model.safetensors");
  }
  {
    std::string dir = tiny_checkpoint("no_cfg");
    fs::remove(dir + "/config.json");
    expect_user_error(load(dir), "has no config.json");
  }
  auto with_config = [&](const std::string& tag, const std::string& text, const std::string& fragment) {
    std::string dir = tiny_checkpoint(tag);
    write_file_atomic(dir + "/config.json", text);
    expect_user_error(load(dir), fragment);
  };
  with_config("cfg_json", "{\"n_embd\": ", "not valid JSON");
  with_config("cfg_key", R"({"vocab_size": 264, "n_embd": 32, "n_layer": 2, "n_positions": 48})", "missing key 'n_head'");
  with_config("cfg_neg", R"({"vocab_size": 264, "n_embd": 32, "n_layer": -2, "n_head": 4, "n_positions": 48})", "'n_layer' = -2 must be an integer in [1, 1024]");
  with_config("cfg_act", R"({"vocab_size": 264, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 48, "activation_function": "relu"})",
              "activation_function 'relu' is not supported");
  with_config("cfg_heads", R"({"vocab_size": 264, "n_embd": 32, "n_layer": 2, "n_head": 5, "n_positions": 48})", "divisible");
  with_config("cfg_type", R"({"model_type": "llama", "vocab_size": 264, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 48})", "model_type");
  // config.json and weights disagree: the shape is named.
  with_config("cfg_shape", R"({"vocab_size": 264, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64})", "has shape [48, 32], config.json implies [64, 32]");
  // A layer missing from the weights, and a tensor no GPT-2 has.
  // A config far larger than the tensors: the shape error comes before any model is allocated
  // (it was "out of memory": 2^24 x 2^16 floats of embedding alone).
  // A config whose model would need ~1 TiB: the shape error comes before anything is allocated.
  with_config("cfg_huge", R"({"vocab_size": 16777216, "n_embd": 16384, "n_layer": 1024, "n_head": 4, "n_positions": 1048576})",
              "'transformer.wte.weight' has shape [264, 32], config.json implies [16777216, 16384]");
  with_config("cfg_embd_range", R"({"vocab_size": 264, "n_embd": 4294967296, "n_layer": 2, "n_head": 4, "n_positions": 48})",
              "'n_embd' = 4294967296 must be an integer in [1, 65536]");
  with_config("cfg_heads_range", R"({"vocab_size": 264, "n_embd": 32, "n_layer": 2, "n_head": 64, "n_positions": 48})", "'n_head' = 64 must be an integer in [1, 32]");
  with_config("cfg_eps", R"({"vocab_size": 264, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 48, "layer_norm_epsilon": 1e300})",
              "'layer_norm_epsilon' = 1e+300 must be a number in (0, 1]");
  with_config("cfg_overflow", R"({"vocab_size": 264, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 1e999})", "number overflow parsing '1e999' at n_positions");
  with_config("cfg_layers", R"({"vocab_size": 264, "n_embd": 32, "n_layer": 3, "n_head": 4, "n_positions": 48})", "has no tensor 'transformer.h.2.ln_1.weight'");
  {
    ref::TinyGpt2 tiny = ref::make_tiny_gpt2(11);
    tiny.tensors["h.0.attn.rotary.weight"] = std::vector<float>(4, 1.f);
    std::string dir = fresh_dir("extra");
    ref::write_tiny_gpt2(tiny, dir);
    expect_user_error(load(dir), "unexpected tensor 'transformer.h.0.attn.rotary.weight'");
  }
  {  // a truncated safetensors file is the reader's clean error, not a crash
    std::string dir = tiny_checkpoint("trunc");
    fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 100);
    expect_user_error(load(dir), "past the end");
  }
}

TEST(Conversion, MetaInitAndCompressionRules) {
  MemoryTracker mem;
  ParamStore orig(mem), conv(mem);
  const int64_t d = 6;
  for (const char* n : {"q_proj", "k_proj", "v_proj"}) orig.add_linear(std::string("layers.0.attn.") + n, d, d);
  orig.initialize(5, 1.0);
  for (Param& p : orig.all()) {  // biases: q = 1, 2, ...; k = 10, 20, ...; v = 100, 200, ...
    if (p.name.find("bias") == std::string::npos) continue;
    const float scale = p.name.find("q_proj") != std::string::npos ? 1.f : p.name.find("k_proj") != std::string::npos ? 10.f : 100.f;
    for (int64_t i = 0; i < p.value.size(); ++i) p.value[i] = static_cast<float>(i + 1) * scale;
  }
  for (const char* n : {"q_proj", "k_proj", "v_proj", "meta_r_proj", "meta_h_proj"}) conv.add_linear(std::string("layers.0.attn.") + n, d, d);
  conv.add_linear("layers.0.attn.compress_proj", 16, 4);     // dh² = 16 -> d/c = 4: orthonormal columns
  conv.add_linear("layers.0.attn.decompress_proj", 4, 16);
  auto at = [](ParamStore& s, const std::string& n) { return s.find("layers.0.attn." + n)->value.data(); };
  for (MetaInit mi : {MetaInit::kMean, MetaInit::kQk}) {
    ConversionOptions o;
    o.meta_init = mi;
    init_converted_params(orig, conv, o);
    for (int64_t i = 0; i < d * d; ++i) {
      const float q = at(orig, "q_proj.weight")[i], k = at(orig, "k_proj.weight")[i], v = at(orig, "v_proj.weight")[i];
      EXPECT_FLOAT_EQ(at(conv, "q_proj.weight")[i], q);
      EXPECT_FLOAT_EQ(at(conv, "meta_r_proj.weight")[i], mi == MetaInit::kMean ? 0.5f * (q + k) : q);
      EXPECT_FLOAT_EQ(at(conv, "meta_h_proj.weight")[i], mi == MetaInit::kMean ? 0.5f * (k + v) : k);
    }
    EXPECT_FLOAT_EQ(at(conv, "meta_h_proj.bias")[0], mi == MetaInit::kMean ? 55.f : 10.f);
  }
  // W_c = Q with orthonormal columns (QᵀQ = I), W_d = Qᵀ, biases zero.
  const float* Wc = at(conv, "compress_proj.weight");
  const float* Wd = at(conv, "decompress_proj.weight");
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) {
      double dot = 0;
      for (int r = 0; r < 16; ++r) dot += static_cast<double>(Wc[r * 4 + a]) * Wc[r * 4 + b];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-5);
    }
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(Wd[c * 16 + r], Wc[r * 4 + c]);
  EXPECT_EQ(at(conv, "compress_proj.bias")[0], 0.f);
}

TEST(Fidelity, MetricsOnKnownValues) {
  std::vector<float> a = {1, 0, 0, 2, 2, 0}, b = {2, 0, 0, -2, 2, 0};
  LayerFidelity f = compare_hidden(a.data(), b.data(), 2, 3);
  EXPECT_NEAR(f.cosine, (1.0 + 0.0) / 2, 1e-12);  // row 0 parallel, row 1 orthogonal
  EXPECT_NEAR(f.mse, (1.0 + 16.0) / 6, 1e-12);
  EXPECT_EQ(compare_hidden(a.data(), a.data(), 2, 3).mse, 0.0);
  std::vector<float> x = {5, 4, 3, 2, 1, 0}, y = {0, 4, 3, 2, 1, 5};
  EXPECT_EQ(topk_agreement(x.data(), y.data(), 6, 1), 0.0);
  EXPECT_NEAR(topk_agreement(x.data(), y.data(), 6, 3), 2.0 / 3, 1e-12);
  EXPECT_EQ(topk_agreement(x.data(), x.data(), 6, 5), 1.0);
  std::vector<float> p = {0, 0}, q = {0, std::log(3.f)};  // (1/2, 1/2) vs (1/4, 3/4)
  EXPECT_NEAR(kl_divergence(p.data(), q.data(), 2), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0), 1e-6);
  EXPECT_EQ(kl_divergence(p.data(), p.data(), 2), 0.0);
  std::vector<float> uniform(3 * 7, 0.f);
  std::vector<int32_t> toks = {1, 2, 3};
  EXPECT_NEAR(perplexity(uniform.data(), toks.data(), 3, 7), 7.0, 1e-9);
}

TEST(AttentionMaps, SoftmaxMapMatchesPlainAttention) {
  LoadedTiny tiny("maps", 1);
  ops::Context& ctx = tiny.ctx;
  Model* model = tiny.original.get();
  const ModelConfig& c = model->config();
  const int64_t n = 20, d = c.hidden_dim, dh = c.head_dim();
  std::vector<float> x = test::random_vector(n * d, 3);
  AttentionProbe probe(ctx, d, c.num_heads, n);
  std::vector<float> map(n * n);
  const int64_t head = 2;
  probe.softmax_map(ctx, model->params(), "layers.1.attn", head, x.data(), map.data());
  const ParamStore& P = model->params();
  auto W = [&](const char* n) { return P.find(std::string("layers.1.attn.") + n)->value.data(); };
  ref::Mat q = ref::linear(x, n, d, W("q_proj.weight"), W("q_proj.bias"), d), k = ref::linear(x, n, d, W("k_proj.weight"), W("k_proj.bias"), d);
  for (int64_t t = 0; t < n; ++t) {
    std::vector<double> w(t + 1);
    for (int64_t s = 0; s <= t; ++s) w[s] = ref::dot(&q[t * d + head * dh], &k[s * d + head * dh], dh) / std::sqrt(double(dh));
    ref::softmax(w);
    for (int64_t s = 0; s < n; ++s) EXPECT_NEAR(map[t * n + s], s <= t ? w[s] : 0.0, 1e-5) << t << "," << s;
  }
  EXPECT_NEAR(exact_pair_share(8, 8), 1.0, 1e-12);
  EXPECT_NEAR(exact_pair_share(4, 2), (1 + 2 + 1 + 2) / 10.0, 1e-12);
}

// BSBR's effective map times V, through the out projection, is BSBR's own attention output (its oracle).
TEST(AttentionMaps, BsbrMapReproducesTheBsbrOracle) {
  LoadedTiny tiny("bsbr_map", 1);
  ops::Context& ctx = tiny.ctx;
  ConversionOptions co;
  co.chunk_size = 5;
  auto conv = convert_model(ctx, *tiny.original, co);
  ModelConfig c = conv->config();
  const int64_t n = 23, d = c.hidden_dim, dh = c.head_dim(), H = c.num_heads;
  std::vector<float> x = test::random_vector(n * d, 4);
  ref::MacCounter macs;
  ref::Mat want = ref::oracle_for("BSBR")(c, conv->params(), "layers.0.attn", x, n, macs, {});
  AttentionProbe probe(ctx, d, H, n);
  const ParamStore& P = conv->params();
  auto W = [&](const char* name) { return P.find(std::string("layers.0.attn.") + name)->value.data(); };
  ref::Mat v = ref::linear(x, n, d, W("v_proj.weight"), W("v_proj.bias"), d), o(n * d, 0.f);
  std::vector<float> map(n * n);
  for (int64_t h = 0; h < H; ++h) {
    probe.bsbr_map(ctx, P, "layers.0.attn", h, co.chunk_size, x.data(), map.data());
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < dh; ++i) {
        double acc = 0;
        for (int64_t s = 0; s <= t; ++s) acc += map[t * n + s] * v[s * d + h * dh + i];
        o[t * d + h * dh + i] = static_cast<float>(acc);
      }
  }
  ref::Mat got = ref::linear(o, n, d, W("out_proj.weight"), W("out_proj.bias"), d);
  EXPECT_TRUE(is_close(got, want, within(1e-4)));
}

StudyOptions tiny_study(const std::string& dir, const std::string& tokens_file) {
  StudyOptions o;
  o.checkpoint_dir = dir;
  o.tokens_path = tokens_file;
  o.seq_lengths = {16, 40};
  o.repeats = 1;
  o.warmup = 0;
  o.threads = 2;
  o.heatmap_length = 24;
  o.heatmap_layer = 1;
  o.heatmap_head = 1;
  return o;
}

std::string token_file(const std::string& dir, int64_t n, int64_t V) {
  std::string s;
  for (int32_t t : some_tokens(n, V, 3)) s += std::to_string(t) + (t % 3 ? " " : ",\n");
  write_file_atomic(dir + "/tokens.txt", s);
  return dir + "/tokens.txt";
}

void expect_ideal(const Fidelity& f, const std::string& what) {
  for (const LayerFidelity& l : f.layers) {
    EXPECT_GT(l.cosine, 1 - 1e-6) << what;
    EXPECT_LT(l.mse, 1e-8) << what;
  }
  EXPECT_LT(f.kl, 1e-7) << what;
  EXPECT_EQ(f.top1, 1.0) << what;
  EXPECT_EQ(f.top5, 1.0) << what;
  EXPECT_EQ(f.top10, 1.0) << what;
  EXPECT_NEAR(f.perplexity_converted, f.perplexity_original, 1e-4 * f.perplexity_original) << what;
}

// The pipeline itself: "converting" to Standard changes nothing, whatever the chunk size.
TEST(Study, IdentityConversionIsIdeal) {
  std::string dir = tiny_checkpoint("identity");
  StudyOptions o = tiny_study(dir, token_file(dir, 48, 264));
  o.architecture = "Standard";
  o.chunk_sizes = {4, 16};
  o.compressions = {0};
  o.speed = false;
  StudyResults r = run_conversion_study(o);
  EXPECT_EQ(r.eval_length, 48);
  ASSERT_EQ(r.quality.size(), 2u);
  for (const QualityRow& q : r.quality) expect_ideal(q.fidelity, q.conversion.label());
  EXPECT_GT(r.quality[0].fidelity.perplexity_original, 1.0);
  EXPECT_NEAR(r.quality[0].exact_pair_share, exact_pair_share(48, 4), 1e-12);
  EXPECT_GT(r.density.local_mass.at(16), r.density.local_mass.at(4));
  EXPECT_GT(r.density.above_threshold, 0.0);
  EXPECT_LE(r.density.above_threshold, 1.0);
}

TEST(Study, ChunkCoveringTheSequenceEqualsTheOriginal) {
  LoadedTiny tiny("bsbr_equal", 2);
  ops::Context& ctx = tiny.ctx;
  Model* original = tiny.original.get();
  const std::string& dir = tiny.dir;
  const int64_t n = 40, V = tiny.ckpt.config().model.vocab_size;
  auto tokens = some_tokens(n, V, 5);
  std::vector<float> want = logits_all(ctx, *original, tokens);
  for (int64_t chunk : {n, int64_t{64}})
    for (int64_t comp : {int64_t{0}, int64_t{2}}) {
      ConversionOptions co;
      co.chunk_size = chunk;
      co.compression_factor = comp;
      auto conv = convert_model(ctx, *original, co);
      EXPECT_TRUE(is_close(logits_all(ctx, *conv, tokens), want, within(1e-4))) << co.label();
    }
  StudyOptions o = tiny_study(dir, token_file(dir, n, V));
  o.chunk_sizes = {n, 64};
  o.compressions = {0, 4};
  o.speed = false;
  StudyResults r = run_conversion_study(o);
  for (const QualityRow& q : r.quality) {
    expect_ideal(q.fidelity, q.conversion.label());
    EXPECT_EQ(q.exact_pair_share, 1.0);
    EXPECT_NEAR(q.local_mass, 1.0, 1e-5);
  }
}

TEST(Study, SmallChunksMoveTheMetricsAwayFromIdeal) {
  std::string dir = tiny_checkpoint("bsbr_small");
  StudyOptions o = tiny_study(dir, token_file(dir, 48, 264));
  o.chunk_sizes = {4, 12};
  o.compressions = {0, 2};
  o.speed = false;
  StudyResults r = run_conversion_study(o);
  for (const QualityRow& q : r.quality) {
    const Fidelity& f = q.fidelity;
    EXPECT_LT(f.layers.back().cosine, 0.999) << q.conversion.label();
    EXPECT_GT(f.layers.back().mse, 1e-4) << q.conversion.label();
    EXPECT_GT(f.kl, 1e-3) << q.conversion.label();
    EXPECT_LT(f.top10, 1.0) << q.conversion.label();
    EXPECT_NE(f.perplexity_converted, f.perplexity_original) << q.conversion.label();
    EXPECT_LT(q.exact_pair_share, 0.5);
    EXPECT_LT(q.local_mass, 1.0);
  }
  // The first layer's residual stream is changed only by its own attention; later layers add up.
  const Fidelity& f = r.find_quality(4, 0)->fidelity;
  EXPECT_GT(f.layers.front().cosine, 0.0);
}

TEST(Study, SpeedSweepReportAndPlots) {
  std::string dir = tiny_checkpoint("speed");
  StudyOptions o = tiny_study(dir, token_file(dir, 30, 264));
  o.chunk_sizes = {8, 16};
  o.compressions = {0, 2};
  o.seq_lengths = {16, 64};  // 64 > n_positions (48): positions wrap and the report says so
  StudyResults r = run_conversion_study(o);
  const std::string label = r.reference().label();
  for (int64_t len : o.seq_lengths) {
    ASSERT_NE(r.find_speed("GPT-2", len), nullptr);
    ASSERT_NE(r.find_speed(label, len), nullptr);
    EXPECT_EQ(r.find_speed("GPT-2", len)->run.status, "ok");
    EXPECT_GT(r.find_speed(label, len)->run.memory.peak_working_bytes, 0u);
    EXPECT_EQ(r.find_speed("GPT-2", len)->positions_wrapped, len > 48);
  }
  std::string out = fresh_dir("report_out");
  ReportFiles files = write_conversion_report(r, out, /*plots=*/true);
  nlohmann::json j = nlohmann::json::parse(read_file(files.json, "json"));
  EXPECT_EQ(j["kind"], "conversion_study");
  EXPECT_EQ(j["quality"].size(), r.quality.size());
  EXPECT_EQ(j["input"]["eval_length"], 30);
  const std::string md = read_file(files.markdown, "md");
  for (const char* s : {"Fidelity", "Chunk size", "Compression factor", "positions wrap", "Attention density", "attention_gpt2.png"})
    EXPECT_NE(md.find(s), std::string::npos) << s;
  for (const char* p : {"speed_vs_length.png", "memory_vs_length.png", "layer_cosine.png", "attention_gpt2.png", "attention_converted.png"}) {
    ASSERT_TRUE(fs::exists(out + "/" + p)) << p;
    std::ifstream in(out + "/" + p, std::ios::binary);
    char sig[4] = {};
    in.read(sig, 4);
    EXPECT_EQ(std::string(sig + 1, 3), "PNG") << p;
  }
}

TEST(Study, TokenFilesAndLengthsAreChecked) {
  std::string dir = tiny_checkpoint("inputs");
  expect_user_error([&] { read_token_file(dir + "/none.txt", 10); }, "not found");
  write_file_atomic(dir + "/bad.txt", "1 2 three 4");
  expect_user_error([&] { read_token_file(dir + "/bad.txt", 10); }, "bad.txt: 'three' is not an integer token id");
  write_file_atomic(dir + "/neg.txt", "1\n-2");
  expect_user_error([&] { read_token_file(dir + "/neg.txt", 10); }, "neg.txt:2: token id -2 (index 1) is outside the vocabulary [0, 10)");
  write_file_atomic(dir + "/big.txt", "1, 2, 264");
  expect_user_error([&] { read_token_file(dir + "/big.txt", 264); }, "token id 264 (index 2) is outside the vocabulary [0, 264)");
  EXPECT_EQ(read_token_file(dir + "/big.txt", 265), (std::vector<int32_t>{1, 2, 264}));
  StudyOptions o = tiny_study(dir, token_file(dir, 60, 264));
  o.speed = false;
  o.architecture = "Standard";
  o.eval_length = 50;  // > n_positions = 48
  expect_user_error([&] { run_conversion_study(o); }, "exceeds GPT-2's n_positions (48)");
  o.eval_length = 0;
  o.tokens_path = token_file(dir, 1, 264);
  expect_user_error([&] { run_conversion_study(o); }, "quality metrics need at least 2");
}

// The CLI end to end: --text through the checkpoint's tokenizer, tables on stdout, files written;
// bad input is one line and exit code 2.
TEST(ConvertCli, RunsAndRejectsBadInput) {
  std::string dir = tiny_checkpoint("cli");
  write_file_atomic(dir + "/text.txt", "the theater in the sun; the other one is on the sea, then the end.");
  std::string out = fresh_dir("cli_out");
  {
    test::CliResult ok = test::run_cli("convert --checkpoint " + dir + " --text " + dir + "/text.txt --chunk_sizes 8 16 --compression none 2 "
                                       "--seq_lengths 16 32 --repeats 1 --warmup 0 --heatmap_length 16 --out " + out);
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_NE(ok.out.find("Fidelity"), std::string::npos);
    EXPECT_TRUE(fs::exists(out + "/conversion_results.json"));
    EXPECT_TRUE(fs::exists(out + "/conversion_report.md"));
    EXPECT_TRUE(fs::exists(out + "/attention_converted.png"));
  }
  std::string no_config = tiny_checkpoint("cli_nocfg"), bad_config = tiny_checkpoint("cli_badcfg");
  fs::remove(no_config + "/config.json");
  write_file_atomic(bad_config + "/config.json", "{\"n_embd\": 32,");
  write_file_atomic(dir + "/range.txt", "1 2 3\n4 99999\n");
  struct Bad {
    std::string args, fragment;
  };
  std::vector<Bad> bad = {
      {"--checkpoint " + no_config + " --tokens " + dir + "/range.txt", "has no config.json"},
      {"--checkpoint " + bad_config + " --tokens " + dir + "/range.txt", "not valid JSON"},
      {"--checkpoint " + dir + " --tokens " + dir + "/range.txt", "range.txt:2: token id 99999 (index 4) is outside the vocabulary [0, 264)"},
      {"--checkpoint " + dir + " --tokens " + dir + "/missing.txt", "token file not found"},
      {"--checkpoint /nonexistent --tokens x", "checkpoint directory not found"},
      {"--checkpoint " + dir, "exactly one of --text FILE and --tokens FILE"},
      {"--checkpoint " + dir + " --text a --tokens b", "exactly one of --text FILE and --tokens FILE"},
      {"--checkpoint " + dir + " --tokens " + dir + "/text.txt", "'the' is not an integer token id"},
      {"--checkpoint " + dir + " --tokens " + token_file(dir, 60, 264) + " --eval_length 60", "exceeds GPT-2's n_positions"},
      {"--checkpoint " + dir + " --tokens " + token_file(dir, 60, 264) + " --compression 3", "does not divide the model width"},
      {"--checkpoint " + dir + " --tokens " + token_file(dir, 60, 264) + " --compression half", "--compression takes 'none'"},
      {"--checkpoint " + dir + " --tokens " + token_file(dir, 60, 264) + " --meta-init random", "--meta-init must be mean or qk"},
      {"--checkpoint " + dir + " --tokens " + token_file(dir, 60, 264) + " --heatmap_layer 7", "--heatmap_layer must be < 2"},
  };
  for (const Bad& b : bad) {
    test::CliResult r = test::run_cli("convert " + b.args + " --no-speed --no-plots --out " + out);
    EXPECT_EQ(r.exit_code, 2) << b.args << "\n" << r.err;
    EXPECT_NE(r.err.find(b.fragment), std::string::npos) << b.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "not one line: " << r.err;
  }
  test::CliResult help = test::run_cli("convert --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--meta-init"), std::string::npos);
}

// Every file in dir, by name.
std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A later stage that fails keeps what the study measured before it: conversion_results.json,
// written whole, marked partial with the reason; no report, no temp file; the error goes on. With
// nothing measured yet, nothing is written.
TEST(StudyPartial, AFailingLaterPointKeepsTheEarlierOnes) {
  const std::string dir = tiny_checkpoint("later_failure");
  StudyOptions o = tiny_study(dir, token_file(dir, 30, 264));
  o.chunk_sizes = {8, 16};
  o.compressions = {0};
  o.seq_lengths = {16, 40};
  const std::string out = fresh_dir("later_failure_out");
  // The failure: the third speed point (GPT-2 at n = 16 and 40 are done) throws as it starts.
  auto fail_at = [](const std::string& stage) {
    return [stage](const std::string& s) {
      if (s.rfind(stage, 0) == 0) throw UserError("injected failure at '" + stage + "'");
    };
  };
  StudyResults plan;
  plan.options = o;
  const std::string label = plan.reference().label();
  StudyResults r;
  expect_user_error([&] { keep_partial_study(r, out, [&] { run_conversion_study(o, r, fail_at("speed: " + label + " n=16")); }); },
                    "injected failure");
  EXPECT_EQ(files_in(out), std::vector<std::string>{"conversion_results.json"});
  const nlohmann::json j = nlohmann::json::parse(read_file(out + "/conversion_results.json", "json"));
  EXPECT_EQ(j["partial"], true);
  EXPECT_EQ(j["partial_reason"], "stopped by an error: injected failure at 'speed: " + label +
                                     " n=16' after 2 of 2 quality rows and 2 speed points");
  EXPECT_EQ(j["quality"].size(), 2u);
  ASSERT_EQ(j["speed"].size(), 2u);
  EXPECT_EQ(j["speed"][0]["model"], "GPT-2");
  EXPECT_EQ(j["speed"][1]["n"], 40);
  // A failure while loading (nothing measured): no file at all.
  const std::string empty = fresh_dir("early_failure_out");
  StudyResults r2;
  expect_user_error([&] { keep_partial_study(r2, empty, [&] { run_conversion_study(o, r2, fail_at("quality: GPT-2")); }); }, "injected failure");
  EXPECT_TRUE(fs::is_empty(empty));
}

// SIGINT / SIGTERM during the speed sweep, through the real executable (as compare's test): exit 2,
// the rows and points measured so far in conversion_results.json marked partial, no temp file, no
// report or plot.
class ConvertInterrupt : public ::testing::TestWithParam<int> {};

TEST_P(ConvertInterrupt, KeepsWhatWasMeasuredAsPartial) {
  const int sig = GetParam();
  const std::string dir = tiny_checkpoint(std::string("interrupt_") + (sig == SIGINT ? "int" : "term"));
  const std::string out = dir + "/out", err = dir + "/err.txt";
  std::vector<std::string> args{"convert", "--checkpoint", dir, "--tokens", token_file(dir, 40, 264), "--chunk_sizes", "8", "16",
                                "--compression", "none", "2", "--heatmap_length", "16", "--seq_lengths"};
  for (int n = 16; n <= 16 + 30 * 8; n += 8) args.push_back(std::to_string(n));  // 31 lengths: 64 speed points
  for (const char* a : {"--repeats", "200", "--warmup", "0", "--threads", "1", "--out"}) args.push_back(a);
  args.push_back(out);
  auto stderr_text = [&] {
    std::ifstream in(err);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const pid_t pid = test::spawn_cli(args, err);
  // Wait until the third speed point has started.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (stderr_text().find("speed: GPT-2 n=32") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_NE(stderr_text().find("speed: GPT-2 n=32"), std::string::npos) << stderr_text();
  ::kill(pid, sig);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  const std::string text = stderr_text();
  ASSERT_TRUE(WIFEXITED(status)) << text;
  EXPECT_EQ(WEXITSTATUS(status), 2) << text;
  EXPECT_NE(text.find("marked partial"), std::string::npos) << text;
  EXPECT_EQ(files_in(out), std::vector<std::string>{"conversion_results.json"}) << "temp files, a report or plots were left";
  const nlohmann::json j = nlohmann::json::parse(read_file(out + "/conversion_results.json", "json"));
  EXPECT_EQ(j["partial"], true);
  const std::string reason = j["partial_reason"];
  EXPECT_EQ(reason.rfind(sig == SIGINT ? "interrupted (SIGINT) after 4 of 4 quality rows and " : "terminated (SIGTERM) after 4 of 4 quality rows and ", 0), 0u)
      << reason;
  EXPECT_EQ(j["quality"].size(), 4u);
  EXPECT_GE(j["speed"].size(), 2u);
  EXPECT_LT(j["speed"].size(), 64u);
  for (const auto& row : j["speed"]) EXPECT_EQ(row["status"], "ok") << row.dump();
}

INSTANTIATE_TEST_SUITE_P(Signals, ConvertInterrupt, ::testing::Values(SIGINT, SIGTERM),
                         [](const auto& info) { return std::string(info.param == SIGINT ? "SIGINT" : "SIGTERM"); });

}  // namespace
}  // namespace bsbr

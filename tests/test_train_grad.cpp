// Gradient checks of the training code (src/train): analytic gradients of the float training step
// against central finite differences of the double-precision loss oracle (tests/ref/ref_train_double),
// for every element of every parameter tensor and of the input embeddings, on tiny configs (odd
// length, several sequences, windows shorter than n). Each architecture also has a mutation test:
// one broken gradient term (TrainableMixer::inject_fault) must fail the same check.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/rng.hpp"
#include "io/gpt2_checkpoint.hpp"
#include "ref/ref_train_double.hpp"
#include "train/deltanet_grad.hpp"
#include "train/linear_attention_grad.hpp"
#include "train/softmax_attention_grad.hpp"
#include "train/train_model.hpp"

namespace bsbr {
namespace {

// Per-element check |a - f| <= atol + rtol |f|, atol = kAtol * scale, scale = max|f| over the
// tensor (the float code's rounding is relative to the tensor's scale) but at least kFloor times the
// largest gradient of the model: some gradients are exactly 0 in theory (a key bias shifts every
// score of a softmax row equally), and there float rounding is all that is left. rtol = kRtol.
constexpr double kAtol = 2e-4, kRtol = 1e-3, kFloor = 1e-2;

struct GradReport {
  double loss_float = 0, loss_double = 0;
  double worst = 0;              // max over tensors of max|a - f| / scale (see kFloor)
  std::string worst_tensor;
  int64_t failures = 0;          // elements outside the tolerance (or NaN)
  std::string first_failure;
  int64_t checked = 0;           // elements compared
};

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

void compare_tensor(const std::string& name, const float* a, const std::vector<double>& fd, double global_scale, GradReport& r) {
  const double scale = std::max(max_abs(fd), kFloor * global_scale);
  double worst = 0;
  for (std::size_t i = 0; i < fd.size(); ++i) {
    const double err = std::abs(a[i] - fd[i]);
    const bool ok = std::isfinite(a[i]) && err <= kAtol * scale + kRtol * std::abs(fd[i]) + 1e-9;
    if (!ok && r.failures++ == 0)
      r.first_failure = name + "[" + std::to_string(i) + "]: analytic " + std::to_string(a[i]) + " vs finite difference " + std::to_string(fd[i]);
    worst = std::max(worst, std::isfinite(a[i]) ? err / std::max(scale, 1e-12) : INFINITY);
    ++r.checked;
  }
  if (worst > r.worst) {
    r.worst = worst;
    r.worst_tensor = name;
  }
}

// (f(x + h e_i) - f(x - h e_i)) / 2h for every element i of x (restored after), h = 1e-5 max(1, |x_i|).
std::vector<double> central_differences(std::vector<double>& x, const std::function<double()>& f) {
  std::vector<double> fd(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i], h = 1e-5 * std::max(1.0, std::abs(keep));
    x[i] = keep + h;
    const double up = f();
    x[i] = keep - h;
    const double down = f();
    x[i] = keep;
    fd[i] = (up - down) / (2 * h);
  }
  return fd;
}

ModelConfig grad_config(const std::string& arch) {
  ModelConfig c;
  c.vocab_size = 13;
  c.hidden_dim = 8;
  c.num_heads = 2;  // dh = 4
  c.num_layers = 2;
  c.ff_dim = 12;
  c.window_size = 3;        // < n: the band matters
  c.linear_chunk_size = 4;  // 3 chunks over n = 11, the last one partial
  c.chunk_size = 3;         // GAU, BSBR: 4 chunks over n = 11, the last one partial
  c.expansion_factor = 1;   // GAU width E = d
  c.temperature = 0.7;  // Hopfield differs from Standard
  c.init_std = 0.4;     // peaked attention, non-trivial gradients
  c.seed = 7 + hash_name(arch) % 100;
  return c;
}

// Shifts every parameter by N(0, 0.2^2) so LayerNorm gains are not 1 and biases not 0: a term
// multiplied by a neutral value could otherwise hide.
void perturb(ParamStore& params, uint64_t seed) {
  for (Param& p : params.all()) {
    CounterRng rng(seed, hash_name(p.name) + 1);
    for (int64_t i = 0; i < p.value.size(); ++i) p.value[i] += static_cast<float>(0.2 * rng.normal(static_cast<uint64_t>(i)));
  }
}

// GPT-2's skeleton for the checks: learned positions with more rows (13) than the checked length
// (11), so rows past n must get a zero gradient; tanh GELU; tied LM head.
SkeletonOptions gpt2_grad_skeleton() { return gpt2_skeleton(13); }

// fault: a mixer's term (TrainableMixer::inject_fault) or, named "skeleton.*", a term of the
// skeleton (TrainModel::inject_fault).
GradReport grad_check(const std::string& arch, const std::string& fault = "", const std::function<void(ModelConfig&)>& adjust = {},
                      const SkeletonOptions& skeleton = {}) {
  constexpr int64_t kBatch = 2, kN = 11;
  ModelConfig cfg = grad_config(arch);
  if (adjust) adjust(cfg);
  ops::Context ctx(2);
  Model model(ctx, cfg, find_architecture(arch), skeleton);
  perturb(model.params(), cfg.seed);
  train::TrainModel tm(ctx, model);
  const bool skeleton_fault = fault.rfind("skeleton.", 0) == 0;
  if (skeleton_fault) {
    EXPECT_TRUE(tm.inject_fault(fault)) << "the skeleton has no fault " << fault;  // before prepare (it picks ops)
  }
  tm.prepare(ctx, kBatch, kN);
  if (!fault.empty() && !skeleton_fault) {
    for (int l = 0; l < cfg.num_layers; ++l) EXPECT_TRUE(tm.mixer(l).inject_fault(fault)) << arch << " has no fault " << fault;
  }
  std::vector<int32_t> tokens(kBatch * kN);
  CounterRng trng(cfg.seed, 99);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(trng.bits(i) % cfg.vocab_size);

  // Every gradient must be written by the step (they are overwritten, never accumulated): start from NaN.
  for (const Param& p : model.params().all()) {
    Tensor& g = tm.grads().of(p.value);
    std::fill(g.data(), g.data() + g.size(), std::numeric_limits<float>::quiet_NaN());
  }
  GradReport r;
  {
    ops::FrozenRegion frozen(ctx);  // a training step creates no primitive and grows no scratchpad
    const std::size_t before = ctx.memory().current_working();
    r.loss_float = tm.forward_backward(ctx, tokens.data());
    EXPECT_EQ(ctx.memory().current_working(), before) << "a training step allocated";
  }

  ref::DParams P = ref::to_double(model.params());
  auto loss = [&] {
    return ref::train_loss(cfg, arch, P, tokens, kBatch, ref::input_embeddings(cfg, P, tokens, kBatch, skeleton), skeleton);
  };
  r.loss_double = loss();
  struct Pending {
    std::string name;
    const float* analytic;
    std::vector<double> fd;
  };
  std::vector<Pending> all;
  for (const Param& p : model.params().all()) {
    // A mutation breaks a term of the mixer's backward: its own parameters show it, so the mutation
    // runs difference only those (a skeleton's: only the others; the clean runs difference everything).
    if (!fault.empty() && (p.name.find(".attn.") == std::string::npos) != skeleton_fault) continue;
    all.push_back({p.name, tm.grads().find(p.name)->data(), central_differences(P.at(p.name), loss)});
  }
  // Input embeddings [b, n, d] (clean runs).
  if (fault.empty()) {
    std::vector<double> x0 = ref::input_embeddings(cfg, P, tokens, kBatch, skeleton);
    all.push_back({"input_embeddings", tm.input_grad(),
                   central_differences(x0, [&] { return ref::train_loss(cfg, arch, P, tokens, kBatch, x0, skeleton); })});
  }
  double global_scale = 0;
  for (const Pending& p : all) global_scale = std::max(global_scale, max_abs(p.fd));
  for (const Pending& p : all) compare_tensor(p.name, p.analytic, p.fd, global_scale, r);
  return r;
}

class TrainGrad : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainGrad, AnalyticMatchesFiniteDifferences) {
  const std::string arch = GetParam();
  ASSERT_TRUE(ref::has_double_mixer(arch));
  GradReport r = grad_check(arch);
  EXPECT_NEAR(r.loss_float, r.loss_double, 1e-5 * std::abs(r.loss_double)) << arch;
  EXPECT_EQ(r.failures, 0) << arch << ": " << r.first_failure;
  EXPECT_GT(r.checked, 1000);
  std::printf("%s: %lld gradient elements, worst relative error %.2e (%s)\n", arch.c_str(), static_cast<long long>(r.checked), r.worst,
              r.worst_tensor.c_str());
}

// The training forward computes the benchmarked model: its loss equals the cross-entropy of the
// inference Model's logits (LogitsMode::kAll) at default-like widths with several chunks and tiles.
TEST(TrainForward, LossMatchesInferenceModel) {
  for (const std::string& arch : train::trainable_architectures()) for (bool gpt2 : {false, true}) {
    ModelConfig c;
    c.vocab_size = 97;
    c.hidden_dim = 32;
    c.num_heads = 4;
    c.ff_dim = 48;
    c.chunk_size = 16;
    c.window_size = 20;
    c.linear_chunk_size = 32;
    c.init_std = 0.2;
    c.temperature = 0.8;
    constexpr int64_t kBatch = 2, kN = 150;  // several 64-row attention tiles, a partial last chunk
    ops::Context ctx(2);
    // GPT-2's skeleton with a position table longer than n.
    Model model(ctx, c, find_architecture(arch), gpt2 ? gpt2_skeleton(kN + 5) : SkeletonOptions{});
    std::vector<int32_t> tokens(kBatch * kN);
    CounterRng rng(11, 12);
    for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(rng.bits(i) % c.vocab_size);
    RunShape shape;
    shape.batch = kBatch;
    shape.prefill_lengths = {kN};
    model.prepare(ctx, shape, LogitsMode::kAll);
    model.prefill(ctx, tokens.data(), kN);
    double want = 0;
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t t = 0; t + 1 < kN; ++t) {
        const float* z = model.logits() + (b * kN + t) * c.vocab_size;
        const double mx = *std::max_element(z, z + c.vocab_size);
        double sum = 0;
        for (int64_t j = 0; j < c.vocab_size; ++j) sum += std::exp(z[j] - mx);
        want += mx + std::log(sum) - z[tokens[b * kN + t + 1]];
      }
    want /= kBatch * (kN - 1);
    train::TrainModel tm(ctx, model);
    tm.prepare(ctx, kBatch, kN);
    const double got = tm.forward(ctx, tokens.data());
    EXPECT_NEAR(got, want, 1e-5 * want) << arch << (gpt2 ? " (GPT-2 skeleton)" : "");
  }
}

// Linear's other options: identity feature map, no normaliser.
TEST(TrainGrad, LinearIdentityUnnormalized) {
  GradReport r = grad_check("Linear", "", [](ModelConfig& c) {
    c.feature_map = FeatureMap::kIdentity;
    c.normalize = false;
    c.init_std = 0.25;
  });
  EXPECT_NEAR(r.loss_float, r.loss_double, 1e-5 * std::abs(r.loss_double));
  EXPECT_EQ(r.failures, 0) << r.first_failure;
  std::printf("Linear (identity, unnormalized): worst relative error %.2e (%s)\n", r.worst, r.worst_tensor.c_str());
}

// BSBR without compression (the chunk states themselves are retrieved).
TEST(TrainGrad, BsbrUncompressed) {
  GradReport r = grad_check("BSBR", "", [](ModelConfig& c) { c.compression_factor = 0; });
  EXPECT_NEAR(r.loss_float, r.loss_double, 1e-5 * std::abs(r.loss_double));
  EXPECT_EQ(r.failures, 0) << r.first_failure;
  std::printf("BSBR (uncompressed): worst relative error %.2e (%s)\n", r.worst, r.worst_tensor.c_str());
}

// DeltaNet with beta_t = sigmoid(x_t W_beta + b_beta) per head.
TEST(TrainGrad, DeltaNetLearnedBeta) {
  GradReport r = grad_check("DeltaNet", "", [](ModelConfig& c) { c.beta_mode = BetaMode::kLearned; });
  EXPECT_NEAR(r.loss_float, r.loss_double, 1e-5 * std::abs(r.loss_double));
  EXPECT_EQ(r.failures, 0) << r.first_failure;
  std::printf("DeltaNet (learned beta): worst relative error %.2e (%s)\n", r.worst, r.worst_tensor.c_str());
}

// GPT-2's skeleton (learned positions, tanh GELU, tied head): every parameter including
// pos_embed.weight (rows 0..n-1 and the unused rows past n) and the tied embedding, which gets
// both the input side's and the LM head's gradient. Standard is GPT-2 itself; BSBR is what
// `convert` turns it into; Linear a mixer with other kernels.
class TrainGradGpt2 : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainGradGpt2, AnalyticMatchesFiniteDifferences) {
  const std::string arch = GetParam();
  GradReport r = grad_check(arch, "", {}, gpt2_grad_skeleton());
  EXPECT_NEAR(r.loss_float, r.loss_double, 1e-5 * std::abs(r.loss_double)) << arch;
  EXPECT_EQ(r.failures, 0) << arch << ": " << r.first_failure;
  EXPECT_GT(r.checked, 1000);
  std::printf("%s (GPT-2 skeleton): %lld gradient elements, worst relative error %.2e (%s)\n", arch.c_str(),
              static_cast<long long>(r.checked), r.worst, r.worst_tensor.c_str());
}

INSTANTIATE_TEST_SUITE_P(Architectures, TrainGradGpt2, ::testing::Values("Standard", "BSBR", "Linear"),
                         [](const auto& info) { return info.param; });

// Each skeleton term of GPT-2's backward, broken, fails the same check.
TEST(TrainGradGpt2Mutation, BrokenSkeletonTermIsCaught) {
  ops::Context ctx(1);
  Model probe(ctx, grad_config("Standard"), find_architecture("Standard"), gpt2_grad_skeleton());
  train::TrainModel tm(ctx, probe);
  const std::vector<std::string> faults = tm.faults();
  EXPECT_EQ(faults.size(), 3u);
  EXPECT_FALSE(tm.inject_fault("skeleton.no_such_term"));
  for (const std::string& fault : faults) {
    GradReport r = grad_check("Standard", fault, {}, gpt2_grad_skeleton());
    EXPECT_GT(r.failures, 0) << fault << ": worst relative error only " << r.worst;
    std::printf("GPT-2 skeleton with %s: %lld elements fail, worst relative error %.2e (%s)\n", fault.c_str(),
                static_cast<long long>(r.failures), r.worst, r.worst_tensor.c_str());
  }
  // The study's skeleton has none of these terms.
  Model study(ctx, grad_config("Standard"), find_architecture("Standard"));
  EXPECT_TRUE(train::TrainModel(ctx, study).faults().empty());
}

// Learned positions bound the training length.
TEST(TrainGradGpt2, LengthPastThePositionTableIsRefused) {
  ops::Context ctx(1);
  Model model(ctx, grad_config("Standard"), find_architecture("Standard"), gpt2_grad_skeleton());
  train::TrainModel tm(ctx, model);
  tm.prepare(ctx, 1, 13);
  EXPECT_THROW(tm.prepare(ctx, 1, 14), UserError);
}

// A sequence inside one chunk: BSBR retrieves nothing (its chunk-level parameters get exact zero
// gradients) and GAU has no cross-chunk state.
TEST(TrainGrad, SingleChunk) {
  for (const char* arch : {"BSBR", "GAU"}) {
    GradReport r = grad_check(arch, "", [](ModelConfig& c) { c.chunk_size = 16; });
    EXPECT_NEAR(r.loss_float, r.loss_double, 1e-5 * std::abs(r.loss_double)) << arch;
    EXPECT_EQ(r.failures, 0) << arch << ": " << r.first_failure;
  }
}

// Each mutation breaks one gradient term of the architecture's backward; the check must fail.
struct Mutation {
  std::string arch, fault;
};
class TrainGradMutation : public ::testing::TestWithParam<Mutation> {};

TEST_P(TrainGradMutation, BrokenTermIsCaught) {
  const Mutation& m = GetParam();
  GradReport r = grad_check(m.arch, m.fault);
  EXPECT_GT(r.failures, 0) << m.arch << " with " << m.fault << ": worst relative error only " << r.worst;
  std::printf("%s with %s: %lld elements fail, worst relative error %.2e (%s)\n", m.arch.c_str(), m.fault.c_str(),
              static_cast<long long>(r.failures), r.worst, r.worst_tensor.c_str());
}

INSTANTIATE_TEST_SUITE_P(Architectures, TrainGrad, ::testing::ValuesIn(train::trainable_architectures()),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Architectures, TrainGradMutation,
                         ::testing::Values(Mutation{"Linear", "linear.drop_state_key_grad"}, Mutation{"Linear", "linear.drop_normalizer_grad"},
                                           Mutation{"Standard", "attention.drop_row_term"}, Mutation{"Hopfield", "attention.unscaled_scores"},
                                           Mutation{"SlidingWindow", "attention.narrow_band"}, Mutation{"GAU", "gau.drop_state_grad"},
                                           Mutation{"GAU", "gau.drop_gate_value"}, Mutation{"BSBR", "bsbr.drop_state_grad"},
                                           Mutation{"BSBR", "bsbr.drop_retrieval_row_term"}, Mutation{"DeltaNet", "deltanet.drop_wy_key_term"}),
                         [](const auto& info) {
                           std::string name = info.param.arch + "_" + info.param.fault;
                           std::replace(name.begin(), name.end(), '.', '_');
                           return name;
                         });

TEST(TrainGrad, EveryTrainableArchitectureHasAMutation) {
  for (const std::string& arch : train::trainable_architectures()) {
    ModelConfig cfg = grad_config(arch);
    ops::Context ctx(1);
    Model model(ctx, cfg, find_architecture(arch));
    train::TrainModel tm(ctx, model);
    EXPECT_FALSE(tm.mixer(0).faults().empty()) << arch;
    EXPECT_FALSE(tm.mixer(0).inject_fault("no.such.term")) << arch;
  }
}

// Standard-normal q, k, v and output gradient of `count` floats each.
std::array<std::vector<float>, 4> random_attention_inputs(int64_t count, uint64_t seed) {
  std::array<std::vector<float>, 4> r;
  CounterRng rng(seed, 4);
  for (int j = 0; j < 4; ++j) {
    r[j].resize(count);
    for (int64_t i = 0; i < count; ++i) r[j][i] = static_cast<float>(rng.normal(4 * i + j));
  }
  return r;
}

// The flash kernel's tiling is invisible: small odd tiles (many tiles, partial edges, bands that
// start mid-tile) give the same forward and gradients as one tile covering the sequence.
TEST(TrainAttentionKernel, TilingDoesNotChangeResults) {
  ops::Context ctx(2);
  for (auto [window, chunk, dh] : {std::tuple<int64_t, int64_t, int64_t>{-1, 0, 4}, {0, 0, 4}, {5, 0, 4}, {-1, 5, 4}, {4, 7, 4}, {-1, 0, 64}}) {
    train::SoftmaxAttentionGradGeometry g{2, 2, dh, 23, dh == 64 ? 0.125f : 0.7f, window, 64, 64, chunk};
    const int64_t count = g.batch * g.n * g.heads * g.head_dim;
    const auto [q, k, v, dout] = random_attention_inputs(count, 3);
    struct Out {
      std::vector<float> o, lse, dq, dk, dv;
    };
    auto run = [&](int64_t qt, int64_t kt) {
      g.q_tile = qt;
      g.k_tile = kt;
      train::SoftmaxAttentionGrad op(ctx, g);
      Out r{std::vector<float>(count), std::vector<float>(g.batch * g.heads * g.n), std::vector<float>(count), std::vector<float>(count),
            std::vector<float>(count)};
      op.forward(ctx, q.data(), k.data(), v.data(), r.o.data(), r.lse.data());
      op.backward(ctx, q.data(), k.data(), v.data(), r.o.data(), r.lse.data(), dout.data(), r.dq.data(), r.dk.data(), r.dv.data());
      return r;
    };
    const Out one = run(64, 64), tiled = run(3, 4);
    auto expect_close = [&](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
      for (std::size_t i = 0; i < a.size(); ++i) {
        ASSERT_TRUE(std::isfinite(a[i])) << what << " window " << window << " chunk " << chunk;
        ASSERT_NEAR(a[i], b[i], 1e-5 + 1e-5 * std::abs(b[i])) << what << "[" << i << "] window " << window << " chunk " << chunk;
      }
    };
    expect_close(tiled.o, one.o, "o");
    expect_close(tiled.lse, one.lse, "lse");
    expect_close(tiled.dq, one.dq, "dq");
    expect_close(tiled.dk, one.dk, "dk");
    expect_close(tiled.dv, one.dv, "dv");
  }
}

// Linear's chunking is invisible: chunks of 3 (partial last chunk) give the same forward and
// gradients as one chunk covering the sequence, with and without the normaliser.
TEST(TrainLinearKernel, ChunkingDoesNotChangeResults) {
  ops::Context ctx(2);
  for (bool normalize : {true, false}) {
    train::LinearAttentionGradGeometry g{2, 2, 4, 23, 64, /*elu1=*/true, normalize};
    const int64_t count = g.batch * g.n * g.heads * g.head_dim;
    const auto [q, k, v, dout] = random_attention_inputs(count, 5);
    auto run = [&](int64_t chunk) {
      g.chunk = chunk;
      train::LinearAttentionGrad op(ctx, g);
      std::vector<std::vector<float>> r(5, std::vector<float>(count));
      std::vector<float> den(g.batch * g.heads * g.n);
      op.forward(ctx, q.data(), k.data(), v.data(), r[0].data(), den.data());
      op.backward(ctx, q.data(), k.data(), v.data(), r[0].data(), den.data(), dout.data(), r[1].data(), r[2].data(), r[3].data());
      r[4] = den;
      return r;
    };
    const auto one = run(64), chunked = run(3);
    const char* names[] = {"o", "dq", "dk", "dv", "den"};
    for (int j = 0; j < 5; ++j)
      for (std::size_t i = 0; i < one[j].size(); ++i) {
        ASSERT_TRUE(std::isfinite(chunked[j][i])) << names[j];
        ASSERT_NEAR(chunked[j][i], one[j][i], 1e-4 + 1e-4 * std::abs(one[j][i])) << names[j] << "[" << i << "] normalize " << normalize;
      }
  }
}

// DeltaNet's chunkwise WY forward and backward equal the recurrence and its reverse (constant and varying beta,
// partial last chunk, chunk 1), and a broken recurrent term makes them disagree.
TEST(TrainDeltaKernel, WyBackwardMatchesRecurrence) {
  ops::Context ctx(2);
  for (int64_t chunk : {1, 4, 7, 64}) {
    train::DeltaRuleGradGeometry g{2, 2, 4, 23, chunk};
    const int64_t count = g.batch * g.n * g.heads * g.head_dim;
    const auto [q, k, v, dout] = random_attention_inputs(count, 7 + chunk);
    std::vector<float> beta(g.batch * g.n * g.heads);
    CounterRng rng(8, 9);
    for (std::size_t i = 0; i < beta.size(); ++i) beta[i] = static_cast<float>(rng.uniform(i));
    train::DeltaRuleGrad op(ctx, g);
    std::vector<float> o(count), o_rec(count);
    op.forward_recurrent(ctx, q.data(), k.data(), v.data(), beta.data(), o_rec.data());
    op.forward(ctx, q.data(), k.data(), v.data(), beta.data(), o.data());  // its checkpoints feed both backwards
    for (int64_t i = 0; i < count; ++i) ASSERT_NEAR(o[i], o_rec[i], 1e-4 + 1e-4 * std::abs(o_rec[i])) << "o[" << i << "] chunk " << chunk;
    using Fault = train::DeltaRuleGrad::Fault;
    auto grads = [&](bool wy, Fault fault) {
      std::vector<std::vector<float>> r{std::vector<float>(count), std::vector<float>(count), std::vector<float>(count),
                                        std::vector<float>(beta.size())};
      if (wy)
        op.backward_wy(ctx, q.data(), k.data(), v.data(), beta.data(), dout.data(), r[0].data(), r[1].data(), r[2].data(), r[3].data(), fault);
      else
        op.backward(ctx, q.data(), k.data(), v.data(), beta.data(), dout.data(), r[0].data(), r[1].data(), r[2].data(), r[3].data(), fault);
      return r;
    };
    const auto wy = grads(true, Fault::kNone), rec = grads(false, Fault::kNone);
    const char* names[] = {"dq", "dk", "dv", "dbeta"};
    for (int j = 0; j < 4; ++j) {
      double scale = 0;
      for (float x : rec[j]) scale = std::max(scale, std::abs(static_cast<double>(x)));
      for (std::size_t i = 0; i < rec[j].size(); ++i) {
        ASSERT_TRUE(std::isfinite(wy[j][i])) << names[j];
        ASSERT_NEAR(wy[j][i], rec[j][i], 1e-4 * scale + 1e-4 * std::abs(rec[j][i])) << names[j] << "[" << i << "] chunk " << chunk;
      }
    }
    for (Fault f : {Fault::kDropStateKeyTerm, Fault::kDropStateDecay}) {
      const auto broken = grads(false, f);
      double diff = 0;
      for (int j = 0; j < 4; ++j)
        for (std::size_t i = 0; i < rec[j].size(); ++i) diff = std::max(diff, std::abs(static_cast<double>(broken[j][i] - wy[j][i])));
      EXPECT_GT(diff, 1e-2) << "a broken recurrent term went unnoticed, chunk " << chunk;
    }
  }
}

}  // namespace
}  // namespace bsbr

// AdamW, the learning-rate schedule, the training step and checkpoints (src/train/optimizer.hpp):
// the update against a hand-written double-precision AdamW, clipping, learning on a fixed batch,
// bitwise determinism, and resuming from a checkpoint equals never stopping.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "core/errors.hpp"
#include "core/rng.hpp"
#include "test_util.hpp"
#include "train/optimizer.hpp"

namespace bsbr {
namespace {

TEST(TrainSchedule, WarmupThenCosine) {
  train::AdamWConfig c;
  c.lr = 1.0;
  c.warmup_steps = 4;
  c.total_steps = 14;
  c.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(train::learning_rate(c, 0), 0.25);
  EXPECT_DOUBLE_EQ(train::learning_rate(c, 3), 1.0);
  EXPECT_DOUBLE_EQ(train::learning_rate(c, 4), 1.0);                    // cosine starts at the peak
  EXPECT_NEAR(train::learning_rate(c, 9), 0.1 + 0.9 * 0.5, 1e-12);     // half way: cos(pi/2) = 0
  EXPECT_NEAR(train::learning_rate(c, 14), 0.1, 1e-12);
  EXPECT_NEAR(train::learning_rate(c, 100), 0.1, 1e-12);               // stays at the floor
}

// Three AdamW steps on a [2, 3] matrix and a [3] bias with given gradients, against the update
// written out in double (PyTorch's AdamW: decoupled decay on the matrix only, bias-corrected moments).
TEST(TrainAdamW, MatchesDoublePrecisionUpdate) {
  ops::Context ctx(1);
  ParamStore params(ctx.memory());
  Tensor& w = params.add("w", {2, 3}, Init::kNormal);
  Tensor& b = params.add("b", {3}, Init::kNormal);
  params.initialize(3, 0.5);
  train::Grads grads(ctx, params);
  train::AdamWConfig c;
  c.beta1 = 0.8;
  c.beta2 = 0.95;
  c.eps = 1e-6;
  c.weight_decay = 0.1;
  c.clip_norm = 0;  // off
  train::AdamW opt(ctx, params, c);
  std::vector<double> ref(9), m(9, 0.0), v(9, 0.0);
  for (int i = 0; i < 6; ++i) ref[i] = w[i];
  for (int i = 0; i < 3; ++i) ref[6 + i] = b[i];
  CounterRng rng(9, 1);
  for (int s = 1; s <= 3; ++s) {
    const double lr = 0.05 * s;
    std::vector<double> g(9);
    for (int i = 0; i < 9; ++i) g[i] = rng.normal(static_cast<uint64_t>(s * 9 + i));
    for (int i = 0; i < 6; ++i) grads.of(w)[i] = static_cast<float>(g[i]);
    for (int i = 0; i < 3; ++i) grads.of(b)[i] = static_cast<float>(g[6 + i]);
    opt.step(grads, lr);
    for (int i = 0; i < 9; ++i) {
      if (i < 6) ref[i] *= 1 - lr * c.weight_decay;
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * g[i] * g[i];
      ref[i] -= lr * (m[i] / (1 - std::pow(c.beta1, s))) / (std::sqrt(v[i] / (1 - std::pow(c.beta2, s))) + c.eps);
    }
  }
  EXPECT_EQ(opt.steps(), 3);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(w[i], ref[i], 1e-5 * (1 + std::abs(ref[i]))) << "w[" << i << "]";
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(b[i], ref[6 + i], 1e-5 * (1 + std::abs(ref[6 + i]))) << "b[" << i << "]";
}

TEST(TrainAdamW, ClipsToTheGlobalNorm) {
  ops::Context ctx(1);
  ParamStore params(ctx.memory());
  Tensor& w = params.add("w", {2, 2}, Init::kZeros);
  Tensor& b = params.add("b", {2}, Init::kZeros);
  train::Grads grads(ctx, params);
  for (int i = 0; i < 4; ++i) grads.of(w)[i] = 4.f;  // norm sqrt(4 * 16 + 2 * 18) = 10
  for (int i = 0; i < 2; ++i) grads.of(b)[i] = std::sqrt(18.f);
  train::AdamWConfig c;
  c.clip_norm = 1.0;
  train::AdamW opt(ctx, params, c);
  EXPECT_NEAR(opt.step(grads, 0.1), 10.0, 1e-5);
  EXPECT_NEAR(std::sqrt(grads.squared_norm()), 1.0, 1e-6);  // clipped in place
}

ModelConfig tiny(uint64_t seed) {
  ModelConfig c;
  c.vocab_size = 29;
  c.hidden_dim = 16;
  c.num_heads = 2;
  c.num_layers = 1;
  c.ff_dim = 32;
  c.chunk_size = 4;  // BSBR and GAU: 4 chunks over n = 16, so retrieval and the cross-chunk state train too
  c.init_std = 0.1;
  c.seed = seed;
  return c;
}

std::vector<int32_t> pattern_tokens(int64_t batch, int64_t n, int64_t vocab) {
  std::vector<int32_t> t(batch * n);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < n; ++i) t[b * n + i] = static_cast<int32_t>((3 * i + 5 * b + 1) % vocab);
  return t;
}

train::AdamWConfig fast_config() {
  train::AdamWConfig c;
  c.lr = 1e-2;
  c.warmup_steps = 3;
  c.total_steps = 40;
  return c;
}

struct TrainRun {
  std::vector<double> losses;
  std::vector<float> params;  // every parameter, in store order
};

// steps training steps of a fresh tiny model (optionally resuming from / saving to a checkpoint).
TrainRun train_run(const std::string& arch, int steps, const std::string& load_dir = "", const std::string& save_dir = "", uint64_t seed = 1) {
  constexpr int64_t kBatch = 2, kN = 16;
  ops::Context ctx(2);
  Model model(ctx, tiny(seed), find_architecture(arch));
  train::TrainModel tm(ctx, model);
  tm.prepare(ctx, kBatch, kN);
  train::AdamW opt(ctx, model.params(), fast_config());
  if (!load_dir.empty()) train::load_checkpoint(load_dir, model, opt);
  const std::vector<int32_t> tokens = pattern_tokens(kBatch, kN, model.config().vocab_size);
  TrainRun r;
  for (int s = 0; s < steps; ++s) r.losses.push_back(train::train_step(ctx, tm, opt, tokens.data()).loss);
  if (!save_dir.empty()) train::save_checkpoint(save_dir, model, opt);
  for (const Param& p : model.params().all()) r.params.insert(r.params.end(), p.value.data(), p.value.data() + p.value.size());
  return r;
}

// Training lowers the loss on a fixed batch (a wrong-signed or broken update would not).
TEST(TrainLoop, LearnsAFixedBatch) {
  for (const char* arch : {"Standard", "BSBR"}) {
    TrainRun r = train_run(arch, 25);
    std::printf("%s: loss %.3f -> %.3f in 25 steps\n", arch, r.losses.front(), r.losses.back());
    EXPECT_LT(r.losses.back(), 0.5 * r.losses.front()) << arch << ": " << r.losses.front() << " -> " << r.losses.back();
  }
}

TEST(TrainLoop, DeterministicFromTheSeed) {
  TrainRun a = train_run("Linear", 3), b = train_run("Linear", 3);
  EXPECT_EQ(a.losses, b.losses);
  EXPECT_EQ(a.params, b.params);
}

// Two steps, checkpoint, then two more in a fresh process-like setup (another seed, so the loaded
// weights and moments are all that carry over) equals four uninterrupted steps, bit for bit.
TEST(TrainCheckpoint, ResumeEqualsUninterrupted) {
  const std::string dir = test::temp_dir("train_ckpt");
  TrainRun straight = train_run("GAU", 4);
  train_run("GAU", 2, "", dir);
  TrainRun resumed = train_run("GAU", 2, dir, "", /*seed=*/77);
  EXPECT_EQ(resumed.params, straight.params);
  ASSERT_EQ(resumed.losses.size(), 2u);
  EXPECT_EQ(resumed.losses[1], straight.losses[3]);
}

TEST(TrainCheckpoint, RejectsAnotherModelsOptimizerState) {
  const std::string dir = test::temp_dir("train_ckpt_bad");
  train_run("Standard", 1, "", dir);
  ops::Context ctx(1);
  ModelConfig other = tiny(1);
  other.ff_dim = 24;  // different shapes
  Model model(ctx, other, find_architecture("Standard"));
  train::AdamW opt(ctx, model.params(), fast_config());
  EXPECT_THROW(opt.load((std::filesystem::path(dir) / "optimizer.safetensors").string()), UserError);
  EXPECT_THROW(train::load_checkpoint(dir, model, opt), UserError);
  EXPECT_EQ(opt.steps(), 0);  // nothing changed
}

}  // namespace
}  // namespace bsbr

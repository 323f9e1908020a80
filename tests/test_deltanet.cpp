// DeltaNet (SPEC §2) beyond the generic architecture suite: the chunkwise WY/UT prefill equals the
// per-token delta-rule recurrence (the oracle) for chunk sizes that do and do not divide n,
// including runs of several blocks of chunks and of several prefill slabs (decode after them,
// batches of two, learned beta); the learned-beta path (parameters, prefill, decode,
// FLOPs); beta near 0 and near 2 stay finite and still match; large activations need no clamping.
#include <gtest/gtest.h>

#include "model_checks.hpp"

namespace bsbr {
namespace {

constexpr uint64_t kSeed = 5;
ModelConfig deltanet_config(int64_t chunk) { return test::tiny_config(chunk, kSeed); }

TEST(DeltaNet, ChunkedPrefillEqualsRecurrence) {
  ops::Context ctx(2);
  // (chunk, n): divides / does not divide; 3 x 67 = 201 and 4 x 38 = 152 run several blocks of
  // ChunkedRecurrence::kChunksPerBlock chunks, the last one partial; chunk 1 is the recurrence.
  test::expect_chunked_prefill_matches_oracle(
      ctx, "DeltaNet", {{16, 96}, {16, 97}, {5, 100}, {7, 100}, {64, 50}, {1, 40}, {3, 201}, {4, 152}, {20, 400}}, kSeed);
}

TEST(DeltaNet, LongSequenceRecurrenceAgreesWithChunkedPrefill) {
  // 2 x 2,048 + 37 tokens in chunks of 16 = 259 chunks: three slabs of the default tiling (128
  // chunks, 4 blocks each; the last slab 3 chunks, the last one partial): the fp32 rounding of the
  // chunked path (blocked prefix states, carried across slabs) and of the token-by-token decode stay
  // together over a long sequence.
  ops::Context ctx(2);
  Model model(ctx, deltanet_config(16), find_architecture("DeltaNet"));
  EXPECT_TRUE(test::decode_matches_prefill(ctx, model, 100, 2 * 2048 + 37));
}

TEST(DeltaNet, PrefillSlabsMatchOracleDecodeAndBatch) {
  ops::Context ctx(2);
  test::expect_recurrence_slabs_match<make_deltanet>(ctx, "DeltaNet", deltanet_config);
  // Learned beta: its projection runs per slab too.
  ModelConfig c = deltanet_config(5);
  c.beta_mode = BetaMode::kLearned;
  c.init_std = 0.5;
  Model learned(ctx, c, Architecture{"DeltaNet", test::with_slab_chunks<make_deltanet, 3>, ""});
  test::expect_slabbed_prefill_matches(ctx, learned, 3 * 5);
}

TEST(DeltaNet, PrefillMemoryIsConstantInN) {
  ops::Context ctx(2);
  Model model(ctx, deltanet_config(16), find_architecture("DeltaNet"));
  test::expect_prefill_memory_constant_in_n(ctx, model);
}

TEST(DeltaNet, LearnedBeta) {
  ops::Context ctx(2);
  ModelConfig c = deltanet_config(16);
  c.beta_mode = BetaMode::kLearned;
  c.init_std = 0.5;  // beta_t = sigmoid(W_beta x + b) spreads over (0, 1)
  Model model(ctx, c, find_architecture("DeltaNet"));
  ASSERT_NE(model.params().find("layers.0.attn.beta_proj.weight"), nullptr);
  EXPECT_EQ(model.params().find("layers.1.attn.beta_proj.bias")->value.size(), c.num_heads);
  for (int64_t n : {int64_t{1}, int64_t{17}, int64_t{70}}) {
    test::OracleComparison r = test::compare_with_oracle(ctx, model, n);
    EXPECT_TRUE(r.hidden.ok()) << r.hidden.describe() << "n=" << n;
    EXPECT_TRUE(r.logits.ok()) << r.logits.describe() << "n=" << n;
    EXPECT_NEAR(r.flops, r.oracle_flops, 1e-9 * r.flops) << "n=" << n;
  }
  EXPECT_TRUE(test::decode_matches_prefill(ctx, model, 3, 40));
}

TEST(DeltaNet, ParameterCounts) {
  ops::Context ctx(1);
  ModelConfig c;  // SPEC defaults: constant beta adds no parameters
  EXPECT_EQ(Model(ctx, c, find_architecture("DeltaNet")).param_count(false), 3614720);
  c.beta_mode = BetaMode::kLearned;  // + beta_proj Linear(d, h) per layer
  EXPECT_EQ(Model(ctx, c, find_architecture("DeltaNet")).param_count(false), 3614720 + 2 * (256 * 4 + 4));
}

TEST(DeltaNet, BetaNearZeroAndNearTwo) {
  // beta -> 0: the state barely moves; beta -> 2: I - beta k k^T has eigenvalue 1 - beta ~ -1
  // along k, the edge of stability. Both must stay finite and match the recurrence, with no clamp.
  ops::Context ctx(2);
  for (double beta : {1e-3, 1.999}) {
    for (int64_t chunk : {int64_t{16}, int64_t{7}}) {
      ModelConfig c = deltanet_config(chunk);
      c.beta = beta;
      Model model(ctx, c, find_architecture("DeltaNet"));
      test::OracleComparison r = test::compare_with_oracle(ctx, model, 150);
      EXPECT_TRUE(r.finite) << "beta " << beta;
      EXPECT_TRUE(r.hidden.ok()) << r.hidden.describe() << "beta " << beta << ", chunk " << chunk;
      EXPECT_TRUE(r.logits.ok()) << r.logits.describe() << "beta " << beta << ", chunk " << chunk;
    }
    ModelConfig c = deltanet_config(16);
    c.beta = beta;
    Model model(ctx, c, find_architecture("DeltaNet"));
    EXPECT_TRUE(test::decode_matches_prefill(ctx, model, 9, 60)) << "beta " << beta;
  }
}

TEST(DeltaNet, BetaChangesTheOutput) {
  ops::Context ctx(1);
  ModelConfig a = deltanet_config(16), b = deltanet_config(16);
  b.beta = 0.3;
  Model ma(ctx, a, find_architecture("DeltaNet")), mb(ctx, b, find_architecture("DeltaNet"));
  const int64_t n = 20;
  auto tokens = Runner::input_tokens(a, 1, n);
  for (Model* m : {&ma, &mb}) {
    m->prepare(ctx, test::run_shape({n}));
    m->prefill(ctx, tokens.data(), n);
  }
  EXPECT_FALSE(test::is_close(ma.hidden(), mb.hidden(), n * a.hidden_dim, test::within(1e-3)));
}

TEST(DeltaNet, LargeActivationsNeedNoClamp) {
  // Large weights make q, k, v large before the L2 norm; q, k are unit vectors after it, so the
  // state stays bounded by |v| and the chunked form still equals the recurrence.
  ops::Context ctx(2);
  ModelConfig c = deltanet_config(16);
  c.init_std = 1.0;
  Model model(ctx, c, find_architecture("DeltaNet"));
  test::OracleComparison r = test::compare_with_oracle(ctx, model, 100);
  EXPECT_TRUE(r.finite);
  EXPECT_TRUE(r.hidden.ok()) << r.hidden.describe();
}

TEST(DeltaNet, StateBytesAreConstantInN) {
  ops::Context ctx(1);
  ModelConfig c;  // defaults: M [4, 64, 64] per layer
  Model model(ctx, c, find_architecture("DeltaNet"));
  EXPECT_EQ(model.state_bytes(10), c.num_layers * 4 * 64 * 64 * sizeof(float));
  EXPECT_EQ(model.state_bytes(65536), model.state_bytes(10));
}

}  // namespace
}  // namespace bsbr

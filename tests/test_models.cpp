// Every registered architecture, checked the same way (SPEC §2 invariants):
//   - prefill equals its plain-loop oracle (tests/ref/) at lengths around every tile and chunk size;
//   - causality: changing tokens after t changes nothing at positions <= t;
//   - decode equals prefill: step-by-step logits match the prefill's at every position;
//   - a batch of sequences equals the sequences run one by one;
//   - greedy generate (prefill + steps) yields the same tokens as recompute (full forward per token);
//   - parameter counts with the SPEC defaults.
#include <gtest/gtest.h>

#include <map>

#include "bench/runner.hpp"
#include "core/config.hpp"
#include "model/model.hpp"
#include "model_checks.hpp"
#include "ref/ref_model.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

using test::exact;
using test::is_close;
using test::within;

// Small widths so the O(n^2) oracles stay fast, but every structural size differs: head_dim 16,
// chunk 16, window 8, Linear/DeltaNet chunk 16, compression to d/2.
ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 97;
  c.hidden_dim = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.ff_dim = 96;
  c.chunk_size = 16;
  c.window_size = 8;
  c.linear_chunk_size = 16;
  c.compression_factor = 2;
  c.init_std = 0.15;  // large enough that attention is far from uniform
  c.temperature = 0.7;  // Hopfield differs from Standard (T = 1 is tested separately)
  c.seed = 3;
  return c;
}

std::vector<int32_t> tokens_for(const ModelConfig& c, int64_t n, uint64_t salt = 0) {
  ModelConfig m = c;
  m.seed = c.seed + salt;
  return Runner::input_tokens(m, 1, n);
}

RunShape shape(std::vector<int64_t> lengths, int64_t capacity = 0, int64_t batch = 1) {
  RunShape s;
  s.batch = batch;
  s.prefill_lengths = std::move(lengths);
  s.capacity = capacity;
  return s;
}

std::vector<float> copy(const float* p, int64_t n) { return std::vector<float>(p, p + n); }

class ArchTest : public ::testing::TestWithParam<std::string> {
 protected:
  const Architecture& arch() const { return find_architecture(GetParam()); }
};

TEST_P(ArchTest, PrefillMatchesOracle) {
  ops::Context ctx(2);
  ModelConfig c = small_config();
  Model model(ctx, c, arch());
  const int64_t B = c.chunk_size;
  for (int64_t n : {int64_t{1}, int64_t{7}, B - 1, B, B + 1, 3 * B + 5, int64_t{63}, int64_t{64}, int64_t{65}, int64_t{129}, int64_t{300}}) {
    auto tokens = tokens_for(c, n);
    model.prepare(ctx, shape({n}), LogitsMode::kAll);
    model.prefill(ctx, tokens.data(), n);
    ref::RefOutput want = ref::forward(model, tokens);
    EXPECT_TRUE(is_close(model.hidden(), want.hidden.data(), n * c.hidden_dim, within(1e-4))) << GetParam() << " hidden, n=" << n;
    EXPECT_TRUE(is_close(model.logits(), want.logits.data(), n * c.vocab_size, within(1e-4))) << GetParam() << " logits, n=" << n;
  }
}

TEST_P(ArchTest, PrefillMatchesOracleAtDefaultWidths) {
  ops::Context ctx(2);
  ModelConfig c;  // SPEC defaults (d=256, h=4, B=32, w=32), compression as the study ran BSBR
  c.compression_factor = 2;
  c.init_std = 0.05;
  Model model(ctx, c, arch());
  for (int64_t n : {int64_t{7}, int64_t{70}}) {
    auto tokens = tokens_for(c, n);
    model.prepare(ctx, shape({n}), LogitsMode::kAll);
    model.prefill(ctx, tokens.data(), n);
    ref::RefOutput want = ref::forward(model, tokens);
    EXPECT_TRUE(is_close(model.hidden(), want.hidden.data(), n * c.hidden_dim, within(1e-4))) << GetParam() << " n=" << n;
  }
}

// flops_model formulas against a direct count: the oracle counts its multiply-adds (SPEC §2
// algorithm); the mixer's analytic prefill_flops must be exactly twice that, and step_flops(t) must
// be twice what the oracle adds for token t (its count at t+1 tokens minus its count at t), so a
// step formula defined from the prefill formula (or the other way round) is still checked.
TEST_P(ArchTest, FlopFormulaMatchesDirectCount) {
  ops::Context ctx(1);
  ModelConfig c = small_config();
  Model model(ctx, c, arch());
  auto oracle_macs = [&](int64_t n) { return n == 0 ? 0.0 : ref::forward(model, tokens_for(c, n)).mixer_macs; };
  for (int64_t n : {int64_t{1}, int64_t{37}, 2 * c.chunk_size}) {
    double formula = 0;
    for (int64_t l = 0; l < c.num_layers; ++l) formula += model.mixer(static_cast<int>(l)).prefill_flops(n);
    EXPECT_NEAR(formula, 2 * oracle_macs(n), 1e-9 * formula) << GetParam() << " n=" << n;
  }
  double previous = 0;
  for (int64_t t = 0; t < 2 * c.chunk_size + 2; ++t) {
    const double macs = oracle_macs(t + 1);
    double step = 0;
    for (int64_t l = 0; l < c.num_layers; ++l) step += model.mixer(static_cast<int>(l)).step_flops(t);
    EXPECT_NEAR(step, 2 * (macs - previous), 1e-9 * step) << GetParam() << ": step_flops at position " << t;
    previous = macs;
  }
}

TEST_P(ArchTest, Causality) {
  ops::Context ctx(2);
  ModelConfig c = small_config();
  Model model(ctx, c, arch());
  const int64_t n = 3 * c.chunk_size + 5, d = c.hidden_dim;
  auto a = tokens_for(c, n);
  model.prepare(ctx, shape({n}), LogitsMode::kAll);
  model.prefill(ctx, a.data(), n);
  auto base = copy(model.hidden(), n * d);
  for (int64_t t : {int64_t{0}, c.chunk_size - 1, c.chunk_size, 2 * c.chunk_size + 3, n - 2}) {
    auto b = a;
    for (int64_t s = t + 1; s < n; ++s) b[s] = (b[s] + 1 + static_cast<int32_t>(s)) % static_cast<int32_t>(c.vocab_size);
    model.prefill(ctx, b.data(), n);
    // Positions <= t must not move; position t+1 must (the test can fail).
    EXPECT_TRUE(is_close(model.hidden(), base.data(), (t + 1) * d, within(1e-5))) << GetParam() << ": later tokens changed position <= " << t;
    EXPECT_FALSE(is_close(model.hidden() + (t + 1) * d, base.data() + (t + 1) * d, d, within(1e-3))) << "changed token had no effect";
  }
}

TEST_P(ArchTest, DecodeEqualsPrefill) {
  ops::Context ctx(2);
  ModelConfig c = small_config();
  Model model(ctx, c, arch());
  const int64_t n = 4 * c.chunk_size + 7, V = c.vocab_size;
  auto tokens = tokens_for(c, n);
  for (int64_t n0 : {int64_t{1}, c.chunk_size - 1, c.chunk_size + 3}) {
    model.prepare(ctx, shape({n, n0}, n), LogitsMode::kAll);
    model.prefill(ctx, tokens.data(), n);
    auto full = copy(model.logits(), n * V);
    model.prefill(ctx, tokens.data(), n0);
    EXPECT_TRUE(is_close(model.logits(), full.data(), n0 * V, within(1e-4))) << "prefix prefill";
    for (int64_t t = n0; t < n; ++t) {
      model.step(ctx, &tokens[t], t);
      ASSERT_TRUE(is_close(model.logits(), full.data() + t * V, V, within(1e-4))) << GetParam() << ": step at position " << t
                                                                            << " after a prefill of " << n0;
    }
  }
}

TEST_P(ArchTest, BatchEqualsSequences) {
  ops::Context ctx(2);
  ModelConfig c = small_config();
  c.batch_size = 2;
  Model model(ctx, c, arch());
  test::expect_batch_equals_sequences(ctx, model, 2 * c.chunk_size + 3);
}

TEST_P(ArchTest, GenerateEqualsRecompute) {
  ops::Context ctx(2);
  Config cfg;
  cfg.model = small_config();
  cfg.bench.n_tokens = 12;
  cfg.bench.repeats = 1;
  cfg.bench.warmup = 0;
  Model model(ctx, cfg.model, arch());
  Runner runner(ctx, cfg);
  const int64_t n = cfg.model.chunk_size + 5;
  RunRecord gen = runner.run(model, {GetParam(), Workload::kGenerate, n});
  RunRecord rec = runner.run(model, {GetParam(), Workload::kRecompute, n});
  ASSERT_EQ(gen.status, "ok") << gen.reason;
  ASSERT_EQ(rec.status, "ok") << rec.reason;
  EXPECT_EQ(gen.generated.size(), static_cast<std::size_t>(cfg.bench.n_tokens + 1));
  EXPECT_EQ(gen.generated, rec.generated) << GetParam() << ": decode state and full recompute disagree";
}

// The thread count changes how work is split (blocks of chunks, chunk groups, tiles per thread),
// never the result: at 2 and 5 threads (oversubscribed on a small machine) the prefill's hidden
// states and logits, and the logits of decode steps after a shorter prefill, equal those at 1
// thread within the oracle tolerance. SPEC default widths, an odd length over several chunks of
// every chunked model (11 chunks of 32, 6 of Linear/DeltaNet's 64), so every parallel path splits.
TEST_P(ArchTest, ResultsDoNotDependOnThreads) {
  ModelConfig c;
  c.compression_factor = 2;
  c.init_std = 0.05;
  const int64_t n = 333, n0 = 317, d = c.hidden_dim, V = c.vocab_size;
  const auto tokens = tokens_for(c, n);
  struct Out {
    std::vector<float> hidden, logits, steps;
  };
  auto run = [&](int threads) {
    ops::Context ctx(threads);
    Model model(ctx, c, arch());
    model.prepare(ctx, shape({n, n0}, n), LogitsMode::kAll);
    model.prefill(ctx, tokens.data(), n);
    Out out{copy(model.hidden(), n * d), copy(model.logits(), n * V), {}};
    model.prefill(ctx, tokens.data(), n0);
    for (int64_t t = n0; t < n; ++t) {
      model.step(ctx, &tokens[t], t);
      out.steps.insert(out.steps.end(), model.logits(), model.logits() + V);
    }
    return out;
  };
  const Out one = run(1);
  for (int threads : {2, 5}) {
    const Out many = run(threads);
    EXPECT_TRUE(is_close(many.hidden.data(), one.hidden.data(), n * d, test::kOracleTol)) << GetParam() << " hidden, threads " << threads;
    EXPECT_TRUE(is_close(many.logits.data(), one.logits.data(), n * V, test::kOracleTol)) << GetParam() << " logits, threads " << threads;
    EXPECT_TRUE(is_close(many.steps.data(), one.steps.data(), (n - n0) * V, test::kOracleTol)) << GetParam() << " decode, threads " << threads;
  }
}

INSTANTIATE_TEST_SUITE_P(All, ArchTest, ::testing::ValuesIn(architecture_names()), [](const auto& info) { return info.param; });

TEST(ParamCounts, StudyDefaults) {
  // SPEC §1: with the defaults these must be exact (BSBR with compression_factor 2, as the study ran it).
  const std::map<std::string, int64_t> expected = {{"Standard", 3614720}, {"Linear", 3614720}, {"DeltaNet", 3614720},
                                                   {"SlidingWindow", 3614720}, {"Hopfield", 3614720}, {"GAU", 4403712},
                                                   {"BSBR", 5983488}};
  ops::Context ctx(1);
  ModelConfig c;
  c.compression_factor = 2;
  for (const Architecture& a : architectures()) {
    ASSERT_TRUE(expected.count(a.name)) << "no expected count for " << a.name;
    Model m(ctx, c, a);
    EXPECT_EQ(m.param_count(false), expected.at(a.name)) << a.name;
    EXPECT_EQ(m.param_count(true), expected.at(a.name) + 256 * 10000 + 10000) << a.name << " with LM head";
  }
}

TEST(Hopfield, EqualsStandardAtTemperatureOne) {
  ops::Context ctx(2);
  ModelConfig c = small_config();
  c.temperature = 1.0;
  Model s(ctx, c, find_architecture("Standard")), h(ctx, c, find_architecture("Hopfield"));
  const int64_t n = 50;
  auto tokens = tokens_for(c, n);
  s.prepare(ctx, shape({n}));
  h.prepare(ctx, shape({n}));
  s.prefill(ctx, tokens.data(), n);
  h.prefill(ctx, tokens.data(), n);
  EXPECT_TRUE(is_close(s.hidden(), h.hidden(), n * c.hidden_dim, exact()));
  c.temperature = 0.5;  // and differs otherwise
  Model h2(ctx, c, find_architecture("Hopfield"));
  h2.prepare(ctx, shape({n}));
  h2.prefill(ctx, tokens.data(), n);
  EXPECT_FALSE(is_close(s.hidden(), h2.hidden(), n * c.hidden_dim, within(1e-3)));
}

}  // namespace
}  // namespace bsbr

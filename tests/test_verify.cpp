// The correctness checks can fail: the per-element comparison (core/compare.hpp) against NaN and
// against errors confined to small values; each architecture's oracle comparison against a
// mutated oracle (one term of SPEC §2 dropped); and `compare --verify` against a model whose fast
// path computes a different function than its oracle.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "bench/runner.hpp"
#include "bench/verify.hpp"
#include "core/compare.hpp"
#include "model_checks.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

using test::is_close;
using test::within;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(Compare, PassesWithinTheTolerance) {
  std::vector<float> b = {1.0f, -2.0f, 1000.0f, 0.0f}, a = {1.00001f, -2.00001f, 1000.05f, 5e-6f};
  Closeness c = compare_close(a.data(), b.data(), 4, {1e-5, 1e-4});
  EXPECT_TRUE(c.ok()) << c.describe();
  EXPECT_EQ(c.violations, 0);
  EXPECT_LE(c.worst_ratio, 1.0);
  EXPECT_TRUE(is_close(a, b, {1e-5, 1e-4}));
}

// The old helper skipped NaN in the reference, so an all-NaN reference matched with error 0.
TEST(Compare, FailsOnNonFiniteOnEitherSide) {
  const std::vector<float> good = {1, 2, 3, 4};
  for (float bad : {kNaN, kInf, -kInf}) {
    std::vector<float> a = good, b = good;
    a[2] = bad;
    Closeness ca = compare_close(a.data(), b.data(), 4, within(1e-3));
    EXPECT_FALSE(ca.ok()) << bad << " in the result";
    EXPECT_EQ(ca.first, 2);
    EXPECT_EQ(ca.worst, 2);
    EXPECT_TRUE(std::isinf(ca.worst_ratio));
    EXPECT_NE(ca.describe().find("non-finite at [2]"), std::string::npos) << ca.describe();
    Closeness cb = compare_close(good.data(), a.data(), 4, within(1e-3));
    EXPECT_FALSE(cb.ok()) << bad << " in the reference";
  }
  const std::vector<float> nan(4, kNaN);
  EXPECT_FALSE(is_close(nan, nan, within(1))) << "an all-NaN result must not match an all-NaN reference";
  EXPECT_FALSE(is_close(good, nan, within(1))) << "an all-NaN reference must not match";
  EXPECT_FALSE(is_close(nan, good, within(1)));
}

// The old helper scaled by the tensor's largest value, so an error confined to a small term passed.
TEST(Compare, AnErrorInASmallElementFails) {
  std::vector<float> b(100, 0.01f), a;
  b[0] = 1000.0f;
  a = b;
  a[57] = 0.02f;  // 100 % off, but 1e-5 of the largest value
  Closeness c = compare_close(a.data(), b.data(), 100, within(1e-4));
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.violations, 1);
  EXPECT_EQ(c.first, 57);
  EXPECT_EQ(c.worst, 57);
  EXPECT_FLOAT_EQ(c.worst_a, 0.02f);
  EXPECT_FLOAT_EQ(c.worst_b, 0.01f);
  EXPECT_NEAR(c.max_abs_error, 0.01, 1e-7);
  EXPECT_NE(c.describe().find("1 of 100 outside"), std::string::npos) << c.describe();
  EXPECT_NE(c.describe().find("worst [57]"), std::string::npos) << c.describe();
}

TEST(Compare, ReportsTheFirstAndTheWorstViolation) {
  std::vector<float> b = {1, 1, 1, 1}, a = {1, 1.1f, 1, 3};
  Closeness c = compare_close(a.data(), b.data(), 4, within(1e-3));
  EXPECT_EQ(c.violations, 2);
  EXPECT_EQ(c.first, 1);
  EXPECT_EQ(c.worst, 3);
  ::testing::AssertionResult r = is_close(a, b, within(1e-3));
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("first [1]"), std::string::npos) << r.message();
}

TEST(Compare, ExactToleranceAcceptsOnlyEqualValues) {
  std::vector<float> a = {1, 2}, b = {1, 2};
  EXPECT_TRUE(is_close(a, b, test::exact()));
  b[1] = std::nextafter(2.0f, 3.0f);
  EXPECT_FALSE(is_close(a, b, test::exact()));
  EXPECT_FALSE(is_close(std::vector<float>{1, 2}, std::vector<float>{1, 2, 3}, within(1))) << "sizes differ";
}

// Mutation tests: the fast model matches its oracle, and the oracle with one term of the
// architecture dropped does not match it. The config makes the dropped term matter (n past a
// chunk or window, temperature != 1).
struct MutationCase {
  const char* arch;
  ref::Mutation mutation;
  const char* name;
  int64_t n;
  void (*tweak)(ModelConfig&);
};
void PrintTo(const MutationCase& c, std::ostream* os) { *os << c.name; }

class Mutations : public ::testing::TestWithParam<MutationCase> {};

TEST_P(Mutations, OracleComparisonFailsWhenATermIsDropped) {
  const MutationCase& m = GetParam();
  ops::Context ctx(2);
  ModelConfig c = test::tiny_config(64, 41);
  c.chunk_size = 8;
  c.window_size = 5;
  if (m.tweak) m.tweak(c);
  Model model(ctx, c, find_architecture(m.arch));
  test::OracleComparison good = test::compare_with_oracle(ctx, model, m.n);
  ASSERT_TRUE(good.hidden.ok()) << m.name << " unmutated: " << good.hidden.describe();
  ASSERT_TRUE(good.logits.ok()) << m.name << " unmutated: " << good.logits.describe();
  test::OracleComparison bad = test::compare_with_oracle(ctx, model, m.n, test::kOracleTol, {m.mutation});
  EXPECT_FALSE(bad.hidden.ok()) << m.name << ": the mutated oracle still matches: " << bad.hidden.describe();
  EXPECT_FALSE(bad.logits.ok()) << m.name << ": the mutated oracle still matches: " << bad.logits.describe();
}

INSTANTIATE_TEST_SUITE_P(
    EveryArchitecture, Mutations,
    ::testing::Values(MutationCase{"BSBR", ref::Mutation::kBsbrNoRetrieval, "BSBR_no_retrieval", 29, nullptr},
                      MutationCase{"Linear", ref::Mutation::kLinearNoNormalizer, "Linear_no_normalizer", 29, nullptr},
                      MutationCase{"DeltaNet", ref::Mutation::kDeltaNetNoBeta, "DeltaNet_no_beta", 29, nullptr},
                      MutationCase{"GAU", ref::Mutation::kGauNoGate, "GAU_no_gate", 29, nullptr},
                      MutationCase{"SlidingWindow", ref::Mutation::kWindowUnbounded, "SlidingWindow_no_window_bound", 29, nullptr},
                      MutationCase{"Hopfield", ref::Mutation::kHopfieldNoTemperature, "Hopfield_no_temperature", 29,
                                   [](ModelConfig& c) { c.temperature = 2.5; }},
                      MutationCase{"Standard", ref::Mutation::kStandardNoCausalMask, "Standard_no_causal_mask", 29, nullptr},
                      MutationCase{"Standard", ref::Mutation::kStandardNoScale, "Standard_no_scale", 29, nullptr}),
    [](const auto& info) { return std::string(info.param.name); });

// The tool's verify pass: passes every architecture at its default tolerance, with a batch of two
// and the decode path, and records what it compared.
TEST(Verify, EveryArchitecturePassesWithDecodeAndBatch) {
  ops::Context ctx(2);
  ModelConfig c = test::tiny_config(64, 43);
  c.chunk_size = 8;
  c.window_size = 5;
  c.batch_size = 2;
  for (const Architecture& a : architectures()) {
    Model model(ctx, c, a);
    Verifier verifier(20);
    VerifyRecord r = verifier.verify(ctx, model, Workload::kDecode, 100, 2);
    EXPECT_TRUE(r.ran);
    EXPECT_TRUE(r.ok) << a.name << ": " << r.reason;
    EXPECT_EQ(r.length, 20);
    EXPECT_EQ(r.decode_from, 9);
    EXPECT_GT(r.max_abs_error, 0) << a.name << ": f32 against double is never exact";
    EXPECT_LE(r.max_error_ratio, 1.0) << a.name;
    VerifyRecord shorter = verifier.verify(ctx, model, Workload::kPrefill, 7, 2);
    EXPECT_TRUE(shorter.ok) << a.name << ": " << shorter.reason;
    EXPECT_EQ(shorter.length, 7) << "min(n, verify_length)";
    EXPECT_EQ(shorter.decode_from, 0) << "prefill does not check the decode path";
  }
}

// With a zero tolerance the same comparison must fail and say where.
TEST(Verify, ZeroToleranceFailsAndSaysWhere) {
  ops::Context ctx(2);
  ModelConfig c = test::tiny_config(64, 43);
  Model model(ctx, c, find_architecture("Linear"));
  VerifyRecord r = Verifier(16, test::exact()).verify(ctx, model, Workload::kGenerate, 16, 1);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("verify at length 16"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("sequence 0 at position"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("|a-b| <= 0 + 0|b|"), std::string::npos) << r.reason;
}

// A NaN injected into one weight reaches the outputs: the verify pass fails on the non-finite values
// (the old test helper skipped NaN in the reference).
TEST(Verify, InjectedNaNFailsTheVerifyPass) {
  ops::Context ctx(2);
  Model model(ctx, test::tiny_config(64, 43), find_architecture("GAU"));
  model.params().find("layers.1.attn.v_proj.weight")->value.data()[3] = kNaN;
  VerifyRecord r = Verifier(12).verify(ctx, model, Workload::kPrefill, 12, 1);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("non-finite"), std::string::npos) << r.reason;
  EXPECT_TRUE(std::isinf(r.max_error_ratio));
}

// A fast path that computes another function than the oracle of its name: Hopfield (T = 2.5)
// registered as "Standard". The runner must fail the point in its verify pass and not time it.
TEST(Verify, RunnerFailsAPointWhoseModelDisagreesWithItsOracle) {
  ops::Context ctx(2);
  Config cfg;
  cfg.model = test::tiny_config(64, 47);
  cfg.model.temperature = 2.5;
  cfg.bench.repeats = 2;
  cfg.bench.warmup = 0;
  cfg.bench.n_tokens = 3;
  cfg.bench.verify_length = 24;
  Model impostor(ctx, cfg.model, Architecture{"Standard", find_architecture("Hopfield").make, "Hopfield posing as Standard"});
  Runner runner(ctx, cfg);
  RunRecord rec = runner.run(impostor, {"Standard", Workload::kPrefill, 50});
  EXPECT_EQ(rec.status, "failed");
  EXPECT_TRUE(rec.samples_s.empty()) << "a point that fails verification is not timed";
  EXPECT_NE(rec.reason.find("against the plain-loop oracle"), std::string::npos) << rec.reason;
  EXPECT_TRUE(rec.verify.ran);
  EXPECT_FALSE(rec.verify.ok);
  EXPECT_EQ(rec.verify.length, 24);
  EXPECT_GT(rec.verify.max_error_ratio, 1.0);

  // The genuine model passes and is timed; with verify off the impostor is timed too.
  Model genuine(ctx, cfg.model, find_architecture("Hopfield"));
  RunRecord ok = runner.run(genuine, {"Hopfield", Workload::kGenerate, 50});
  EXPECT_EQ(ok.status, "ok") << ok.reason;
  EXPECT_EQ(ok.samples_s.size(), 2u);
  EXPECT_TRUE(ok.verify.ok);
  EXPECT_EQ(ok.verify.decode_from, 11);
  cfg.bench.verify = false;
  Runner unchecked(ctx, cfg);
  RunRecord blind = unchecked.run(impostor, {"Standard", Workload::kPrefill, 50});
  EXPECT_EQ(blind.status, "ok");
  EXPECT_FALSE(blind.verify.ran);
}

}  // namespace
}  // namespace bsbr

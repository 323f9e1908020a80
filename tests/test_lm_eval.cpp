// The lm study's evaluation and statistics (src/lm/evaluate.*, src/lm/aggregate.*): the context
// evaluation's NLL against a plain reference (each window run unpadded through Model::prefill and
// a double log-softmax written out here), every text token scored once per context, bucket sums
// equal to the total, and the t interval against hand values.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.hpp"
#include "lm/aggregate.hpp"
#include "lm/evaluate.hpp"
#include "model/model.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

// Three documents of odd lengths (the second longer than every context below, the third shorter
// than one window), each preceded by <|endoftext|> = 0; random ids in [1, V).
TokenSplit synthetic_split(int64_t V) {
  TokenSplit s;
  CounterRng rng(7, 1);
  uint64_t i = 0;
  for (int64_t len : {37, 141, 5}) {
    s.names.push_back("doc" + std::to_string(s.names.size()));
    s.doc_begin.push_back(static_cast<int64_t>(s.tokens.size()));
    s.tokens.push_back(0);
    for (int64_t t = 0; t < len; ++t) s.tokens.push_back(1 + static_cast<int32_t>(rng.bits(i++) % static_cast<uint64_t>(V - 1)));
  }
  s.doc_begin.push_back(static_cast<int64_t>(s.tokens.size()));
  return s;
}

ModelConfig tiny(int64_t V) {
  ModelConfig c = test::small_run_config(1, 1).model;
  c.vocab_size = V;
  c.init_std = 0.5;  // logits far from uniform, so a wrong target changes the NLL visibly
  return c;
}

// The plain reference: every window of eval_windows at its own length (no padding), logits of
// every position from Model::prefill, -log softmax in double written out, targets tokens[p + 1].
// shift = 1 is the truth; shift = 0 scores the input token itself (a mutation).
double reference_nll(ops::Context& ctx, Model& model, const TokenSplit& split, int64_t context, int shift, int64_t* count) {
  double total = 0;
  *count = 0;
  const int64_t V = model.config().vocab_size;
  for (const EvalWindow& w : eval_windows(split, context)) {
    RunShape shape;
    shape.prefill_lengths = {w.length};
    model.prepare(ctx, shape, LogitsMode::kAll);
    const int32_t* tok = split.tokens.data() + w.begin;
    model.prefill(ctx, tok, w.length);
    for (int64_t p = 0; p < w.length; ++p) {
      const float* row = model.logits() + p * V;
      double mx = row[0];
      for (int64_t v = 1; v < V; ++v) mx = std::max(mx, static_cast<double>(row[v]));
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(static_cast<double>(row[v]) - mx);
      total += mx + std::log(z) - row[tok[p + shift]];
      ++*count;
    }
    model.release(ctx);
  }
  return total;
}

class LmEval : public ::testing::TestWithParam<const char*> {};

TEST_P(LmEval, NllEqualsThePlainReferenceAtEveryContext) {
  const int64_t V = 61;
  ops::Context ctx(2);
  Model model(ctx, tiny(V), find_architecture(GetParam()));
  const TokenSplit split = synthetic_split(V);
  for (int64_t context : {1, 16, 32, 50, 200}) {
    SCOPED_TRACE("context " + std::to_string(context));
    const lm::ContextEval e = lm::evaluate_context(ctx, model, split, context, {0, 8, 24}, 200, 0);
    int64_t count = 0;
    const double ref = reference_nll(ctx, model, split, context, 1, &count);
    EXPECT_EQ(e.tokens, count);
    EXPECT_NEAR(e.nll, ref, 1e-5 * std::fabs(ref)) << "mean nll " << e.nll / e.tokens << " vs " << ref / count;
    // The check can fail: scoring the input token instead of the next one is 100 x the tolerance off.
    int64_t c2 = 0;
    const double wrong = reference_nll(ctx, model, split, context, 0, &c2);
    EXPECT_GT(std::fabs(wrong - e.nll), 1e-3 * std::fabs(ref));
  }
}

INSTANTIATE_TEST_SUITE_P(Models, LmEval, ::testing::Values("Standard", "Linear", "BSBR", "SlidingWindow"));

TEST(LmEval, EveryTextTokenScoredOncePerContextAndBucketsSumToTheTotal) {
  const int64_t V = 61;
  ops::Context ctx(2);
  Model model(ctx, tiny(V), find_architecture("GAU"));
  const TokenSplit split = synthetic_split(V);
  EXPECT_EQ(lm::text_tokens_of(split, 0), 37 + 141 + 5);
  EXPECT_EQ(lm::text_tokens_of(split, 2), 37 + 141);
  for (int64_t context : {1, 7, 64, 128, 300}) {
    SCOPED_TRACE("context " + std::to_string(context));
    for (int64_t docs : {0, 1, 2}) {
      const lm::ContextEval e = lm::evaluate_context(ctx, model, split, context, {0, 4, 40, 100}, 300, docs);
      EXPECT_EQ(e.tokens, lm::text_tokens_of(split, docs));
      double nll = 0;
      int64_t tokens = 0;
      for (const lm::BucketNll& b : e.buckets) {
        nll += b.nll;
        tokens += b.tokens;
        if (b.lo >= context) {
          EXPECT_EQ(b.tokens, 0) << "bucket [" << b.lo << ", " << b.hi << ") beyond the context";
        }
      }
      EXPECT_EQ(tokens, e.tokens);
      EXPECT_NEAR(nll, e.nll, 1e-9 * e.nll);
      ASSERT_EQ(e.buckets.size(), 4u);
      EXPECT_EQ(e.buckets.back().hi, 300);
    }
  }
  // Position p goes to the bucket holding p: at context 7 with buckets {0, 4}, a 37-token document
  // has windows of 7 (5 full + one of 2): positions 0..3 -> 4 per full window.
  const lm::ContextEval e = lm::evaluate_context(ctx, model, split, 7, {0, 4}, 7, 1);
  EXPECT_EQ(e.buckets[0].tokens, 5 * 4 + 2);
  EXPECT_EQ(e.buckets[1].tokens, 5 * 3);
}

TEST(LmEval, PaddedLengthAndNextTokenNll) {
  EXPECT_EQ(lm::padded_length(1, 2048), 128);
  EXPECT_EQ(lm::padded_length(128, 2048), 128);
  EXPECT_EQ(lm::padded_length(129, 2048), 256);
  EXPECT_EQ(lm::padded_length(2000, 2048), 2048);
  EXPECT_EQ(lm::padded_length(3, 5), 5);
  EXPECT_EQ(lm::padded_length(60, 100), 100);
  // logits {0, ln 2, 0}: log-sum-exp = ln 4, so -log p(1) = ln 2, -log p(0) = ln 4.
  const float row[] = {0.0f, static_cast<float>(std::log(2.0)), 0.0f};
  EXPECT_NEAR(lm::next_token_nll(row, 3, 1), std::log(2.0), 1e-7);
  EXPECT_NEAR(lm::next_token_nll(row, 3, 0), std::log(4.0), 1e-7);
  // Huge logits do not overflow (the max is subtracted first).
  const float big[] = {1000.0f, 1000.0f};
  EXPECT_NEAR(lm::next_token_nll(big, 2, 0), std::log(2.0), 1e-6);
}

TEST(LmStats, StudentTIntervalAgainstHandValues) {
  // {1, 2, 3}: mean 2, s = 1, t_{0.975, 2} = 4.302652729911275 -> half = 4.3026527 / sqrt(3).
  lm::Interval a = lm::t_interval({1, 2, 3});
  EXPECT_EQ(a.n, 3);
  EXPECT_DOUBLE_EQ(a.mean, 2.0);
  EXPECT_NEAR(a.half, 4.302652729911275 / std::sqrt(3.0), 1e-9);
  // {10, 12}: s = sqrt(2), t_{0.975, 1} = 12.706204736174705 -> half = 12.7062047 (s / sqrt(2) = 1).
  lm::Interval b = lm::t_interval({10, 12});
  EXPECT_DOUBLE_EQ(b.mean, 11.0);
  EXPECT_NEAR(b.half, 12.706204736174705, 1e-8);
  // Five values: t_{0.975, 4} = 2.7764451051977987.
  lm::Interval c = lm::t_interval({4, 8, 6, 5, 7});
  EXPECT_NEAR(c.half, 2.7764451051977987 * std::sqrt(2.5) / std::sqrt(5.0), 1e-9);
  // One value: no spread; non-finite values are left out; none: NaN.
  EXPECT_EQ(lm::t_interval({5}).half, 0.0);
  lm::Interval d = lm::t_interval({1, NAN, 3, INFINITY});
  EXPECT_EQ(d.n, 2);
  EXPECT_DOUBLE_EQ(d.mean, 2.0);
  EXPECT_NEAR(d.half, 12.706204736174705 * std::sqrt(2.0) / std::sqrt(2.0), 1e-8);
  EXPECT_EQ(lm::t_interval({}).n, 0);
  EXPECT_TRUE(std::isnan(lm::t_interval({NAN}).mean));
}

}  // namespace
}  // namespace bsbr

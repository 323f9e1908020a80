// SlidingWindow-specific checks (the generic oracle, causality, decode and batch checks run for it
// in test_models.cpp): a window covering the whole sequence is exactly Standard; w = 0 lets each
// token see only itself; the decode ring buffer wraps around correctly over many steps; and the
// decode state does not grow with n; prefill in many slabs (small slabs, windows crossing slab
// boundaries, partial last slabs, batch > 1) matches the oracle and decode; prefill memory is O(slab).
#include <gtest/gtest.h>

#include "bench/runner.hpp"
#include "model/arch/chunked.hpp"
#include "model/model.hpp"
#include "model_checks.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

using test::exact;
using test::is_close;
using test::within;

// Tiny widths; init_std 0.2 keeps attention far from uniform, so a wrong window shows.
ModelConfig config_with_window(int64_t window) {
  ModelConfig c = test::tiny_config(/*linear_chunk_size=*/16, /*seed=*/11);
  c.window_size = window;
  return c;
}

using test::run_shape;

std::vector<int32_t> tokens(const ModelConfig& c, int64_t n) { return Runner::input_tokens(c, 1, n); }

// Final hidden states [n, d] of one prefill.
std::vector<float> prefill_hidden(ops::Context& ctx, Model& model, const std::vector<int32_t>& t) {
  const int64_t n = static_cast<int64_t>(t.size());
  model.prepare(ctx, run_shape({n}));
  model.prefill(ctx, t.data(), n);
  return std::vector<float>(model.hidden(), model.hidden() + n * model.config().hidden_dim);
}

TEST(SlidingWindow, WindowCoveringTheSequenceEqualsStandardExactly) {
  ops::Context ctx(2);
  // w >= 128 uses Standard's tile size, so the banded op visits the same tiles in the same order.
  ModelConfig c = config_with_window(1000);
  Model sw(ctx, c, find_architecture("SlidingWindow")), st(ctx, c, find_architecture("Standard"));
  for (int64_t n : {int64_t{1}, int64_t{50}, int64_t{300}, int64_t{1001}}) {
    auto t = tokens(c, n);
    EXPECT_TRUE(is_close(prefill_hidden(ctx, sw, t), prefill_hidden(ctx, st, t), exact())) << "n=" << n;
  }
  // And the window matters once it is shorter than the sequence (the test can fail).
  ModelConfig narrow = config_with_window(16);
  Model sw16(ctx, narrow, find_architecture("SlidingWindow"));
  const int64_t n = 100;
  auto t = tokens(c, n);
  auto narrow_hidden = prefill_hidden(ctx, sw16, t), full_hidden = prefill_hidden(ctx, st, t);
  const int64_t d = c.hidden_dim;
  // (Different tile sizes sum in a different order, hence a tolerance here.)
  EXPECT_TRUE(is_close(narrow_hidden.data(), full_hidden.data(), 17 * d, within(1e-5))) << "positions 0..16 see their whole past";
  EXPECT_FALSE(is_close(narrow_hidden.data() + 17 * d, full_hidden.data() + 17 * d, (n - 17) * d, within(1e-3)));
}

TEST(SlidingWindow, WindowZeroAttendsToItselfOnly) {
  ops::Context ctx(2);
  ModelConfig c = config_with_window(0);
  ParamStore params(ctx.memory());
  auto mixer = find_architecture("SlidingWindow").make(c, params, "attn");
  params.initialize(c.seed, c.init_std);
  const int64_t n = 37, d = c.hidden_dim;
  RunShape s = run_shape({n}, n + 5);
  mixer->prepare(ctx, s);
  std::vector<float> x = test::random_vector(n * d, 5), residual(n * d, 0.f);
  mixer->prefill(ctx, x.data(), residual.data(), n);
  // softmax over the single key s = t is 1, so Attn(x)_t = (x_t.Wv + bv).Wo + bo.
  auto P = [&](const std::string& name) { return params.find("attn." + name)->value.data(); };
  std::vector<float> want(n * d);
  for (int64_t t = 0; t < n; ++t) {
    std::vector<double> v(d);
    for (int64_t j = 0; j < d; ++j) {
      v[j] = P("v_proj.bias")[j];
      for (int64_t i = 0; i < d; ++i) v[j] += static_cast<double>(x[t * d + i]) * P("v_proj.weight")[i * d + j];
    }
    for (int64_t j = 0; j < d; ++j) {
      double o = P("out_proj.bias")[j];
      for (int64_t i = 0; i < d; ++i) o += v[i] * P("out_proj.weight")[i * d + j];
      want[t * d + j] = static_cast<float>(o);
    }
  }
  EXPECT_TRUE(is_close(residual.data(), want.data(), n * d, within(1e-5)));
  // Decode: the same, one token at a time (the ring holds one slot that every step overwrites).
  std::vector<float> step_residual(d);
  for (int64_t t = n; t < n + 5; ++t) {
    std::fill(step_residual.begin(), step_residual.end(), 0.f);
    mixer->step(ctx, x.data() + (t - n) * d, step_residual.data(), t);
    EXPECT_TRUE(is_close(step_residual.data(), want.data() + (t - n) * d, d, within(1e-5))) << "step at " << t;
  }
  mixer->release();
}

TEST(SlidingWindow, WindowZeroModelIgnoresOtherTokens) {
  ops::Context ctx(2);
  ModelConfig c = config_with_window(0);
  Model model(ctx, c, find_architecture("SlidingWindow"));
  const int64_t n = 40, d = c.hidden_dim;
  auto a = tokens(c, n), b = a;
  for (int64_t t = 0; t < n; t += 2) b[t] = (b[t] + 7) % static_cast<int32_t>(c.vocab_size);  // change every even position
  auto ha = prefill_hidden(ctx, model, a), hb = prefill_hidden(ctx, model, b);
  for (int64_t t = 0; t < n; ++t) {
    if (t % 2 == 1)
      EXPECT_TRUE(is_close(hb.data() + t * d, ha.data() + t * d, d, exact())) << "position " << t << " depends on another token";
    else
      EXPECT_FALSE(is_close(hb.data() + t * d, ha.data() + t * d, d, within(1e-3))) << "position " << t << " ignores its own token";
  }
}

// Decode far past the window after prefills of several lengths: the ring (w+1 = 6 slots) wraps
// many times, and every step must still equal the full prefill at that position.
TEST(SlidingWindow, RingBufferWrapsAroundOverManySteps) {
  ops::Context ctx(2);
  ModelConfig c = config_with_window(5);
  Model model(ctx, c, find_architecture("SlidingWindow"));
  const int64_t n = 80, V = c.vocab_size, R = c.window_size + 1;
  auto t = tokens(c, n);
  for (int64_t n0 : {int64_t{1}, R - 1, R, R + 1, 2 * R + 3, int64_t{40}}) {
    model.prepare(ctx, run_shape({n, n0}, n), LogitsMode::kAll);
    model.prefill(ctx, t.data(), n);
    std::vector<float> full(model.logits(), model.logits() + n * V);
    model.prefill(ctx, t.data(), n0);
    for (int64_t pos = n0; pos < n; ++pos) {
      model.step(ctx, &t[pos], pos);
      ASSERT_TRUE(is_close(model.logits(), full.data() + pos * V, V, within(1e-4))) << "step at " << pos << " after a prefill of " << n0;
    }
  }
}

TEST(SlidingWindow, DecodeStateIndependentOfLength) {
  ops::Context ctx(1);
  ModelConfig c = config_with_window(8);
  Model model(ctx, c, find_architecture("SlidingWindow"));
  const std::size_t per_layer = 2 * sizeof(float) * (c.window_size + 1) * c.hidden_dim;
  EXPECT_EQ(model.state_bytes(3), 2 * sizeof(float) * 3 * c.hidden_dim * c.num_layers) << "fewer tokens than the window";
  std::size_t allocated = 0;
  for (int64_t n : {int64_t{9}, int64_t{100}, int64_t{3000}}) {
    EXPECT_EQ(model.state_bytes(n), per_layer * c.num_layers) << "n=" << n;
    model.prepare(ctx, run_shape({n}, n + 50));
    std::size_t now = ctx.memory().current(MemCategory::kState);
    if (allocated == 0) allocated = now;
    EXPECT_EQ(now, allocated) << "allocated decode state grew with n=" << n;
    EXPECT_LT(now, 4 * model.state_bytes(n)) << "ring padding";
    model.release(ctx);
  }
  // Standard's KV cache, for contrast, grows with n (the comparison can fail).
  Model standard(ctx, c, find_architecture("Standard"));
  EXPECT_GT(standard.state_bytes(3000), 100 * standard.state_bytes(9) / 4);
}

// SlidingWindow whose prefill slabs hold 48 rows (three 16-row tiles for w < 32), so short sequences
// cross several slabs.
constexpr int64_t kSmallSlab = 48;
std::unique_ptr<Mixer> make_small_slabs(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return make_sliding_window(cfg, params, prefix, chunked::PrefillTiling{kSmallSlab, 128});
}
const Architecture kSmallSlabs{"SlidingWindow", make_small_slabs, "SlidingWindow with 48-row prefill slabs"};

TEST(SlidingWindow, ManySlabsMatchOracleAndDecode) {
  ops::Context ctx(2);
  const int64_t S = kSmallSlab;
  // w = 5: the window crosses a slab boundary for the first rows of each slab; w = 20 > a tile: the
  // history of a slab spans two tiles; w = 0: no history; w = 100 > S: the history spans slabs.
  for (int64_t w : {int64_t{5}, int64_t{20}, int64_t{0}, int64_t{100}}) {
    ModelConfig c = config_with_window(w);
    Model model(ctx, c, kSmallSlabs);
    SCOPED_TRACE("window " + std::to_string(w));
    test::expect_prefill_matches_oracle(ctx, model, {1, S - 1, S, S + 1, 2 * S + 37, 5 * S + 3});
    test::expect_decode_matches_prefill(ctx, model, 3 * S + 5, {S - 1, S, 2 * S + 37});
  }
}

TEST(SlidingWindow, ManySlabsEqualOneSlab) {
  // Tile-aligned history keeps every key tile where one pass has it: only the projections' row
  // counts differ, so small slabs agree with the default tiling to rounding, also with batch > 1.
  ops::Context ctx(2);
  ModelConfig c = config_with_window(20);
  const int64_t n = 2 * kSmallSlab + 37, d = c.hidden_dim, batch = 3;
  Model small(ctx, c, kSmallSlabs), one(ctx, c, find_architecture("SlidingWindow"));
  std::vector<int32_t> t = Runner::input_tokens(c, batch, n);
  small.prepare(ctx, run_shape({n}, 0, batch));
  one.prepare(ctx, run_shape({n}, 0, batch));
  small.prefill(ctx, t.data(), n);
  one.prefill(ctx, t.data(), n);
  EXPECT_TRUE(is_close(small.hidden(), one.hidden(), batch * n * d, within(1e-5)));
  // And per sequence, a batch equals the sequences run alone (the slabs use the batch strides right).
  Model alone(ctx, c, kSmallSlabs);
  for (int64_t s = 0; s < batch; ++s) {
    alone.prepare(ctx, run_shape({n}));
    alone.prefill(ctx, t.data() + s * n, n);
    EXPECT_TRUE(is_close(alone.hidden(), small.hidden() + s * n * d, n * d, within(1e-5))) << "sequence " << s;
  }
}

TEST(SlidingWindow, PrefillMemoryIsPerSlab) {
  // The mixers' prefill buffers are O(S + w) rows, independent of n. Full-length q, k, v, o buffers
  // would grow by 2 layers x 4 x 12,288 rows x d floats = 12 MiB from n = 4,096 to 16,384; the
  // allowance covers what the skeleton allocates per token beyond mixer_working_bytes's count.
  ops::Context ctx(2);
  ModelConfig c = config_with_window(32);
  Model model(ctx, c, find_architecture("SlidingWindow"));
  const std::size_t at_4k = test::mixer_working_bytes(ctx, model, 4096), at_16k = test::mixer_working_bytes(ctx, model, 16384);
  EXPECT_LT(at_16k, at_4k + (std::size_t{1} << 20)) << at_4k << " -> " << at_16k;
  EXPECT_LT(at_16k, std::size_t{4} << 20);
}

}  // namespace
}  // namespace bsbr

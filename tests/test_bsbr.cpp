// BSBR-specific checks (test_models.cpp runs the shared ones): one chunk equals Standard attention
// with the same weights (the conversion study's invariant); the uncompressed path; many slabs; the
// G_0 = 0 rule; decode across many chunk boundaries; decode state O(n/B); prefill memory O(n).
#include <gtest/gtest.h>

#include "core/limits.hpp"
#include "model/arch/chunked.hpp"
#include "model_checks.hpp"

namespace bsbr {
namespace {

using test::exact;
using test::is_close;
using test::within;

// Tiny widths (d 32, 2 heads of 16), chunks of 12, compression to d/c or none.
ModelConfig small_config(int64_t compression) {
  ModelConfig c = test::tiny_config(/*linear_chunk_size=*/16, /*seed=*/5);
  c.chunk_size = 12;
  c.compression_factor = compression;
  return c;
}

// BSBR whose prefill slabs hold two chunks, so short sequences cross several slabs.
std::unique_ptr<Mixer> make_bsbr_small_slabs(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return make_bsbr(cfg, params, prefix, chunked::PrefillTiling{2 * cfg.chunk_size, 128});
}
const Architecture kSmallSlabs{"BSBR", make_bsbr_small_slabs, "BSBR with two-chunk prefill slabs"};
// BSBR whose compression/decompression groups hold 16 chunks, so a slab has several.
std::unique_ptr<Mixer> make_bsbr_small_groups(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  chunked::PrefillTiling tiling;
  tiling.state_group_chunks = 16;
  return make_bsbr(cfg, params, prefix, tiling);
}
const Architecture kSmallGroups{"BSBR", make_bsbr_small_groups, "BSBR with 16-chunk state groups"};

TEST(Bsbr, OneChunkEqualsStandardAttention) {
  // chunk_size >= n: no chunk is complete, nothing is retrieved, and the local attention is full
  // causal attention. Standard registers q/k/v/out and the FFNs under the same names, so both
  // models get the same weights. A huge chunk_size runs with chunk 0's actual size.
  ops::Context ctx(2);
  for (auto [compression, chunk] : {std::pair<int64_t, int64_t>{0, 512}, {2, 512}, {2, limits::kChunkSize.hi}}) {
    ModelConfig c = small_config(compression);
    c.chunk_size = chunk;
    Model bsbr(ctx, c, find_architecture("BSBR")), standard(ctx, c, find_architecture("Standard"));
    EXPECT_LT(bsbr.estimate_bytes(test::run_shape({200}, 205), 2), std::size_t{64} << 20) << "chunk " << chunk;
    for (int64_t n : {int64_t{1}, int64_t{37}, int64_t{200}}) {
      auto t = Runner::input_tokens(c, 1, n);
      bsbr.prepare(ctx, test::run_shape({n}, n + 5), LogitsMode::kAll);
      standard.prepare(ctx, test::run_shape({n}, n + 5), LogitsMode::kAll);
      bsbr.prefill(ctx, t.data(), n);
      standard.prefill(ctx, t.data(), n);
      EXPECT_TRUE(is_close(bsbr.hidden(), standard.hidden(), n * c.hidden_dim, within(1e-5))) << "n=" << n << " c=" << compression;
      for (int64_t pos = n; pos < n + 5; ++pos) {
        int32_t next = static_cast<int32_t>(pos % c.vocab_size);
        bsbr.step(ctx, &next, pos);
        standard.step(ctx, &next, pos);
        ASSERT_TRUE(is_close(bsbr.logits(), standard.logits(), c.vocab_size, within(1e-5))) << "step " << pos << " c=" << compression;
      }
    }
  }
}

TEST(Bsbr, UncompressedMatchesOracleAndDecodes) {
  // Retrieval over the full chunk states F_j (dh² values per head) instead of f_j.
  ops::Context ctx(2);
  ModelConfig c = small_config(0);
  Model model(ctx, c, find_architecture("BSBR"));
  test::expect_prefill_matches_oracle(ctx, model, {1, 11, 12, 13, 100, 300});
  test::expect_decode_matches_prefill(ctx, model, 5 * c.chunk_size + 3, {1, c.chunk_size, 2 * c.chunk_size + 5});
}

TEST(Bsbr, ManySlabsMatchOracleAndDecode) {
  ops::Context ctx(2);
  for (int64_t compression : {int64_t{0}, int64_t{2}}) {
    ModelConfig c = small_config(compression);
    Model model(ctx, c, kSmallSlabs);
    const int64_t B = c.chunk_size;
    test::expect_prefill_matches_oracle(ctx, model, {B - 1, 2 * B, 2 * B + 1, 4 * B, 5 * B + 3, 300});
    test::expect_decode_matches_prefill(ctx, model, 6 * B + 2, {2 * B, 3 * B + 1, 4 * B - 1});
  }
}

TEST(Bsbr, FirstChunkRetrievesNothing) {
  // G_0 = 0, not unvec(b_d): a decompression bias changes every chunk i >= 1 and nothing in chunk 0.
  ops::Context ctx(2);
  ModelConfig c = small_config(2);
  const int64_t n = 3 * c.chunk_size, d = c.hidden_dim, B = c.chunk_size;
  Model plain(ctx, c, find_architecture("BSBR")), biased(ctx, c, find_architecture("BSBR"));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    Param* bias = biased.params().find("layers." + std::to_string(l) + ".attn.decompress_proj.bias");
    ASSERT_NE(bias, nullptr);
    std::fill(bias->value.data(), bias->value.data() + bias->value.size(), 0.5f);
  }
  auto t = Runner::input_tokens(c, 1, n);
  for (Model* m : {&plain, &biased}) {
    m->prepare(ctx, test::run_shape({n}));
    m->prefill(ctx, t.data(), n);
  }
  EXPECT_TRUE(is_close(biased.hidden(), plain.hidden(), B * d, exact())) << "chunk 0 saw the decompression bias";
  EXPECT_FALSE(is_close(biased.hidden() + B * d, plain.hidden() + B * d, d, within(1e-3))) << "chunk 1 should see it";
}

TEST(Bsbr, DecodeAcrossManyChunkBoundaries) {
  // Chunks of 4: 24 boundaries, each finishing a chunk and retrieving; prefills ending in either of
  // the first two groups of compression/decompression (16 chunks each); a batch of two.
  ops::Context ctx(2);
  for (int64_t compression : {int64_t{0}, int64_t{2}}) {
    ModelConfig c = small_config(compression);
    c.chunk_size = 4;
    Model model(ctx, c, kSmallGroups);
    test::expect_decode_matches_prefill(ctx, model, 100, {1, 4, 5, 8, 69, 72});
    c.batch_size = 2;
    Model batched(ctx, c, kSmallGroups);
    const int64_t n = 30, V = c.vocab_size;
    auto both = Runner::input_tokens(c, 2, n);  // [2, n]: sequences a and b
    batched.prepare(ctx, test::run_shape({n, 9}, n, 2), LogitsMode::kAll);
    batched.prefill(ctx, both.data(), n);
    const std::vector<float> full(batched.logits(), batched.logits() + 2 * n * V);
    std::vector<int32_t> prefix(both.begin(), both.begin() + 9);
    prefix.insert(prefix.end(), both.begin() + n, both.begin() + n + 9);
    batched.prefill(ctx, prefix.data(), 9);
    for (int64_t pos = 9; pos < n; ++pos) {
      int32_t next[2] = {both[pos], both[n + pos]};
      batched.step(ctx, next, pos);
      for (int s = 0; s < 2; ++s)
        ASSERT_TRUE(is_close(batched.logits() + s * V, full.data() + (s * n + pos) * V, V, within(1e-4))) << "sequence " << s << " position " << pos;
    }
  }
}

TEST(Bsbr, DecodeStateGrowsWithChunksNotTokens) {
  // SPEC defaults (d 256, h 4, B 32, c 2): each complete chunk adds one chunk memory row
  // [H_j (d) | f_j (h x d/c)] per layer; a KV cache would add 2 d per token.
  ops::Context ctx(1);
  ModelConfig c;
  c.compression_factor = 2;
  Model model(ctx, c, find_architecture("BSBR"));
  const int64_t B = c.chunk_size, d = c.hidden_dim, row = d + c.num_heads * (d / c.compression_factor);
  const std::size_t f = sizeof(float), L = c.num_layers;
  EXPECT_EQ(model.state_bytes(64 * B) - model.state_bytes(32 * B), L * 32 * row * f);
  // Within a chunk only the current chunk's K and V grow (2 d per token, at most B rows); when a
  // new chunk starts, the finished chunk's B rows are folded into one memory row.
  EXPECT_EQ(model.state_bytes(33 * B) - model.state_bytes(32 * B + 1), L * (B - 1) * 2 * d * f);
  EXPECT_EQ(model.state_bytes(32 * B) - model.state_bytes(32 * B + 1), L * ((2 * B - 2) * d - row) * f);
  Model standard(ctx, c, find_architecture("Standard"));
  EXPECT_LT(model.state_bytes(32768), standard.state_bytes(32768) / 10);
  // The formula is what decode actually holds: the state allocated for 32,768 positions is the
  // formula's plus one reserved chunk memory row per layer (for the chunk being filled).
  model.prepare(ctx, test::run_shape({64}, 32768));
  const std::size_t allocated = ctx.memory().current(MemCategory::kState);
  EXPECT_GE(allocated, model.state_bytes(32768));
  EXPECT_LE(allocated, model.state_bytes(32768) + L * row * f);
  model.release(ctx);
}

TEST(Bsbr, PrefillMemoryIsLinear) {
  // At n = 16,384 in chunks of 8 there are 2,048 chunks: one [nc, nc] retrieval score matrix per
  // head would be 16 MiB, 12 MiB more than at n = 8,192. From n to 2n the mixers may only grow by
  // their chunk memory rows (2 layers x 1,024 rows x (d + h d/c) floats = 0.5 MiB).
  ops::Context ctx(2);
  ModelConfig c = small_config(2);
  c.chunk_size = 8;
  Model model(ctx, c, find_architecture("BSBR"));
  const std::size_t at_8k = test::mixer_working_bytes(ctx, model, 8192), at_16k = test::mixer_working_bytes(ctx, model, 16384);
  EXPECT_LT(at_16k - at_8k, std::size_t{4} << 20);
  EXPECT_LT(at_16k, std::size_t{32} << 20);
}

}  // namespace
}  // namespace bsbr

// GAU-specific checks (test_models.cpp runs the shared ones): prefill tilings (slabs, groups of
// chunks with and without the intra-group term) do not change results; decode across many chunk
// boundaries; the decode state is one [E, E] prefix sum whatever n; prefill never holds every
// chunk's [E, E] state.
#include <gtest/gtest.h>

#include "core/limits.hpp"
#include "model/arch/chunked.hpp"
#include "model_checks.hpp"

namespace bsbr {
namespace {

// Tiny widths: d 32, E = 64, chunks of 12.
ModelConfig small_config() {
  ModelConfig c = test::tiny_config(/*linear_chunk_size=*/16, /*seed=*/7);
  c.chunk_size = 12;
  return c;
}

// Slabs of 4 chunks, groups of 2 chunks (an intra-group term in every group).
std::unique_ptr<Mixer> make_gau_groups_of_two(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return make_gau(cfg, params, prefix, chunked::PrefillTiling{4 * cfg.chunk_size, 2 * cfg.chunk_size});
}
// Slabs of 3 chunks, groups of one chunk (no intra-group term: S is updated after every chunk).
std::unique_ptr<Mixer> make_gau_groups_of_one(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return make_gau(cfg, params, prefix, chunked::PrefillTiling{3 * cfg.chunk_size, 1});
}

TEST(Gau, PrefillTilingsMatchOracleAndDecode) {
  ops::Context ctx(2);
  ModelConfig c = small_config();
  const int64_t B = c.chunk_size;
  for (const Architecture& arch : {Architecture{"GAU", make_gau_groups_of_two, ""}, Architecture{"GAU", make_gau_groups_of_one, ""}}) {
    Model model(ctx, c, arch);
    test::expect_prefill_matches_oracle(ctx, model, {B - 1, B + 1, 2 * B, 3 * B + 5, 4 * B, 9 * B + 1, 300});
    test::expect_decode_matches_prefill(ctx, model, 7 * B + 3, {2 * B, 4 * B + 1, 5 * B - 1});
  }
}

// On more threads than groups' worth of cores, the groups' phases (each group's state and intra
// term, the running sum, each cross term) run concurrently: groups of different sizes (a partial
// last group with an intra term) each use their own thread's score tile. Several lengths and
// rounds, since an overlap shows only when two groups' items run at once.
TEST(Gau, PrefillOnManyThreadsMatchesOracle) {
  ops::Context ctx(6);
  ModelConfig c = small_config();
  const int64_t B = c.chunk_size;
  Model model(ctx, c, Architecture{"GAU", make_gau_groups_of_two, ""});
  for (int round = 0; round < 12; ++round) test::expect_prefill_matches_oracle(ctx, model, {3 * B + 5, 7 * B + 7, 11 * B + 9});
}

TEST(Gau, DecodeAcrossManyChunkBoundaries) {
  ops::Context ctx(2);
  ModelConfig c = small_config();
  c.chunk_size = 4;
  Model model(ctx, c, find_architecture("GAU"));
  test::expect_decode_matches_prefill(ctx, model, 70, {1, 4, 5, 8});
}

TEST(Gau, HugeChunkIsOneChunk) {
  // chunk_size = the largest accepted (4,194,304): every position is in chunk 0 (no cross term), run with chunk 0's actual size.
  ops::Context ctx(2);
  ModelConfig c = small_config();
  c.chunk_size = limits::kChunkSize.hi;
  Model model(ctx, c, find_architecture("GAU"));
  EXPECT_LT(model.estimate_bytes(test::run_shape({200}, 230), 2), std::size_t{64} << 20);
  test::expect_prefill_matches_oracle(ctx, model, {1, 37, 200});
  test::expect_decode_matches_prefill(ctx, model, 60, {1, 33});
}

TEST(Gau, DecodeStateIsOnePrefixSum) {
  // S [E, E] plus the current chunk's K, V rows: bounded whatever n, and allocated that way.
  ops::Context ctx(1);
  ModelConfig c;  // SPEC defaults: E = 512, B = 32
  Model model(ctx, c, find_architecture("GAU"));
  const std::size_t E = c.expansion_factor * c.hidden_dim, B = c.chunk_size, L = c.num_layers, f = sizeof(float);
  for (int64_t n : {int64_t{1}, int64_t{32}, int64_t{33}, int64_t{65536}}) {
    const std::size_t rows = static_cast<std::size_t>(n - (n - 1) / c.chunk_size * c.chunk_size);
    EXPECT_EQ(model.state_bytes(n), L * (E * E + 2 * rows * E) * f) << "n=" << n;
  }
  std::vector<std::size_t> allocated;
  for (int64_t capacity : {int64_t{1024}, int64_t{65536}}) {
    model.prepare(ctx, test::run_shape({64}, capacity));
    allocated.push_back(ctx.memory().current(MemCategory::kState));
    model.release(ctx);
  }
  EXPECT_EQ(allocated[0], allocated[1]);
  EXPECT_EQ(allocated[0], L * (E * E + 2 * B * E) * f);
}

TEST(Gau, PrefillDoesNotHoldEveryChunkState) {
  // n = 16,384 in chunks of 8: 2,048 chunk states of [64, 64] would take 32 MiB. The mixers
  // hold one running state per layer plus O(slab) buffers.
  ops::Context ctx(2);
  ModelConfig c = small_config();
  c.chunk_size = 8;
  Model model(ctx, c, find_architecture("GAU"));
  EXPECT_LT(test::mixer_working_bytes(ctx, model, 16384), std::size_t{16} << 20);
}

}  // namespace
}  // namespace bsbr

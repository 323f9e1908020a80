// Both FLOP counts of a prefill point (README "How it measures"), derived here by hand and
// independently of src/'s formulas, for all seven architectures at n = 97: an odd length over
// several chunks (B = C = 32: three full chunks and one of a single row) and windows (w = 32).
//
//  - flops_model: SPEC §2's arithmetic under the README's one convention (matmul-like work only,
//    causal pairs only, each recurrence per token, LM head on the last position), written out per
//    architecture from the math below. Compared with the formula the model reports (the runner's
//    flops_model, Model::prefill_flops).
//  - flops_executed: what the kernels run, from their structure (tile and slab sizes, padded rows,
//    the chunkwise form, DeltaNet's UT-transform loop). Compared with the op layer's counter during
//    the point's untimed run (the runner's flops_executed), which adds 2·batch·M·N·K per matmul.
//
// In SPEC §2's order. Sizes: d = 32, h = 4 heads (dh = 8), ff = 48, V = 61, 2 layers, batch 1; BSBR c = 2 (d/c = 16) or
// none; GAU E = 2d = 64. Both counts share the skeleton: per layer the FFN 2·2·n·d·ff, and once the
// LM head on the last position 2·d·V. Multiply-add = 2 throughout.
#include <gtest/gtest.h>

#include <string>

#include "bench/runner.hpp"
#include "model/model.hpp"

namespace bsbr {
namespace {

constexpr double n = 97, d = 32, h = 4, dh = 8, ff = 48, V = 61, L = 2;
constexpr double B = 32;  // chunk_size = linear_chunk_size = window_size = 32
// Chunks over n = 97: k = ceil(97/32) = 4 (the last holds one row); complete chunks before the
// current one (the chunk of position 96): cur = 3.
constexpr double k = 4, cur = 3;
// Causal pairs inside chunks, Σ_{t<n} (t mod B + 1): three full chunks B(B+1)/2 = 528 each, and 1.
constexpr double P = 3 * 528 + 1;

Config point_config() {
  Config cfg;
  ModelConfig& c = cfg.model;
  c.vocab_size = 61;
  c.hidden_dim = 32;
  c.num_layers = 2;
  c.num_heads = 4;
  c.ff_dim = 48;
  c.chunk_size = 32;
  c.window_size = 32;
  c.linear_chunk_size = 32;
  c.compression_factor = 2;
  c.expansion_factor = 2;
  c.init_std = 0.2;
  c.seed = 5;
  cfg.bench.repeats = 1;
  cfg.bench.warmup = 0;
  cfg.bench.memory_guard = false;
  cfg.bench.verify = false;  // the counts are what is tested here (test_verify.cpp checks the values)
  return cfg;
}

// Both counts of a prefill of `len` tokens by the runner, for `cfg` and the named architecture.
RunRecord prefill_point(const std::string& arch, const Config& cfg, int64_t len = 97) {
  ops::Context ctx(1);
  Model model(ctx, cfg.model, find_architecture(arch));
  Runner runner(ctx, cfg);
  RunRecord r = runner.run(model, {arch, Workload::kPrefill, len});
  EXPECT_EQ(r.status, "ok") << arch << ": " << r.reason;
  EXPECT_EQ(r.flops_model, model.prefill_flops(len)) << arch << ": the runner's flops_model is not the model's formula";
  return r;
}

// The model: the mixer's count per layer plus the skeleton's FFN, L layers, and the LM head.
double whole_model(double mixer, double len = n) { return L * (mixer + 2 * 2 * len * d * ff) + 2 * d * V; }

// The four d×d projections (q, k, v, out) over every row, as both counts have them.
constexpr double projections = 2 * 4 * n * d * d;

// ---- Standard and Hopfield ------------------------------------------------------------------------
// Model: projections, and per causal pair (n(n+1)/2 of them) a score and a weighted value over dh
// in each of h heads: 2·[4nd² + 2d·n(n+1)/2].
// Executed: one tiled online-softmax op. Its tile is min(128, n rounded up to 8) = 104 keys, and the
// query tile min(104, n) = 97 rows: one query tile against one key tile of 104 rows (7 rows of
// padding, the masked upper triangle computed too): per head S = Q·Kᵀ [97, 8]·[8, 104] and O = P·V
// [97, 104]·[104, 8].
TEST(FlopsByHand, StandardAndHopfieldAtN97) {
  const double model = 2 * (4 * n * d * d + 2 * d * n * (n + 1) / 2);
  const double executed = projections + h * (2 * 97 * dh * 104 + 2 * 97 * 104 * dh);
  for (const char* arch : {"Standard", "Hopfield"}) {
    const RunRecord r = prefill_point(arch, point_config());
    EXPECT_EQ(r.flops_model, whole_model(model)) << arch;
    EXPECT_EQ(r.flops_executed, whole_model(executed)) << arch;
  }
}

// At n = 300 the 128-row tiles tile the sequence: query tiles of 128, 128 and 44 rows (padded to
// 128), which see 1, 2 and 3 key tiles of 128: 6 tile pairs per head, each [128, 8]·[8, 128] and
// [128, 128]·[128, 8].
TEST(FlopsByHand, StandardOverSeveralTilesAtN300) {
  const double len = 300;
  const double model = 2 * (4 * len * d * d + 2 * d * len * (len + 1) / 2);
  const double executed = 2 * 4 * len * d * d + h * 6 * (2 * 128 * dh * 128 + 2 * 128 * 128 * dh);
  const RunRecord r = prefill_point("Standard", point_config(), 300);
  EXPECT_EQ(r.flops_model, whole_model(model, len));
  EXPECT_EQ(r.flops_executed, whole_model(executed, len));
}

// ---- Linear ---------------------------------------------------------------------------------------
// Model, per token: projections 4d², and per head the state update φ(k)vᵀ (dh²), the read φ(q)ᵀS
// (dh²) and the normaliser φ(q)·z (dh): 2n·[4d² + h(2dh² + dh)]; without the normaliser no dh.
// Executed, chunkwise: one slab of 4 chunks of C = 32 rows (the last padded with 31 zero rows), one
// block per head, each product batched over the 4 chunks: K_cᵀV_c [8,32]·[32,8], Q_cK_cᵀ [32,8]·[8,32],
// Q_cS [32,8]·[8,8], (masked scores)·V_c [32,32]·[32,8]; with the normaliser K_cᵀ1 [8,32]·[32,1],
// Q_c z [32,8]·[8,1], (masked scores)·1 [32,32]·[32,1]. Projections over the 97 rows.
TEST(FlopsByHand, LinearAtN97WithAndWithoutTheNormaliser) {
  for (bool normalize : {true, false}) {
    Config cfg = point_config();
    cfg.model.normalize = normalize;
    const double model = 2 * n * (4 * d * d + h * (2 * dh * dh + (normalize ? dh : 0)));
    const double per_head = 2 * k * (B * dh * dh + B * dh * B + B * dh * dh + B * B * dh) +
                            (normalize ? 2 * k * (dh * B + B * dh + B * B) : 0);
    const double executed = projections + h * per_head;
    const RunRecord r = prefill_point("Linear", cfg);
    EXPECT_EQ(r.flops_model, whole_model(model)) << "normalize " << normalize;
    EXPECT_EQ(r.flops_executed, whole_model(executed)) << "normalize " << normalize;
  }
}

// ---- DeltaNet -------------------------------------------------------------------------------------
// Model, per token: projections 4d² (and, with a learned β, its projection d·h), and per head S k,
// the rank-1 update and S q, dh² each: 2n·[4d² + [learned] d·h + 3h·dh²].
// Executed, the chunkwise WY/UT form over the same 4 chunks per head: six [C, C]-sized products
// with an 8-wide side (K Kᵀ, W = T K, U = T V, Q Kᵀ, Q~ = Q − A W, A U), three with a dh×dh side
// (H = KᵀU, G = KᵀW, Q~ M), one [8,8]·[8,8] state step per chunk, and the UT transform's hand loop:
// row i accumulates whole 16-column blocks j0 < i, reading the coefficients m = j0 .. i−1, so for
// C = 32 it runs 16·(0 + 1 + … + 31) + 16·(1 + … + 15) = 7,936 + 1,920 = 9,856 multiply-adds per
// chunk. The learned β is one [97, 32]·[32, 4] product.
TEST(FlopsByHand, DeltaNetAtN97ConstantAndLearnedBeta) {
  const double ut_macs = 9856;
  for (BetaMode mode : {BetaMode::kConstant, BetaMode::kLearned}) {
    Config cfg = point_config();
    cfg.model.beta_mode = mode;
    const bool learned = mode == BetaMode::kLearned;
    const double model = 2 * n * (4 * d * d + (learned ? d * h : 0) + 3 * h * dh * dh);
    const double per_head = 2 * k * (6 * B * B * dh + 3 * B * dh * dh + dh * dh * dh) + 2 * k * ut_macs;
    const double executed = projections + (learned ? 2 * n * d * h : 0) + h * per_head;
    const RunRecord r = prefill_point("DeltaNet", cfg);
    EXPECT_EQ(r.flops_model, whole_model(model)) << (learned ? "learned" : "constant");
    EXPECT_EQ(r.flops_executed, whole_model(executed)) << (learned ? "learned" : "constant");
  }
}

// ---- SlidingWindow --------------------------------------------------------------------------------
// Model: projections and, per position t, min(t, w) + 1 visible keys: Σ = 33·34/2 (t ≤ 32) +
// 64·33 (t = 33 .. 96) = 561 + 2,112 = 2,673 pairs: 2·[4nd² + 2d·2,673].
// Executed: tiles of 32 (the largest power of two ≤ w), one slab (97 rows); query tiles at rows 0,
// 32, 64, 96 see the key tiles that meet [t − 32, t]: {0}, {0, 32}, {32, 64}, {64, 96}: 7 tile
// pairs per head, [32, 8]·[8, 32] and [32, 32]·[32, 8] each (the last query tile's 31 padded rows too).
TEST(FlopsByHand, SlidingWindowAtN97) {
  const double model = 2 * (4 * n * d * d + 2 * d * 2673);
  const double executed = projections + h * 7 * (2 * 32 * dh * 32 + 2 * 32 * 32 * dh);
  const RunRecord r = prefill_point("SlidingWindow", point_config());
  EXPECT_EQ(r.flops_model, whole_model(model));
  EXPECT_EQ(r.flops_executed, whole_model(executed));
}

// ---- GAU ------------------------------------------------------------------------------------------
// Model (one head of width E = 64): the q, k, v, gate and output projections 5nd·E; scores and
// weighted sums over the P pairs inside chunks 2E·P; q·S for the n − B tokens past chunk 0
// (E² each); folding each of the cur complete chunks into S (B·E² each).
// Executed: one slab of 4 chunks (128 buffer rows) and one group of 97 rows: local attention
// batched over the 4 chunks ([32, 64]·[64, 32] and [32, 32]·[32, 64]); the cross terms of the group
// as one masked [97, 64]·[64, 97] product and its [97, 97]·[97, 64] application (no state before
// the group, so no q·S product); S += KᵀV over the 96 rows of the complete chunks [64, 96]·[96, 64].
TEST(FlopsByHand, GauAtN97) {
  const double E = 64;
  const double model = 2 * (5 * n * d * E + 2 * E * P + (n - B) * E * E + cur * B * E * E);
  const double executed = 2 * 5 * n * d * E + 2 * k * (B * E * B + B * B * E) + 2 * 97 * E * 97 + 2 * 97 * 97 * E + 2 * E * 96 * E;
  const RunRecord r = prefill_point("GAU", point_config());
  EXPECT_EQ(r.flops_model, whole_model(model));
  EXPECT_EQ(r.flops_executed, whole_model(executed));
}

// ---- BSBR -----------------------------------------------------------------------------------------
// Model: projections 4nd²; local scores and weighted sums over the P in-chunk pairs 2d·P; q·G for
// the n − B tokens past chunk 0 (d·dh); per chunk i ≥ 1 (cur = 3 of them) F_{i−1} = KᵀV for every
// head (B·d·dh), the meta key and query (2d²) and, compressed, compressing F and decompressing G
// (2·d·dh·d/c); retrieval over the chunks before each, 1 + 2 + 3 = 6 (chunk, past chunk) pairs, a
// score (d) and a weighted value (h·dv, dv = d/c = 16 or dh² = 64) each.
// Executed: local attention batched over the 4 chunks per head ([32, 8]·[8, 32], [32, 32]·[32, 8]);
// the meta keys of the 3 complete chunks and the meta queries of chunks 1..3 ([3, 32]·[32, 32]
// each); F per head over the 3 complete chunks ([8, 32]·[32, 8]); compressed, f = vec(F)·W_c per
// head ([3, 64]·[64, 16]) and G = (Σ p f)·W_d ([12, 16]·[16, 64]); the retrieval, one tiled
// attention op whose query tile is the slab's 4 chunks and key tile the chunk memory padded to 8
// rows: per head [4, 8]·[8, 8] and [4, 8]·[8, dv]; q·G for chunks 1..3 per head ([32, 8]·[8, 8]).
TEST(FlopsByHand, BsbrAtN97CompressedAndNot) {
  for (int64_t c : {int64_t{2}, int64_t{0}}) {
    Config cfg = point_config();
    cfg.model.compression_factor = c;
    const double coded = c > 0 ? d / c : 0, dv = c > 0 ? coded : dh * dh;
    const double model = 2 * (4 * n * d * d + 2 * d * P + (n - B) * d * dh + cur * (B * d * dh + 2 * d * d + 2 * d * dh * coded) +
                              6 * (d + h * dv));
    const double executed = projections + h * 2 * k * (B * dh * B + B * B * dh)  // local attention
                            + 2 * (2 * 3 * d * d)                                  // meta keys and queries
                            + h * 2 * 3 * dh * B * dh                              // F per head
                            + (c > 0 ? h * 2 * 3 * (dh * dh) * coded + 2 * (3 * h) * coded * (dh * dh) : 0)  // compress, decompress
                            + h * (2 * 4 * dh * 8 + 2 * 4 * 8 * dv)                // retrieval
                            + h * 2 * 3 * B * dh * dh;                             // q.G
    const RunRecord r = prefill_point("BSBR", cfg);
    EXPECT_EQ(r.flops_model, whole_model(model)) << "compression " << c;
    EXPECT_EQ(r.flops_executed, whole_model(executed)) << "compression " << c;
  }
}

}  // namespace
}  // namespace bsbr

// Whole-model checks shared by the architecture-specific suites (test_<arch>.cpp): prefill against
// the plain-loop oracle, and decode steps against the prefill, for one config. test_models.cpp runs
// the same invariants for every registered architecture at its fixed configs; these let a suite
// repeat them at the configs that matter for one architecture (chunk sizes, options).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "bench/runner.hpp"
#include "model/arch/chunked_recurrence.hpp"
#include "model/model.hpp"
#include "ref/ref_model.hpp"
#include "test_util.hpp"

namespace bsbr::test {

inline RunShape run_shape(std::vector<int64_t> lengths, int64_t capacity = 0, int64_t batch = 1) {
  RunShape s;
  s.batch = batch;
  s.prefill_lengths = std::move(lengths);
  s.capacity = capacity;
  return s;
}

// Tiny widths (d=32, h=2, dh=16) so an oracle over hundreds of tokens is quick; init_std large
// enough that the recurrent states vary a lot over a sequence.
inline ModelConfig tiny_config(int64_t linear_chunk_size, uint64_t seed) {
  ModelConfig c;
  c.vocab_size = 61;
  c.hidden_dim = 32;
  c.num_heads = 2;
  c.num_layers = 2;
  c.ff_dim = 48;
  c.linear_chunk_size = linear_chunk_size;
  c.init_std = 0.2;
  c.seed = seed;
  return c;
}

struct OracleComparison {
  Closeness hidden, logits;                   // per element vs the oracle (core/compare.hpp)
  double flops = 0, oracle_flops = 0;         // sum over layers of prefill_flops(n); 2 x oracle MACs
  bool finite = true;                         // every hidden value of the fast model is finite
};

// Prefills n tokens (from the config's seed) and compares with ref::forward (with `oracle`'s
// mutation, for the mutation tests).
inline OracleComparison compare_with_oracle(ops::Context& ctx, Model& model, int64_t n, Tolerance tol = kOracleTol,
                                            const ref::OracleOptions& oracle = {}) {
  const ModelConfig& c = model.config();
  std::vector<int32_t> tokens = Runner::input_tokens(c, 1, n);
  model.prepare(ctx, run_shape({n}), LogitsMode::kAll);
  model.prefill(ctx, tokens.data(), n);
  ref::RefOutput want = ref::forward(model, tokens, oracle);
  OracleComparison r;
  r.hidden = compare_close(model.hidden(), want.hidden.data(), n * c.hidden_dim, tol);
  r.logits = compare_close(model.logits(), want.logits.data(), n * c.vocab_size, tol);
  for (int64_t l = 0; l < c.num_layers; ++l) r.flops += model.mixer(static_cast<int>(l)).prefill_flops(n);
  r.oracle_flops = 2 * want.mixer_macs;
  for (int64_t i = 0; i < n * c.hidden_dim; ++i) r.finite = r.finite && std::isfinite(model.hidden()[i]);
  return r;
}

// Chunked prefill against the oracle for each (linear_chunk_size, n) case.
inline void expect_chunked_prefill_matches_oracle(ops::Context& ctx, const std::string& arch,
                                                  const std::vector<std::pair<int64_t, int64_t>>& cases, uint64_t seed) {
  for (auto [chunk, n] : cases) {
    Model model(ctx, tiny_config(chunk, seed), find_architecture(arch));
    OracleComparison r = compare_with_oracle(ctx, model, n);
    EXPECT_TRUE(r.hidden.ok()) << arch << ": chunk " << chunk << ", n " << n << ", hidden: " << r.hidden.describe();
    EXPECT_TRUE(r.logits.ok()) << arch << ": chunk " << chunk << ", n " << n << ", logits: " << r.logits.describe();
  }
}

// Prefills n0 tokens, then steps to n: every step's logits within `tol` of the logits of a full
// prefill of n at the same position (fails at the first step that is not).
inline ::testing::AssertionResult decode_matches_prefill(ops::Context& ctx, Model& model, int64_t n0, int64_t n,
                                                         Tolerance tol = within(1e-4)) {
  const ModelConfig& c = model.config();
  const int64_t V = c.vocab_size;
  std::vector<int32_t> tokens = Runner::input_tokens(c, 1, n);
  model.prepare(ctx, run_shape({n, n0}, n), LogitsMode::kAll);
  model.prefill(ctx, tokens.data(), n);
  std::vector<float> full(model.logits(), model.logits() + n * V);
  model.prefill(ctx, tokens.data(), n0);
  for (int64_t t = n0; t < n; ++t) {
    model.step(ctx, &tokens[t], t);
    ::testing::AssertionResult r = is_close(model.logits(), full.data() + t * V, V, tol);
    if (!r) return r << " (step at position " << t << " after a prefill of " << n0 << ")";
  }
  return ::testing::AssertionSuccess();
}

// compare_with_oracle at each length: hidden states and logits within kOracleTol.
inline void expect_prefill_matches_oracle(ops::Context& ctx, Model& model, const std::vector<int64_t>& lengths) {
  for (int64_t n : lengths) {
    OracleComparison r = compare_with_oracle(ctx, model, n);
    EXPECT_TRUE(r.hidden.ok()) << model.name() << ": n " << n << ", hidden: " << r.hidden.describe();
    EXPECT_TRUE(r.logits.ok()) << model.name() << ": n " << n << ", logits: " << r.logits.describe();
  }
}

// decode_matches_prefill after a prefill of each prefix length: steps up to n within 1e-4.
inline void expect_decode_matches_prefill(ops::Context& ctx, Model& model, int64_t n, const std::vector<int64_t>& prefixes) {
  for (int64_t n0 : prefixes) EXPECT_TRUE(decode_matches_prefill(ctx, model, n0, n)) << model.name() << ": prefill " << n0 << ", steps to " << n;
}

// A batch of two sequences (tokens from the config's seed and seed + 1) equals the sequences run
// one by one: the prefill of n tokens and one decode step, within 1e-5.
inline void expect_batch_equals_sequences(ops::Context& ctx, Model& model, int64_t n) {
  const ModelConfig& c = model.config();
  const int64_t d = c.hidden_dim, V = c.vocab_size;
  ModelConfig other = c;
  other.seed = c.seed + 1;
  const std::vector<int32_t> a = Runner::input_tokens(c, 1, n), b = Runner::input_tokens(other, 1, n);
  std::vector<int32_t> both = a;
  both.insert(both.end(), b.begin(), b.end());
  model.prepare(ctx, run_shape({n}, n + 3, 2), LogitsMode::kAll);
  model.prefill(ctx, both.data(), n);
  const std::vector<float> hb(model.hidden(), model.hidden() + 2 * n * d);
  int32_t next[2] = {5, 11};
  model.step(ctx, next, n);
  const std::vector<float> lb(model.logits(), model.logits() + 2 * V);
  for (int s = 0; s < 2; ++s) {
    model.prepare(ctx, run_shape({n}, n + 3, 1), LogitsMode::kAll);
    model.prefill(ctx, s == 0 ? a.data() : b.data(), n);
    EXPECT_TRUE(is_close(hb.data() + s * n * d, model.hidden(), n * d, within(1e-5))) << model.name() << " n " << n << ", sequence " << s;
    model.step(ctx, &next[s], n);
    EXPECT_TRUE(is_close(lb.data() + s * V, model.logits(), V, within(1e-5))) << model.name() << " n " << n << ", step, sequence " << s;
  }
}

// A model whose mixers prefill in slabs of slab_rows rows (e.g. a ChunkedRecurrence built with a
// small chunked::PrefillTiling): the oracle at one slab, one slab + 1 and 2 slabs + 37 (several
// slabs, the last one partial and, for chunk sizes not dividing 37, ending in a partial chunk);
// decode after prefixes ending at, just past and inside slab boundaries; a batch of two sequences.
inline void expect_slabbed_prefill_matches(ops::Context& ctx, Model& model, int64_t slab_rows) {
  const int64_t n = 2 * slab_rows + 37;
  expect_prefill_matches_oracle(ctx, model, {slab_rows, slab_rows + 1, n});
  expect_decode_matches_prefill(ctx, model, n + 5, {slab_rows, slab_rows + 3, n});
  expect_batch_equals_sequences(ctx, model, n);
}

// Peak working bytes (activations, state) of preparing and running one prefill of n, minus the
// skeleton's own buffers (x, h, FFN hidden, last-position logits): what the mixers hold.
// oneDNN's scratchpad is left out: it is one buffer sized for the model's largest primitive, and that
// is the skeleton's FFN matmul over all n rows, whose scratchpad grows with n on some ISAs (oneDNN's
// AVX2 gemm:jit: 128 bytes a row at the tiny widths, 2 MiB at n = 16,384; none with AVX-512).
inline std::size_t mixer_working_bytes(ops::Context& ctx, Model& model, int64_t n) {
  const ModelConfig& c = model.config();
  std::vector<int32_t> tokens = Runner::input_tokens(c, 1, n);
  ctx.memory().reset_peak();
  model.prepare(ctx, run_shape({n}));
  model.prefill(ctx, tokens.data(), n);
  // Reserved at prepare and held through the prefill, so it is whole inside the working peak.
  const std::size_t peak = ctx.memory().peak_working() - ctx.memory().peak(MemCategory::kScratch);
  model.release(ctx);
  ctx.release_scratchpad();
  // x, h [n, d], f [n, ff], the sinusoidal position table [n, d], logits [V].
  const std::size_t skeleton = sizeof(float) * static_cast<std::size_t>(n * (3 * c.hidden_dim + c.ff_dim) + c.vocab_size);
  return peak - skeleton;
}

// A chunked recurrence's factory with an explicit prefill tiling (make_linear, make_deltanet).
using TiledFactory = std::unique_ptr<Mixer> (*)(const ModelConfig&, ParamStore&, const std::string&, const chunked::PrefillTiling&);

// Make, prefilling in slabs of SlabChunks chunks instead of the default tiling's.
template <TiledFactory Make, int64_t SlabChunks>
std::unique_ptr<Mixer> with_slab_chunks(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  chunked::PrefillTiling tiling;
  tiling.slab_rows = SlabChunks * cfg.linear_chunk_size;
  return Make(cfg, params, prefix, tiling);
}

// expect_slabbed_prefill_matches for architecture `name` built by Make (configs config(chunk)) with
// slabs of 3 chunks of 5 (inside one block) and of two whole blocks (2 x kChunksPerBlock chunks of
// 3, the last slab's last block partial): 2 slabs + 37 rows end in a partial chunk either way.
template <TiledFactory Make>
void expect_recurrence_slabs_match(ops::Context& ctx, const char* name, ModelConfig (*config)(int64_t chunk)) {
  constexpr int64_t kTwoBlocks = 2 * ChunkedRecurrence::kChunksPerBlock;
  Model small(ctx, config(5), Architecture{name, with_slab_chunks<Make, 3>, ""});
  expect_slabbed_prefill_matches(ctx, small, 3 * 5);
  Model blocks(ctx, config(3), Architecture{name, with_slab_chunks<Make, kTwoBlocks>, ""});
  expect_slabbed_prefill_matches(ctx, blocks, kTwoBlocks * 3);
}

// From n = 8,192 to 16,384 the mixers of a model with tiny widths (tiny_config) hold the same slab
// buffers and states (O(slab) prefill); full-length q/k/v/o buffers would grow by 2 layers x 4 x
// 8,192 x d floats = 8 MiB.
inline void expect_prefill_memory_constant_in_n(ops::Context& ctx, Model& model) {
  const std::size_t at_8k = mixer_working_bytes(ctx, model, 8192), at_16k = mixer_working_bytes(ctx, model, 16384);
  EXPECT_LE(at_16k, at_8k + (std::size_t{1} << 20)) << model.name();
  EXPECT_LT(at_16k, std::size_t{8} << 20) << model.name();
}

}  // namespace bsbr::test

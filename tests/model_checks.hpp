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
  double hidden_error = 0, logits_error = 0;  // max relative errors vs the oracle
  double flops = 0, oracle_flops = 0;         // sum over layers of prefill_flops(n); 2 x oracle MACs
  bool finite = true;                         // every hidden value of the fast model is finite
};

// Prefills n tokens (from the config's seed) and compares with ref::forward.
inline OracleComparison compare_with_oracle(ops::Context& ctx, Model& model, int64_t n) {
  const ModelConfig& c = model.config();
  std::vector<int32_t> tokens = Runner::input_tokens(c, 1, n);
  model.prepare(ctx, run_shape({n}), LogitsMode::kAll);
  model.prefill(ctx, tokens.data(), n);
  ref::RefOutput want = ref::forward(model, tokens);
  OracleComparison r;
  r.hidden_error = max_rel_error(model.hidden(), want.hidden.data(), n * c.hidden_dim);
  r.logits_error = max_rel_error(model.logits(), want.logits.data(), n * c.vocab_size);
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
    EXPECT_LT(r.hidden_error, 1e-4) << arch << ": chunk " << chunk << ", n " << n;
    EXPECT_LT(r.logits_error, 1e-4) << arch << ": chunk " << chunk << ", n " << n;
  }
}

// Prefills n0 tokens, then steps to n; returns the largest relative error of a step's logits
// against the logits of a full prefill of n at the same position.
inline double decode_vs_prefill_error(ops::Context& ctx, Model& model, int64_t n0, int64_t n) {
  const ModelConfig& c = model.config();
  const int64_t V = c.vocab_size;
  std::vector<int32_t> tokens = Runner::input_tokens(c, 1, n);
  model.prepare(ctx, run_shape({n, n0}, n), LogitsMode::kAll);
  model.prefill(ctx, tokens.data(), n);
  std::vector<float> full(model.logits(), model.logits() + n * V);
  model.prefill(ctx, tokens.data(), n0);
  double worst = 0;
  for (int64_t t = n0; t < n; ++t) {
    model.step(ctx, &tokens[t], t);
    worst = std::max(worst, max_rel_error(model.logits(), full.data() + t * V, V));
  }
  return worst;
}

// compare_with_oracle at each length: hidden states and logits within 1e-4.
inline void expect_prefill_matches_oracle(ops::Context& ctx, Model& model, const std::vector<int64_t>& lengths) {
  for (int64_t n : lengths) {
    OracleComparison r = compare_with_oracle(ctx, model, n);
    EXPECT_LT(r.hidden_error, 1e-4) << model.name() << ": n " << n;
    EXPECT_LT(r.logits_error, 1e-4) << model.name() << ": n " << n;
  }
}

// decode_vs_prefill_error after a prefill of each prefix length: steps up to n within 1e-4.
inline void expect_decode_matches_prefill(ops::Context& ctx, Model& model, int64_t n, const std::vector<int64_t>& prefixes) {
  for (int64_t n0 : prefixes) EXPECT_LT(decode_vs_prefill_error(ctx, model, n0, n), 1e-4) << model.name() << ": prefill " << n0 << ", steps to " << n;
}

// Peak working bytes (activations, state, scratchpad) of preparing and running one prefill of n,
// minus the skeleton's own buffers (x, h, FFN hidden, last-position logits): what the mixers hold.
inline std::size_t mixer_working_bytes(ops::Context& ctx, Model& model, int64_t n) {
  const ModelConfig& c = model.config();
  std::vector<int32_t> tokens = Runner::input_tokens(c, 1, n);
  ctx.memory().reset_peak();
  model.prepare(ctx, run_shape({n}));
  model.prefill(ctx, tokens.data(), n);
  const std::size_t peak = ctx.memory().peak_working();
  model.release(ctx);
  ctx.release_scratchpad();
  const std::size_t skeleton = sizeof(float) * static_cast<std::size_t>(n * (2 * c.hidden_dim + c.ff_dim) + c.vocab_size);
  return peak - skeleton;
}

}  // namespace bsbr::test

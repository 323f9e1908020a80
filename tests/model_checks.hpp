// Checks shared by the architecture-specific suites (test_bsbr.cpp, test_gau.cpp): agreement with
// the plain-loop oracle and decode == prefill, for a model built from any Architecture row (e.g. one
// whose factory uses a small prefill tiling, so a short sequence spans many slabs).
#pragma once
#include <gtest/gtest.h>

#include <vector>

#include "bench/runner.hpp"
#include "model/model.hpp"
#include "ref/ref_model.hpp"
#include "test_util.hpp"

namespace bsbr::test {

// Small widths for the architecture suites, every structural size different: d 64, 4 heads (dh 16),
// chunk 16, ff 96, vocab 97; weights large enough that attention is far from uniform.
inline ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 97;
  c.hidden_dim = 64;
  c.num_heads = 4;
  c.ff_dim = 96;
  c.chunk_size = 16;
  c.init_std = 0.15;
  c.seed = 5;
  return c;
}

inline RunShape run_shape(std::vector<int64_t> lengths, int64_t capacity = 0, int64_t batch = 1) {
  RunShape s;
  s.batch = batch;
  s.prefill_lengths = std::move(lengths);
  s.capacity = capacity;
  return s;
}

inline std::vector<int32_t> tokens(const ModelConfig& c, int64_t n, uint64_t salt = 0) {
  ModelConfig m = c;
  m.seed = c.seed + salt;
  return Runner::input_tokens(m, 1, n);
}

// Prefill hidden states and logits against the oracle at each length.
inline void expect_matches_oracle(ops::Context& ctx, Model& model, const std::vector<int64_t>& lengths, double tol = 1e-4) {
  const ModelConfig& c = model.config();
  for (int64_t n : lengths) {
    auto t = tokens(c, n);
    model.prepare(ctx, run_shape({n}), LogitsMode::kAll);
    model.prefill(ctx, t.data(), n);
    ref::RefOutput want = ref::forward(model, t);
    EXPECT_LT(max_rel_error(model.hidden(), want.hidden.data(), n * c.hidden_dim), tol) << model.name() << " hidden, n=" << n;
    EXPECT_LT(max_rel_error(model.logits(), want.logits.data(), n * c.vocab_size), tol) << model.name() << " logits, n=" << n;
  }
}

// After a prefill of each prefix length, every step up to n reproduces the full prefill's logits.
inline void expect_decode_matches_prefill(ops::Context& ctx, Model& model, int64_t n, const std::vector<int64_t>& prefixes,
                                          double tol = 1e-4) {
  const int64_t V = model.config().vocab_size;
  auto t = tokens(model.config(), n);
  std::vector<int64_t> lengths = prefixes;
  lengths.push_back(n);
  model.prepare(ctx, run_shape(lengths, n), LogitsMode::kAll);
  model.prefill(ctx, t.data(), n);
  const std::vector<float> full(model.logits(), model.logits() + n * V);
  for (int64_t n0 : prefixes) {
    model.prefill(ctx, t.data(), n0);
    for (int64_t pos = n0; pos < n; ++pos) {
      model.step(ctx, &t[pos], pos);
      ASSERT_LT(max_rel_error(model.logits(), full.data() + pos * V, V), tol)
          << model.name() << ": step at position " << pos << " after a prefill of " << n0;
    }
  }
}

// Peak working bytes (activations, state, scratchpad) of preparing and running one prefill of n,
// minus the skeleton's own buffers (x, h, FFN hidden, last-position logits): what the mixers hold.
inline std::size_t mixer_working_bytes(ops::Context& ctx, Model& model, int64_t n) {
  const ModelConfig& c = model.config();
  auto t = tokens(c, n);
  ctx.memory().reset_peak();
  model.prepare(ctx, run_shape({n}));
  model.prefill(ctx, t.data(), n);
  const std::size_t peak = ctx.memory().peak_working();
  model.release(ctx);
  ctx.release_scratchpad();
  const std::size_t skeleton = sizeof(float) * static_cast<std::size_t>(n * (2 * c.hidden_dim + c.ff_dim) + c.vocab_size);
  return peak - skeleton;
}

}  // namespace bsbr::test

// The verify pass (see verify.hpp).
#include "bench/verify.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "bench/runner.hpp"

namespace bsbr {

namespace {

// Folds one comparison into the record; on the first failure writes the reason. `rows`/`cols`
// give the compared block's layout ([rows, cols]), `first_row` the position of its row 0.
void fold(VerifyRecord& r, const Closeness& c, const std::string& what, int64_t sequence, int64_t first_row, int64_t cols) {
  r.max_abs_error = std::max(r.max_abs_error, std::isfinite(c.max_abs_error) ? c.max_abs_error : INFINITY);
  r.max_error_ratio = std::max(r.max_error_ratio, c.worst_ratio);
  if (c.ok() || !r.ok) return;
  r.ok = false;
  const int64_t pos = first_row + c.worst / cols, col = c.worst % cols;
  r.reason = "verify at length " + std::to_string(r.length) + " against the plain-loop oracle: " + what + " of sequence " +
             std::to_string(sequence) + " at position " + std::to_string(pos) + ", column " + std::to_string(col) + ": " +
             c.describe();
}

// Name, config and FNV-1a over every parameter's bytes: what the oracle's output depends on.
std::string identity(const Model& model) {
  std::string id = model.name();
  for (const auto& [key, value] : describe(model.config())) id += ";" + key + "=" + value;
  uint64_t h = 1469598103934665603ull;
  for (const Param& p : model.params().all()) {
    const float* v = p.value.data();
    for (int64_t i = 0; i < p.value.size(); ++i) {
      uint32_t word;
      std::memcpy(&word, v + i, sizeof word);
      h = (h ^ word) * 1099511628211ull;
    }
  }
  return id + ";params=" + std::to_string(h);
}

}  // namespace

const ref::RefOutput& Verifier::oracle(Model& model, const std::vector<int32_t>& tokens, int64_t length, int64_t sequence) {
  auto key = std::make_tuple(length, sequence);
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    std::vector<int32_t> seq(tokens.begin() + sequence * length, tokens.begin() + (sequence + 1) * length);
    it = cache_.emplace(key, ref::forward(model, seq)).first;
  }
  return it->second;
}

VerifyRecord Verifier::verify(ops::Context& ctx, Model& model, Workload w, int64_t n, int64_t batch) {
  const ModelConfig& c = model.config();
  const int64_t d = c.hidden_dim, V = c.vocab_size;
  if (std::string id = identity(model); id != cached_model_) {
    cache_.clear();
    cached_model_ = std::move(id);
  }
  VerifyRecord r;
  r.ran = true;
  r.tol = tol_;
  r.length = std::min(n, length_);
  const int64_t L = r.length;
  const bool decodes = (w == Workload::kDecode || w == Workload::kGenerate) && L >= 2;
  r.decode_from = decodes ? std::max<int64_t>(1, L / 2 - 1) : 0;
  // input_tokens(., L) is the first L tokens of each sequence of the point's prompt.
  const std::vector<int32_t> tokens = Runner::input_tokens(c, batch, L);

  RunShape shape;
  shape.batch = batch;
  shape.prefill_lengths = {L};
  if (decodes) {
    shape.prefill_lengths.push_back(r.decode_from);
    shape.capacity = L;
  }
  model.prepare(ctx, shape, LogitsMode::kAll);
  model.prefill(ctx, tokens.data(), L);  // hidden [b, L, d], logits [b, L, V]
  for (int64_t s = 0; s < batch && r.ok; ++s) {
    const ref::RefOutput& want = oracle(model, tokens, L, s);
    fold(r, compare_close(model.hidden() + s * L * d, want.hidden.data(), L * d, tol_), "final hidden state", s, 0, d);
    fold(r, compare_close(model.logits() + s * L * V, want.logits.data(), L * V, tol_), "prefill logits", s, 0, V);
  }
  if (decodes && r.ok) {
    // Prefill L0 tokens of [b, L] packed as [b, L0], then step the rest; logits [b, V] per step.
    const int64_t L0 = r.decode_from;
    std::vector<int32_t> head(batch * L0), step(batch);
    for (int64_t s = 0; s < batch; ++s) std::copy_n(tokens.begin() + s * L, L0, head.begin() + s * L0);
    model.prefill(ctx, head.data(), L0);
    for (int64_t t = L0; t < L && r.ok; ++t) {
      for (int64_t s = 0; s < batch; ++s) step[s] = tokens[s * L + t];
      model.step(ctx, step.data(), t);
      for (int64_t s = 0; s < batch && r.ok; ++s)
        fold(r, compare_close(model.logits() + s * V, oracle(model, tokens, L, s).logits.data() + t * V, V, tol_),
             "decode-step logits", s, t, V);
    }
  }
  model.release(ctx);
  ctx.release_scratchpad();
  return r;
}

}  // namespace bsbr

// `compare --verify`: benchdnn's correctness check before timing. Every point's model is run at
// length L = min(n, verify_length) with the point's weights and batch, and compared per element
// with the plain-loop oracle (src/ref/) on each sequence: the prefill's final hidden states and
// logits at every position, and, for the workloads that decode (decode, generate), the logits of
// every incremental step from position L0 = max(1, L/2 - 1) to L - 1 after a prefill of L0 tokens.
// Element i passes when both values are finite and |a - b| <= atol + rtol |b| (core/compare.hpp).
// A mismatch fails the point, which is then not timed. The verify pass runs before the point's
// memory peaks are reset and outside every timed region.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include "core/compare.hpp"
#include "core/config.hpp"
#include "model/model.hpp"
#include "ref/ref_model.hpp"

namespace bsbr {

// The fast f32 model against the double-precision oracle at the default config stays below 6e-6
// absolute at L = 64 on every model (at most 0.04 of this tolerance; README "compare"); 1e-4 leaves
// room for other weights and widths while a dropped term of an architecture (tests/test_mutations)
// moves values by 1e-2 or more.
inline constexpr Tolerance kVerifyTolerance{1e-4, 1e-4};

struct VerifyRecord {
  bool ran = false;
  bool ok = true;
  int64_t length = 0;       // L: tokens per sequence compared with the oracle
  int64_t decode_from = 0;  // L0: decode steps checked at positions L0 .. L-1 (0 = decode not checked)
  Tolerance tol;
  double max_abs_error = 0;    // max |a - b| over every compared element
  double max_error_ratio = 0;  // max |a - b| / (atol + rtol |b|): <= 1 passes
  std::string reason;          // on failure: which output, sequence, position and column, both values, the tolerance
};

class Verifier {
 public:
  Verifier(int64_t verify_length, Tolerance tol = kVerifyTolerance) : length_(verify_length), tol_(tol) {}
  // Prepares, runs and releases `model` (the caller prepares it again for timing). The model's
  // parameters must not change during the call.
  VerifyRecord verify(ops::Context& ctx, Model& model, Workload w, int64_t n, int64_t batch);

 private:
  const ref::RefOutput& oracle(Model& model, const std::vector<int32_t>& tokens, int64_t length, int64_t sequence);
  int64_t length_;
  Tolerance tol_;
  // The oracle's outputs of the current model by (length, sequence): every point of a model with
  // n >= verify_length verifies the same tokens, so the oracle runs once per model and length. The
  // model is identified by its name, config and a hash of every parameter value, not its address
  // (a freed model's address is reused by the next one).
  std::string cached_model_;
  std::map<std::tuple<int64_t, int64_t>, ref::RefOutput> cache_;
};

}  // namespace bsbr

// The plain-loop oracle of a whole model: the shared skeleton (SPEC §1) around a per-architecture
// mixer oracle (ref_<arch>.cpp, SPEC §2), reading the same parameters as the fast model. The tool
// links it (`compare --verify` checks every point against it) and so do the tests; it depends on
// neither GoogleTest nor oneDNN, and reports a problem by throwing.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "ref/ref_common.hpp"

namespace bsbr::ref {

// A deliberate defect in an oracle, used only by the mutation tests (tests/test_mutations.cpp) to
// prove that comparing the fast model with its oracle can fail: each drops one term of SPEC §2.
enum class Mutation {
  kNone,
  kBsbrNoRetrieval,      // BSBR: out_t = local_t, without q_t.G_i
  kLinearNoNormalizer,   // Linear: o_t = phi(q_t)^T S_t, without / (phi(q_t).z_t + 1e-6)
  kDeltaNetNoBeta,       // DeltaNet: S_t = S_{t-1} + (v_t - S_{t-1} k_t) k_t^T (beta = 1)
  kGauNoGate,            // GAU: output (local + cross) without ⊙ G
  kWindowUnbounded,      // SlidingWindow: keys s <= t, without s >= t - w
  kHopfieldNoTemperature,  // Hopfield: energy q.k / sqrt(dh), without 1/T
  kStandardNoCausalMask,   // Standard: keys s < n (the future too)
  kStandardNoScale,        // Standard: softmax(q.k) without 1/sqrt(dh)
};
struct OracleOptions {
  Mutation mutation = Mutation::kNone;
};

// A mixer oracle: x = LN1 output [n, d] of one sequence -> Attn(x) [n, d] (before the residual add).
// It adds the multiply-adds it performs to `macs`.
using MixerOracle = std::function<Mat(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n,
                                      MacCounter& macs, const OracleOptions& opt)>;

// The oracle table (ref_model.cpp): architecture name -> mixer oracle.
const MixerOracle& oracle_for(const std::string& arch);

struct RefOutput {
  Mat hidden;  // final LN output [n, d]
  Mat logits;  // [n, V]
  double mixer_macs = 0;  // multiply-adds of the mixer oracles, summed over layers
};
// Whole-model forward of one sequence (batch 1) with the model's parameters.
RefOutput forward(Model& model, const std::vector<int32_t>& tokens, const OracleOptions& opt = {});

// Multi-head causal softmax attention with q/k/v/out projections: for every t, softmax over
// s in [t - window, t] (window -1: s <= t) of (q_t . k_s) * scale, times v_s (ref_standard.cpp).
// causal false (a mutation only): every t sees every s < n.
Mat causal_softmax_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n,
                             double scale, int64_t window, MacCounter& macs, bool causal = true);

// Oracles (one file each).
Mat standard_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
              const OracleOptions& opt);
Mat sliding_window_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n,
                             MacCounter& macs,
              const OracleOptions& opt);
Mat hopfield_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
              const OracleOptions& opt);
Mat bsbr_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
              const OracleOptions& opt);
Mat gau_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
              const OracleOptions& opt);
Mat linear_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
              const OracleOptions& opt);
Mat deltanet_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs,
              const OracleOptions& opt);

// Parameter lookup by full name (throws std::runtime_error naming it if absent).
const float* param(ParamStore& params, const std::string& name);
// y [n, out] = x [n, in] . W + b with the Linear registered as `name` (name.weight, name.bias).
Mat linear_param(const Mat& x, int64_t n, ParamStore& params, const std::string& name, int64_t in, int64_t out, MacCounter& macs);
// The attention projections every mixer oracle starts with: <prefix>.{q,k,v}_proj of x [n, d].
struct QkvProjections {
  Mat q, k, v;  // [n, d] each
};
QkvProjections qkv_projections(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n,
                               MacCounter& macs);

}  // namespace bsbr::ref

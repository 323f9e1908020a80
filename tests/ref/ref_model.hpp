// The plain-loop oracle of a whole model: the shared skeleton (SPEC §1) around a per-architecture
// mixer oracle (ref_<arch>.cpp, SPEC §2), reading the same parameters as the fast model.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "ref/ref_common.hpp"

namespace bsbr::ref {

// A mixer oracle: x = LN1 output [n, d] of one sequence -> Attn(x) [n, d] (before the residual add).
// It adds the multiply-adds it performs to `macs`.
using MixerOracle = std::function<Mat(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n,
                                      MacCounter& macs)>;

// The oracle table (ref_model.cpp): architecture name -> mixer oracle.
const MixerOracle& oracle_for(const std::string& arch);

struct RefOutput {
  Mat hidden;  // final LN output [n, d]
  Mat logits;  // [n, V]
  double mixer_macs = 0;  // multiply-adds of the mixer oracles, summed over layers
};
// Whole-model forward of one sequence (batch 1) with the model's parameters.
RefOutput forward(Model& model, const std::vector<int32_t>& tokens);

// Oracles (one file each).
Mat standard_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs);
Mat hopfield_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs);
Mat bsbr_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs);
Mat gau_attention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const Mat& x, int64_t n, MacCounter& macs);

// Parameter lookup by full name (fails the test if absent).
const float* param(ParamStore& params, const std::string& name);

}  // namespace bsbr::ref

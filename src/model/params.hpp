// Named model parameters. Every architecture registers its tensors here with PyTorch-style names
// ("layers.0.attn.q_proj.weight"); the store initialises them deterministically from the seed and
// is what --save-weights / --weights read and write.
//
// Layout convention: a Linear(in, out) weight is stored [in, out] (y = x.W + b, the layout of
// GPT-2's Conv1D), so oneDNN reads it without a transpose.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace bsbr {

enum class Init { kNormal, kZeros, kOnes };

struct Param {
  std::string name;
  Tensor value;
  Init init = Init::kNormal;
  bool in_head = false;  // part of the LM head (excluded from the study's parameter count)
};

class ParamStore {
 public:
  // allocate = false: register shapes only (Model::weight_bytes), the tensors stay empty.
  explicit ParamStore(MemoryTracker& tracker, bool allocate = true) : tracker_(&tracker), allocate_(allocate) {}
  // Registers a parameter; the returned reference stays valid for the store's lifetime.
  Tensor& add(const std::string& name, Shape shape, Init init, bool in_head = false);
  // Registers Linear(in, out): "<prefix>.weight" [in, out] and "<prefix>.bias" [out].
  struct LinearRef {
    Tensor* weight;
    Tensor* bias;
  };
  LinearRef add_linear(const std::string& prefix, int64_t in, int64_t out, bool in_head = false);
  struct LayerNormRef {
    Tensor* gamma;
    Tensor* beta;
  };
  LayerNormRef add_layer_norm(const std::string& prefix, int64_t dim);

  void initialize(uint64_t seed, double std);
  const std::deque<Param>& all() const { return params_; }
  std::deque<Param>& all() { return params_; }
  Param* find(const std::string& name);
  const Param* find(const std::string& name) const;
  int64_t count(bool include_head) const;
  std::size_t bytes() const;

 private:
  MemoryTracker* tracker_;
  bool allocate_ = true;
  std::deque<Param> params_;  // deque: references stay valid as parameters are added
};

}  // namespace bsbr

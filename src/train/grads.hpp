// Grads: one gradient tensor per model parameter (same name, same shape), parallel to ParamStore.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "model/params.hpp"
#include "ops/context.hpp"

namespace bsbr::train {

class Grads {
 public:
  Grads(ops::Context& ctx, const ParamStore& params);
  Grads(const Grads&) = delete;
  Grads& operator=(const Grads&) = delete;

  // The gradient of a registered parameter tensor (fails for a tensor the store does not hold).
  Tensor& of(const Tensor& param);
  const Tensor& of(const Tensor& param) const;
  // By parameter name (nullptr when absent).
  const Tensor* find(const std::string& name) const;
  void zero();
  // Sum of squares of every gradient element (for clipping), in double.
  double squared_norm() const;
  std::size_t bytes() const;

 private:
  const ParamStore* params_;
  std::deque<Tensor> grads_;                                // in the store's order
  std::unordered_map<const Tensor*, std::size_t> index_;    // parameter tensor -> position
};

}  // namespace bsbr::train

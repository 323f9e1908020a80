// Grads: allocation in the store's order and lookup by parameter tensor.
#include "train/grads.hpp"

#include <algorithm>

#include "core/errors.hpp"

namespace bsbr::train {

Grads::Grads(ops::Context& ctx, const ParamStore& params) : params_(&params) {
  for (const Param& p : params.all()) {
    index_.emplace(&p.value, grads_.size());
    grads_.push_back(ctx.tensor(MemCategory::kGrads, p.value.shape()));
  }
}

Tensor& Grads::of(const Tensor& param) {
  auto it = index_.find(&param);
  BSBR_CHECK(it != index_.end(), "gradient of a tensor that is not a registered parameter");
  return grads_[it->second];
}

const Tensor& Grads::of(const Tensor& param) const { return const_cast<Grads*>(this)->of(param); }

const Tensor* Grads::find(const std::string& name) const {
  const Param* p = params_->find(name);
  return p ? &of(p->value) : nullptr;
}

void Grads::zero() {
  for (Tensor& g : grads_) std::fill(g.data(), g.data() + g.size(), 0.0f);
}

double Grads::squared_norm() const {
  double s = 0;
  for (const Tensor& g : grads_)
    for (int64_t i = 0; i < g.size(); ++i) s += static_cast<double>(g[i]) * g[i];
  return s;
}

std::size_t Grads::bytes() const {
  std::size_t b = 0;
  for (const Tensor& g : grads_) b += g.bytes();
  return b;
}

}  // namespace bsbr::train

// ParamStore: registration and deterministic initialisation.
#include "model/params.hpp"

#include "core/errors.hpp"
#include "core/rng.hpp"

namespace bsbr {

Tensor& ParamStore::add(const std::string& name, Shape shape, Init init, bool in_head) {
  BSBR_CHECK(find(name) == nullptr, "parameter registered twice: " + name);
  params_.push_back(Param{name, allocate_ ? Tensor(*tracker_, MemCategory::kParams, std::move(shape)) : Tensor::unallocated(std::move(shape)),
                          init, in_head});
  return params_.back().value;
}

ParamStore::LinearRef ParamStore::add_linear(const std::string& prefix, int64_t in, int64_t out, bool in_head) {
  Tensor& w = add(prefix + ".weight", {in, out}, Init::kNormal, in_head);
  Tensor& b = add(prefix + ".bias", {out}, Init::kZeros, in_head);
  return {&w, &b};
}

ParamStore::LayerNormRef ParamStore::add_layer_norm(const std::string& prefix, int64_t dim) {
  Tensor& g = add(prefix + ".weight", {dim}, Init::kOnes);
  Tensor& b = add(prefix + ".bias", {dim}, Init::kZeros);
  return {&g, &b};
}

void ParamStore::initialize(uint64_t seed, double std) {
  for (Param& p : params_) {
    float* x = p.value.data();
    int64_t n = p.value.size();
    switch (p.init) {
      case Init::kZeros: std::fill(x, x + n, 0.0f); break;
      case Init::kOnes: std::fill(x, x + n, 1.0f); break;
      case Init::kNormal: {
        CounterRng rng(seed, hash_name(p.name));
        for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(std * rng.normal(static_cast<uint64_t>(i)));
        break;
      }
    }
  }
}

Param* ParamStore::find(const std::string& name) {
  return const_cast<Param*>(static_cast<const ParamStore&>(*this).find(name));
}

const Param* ParamStore::find(const std::string& name) const {
  for (const Param& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

int64_t ParamStore::count(bool include_head) const {
  int64_t n = 0;
  for (const Param& p : params_)
    if (include_head || !p.in_head) n += p.value.size();
  return n;
}

std::size_t ParamStore::bytes() const {
  std::size_t n = 0;
  for (const Param& p : params_) n += p.value.bytes();
  return n;
}

}  // namespace bsbr

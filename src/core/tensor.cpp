// Tensor helpers.
#include "core/tensor.hpp"

#include "core/errors.hpp"

namespace bsbr {

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

Tensor::Tensor(MemoryTracker& tracker, MemCategory category, Shape shape)
    : buffer_(tracker, category, static_cast<std::size_t>(numel(shape)) * sizeof(float)), shape_(std::move(shape)) {
  for (int64_t d : shape_) BSBR_CHECK(d >= 0, "negative dimension in " + shape_str(shape_));
}

}  // namespace bsbr

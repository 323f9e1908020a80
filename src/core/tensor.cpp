// Tensor helpers.
#include "core/tensor.hpp"

#include "core/checked.hpp"
#include "core/errors.hpp"

namespace bsbr {

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n = checked_mul(n, d, "a tensor's size");
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

namespace {
// Bytes of a tensor of `shape`, checked before anything is allocated.
std::size_t tensor_bytes(const Shape& shape) {
  for (int64_t d : shape) BSBR_CHECK(d >= 0, "negative dimension in " + shape_str(shape));
  return checked_mul(static_cast<std::size_t>(numel(shape)), sizeof(float), "a tensor's size");
}
}  // namespace

Tensor::Tensor(MemoryTracker& tracker, MemCategory category, Shape shape)
    : buffer_(tracker, category, tensor_bytes(shape)), shape_(std::move(shape)) {}

Tensor Tensor::unallocated(Shape shape) {
  tensor_bytes(shape);
  Tensor t;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::view(Tensor& owner, Shape shape) {
  const std::size_t bytes = tensor_bytes(shape);
  BSBR_CHECK(bytes <= owner.bytes(), "a view of " + shape_str(shape) + " is larger than its owner " + shape_str(owner.shape()));
  Tensor t;
  t.buffer_ = Buffer::view(owner.data(), bytes);
  t.shape_ = std::move(shape);
  return t;
}

}  // namespace bsbr

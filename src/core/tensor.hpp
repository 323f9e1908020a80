// Tensor: an owning, row-major f32 array with a shape, allocated through a MemoryTracker.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/memory.hpp"

namespace bsbr {

using Shape = std::vector<int64_t>;

// Product of the dimensions, checked (a SizeError, not a wrap-around, when it exceeds 2^63).
int64_t numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 3]"

class Tensor {
 public:
  Tensor() = default;
  Tensor(MemoryTracker& tracker, MemCategory category, Shape shape);
  // A shape without memory (data() is null): for computing sizes before allocating.
  static Tensor unallocated(Shape shape);
  // A non-owning view of `owner`'s memory with `shape` (at most owner.size() elements): not
  // counted by the tracker (the owner is) and valid while the owner lives. For buffers that
  // several users take turns on (training's shared work buffers, src/train/README.md).
  static Tensor view(Tensor& owner, Shape shape);

  float* data() { return static_cast<float*>(buffer_.data()); }
  const float* data() const { return static_cast<const float*>(buffer_.data()); }
  const Shape& shape() const { return shape_; }
  int64_t size() const { return numel(shape_); }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  std::size_t bytes() const { return buffer_.bytes(); }
  bool empty() const { return buffer_.empty(); }
  // Frees the memory (the tracker sees it go).
  void reset() { *this = Tensor(); }
  float& operator[](int64_t i) { return data()[i]; }
  float operator[](int64_t i) const { return data()[i]; }

 private:
  Buffer buffer_;
  Shape shape_;
};

}  // namespace bsbr

// safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the data. Reading memory-maps the file and validates the header before any byte of data is
// touched: well-formed JSON, known dtypes, offsets inside the data section, byte ranges that match
// shape x dtype size, no overlapping ranges. A malformed or truncated file is a UserError naming the
// file and the problem, never a crash or an out-of-bounds read. F32, F16 and BF16 convert to F32.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace bsbr {

enum class DType { kF32, kF16, kBF16 };
const char* to_string(DType t);
std::size_t dtype_size(DType t);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data section
  int64_t numel() const { return bsbr::numel(shape); }
};

// Limits of the reader: header size, tensor rank, and elements per tensor (so every product of
// dimensions fits int64).
inline constexpr uint64_t kMaxSafetensorsHeader = uint64_t{100} << 20;
inline constexpr std::size_t kMaxSafetensorsRank = 16;
inline constexpr uint64_t kMaxSafetensorsElements = uint64_t{1} << 62;

// The validated layout of a safetensors file held in memory (`bytes`, `size`): every tensor's byte
// range lies in the data section, matches shape x dtype size, and overlaps no other; sorted by
// offset. Touches no data byte and allocates nothing sized by the file's numbers. Throws UserError
// naming `path`. SafetensorsFile uses it on the mapped file; the fuzz target calls it directly.
struct SafetensorsLayout {
  uint64_t data_offset = 0;  // 8 + header length
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};
SafetensorsLayout parse_safetensors_layout(const unsigned char* bytes, std::size_t size, const std::string& path);

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws UserError on any problem.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) = delete;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // In file order (ascending offsets).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  // Converts the tensor to f32 into out[numel].
  void read_f32(const TensorInfo& t, float* out) const;
  std::vector<float> read_f32(const TensorInfo& t) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  std::size_t size_ = 0;
  const unsigned char* data_ = nullptr;  // start of the data section
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorToWrite {
  std::string name;
  Shape shape;
  const float* data = nullptr;  // numel(shape) floats
};

// Writes a safetensors file atomically, converting the f32 data to `dtype` (round to nearest even).
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors, DType dtype = DType::kF32,
                       const std::map<std::string, std::string>& metadata = {});

// Half-precision conversions (IEEE binary16 and bfloat16), exposed for tests.
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);

}  // namespace bsbr

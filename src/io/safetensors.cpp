// safetensors reading (mmap + validation) and writing.
#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "core/json_input.hpp"

namespace bsbr {

using nlohmann::json;

const char* to_string(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
  }
  return "?";
}

std::size_t dtype_size(DType t) { return t == DType::kF32 ? 4 : 2; }

float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;  // inf / nan
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  return std::bit_cast<float>(bits);
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  uint32_t b = std::bit_cast<uint32_t>(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x40);  // quiet nan
  b += 0x7fffu + ((b >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(b >> 16);
}

uint16_t f32_to_f16(float f) {
  uint32_t b = std::bit_cast<uint32_t>(f);
  uint32_t sign = (b >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((b >> 23) & 0xff) - 127 + 15;
  uint32_t mant = b & 0x7fffffu;
  if (((b >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  if (exp >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | static_cast<uint32_t>(exp) << 10 | mant >> 13;
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent: correct
  return static_cast<uint16_t>(half);
}

namespace {

[[noreturn]] void bad(const std::string& path, const std::string& what) { throw UserError("safetensors file " + path + ": " + what); }

DType parse_dtype(const std::string& s, const std::string& path, const std::string& name) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  bad(path, "tensor '" + name + "' has unsupported dtype " + s + " (supported: F32, F16, BF16)");
}

}  // namespace

SafetensorsLayout parse_safetensors_layout(const unsigned char* bytes, std::size_t size, const std::string& path) {
  if (size < 8) bad(path, "not a safetensors file: " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | bytes[i];
  // The header is a JSON object, so its first byte is '{' (the format requires it): anything else
  // is some other kind of file, whatever its first 8 bytes say as a length.
  if (size == 8 || bytes[8] != '{' || header_len < 2)
    bad(path, "not a safetensors file (expected an 8-byte header length, then a JSON header starting with '{')");
  if (header_len > kMaxSafetensorsHeader)
    bad(path, "header length " + std::to_string(header_len) + " is implausibly large (at most " + std::to_string(kMaxSafetensorsHeader) + " bytes)");
  if (header_len > size - 8) bad(path, "truncated: header length " + std::to_string(header_len) + " exceeds the file (" + std::to_string(size) + " bytes)");
  const json root = parse_json_input(std::string(reinterpret_cast<const char*>(bytes + 8), header_len), "safetensors file " + path + ": header",
                                     /*max_depth=*/4);  // {name: {shape: [..]}}
  if (!root.is_object()) bad(path, "header must be a JSON object");
  SafetensorsLayout out;
  out.data_offset = 8 + header_len;
  const uint64_t data_size = size - out.data_offset;
  auto non_negative_int = [&](const json& v, const std::string& name, const char* what) {
    if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
      bad(path, "tensor '" + name + "' has a non-integer or negative " + what);
    return v.get<uint64_t>();
  };
  for (auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) bad(path, "__metadata__ must be an object of strings");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) bad(path, "__metadata__." + k + " must be a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) bad(path, "entry '" + name + "' must be an object");
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) bad(path, "tensor '" + name + "' has no dtype string");
    if (!entry.contains("shape") || !entry["shape"].is_array()) bad(path, "tensor '" + name + "' has no shape list");
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
      bad(path, "tensor '" + name + "' needs data_offsets [begin, end]");
    TensorInfo t;
    t.name = name;
    t.dtype = parse_dtype(entry["dtype"].get<std::string>(), path, name);
    const json& shape = entry["shape"];
    if (shape.size() > kMaxSafetensorsRank) bad(path, "tensor '" + name + "' has " + std::to_string(shape.size()) + " dimensions (at most " + std::to_string(kMaxSafetensorsRank) + ")");
    // Every dimension and the product of the non-zero ones stay <= 2^62, so any product of the
    // dimensions in any order fits int64 (numel, shape arithmetic elsewhere) and prints as it is.
    uint64_t count = 1, nonzero = 1;
    for (const json& d : shape) {
      const uint64_t v = non_negative_int(d, name, "dimension");
      if (v > kMaxSafetensorsElements || (v != 0 && nonzero > kMaxSafetensorsElements / v))
        bad(path, "tensor '" + name + "' shape " + shape.dump() + " has more than 2^62 elements");
      if (v != 0) nonzero *= v;
      count *= v;
      t.shape.push_back(static_cast<int64_t>(v));
    }
    t.begin = non_negative_int(entry["data_offsets"][0], name, "data_offsets");
    t.end = non_negative_int(entry["data_offsets"][1], name, "data_offsets");
    if (t.begin > t.end) bad(path, "tensor '" + name + "' has data_offsets begin > end");
    if (t.end > data_size)
      bad(path, "tensor '" + name + "' data_offsets end " + std::to_string(t.end) + " is past the end of the data (" +
                    std::to_string(data_size) + " bytes; truncated file?)");
    const uint64_t bytes_needed = count * dtype_size(t.dtype);  // count <= 2^62, dtype size <= 4: no overflow in uint64
    if (t.end - t.begin != bytes_needed)
      bad(path, "tensor '" + name + "' byte range " + std::to_string(t.end - t.begin) + " does not match shape " + shape_str(t.shape) +
                    " x " + to_string(t.dtype) + " (" + std::to_string(bytes_needed) + " bytes)");
    out.tensors.push_back(std::move(t));
  }
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  // Overlaps: each non-empty range must start at or after the end of every earlier non-empty range
  // (the running maximum), so an empty tensor between two overlapping ones hides nothing.
  const TensorInfo* furthest = nullptr;  // the non-empty range with the largest end so far
  for (const TensorInfo& t : out.tensors) {
    if (t.begin == t.end) continue;
    if (furthest && t.begin < furthest->end)
      bad(path, "tensors '" + furthest->name + "' and '" + t.name + "' have overlapping byte ranges");
    if (!furthest || t.end > furthest->end) furthest = &t;
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    if (errno == ENOENT) throw UserError("safetensors file not found: " + path);
    throw UserError("cannot open safetensors file " + path + ": " + std::strerror(errno));
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    bad(path, "not a regular file");
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    parse_safetensors_layout(nullptr, size_, path);  // throws: too short
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    bad(path, std::string("mmap failed: ") + std::strerror(errno));
  }
  try {
    const auto* bytes = static_cast<const unsigned char*>(map_);
    SafetensorsLayout layout = parse_safetensors_layout(bytes, size_, path);
    data_ = bytes + layout.data_offset;
    tensors_ = std::move(layout.tensors);
    metadata_ = std::move(layout.metadata);
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)), map_(o.map_), size_(o.size_), data_(o.data_), tensors_(std::move(o.tensors_)),
      metadata_(std::move(o.metadata_)) {
  o.map_ = nullptr;
  o.data_ = nullptr;
  o.size_ = 0;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  for (const TensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

void SafetensorsFile::read_f32(const TensorInfo& t, float* out) const {
  const unsigned char* p = data_ + t.begin;
  const int64_t n = t.numel();
  switch (t.dtype) {
    case DType::kF32: std::memcpy(out, p, static_cast<std::size_t>(n) * 4); break;  // little-endian host
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8));
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8));
      break;
  }
}

std::vector<float> SafetensorsFile::read_f32(const TensorInfo& t) const {
  std::vector<float> v(static_cast<std::size_t>(t.numel()));
  read_f32(t, v.data());
  return v;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors, DType dtype,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    uint64_t bytes = static_cast<uint64_t>(numel(t.shape)) * dtype_size(dtype);
    header[t.name] = {{"dtype", to_string(dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // pad so the data section is 8-byte aligned
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t len = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out += h;
  for (const TensorToWrite& t : tensors) {
    const int64_t n = numel(t.shape);
    if (dtype == DType::kF32) {
      out.append(reinterpret_cast<const char*>(t.data), static_cast<std::size_t>(n) * 4);
    } else {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v = dtype == DType::kF16 ? f32_to_f16(t.data[i]) : f32_to_bf16(t.data[i]);
        out.push_back(static_cast<char>(v & 0xff));
        out.push_back(static_cast<char>(v >> 8));
      }
    }
  }
  write_file_atomic(path, out);
}

}  // namespace bsbr

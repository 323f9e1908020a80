// MemoryTracker, Buffer and /proc readers.
#include "core/memory.hpp"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>

namespace bsbr {

const char* to_string(MemCategory c) {
  switch (c) {
    case MemCategory::kParams: return "params";
    case MemCategory::kActivations: return "activations";
    case MemCategory::kState: return "state";
    case MemCategory::kScratch: return "scratch";
    case MemCategory::kSnapshot: return "snapshot";
    case MemCategory::kSaved: return "saved";
    case MemCategory::kGrads: return "grads";
    case MemCategory::kOptimizer: return "optimizer";
    case MemCategory::kPackedParams: return "packed_params";
    default: return "?";
  }
}

namespace {
void atomic_max(std::atomic<std::size_t>& a, std::size_t v) {
  std::size_t prev = a.load();
  while (prev < v && !a.compare_exchange_weak(prev, v)) {
  }
}
}  // namespace

void MemoryTracker::on_alloc(MemCategory c, std::size_t bytes) {
  std::size_t now = current_[idx(c)].fetch_add(bytes) + bytes;
  atomic_max(peak_[idx(c)], now);
  atomic_max(peak_working_, current_working());
}

void MemoryTracker::on_free(MemCategory c, std::size_t bytes) { current_[idx(c)].fetch_sub(bytes); }

std::size_t MemoryTracker::current_working() const {
  return current(MemCategory::kActivations) + current(MemCategory::kSaved) + current(MemCategory::kState) + current(MemCategory::kScratch);
}

void MemoryTracker::reset_peak() {
  for (int i = 0; i < kN; ++i) peak_[i].store(current_[i].load());
  peak_working_.store(current_working());
}

Buffer::Buffer(MemoryTracker& tracker, MemCategory category, std::size_t bytes)
    : tracker_(&tracker), category_(category), bytes_(bytes) {
  if (bytes == 0) return;
  std::size_t rounded = (bytes + 63) / 64 * 64;
  data_ = std::aligned_alloc(64, rounded);
  if (data_ == nullptr) throw std::bad_alloc();
  std::memset(data_, 0, rounded);
  tracker_->on_alloc(category_, bytes_);
}

Buffer Buffer::view(void* data, std::size_t bytes) {
  Buffer b;  // tracker_ stays null: a view owns nothing
  b.data_ = data;
  b.bytes_ = bytes;
  return b;
}

Buffer::~Buffer() { release(); }

Buffer::Buffer(Buffer&& o) noexcept
    : tracker_(o.tracker_), category_(o.category_), data_(o.data_), bytes_(o.bytes_) {
  o.data_ = nullptr;
  o.bytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    release();
    tracker_ = o.tracker_;
    category_ = o.category_;
    data_ = o.data_;
    bytes_ = o.bytes_;
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void Buffer::release() {
  if (data_ != nullptr) {
    if (tracker_ != nullptr) {  // null: a view
      std::free(data_);
      tracker_->on_free(category_, bytes_);
    }
    data_ = nullptr;
    bytes_ = 0;
  }
}

namespace {
std::size_t read_kb_field(const char* path, const char* field) {
  std::ifstream in(path);
  std::string line;
  std::size_t key_len = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, key_len, field) == 0) {
      std::istringstream ss(line.substr(key_len));
      std::size_t kb = 0;
      ss >> kb;
      return kb * 1024;
    }
  }
  return 0;
}
}  // namespace

std::size_t ProcessMemory::peak_rss_bytes() { return read_kb_field("/proc/self/status", "VmHWM:"); }

bool ProcessMemory::reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

std::size_t ProcessMemory::available_bytes() { return read_kb_field("/proc/meminfo", "MemAvailable:"); }

}  // namespace bsbr

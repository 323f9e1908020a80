// The tool's own allocator: every tensor of a run is allocated through a MemoryTracker, so the
// peak bytes of activations, decode state and oneDNN scratchpad are counted exactly (SPEC §3),
// not estimated from parameter sizes as the study did.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace bsbr {

enum class MemCategory : int {
  kParams = 0,     // model weights
  kActivations,    // per-run work buffers (hidden states, scores tiles, ...)
  kState,          // decode state: KV cache, recurrent state, chunk states
  kScratch,        // oneDNN user-managed scratchpad
  kSnapshot,       // the benchmark's copy of the decode state (restored before every decode sample);
                   // harness overhead, not part of the model's working memory
  // Training (src/train, the `train` workload):
  kSaved,          // activations a training forward keeps for its backward (part of working memory)
  kGrads,          // parameter gradients (parameter-sized, not working memory)
  kOptimizer,      // optimiser state: AdamW's two moments (parameter-sized, not working memory)
  kPackedParams,   // copies of weights in a kernel's layout, read instead of the originals (a decode
                   // step's products, ops::MatMul's bound_weights); parameter-sized, not working memory
  kCount
};
const char* to_string(MemCategory c);

// Counts live and peak bytes per category. Allocation happens outside timed regions (prepare),
// but counters are atomic so a stray allocation from a worker thread is still counted right.
class MemoryTracker {
 public:
  void on_alloc(MemCategory c, std::size_t bytes);
  void on_free(MemCategory c, std::size_t bytes);

  std::size_t current(MemCategory c) const { return current_[idx(c)].load(); }
  // Live bytes of everything a run needs besides its weights (and, in training, besides the
  // parameter-sized gradients and optimiser state): activations + saved activations + state + scratchpad.
  std::size_t current_working() const;
  // Peak of current_working() since the last reset_peak().
  std::size_t peak_working() const { return peak_working_.load(); }
  std::size_t peak(MemCategory c) const { return peak_[idx(c)].load(); }
  void reset_peak();

 private:
  static int idx(MemCategory c) { return static_cast<int>(c); }
  static constexpr int kN = static_cast<int>(MemCategory::kCount);
  std::array<std::atomic<std::size_t>, kN> current_{};
  std::array<std::atomic<std::size_t>, kN> peak_{};
  std::atomic<std::size_t> peak_working_{0};
};

// Owns a zero-filled, 64-byte aligned block of memory registered with a tracker. Move-only.
// Zero fill matters: padded rows of K/V tiles are read (and multiplied by zero weights), so
// they must hold finite values.
class Buffer {
 public:
  Buffer() = default;
  Buffer(MemoryTracker& tracker, MemCategory category, std::size_t bytes);
  // A non-owning view of `bytes` at `data` (another buffer's memory): not counted (its owner is)
  // and never freed.
  static Buffer view(void* data, std::size_t bytes);
  ~Buffer();
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  MemCategory category() const { return category_; }
  bool empty() const { return data_ == nullptr; }

 private:
  void release();
  MemoryTracker* tracker_ = nullptr;
  MemCategory category_ = MemCategory::kActivations;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

// Process-level memory facts from /proc (Linux).
struct ProcessMemory {
  // Peak resident set size (VmHWM) in bytes; 0 if unavailable.
  static std::size_t peak_rss_bytes();
  // Resets VmHWM to the current RSS (writes 5 to /proc/self/clear_refs); false if not permitted.
  static bool reset_peak_rss();
  // MemAvailable from /proc/meminfo in bytes; 0 if unavailable.
  static std::size_t available_bytes();
};

}  // namespace bsbr

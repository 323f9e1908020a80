// Counting interposition of the heap allocator (see alloc_count.hpp).
#include "core/alloc_count.hpp"

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BSBR_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define BSBR_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef BSBR_COUNT_ALLOCATIONS
#define BSBR_COUNT_ALLOCATIONS 1
#endif

namespace {
std::atomic<int> g_armed{0};
std::atomic<int> g_paused{0};  // UncountedAllocations in force
std::atomic<uint64_t> g_count{0}, g_library_count{0};
std::atomic<int> g_library_all_threads{0};  // threaded oneDNN executes in progress
// Depth of LibraryAllocations scopes on this thread (initial-exec: no allocation on first access).
__attribute__((tls_model("initial-exec"))) thread_local int t_library_depth = 0;
}  // namespace
// Called for every counted allocation of the tool's own: a breakpoint target for finding it
// (gdb: break bsbr_counted_allocation, then bt).
extern "C" __attribute__((noinline)) void bsbr_counted_allocation() { asm volatile(""); }
namespace {
inline void note() {
  if (g_armed.load(std::memory_order_relaxed) == 0 || g_paused.load(std::memory_order_relaxed) > 0) return;
  if (t_library_depth > 0 || g_library_all_threads.load(std::memory_order_relaxed) > 0) {
    g_library_count.fetch_add(1, std::memory_order_relaxed);
  } else {
    g_count.fetch_add(1, std::memory_order_relaxed);
    bsbr_counted_allocation();
  }
}
}  // namespace

namespace bsbr {
bool AllocationCounter::available() { return BSBR_COUNT_ALLOCATIONS != 0; }
uint64_t AllocationCounter::count() { return g_count.load(std::memory_order_relaxed); }
uint64_t AllocationCounter::library_count() { return g_library_count.load(std::memory_order_relaxed); }
LibraryAllocations::LibraryAllocations(bool all_threads) : all_threads_(all_threads) {
  ++t_library_depth;
  if (all_threads_) g_library_all_threads.fetch_add(1, std::memory_order_relaxed);
}
LibraryAllocations::~LibraryAllocations() {
  --t_library_depth;
  if (all_threads_) g_library_all_threads.fetch_sub(1, std::memory_order_relaxed);
}
CountAllocations::CountAllocations() {
  g_armed.fetch_add(1, std::memory_order_relaxed);
  start_ = AllocationCounter::count();
  library_start_ = AllocationCounter::library_count();
}
CountAllocations::~CountAllocations() { g_armed.fetch_sub(1, std::memory_order_relaxed); }
UncountedAllocations::UncountedAllocations() { g_paused.fetch_add(1, std::memory_order_relaxed); }
UncountedAllocations::~UncountedAllocations() { g_paused.fetch_sub(1, std::memory_order_relaxed); }
}  // namespace bsbr

#if BSBR_COUNT_ALLOCATIONS
// glibc's own entry points: the interposed functions forward to them, so memory from either side
// is the same allocator's and may be freed by the other.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t n) {
  note();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) {
  note();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  note();
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(std::size_t alignment, std::size_t n) {
  note();
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  note();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  note();
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr && n != 0) return ENOMEM;
  *out = p;
  return 0;
}
}  // extern "C"
#endif

// operator new / delete: every variant through the (counted) malloc family, which counts each
// allocation once. Under sanitizers both are left to the sanitizer's runtime.
namespace {
void* allocate(std::size_t n) {
  if (n == 0) n = 1;
  for (;;) {
    if (void* p = std::malloc(n)) return p;
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) throw std::bad_alloc();
    h();
  }
}
void* allocate_aligned(std::size_t n, std::align_val_t al) {
  std::size_t a = static_cast<std::size_t>(al);
  if (a < sizeof(void*)) a = sizeof(void*);
  if (n == 0) n = 1;
  for (;;) {
    void* p = nullptr;
    if (posix_memalign(&p, a, n) == 0 && p != nullptr) return p;
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) throw std::bad_alloc();
    h();
  }
}
}  // namespace

#if BSBR_COUNT_ALLOCATIONS
void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return allocate_aligned(n, a);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return allocate_aligned(n, a);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
#endif

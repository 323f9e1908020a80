// Heap allocations counted process-wide while a region is armed: the "nothing allocates while
// timing" guard (README "How it measures"). The malloc family (malloc, calloc, realloc,
// posix_memalign, aligned_alloc, memalign) is interposed in alloc_count.cpp and forwards to
// glibc's __libc_* entry points; operator new / new[] (every variant) go through malloc, so a
// std::vector growing, a std::string, a Tensor, or a library calling malloc (oneDNN, libgomp) is
// counted, from any thread.
//
// Under AddressSanitizer (which interposes the same functions) counting is compiled out and
// available() is false: the runner then records the count as unavailable (-1) instead of zero.
//
// oneDNN allocates inside every primitive execution: dnnl_primitive_execute (2.6) converts the
// argument array into a std::unordered_map (exec_args_t) and builds an exec_ctx_t from it, about
// args + 2 small nodes per call, on the calling thread. There is no allocation-free execute entry
// point, and the user scratchpad does not cover it. The op layer marks its execute calls
// (LibraryAllocations); allocations on a thread inside such a call are counted apart
// (library_count) and reported, not treated as the tool's own.
//
// The counter is the one piece of process-global mutable state in the tool: an allocation hook
// has nowhere else to live. It is atomics touched with relaxed ordering and a thread-local depth.
#pragma once
#include <cstdint>

namespace bsbr {

struct AllocationCounter {
  // False when the build cannot interpose the allocator (sanitizers).
  static bool available();
  // Allocations since the process started, counted only while armed: the tool's own (outside any
  // LibraryAllocations scope) and those inside oneDNN's execute calls.
  static uint64_t count();
  static uint64_t library_count();
};

// RAII: allocations on this thread during its lifetime are oneDNN's (see above); with all_threads,
// also those on every other thread (a threaded execute called outside the tool's parallel loops:
// only oneDNN's own OpenMP workers run then, and oneDNN 2.6's gemm/brgemm drivers allocate their
// packing buffers there with posix_memalign).
class LibraryAllocations {
 public:
  explicit LibraryAllocations(bool all_threads);
  ~LibraryAllocations();
  LibraryAllocations(const LibraryAllocations&) = delete;
  LibraryAllocations& operator=(const LibraryAllocations&) = delete;

 private:
  bool all_threads_;
};

// RAII: arms the counter for its lifetime (nestable); allocations() = the count since construction.
class CountAllocations {
 public:
  CountAllocations();
  ~CountAllocations();
  CountAllocations(const CountAllocations&) = delete;
  CountAllocations& operator=(const CountAllocations&) = delete;
  uint64_t allocations() const { return AllocationCounter::count() - start_; }
  uint64_t library_allocations() const { return AllocationCounter::library_count() - library_start_; }

 private:
  uint64_t start_, library_start_;
};

// RAII: inside an armed region, allocations (any thread) during its lifetime are not counted:
// untimed set-up between the timed intervals of one sample (recompute prepares each length's ops
// just before its forward). Nestable.
class UncountedAllocations {
 public:
  UncountedAllocations();
  ~UncountedAllocations();
  UncountedAllocations(const UncountedAllocations&) = delete;
  UncountedAllocations& operator=(const UncountedAllocations&) = delete;
};

}  // namespace bsbr

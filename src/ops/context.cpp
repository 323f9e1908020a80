// Context: engine, per-thread streams and scratchpads, the frozen guard.
#include "ops/context.hpp"

#include <omp.h>

#include <string>

#include "core/errors.hpp"

namespace bsbr::ops {

Context::Context(int threads) : threads_(threads > 0 ? threads : omp_get_num_procs()), engine_(dnnl::engine::kind::cpu, 0) {
  omp_set_num_threads(threads_);
  omp_set_max_active_levels(1);  // oneDNN calls inside our parallel loops run single-threaded
  for (int i = 0; i < threads_; ++i) streams_.emplace_back(engine_);
  scratch_.resize(threads_);
}

dnnl::stream& Context::stream() { return streams_[thread_id()]; }

int Context::thread_id() { return omp_get_thread_num(); }

void Context::reserve_scratchpad(std::size_t bytes) {
  if (bytes <= scratch_bytes_) return;
  check_creation_allowed("scratchpad growth");
  for (auto& b : scratch_) b = Buffer(memory_, MemCategory::kScratch, bytes);
  scratch_bytes_ = bytes;
}

void Context::release_scratchpad() {
  for (auto& b : scratch_) b = Buffer();
  scratch_bytes_ = 0;
}

SerialScope::SerialScope(bool active) {
  if (active && !omp_in_parallel()) {
    saved_ = omp_get_max_threads();
    omp_set_num_threads(1);
  }
}

SerialScope::~SerialScope() {
  if (saved_ > 0) omp_set_num_threads(saved_);
}

void Context::check_creation_allowed(const char* what) const {
  if (frozen_)
    invariant_failed("!frozen()", __FILE__, __LINE__,
                     std::string(what) + " inside a timed region; create every primitive and buffer in prepare()");
}

}  // namespace bsbr::ops

// Context: engine, per-thread streams and scratchpads, the frozen guard.
#include "ops/context.hpp"

#include <omp.h>

#include <string>

#include "core/errors.hpp"

namespace bsbr::ops {

Context::Context(int threads) : threads_(threads > 0 ? threads : omp_get_num_procs()), team_(threads_), engine_(dnnl::engine::kind::cpu, 0) {
  omp_set_num_threads(threads_);
  omp_set_max_active_levels(1);  // oneDNN calls inside our parallel loops run single-threaded
  for (int i = 0; i < threads_; ++i) streams_.emplace_back(engine_);
  scratch_.resize(threads_);
}

dnnl::stream& Context::stream() { return streams_[thread_id()]; }

int Context::thread_id() { return omp_get_thread_num(); }

bool Context::may_fork() const { return !omp_in_parallel() || team_.dispatching(); }

void Context::reserve_scratchpad(std::size_t bytes, bool any_thread) {
  const std::size_t team = any_thread ? team_scratch_ : std::max(team_scratch_, bytes);
  const std::size_t single = any_thread ? std::max(single_scratch_, bytes) : single_scratch_;
  if (team == team_scratch_ && single == single_scratch_) return;
  check_creation_allowed("scratchpad growth");
  const std::size_t total = reserved_total(team, single);
  if (total > scratch_budget_) throw ScratchBudgetExceeded(total, scratch_budget_);
  // Free before allocating, so growing does not hold both sizes at once.
  const std::size_t first = std::max(team, single);
  if (first != scratch_[0].bytes()) {
    scratch_[0] = Buffer();
    scratch_[0] = Buffer(memory_, MemCategory::kScratch, first);
  }
  if (single != single_scratch_)
    for (std::size_t i = 1; i < scratch_.size(); ++i) {
      scratch_[i] = Buffer();
      scratch_[i] = Buffer(memory_, MemCategory::kScratch, single);
    }
  team_scratch_ = team;
  single_scratch_ = single;
}

void Context::release_scratchpad() {
  for (auto& b : scratch_) b = Buffer();
  team_scratch_ = single_scratch_ = 0;
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

// Team: one OpenMP region per held step; jobs published by a generation counter, finished per slot.
#include "ops/team.hpp"

#include <omp.h>

#include <thread>

namespace bsbr::ops {
namespace {

// Spins before a waiting thread starts yielding its processor: about a millisecond of pauses when
// every thread has a processor of its own; a few when they outnumber the processors (a thread that
// waits for a descheduled one has to let it run).
constexpr int kSpinsOwnProcessor = 1 << 14;
constexpr int kSpinsOversubscribed = 64;

void pause_or_yield(int& spins, int limit) {
  if (spins < limit) {
    ++spins;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}

}  // namespace

Team::Team(int threads)
    : threads_(threads),
      spins_before_yield_(threads <= omp_get_num_procs() ? kSpinsOwnProcessor : kSpinsOversubscribed),
      slots_(new Slot[static_cast<std::size_t>(threads > 0 ? threads : 1)]) {}

bool Team::dispatching() const {
  return held_.load(std::memory_order_relaxed) && !in_job_.load(std::memory_order_relaxed) && omp_get_thread_num() == 0;
}

void Team::hold_impl(void (*main)(void*), void* arg) {
  if (threads_ <= 1 || omp_in_parallel() || held_.load(std::memory_order_relaxed)) {
    main(arg);
    return;
  }
  // Read before the region, so a worker that starts late still waits for the first job.
  const uint64_t base = generation_.load(std::memory_order_relaxed);
  stop_ = false;
  std::exception_ptr main_error;
#pragma omp parallel num_threads(threads_)
  {
    const bool granted = omp_get_num_threads() == threads_;
    if (omp_get_thread_num() == 0) {
      held_.store(granted, std::memory_order_relaxed);
      try {
        main(arg);
      } catch (...) {
        main_error = std::current_exception();
      }
      held_.store(false, std::memory_order_relaxed);
      if (granted) {
        stop_ = true;
        generation_.fetch_add(1, std::memory_order_release);
      }
    } else if (granted) {
      uint64_t seen = base;
      const int t = omp_get_thread_num();
      for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = generation_.load(std::memory_order_acquire)) == seen) pause_or_yield(spins, spins_before_yield_);
        seen = g;
        if (stop_) break;
        work(t);
        slots_[t].done.store(g, std::memory_order_release);
      }
    }
  }
  if (main_error) std::rethrow_exception(main_error);
}

void Team::work(int t) {
  try {
    if (job_.dynamic) {
      for (int64_t i; (i = next_item_.fetch_add(1, std::memory_order_relaxed)) < job_.count;) job_.fn(job_.body, i);
    } else if (t < job_.count) {
      job_.fn(job_.body, t);
    }
  } catch (...) {
    if (!failed_.exchange(true, std::memory_order_acq_rel)) error_ = std::current_exception();
  }
}

void Team::run_job(const Job& job) {
  job_ = job;
  next_item_.store(0, std::memory_order_relaxed);
  in_job_.store(true, std::memory_order_relaxed);
  const uint64_t g = generation_.fetch_add(1, std::memory_order_release) + 1;
  work(0);
  wait_until_done(g);
  in_job_.store(false, std::memory_order_relaxed);
  if (failed_.load(std::memory_order_acquire)) {
    std::exception_ptr e = std::move(error_);
    error_ = nullptr;
    failed_.store(false, std::memory_order_relaxed);
    std::rethrow_exception(e);
  }
}

void Team::wait_until_done(uint64_t generation) {
  for (int t = 1; t < threads_; ++t) {
    int spins = 0;
    while (slots_[t].done.load(std::memory_order_acquire) < generation) pause_or_yield(spins, spins_before_yield_);
  }
}

}  // namespace bsbr::ops

// Execution context for the op layer: the oneDNN engine, one stream per worker thread, the
// run's MemoryTracker, per-thread user-managed scratchpads, and the "frozen" guard.
//
// Phases (benchdnn's order): create primitives and buffers -> verify -> time. While the context
// is frozen (the timed region), creating a primitive or growing a scratchpad is a broken
// invariant: it stops with file:line instead of silently timing setup work.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/memory.hpp"
#include "core/tensor.hpp"
#include "ops/team.hpp"

namespace bsbr::ops {

class Context {
 public:
  // threads: worker threads for oneDNN's OpenMP runtime and our own parallel loops; 0 = all cores.
  explicit Context(int threads = 0);
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const dnnl::engine& engine() const { return engine_; }
  // The stream of the calling thread (thread 0 outside parallel regions).
  dnnl::stream& stream();
  int threads() const { return threads_; }
  // The threads held for a decode step (ops/team.hpp). Mutable like a mutex: holding it and handing
  // it jobs changes no observable state of the context.
  Team& team() const { return team_; }
  // Runs main() with the team held (Team::hold): the ops inside hand their parallel parts to it.
  template <class Main>
  void hold_team(Main&& main) {
    team_.hold(std::forward<Main>(main));
  }
  // True when the calling code may spread work over the threads: at the top level (outside any
  // OpenMP region) or on a held team's main line. Inside a parallel loop or a team's job, false.
  bool may_fork() const;
  // Index of the calling worker thread, in [0, threads()).
  static int thread_id();

  MemoryTracker& memory() { return memory_; }
  Tensor tensor(MemCategory category, Shape shape) { return Tensor(memory_, category, std::move(shape)); }

  // User-managed scratchpads: every primitive created through the op layer reserves its
  // scratchpad here (counted as MemCategory::kScratch), before the buffers are (re)allocated.
  //  - An op made for one thread (created under SingleThreadOps, or small work: PrimitiveOp's
  //    `serial`) may run on any worker thread inside our parallel loops: every thread holds a
  //    buffer as large as the largest of them (`any_thread`).
  //  - An op made for the whole team runs at the top level only, on thread 0 (PrimitiveOp::execute
  //    enforces it); oneDNN sizes its scratchpad for all of its threads, so one buffer holds it.
  // Reserved bytes = max(team, single) + (threads - 1) * single: memory grows with threads times
  // the largest one-thread scratchpad only, not times the team's (which already grows with threads).
  void reserve_scratchpad(std::size_t bytes, bool any_thread);
  void* scratchpad() { return scratch_[thread_id()].data(); }
  // Bytes of the calling thread's scratchpad buffer.
  std::size_t thread_scratchpad_bytes() const { return scratch_[thread_id()].bytes(); }
  // Bytes of every thread's scratchpad buffer together (what the memory guard adds to its estimate).
  std::size_t scratchpad_reserved_bytes() const { return reserved_total(team_scratch_, single_scratch_); }
  // The same for given largest team / one-thread scratchpads.
  std::size_t reserved_total(std::size_t team, std::size_t single) const {
    return std::max(team, single) + static_cast<std::size_t>(threads_ - 1) * single;
  }
  // Frees the scratchpads (between benchmark points).
  void release_scratchpad();
  // True while a SingleThreadOps scope is open: ops created now are made for one thread.
  bool single_thread_ops() const { return single_thread_depth_ > 0; }

  // Executed-work counter (flops_executed, README "How it measures"): while counting, every
  // MatMul::run adds 2·batch·M·N·K of the product it executes (padding rows, masked and discarded
  // parts included), and hand loops doing matmul-like work add theirs (count_flops). Off while
  // timing; the runner turns it on for one untimed pass.
  void start_counting_flops() {
    flop_counter_.store(0);
    counting_flops_ = true;
  }
  double stop_counting_flops() {
    counting_flops_ = false;
    return static_cast<double>(flop_counter_.load());
  }
  bool counting_flops() const { return counting_flops_; }
  void count_flops(double flops) {
    if (counting_flops_) flop_counter_.fetch_add(static_cast<uint64_t>(flops));
  }

  void freeze() { frozen_ = true; }
  void thaw() { frozen_ = false; }
  bool frozen() const { return frozen_; }
  // Called by every primitive constructor: fails if the context is frozen.
  void check_creation_allowed(const char* what) const;

 private:
  int threads_;
  mutable Team team_;
  dnnl::engine engine_;
  std::vector<dnnl::stream> streams_;
  MemoryTracker memory_;
  friend class SingleThreadOps;
  friend class ScratchBudget;
  std::vector<Buffer> scratch_;             // one per worker thread
  std::size_t team_scratch_ = 0;            // largest scratchpad of an op made for the team
  std::size_t single_scratch_ = 0;          // largest scratchpad of an op made for one thread
  std::size_t scratch_budget_ = SIZE_MAX;   // ScratchBudget
  int single_thread_depth_ = 0;             // open SingleThreadOps scopes
  bool frozen_ = false;
  bool counting_flops_ = false;
  std::atomic<uint64_t> flop_counter_{0};
};

// RAII: ops created while it lives are made for one thread (oneDNN primitives created with one
// OpenMP thread, so their scratchpad is one thread's), because they run inside our own parallel
// loops (ops::parallel_items): one call per worker thread, concurrently. Building them for the
// whole team would size every worker's scratchpad for the whole team (threads² memory).
class SingleThreadOps {
 public:
  explicit SingleThreadOps(Context& ctx) : ctx_(ctx) { ++ctx_.single_thread_depth_; }
  ~SingleThreadOps() { --ctx_.single_thread_depth_; }
  SingleThreadOps(const SingleThreadOps&) = delete;
  SingleThreadOps& operator=(const SingleThreadOps&) = delete;

 private:
  Context& ctx_;
};

// Thrown by Context::reserve_scratchpad, before allocating, when the scratchpads would exceed the
// budget a ScratchBudget set (the memory guard's room left after its estimate).
class ScratchBudgetExceeded : public std::runtime_error {
 public:
  ScratchBudgetExceeded(std::size_t needed_bytes, std::size_t budget_bytes)
      : std::runtime_error("oneDNN scratchpads need " + std::to_string(needed_bytes) + " bytes, over the budget of " +
                           std::to_string(budget_bytes)),
        needed(needed_bytes), budget(budget_bytes) {}
  std::size_t needed, budget;
};

// RAII: caps the context's reserved scratchpad bytes while it lives (ScratchBudgetExceeded).
class ScratchBudget {
 public:
  ScratchBudget(Context& ctx, std::size_t bytes) : ctx_(ctx), saved_(ctx.scratch_budget_) { ctx_.scratch_budget_ = bytes; }
  ~ScratchBudget() { ctx_.scratch_budget_ = saved_; }
  ScratchBudget(const ScratchBudget&) = delete;
  ScratchBudget& operator=(const ScratchBudget&) = delete;

 private:
  Context& ctx_;
  std::size_t saved_;
};

// RAII: runs the enclosed oneDNN calls on one thread (when `active`). oneDNN's OpenMP runtime opens
// a parallel region per primitive; for tiny work (a decode step's [1, d] matmuls, a one-row layer
// norm) the fork/join costs more than the work. Our own parallel loops ask for their team size
// explicitly (num_threads(ctx.threads())), so they are unaffected.
class SerialScope {
 public:
  explicit SerialScope(bool active);
  ~SerialScope();
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;

 private:
  int saved_ = 0;
};

// Work (flops or elements) below which an op runs single-threaded (see SerialScope).
inline constexpr double kSerialWorkThreshold = 1 << 20;

// Runs body(i) for i in [0, count): over ctx.threads() OpenMP threads (dynamic, one item at a time)
// when `parallel` and there is more than one thread and item, else as a plain loop on the caller.
// Serial work must not enter an OpenMP region at all: libgomp allocates a team (gomp_new_team) for
// every region of one thread, which would be a heap allocation inside the timed region.
// On a held team's main line the items go to the team; inside a parallel loop or a job they run on
// the calling thread.
template <class Body>
void parallel_items(const Context& ctx, int64_t count, bool parallel, Body&& body) {
  if (parallel && ctx.threads() > 1 && count > 1 && ctx.may_fork()) {
    if (ctx.team().dispatching()) {
      ctx.team().run_items(count, body);
      return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(ctx.threads())
    for (int64_t i = 0; i < count; ++i) body(i);
  } else {
    for (int64_t i = 0; i < count; ++i) body(i);
  }
}

// RAII: freezes a context for a timed region.
class FrozenRegion {
 public:
  explicit FrozenRegion(Context& ctx) : ctx_(ctx), was_(ctx.frozen()) { ctx_.freeze(); }
  ~FrozenRegion() {
    if (!was_) ctx_.thaw();
  }
  FrozenRegion(const FrozenRegion&) = delete;
  FrozenRegion& operator=(const FrozenRegion&) = delete;

 private:
  Context& ctx_;
  bool was_;
};

}  // namespace bsbr::ops

// A held team: the context's threads kept for a whole decode step, handed its parallel parts.
//
// Why: a decode step is a dozen dependent products, each a few microseconds of work split over the
// threads. As one OpenMP region per product, every product paid a fork/join: an empty region takes
// about 1.5 us on the 2-core box and 3.3-4 us at 16 threads on the 16-core host (a standalone loop of
// regions). Held, the step opens one region: thread 0 runs the step's code (the main line); the other
// threads spin until the main line hands them a job (the GEMV's column parts, a parallel_items loop),
// run their share, and say so in their own cache line. A worker starts its share 0.4-0.6 us after
// the main line publishes the job at 16 threads (0.1-0.2 us on the 2-core box; per-job timings of an
// instrumented build). Part t always runs on thread t, so each thread reads the same slice of the
// weights every step, which its L2 keeps: handing the parts out dynamically instead made the LM
// head's parts take 35-55 us against 11-31 us at 16 threads.
//
// Rules, which the op layer follows (Context::may_fork):
//  - Only the main line dispatches. Inside a job (on any thread) work runs on the calling thread,
//    as inside any of our parallel loops.
//  - oneDNN primitives called on the main line run on thread 0 alone (oneDNN sees an OpenMP region),
//    as any op made for one thread. A step's primitives are small; the few made for the whole team
//    (BSBR's chunk-boundary products, once per chunk) run single-threaded while held. GAU's fold of a
//    chunk into its state, the largest, is split into row slabs through parallel_items instead.
//  - Waiting spins with a pause, then yields, sooner when the threads outnumber the processors.
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace bsbr::ops {

class Team {
 public:
  explicit Team(int threads);
  Team(const Team&) = delete;
  Team& operator=(const Team&) = delete;

  // Runs main() on thread 0 with the team held: the other threads wait for run_parts/run_items.
  // With one thread, inside an OpenMP region, or when the runtime grants fewer threads, main() runs
  // without a team (dispatching() stays false, so the ops fork as usual or run serially).
  // An exception from main() or from a job is rethrown here, after the region.
  template <class Main>
  void hold(Main&& main) {
    hold_impl(&invoke_main<std::remove_reference_t<Main>>, &main);
  }

  // True on a held team's main line, outside a job: parallel work is to be handed to the team.
  bool dispatching() const;

  // body(t) on thread t for every t < parts (parts <= threads()); the main line runs part 0.
  template <class Body>
  void run_parts(int64_t parts, Body&& body) {
    run_job(Job{&invoke<std::remove_reference_t<Body>>, &body, parts, false});
  }
  // body(i) for every i < count, each thread taking the next item until none is left.
  template <class Body>
  void run_items(int64_t count, Body&& body) {
    run_job(Job{&invoke<std::remove_reference_t<Body>>, &body, count, true});
  }

 private:
  struct Job {
    void (*fn)(void*, int64_t);
    void* body;
    int64_t count;  // parts, or items
    bool dynamic;   // items taken one at a time (run_items)
  };
  struct alignas(64) Slot {
    std::atomic<uint64_t> done{0};  // the last job generation this thread finished
  };

  template <class Body>
  static void invoke(void* body, int64_t i) {
    (*static_cast<Body*>(body))(i);
  }
  template <class Main>
  static void invoke_main(void* main) {
    (*static_cast<Main*>(main))();
  }

  void hold_impl(void (*main)(void*), void* arg);
  void run_job(const Job& job);
  void work(int t);  // thread t's share of the current job
  void wait_until_done(uint64_t generation);

  int threads_;
  int spins_before_yield_;
  std::unique_ptr<Slot[]> slots_;  // [threads]
  // job_ and stop_ are written by the main line before a job's generation is published (release),
  // read by the workers after they see it (acquire). All three share one cache line, so a waking
  // worker fetches the job with the generation in one transfer: tools/team_handoff_bench put the last
  // worker's start 0.49 -> 0.30 us after the publish on the 2-core box and 0.72-0.88 -> 0.45-0.50 us
  // on the 16-core host (16 threads, 32 KiB parts: job 2.1-2.6 -> 2.05-2.08 us), against job_ on a
  // line of its own.
  alignas(64) std::atomic<uint64_t> generation_{0};
  Job job_{};
  bool stop_ = false;
  alignas(64) std::atomic<int64_t> next_item_{0};
  std::atomic<bool> held_{false};   // main line running with the team
  std::atomic<bool> in_job_{false}; // a job is running (every thread runs serially inside)
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;        // the first exception of a job (failed_ says who stores it)
};

}  // namespace bsbr::ops

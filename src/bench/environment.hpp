// The environment block recorded with every results file (SPEC §3): what ran where.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace bsbr {

struct Environment {
  std::string cpu_model;
  int cores = 0;
  int threads = 0;
  std::string onednn_version;
  std::string onednn_isa;  // the ISA oneDNN dispatches on this machine
  std::string compiler, cxx_flags, build_type;
  std::string git_commit;  // the build's commit (generated/git_commit.hpp): "<sha>[-dirty or -unknown-state]" or "unknown"
  std::string utc_time;    // ISO 8601
  std::string hostname;
  std::string tool_version;
  std::string omp_wait_policy;         // OMP_WAIT_POLICY as libgomp read it at load ("" = unset: libgomp's default, spin then sleep)
  std::string omp_wait_policy_source;  // "bsbr-bench" (set by the re-exec), "user" (set before starting), "unset"
  std::string gomp_spincount;          // GOMP_SPINCOUNT as libgomp read it ("" = unset), set by the same re-exec
  // Thread binding: the runtime's policy (omp_get_proc_bind: "false", "true", "primary", "close",
  // "spread"; OMP_PROC_BIND, or "true" when only OMP_PLACES is set) and OMP_PLACES ("" = unset).
  std::string omp_proc_bind;
  std::string omp_places;
};

Environment collect_environment(int threads);
// Threads of this process right now (/proc/self/task; 0 if unreadable). After a sweep on T worker
// threads, OpenMP's pool makes it T (the main thread is worker 0): recorded as evidence that
// --threads was honoured.
int process_threads();

// OpenMP threads that spin at barriers without limit collapse when the machine is busy: a spinning
// thread burns its time slice while the partner it waits for is descheduled (Linear prefill at
// n = 64 on 2 cores with 4 busy processes: 0.99 ms -> 180 ms spinning, 10 ms passive; README "How
// it measures"). Threads that sleep at once (passive) pay a futex wake-up per parallel region
// instead: 43 us per region on the 2-core VM (an empty region between 5 us of serial work), so a
// decode step with a dozen regions spent most of its time waking threads. bsbr-bench therefore
// runs with OMP_WAIT_POLICY=passive and GOMP_SPINCOUNT=10000: a waiting thread spins about 0.1 ms
// (libgomp's estimate: 100,000 spins per ms), then sleeps. Region cost 1.9 us; Linear prefill at
// 2 threads with 4 busy processes: n = 64 1.25 ms, n = 1024 46 ms, against 5.4 and 67 ms passive
// (README "How it measures"). Unless the user set either variable: libgomp reads them once, when
// it is loaded, before main, so main() calls this first, and it sets both and re-executes the
// binary (/proc/self/exe, same argv). The marker variable BSBR_OMP_WAIT_POLICY_SET (set with them)
// stops a second re-exec; BSBR_NO_REEXEC=1 opts out (libgomp's defaults then apply). If the
// re-exec fails the run goes on with the defaults.
void apply_omp_wait_policy(char** argv);
inline constexpr const char* kDefaultOmpWaitPolicy = "passive";
inline constexpr const char* kDefaultGompSpinCount = "10000";
nlohmann::json to_json(const Environment& e);

}  // namespace bsbr

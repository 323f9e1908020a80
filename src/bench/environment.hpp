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
  std::string git_commit;  // "<sha>[-dirty]" or "unknown"
  std::string utc_time;    // ISO 8601
  std::string hostname;
  std::string tool_version;
  std::string omp_wait_policy;         // OMP_WAIT_POLICY as libgomp read it at load ("" = unset: libgomp's default, spin then sleep)
  std::string omp_wait_policy_source;  // "bsbr-bench" (set by the re-exec), "user" (set before starting), "unset"
};

Environment collect_environment(int threads);
// Threads of this process right now (/proc/self/task; 0 if unreadable). After a sweep on T worker
// threads, OpenMP's pool makes it T (the main thread is worker 0): recorded as evidence that
// --threads was honoured.
int process_threads();

// OpenMP threads that spin at barriers collapse when the machine is busy: a spinning thread burns
// its time slice while the partner it waits for is descheduled (Linear prefill at n = 64 on 2 cores
// with 4 busy processes: 0.99 ms -> 180 ms spinning, 10 ms passive; README "How it measures").
// So bsbr-bench runs with OMP_WAIT_POLICY=passive unless the user set OMP_WAIT_POLICY. libgomp
// reads the variable once, when it is loaded, before main: main() calls this first, and when the
// variable is unset it sets it and re-executes the binary (/proc/self/exe, same argv). The marker
// variable BSBR_OMP_WAIT_POLICY_SET (set with it) stops a second re-exec; BSBR_NO_REEXEC=1 opts out
// (libgomp's default policy then applies). If the re-exec fails the run goes on with the default.
void apply_omp_wait_policy(char** argv);
inline constexpr const char* kDefaultOmpWaitPolicy = "passive";
nlohmann::json to_json(const Environment& e);

}  // namespace bsbr

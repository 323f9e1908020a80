// Collects machine, library and build facts.
#include "bench/environment.hpp"

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ctime>
#include <fstream>
#include <vector>

#include "build_info.hpp"
#include "git_commit.hpp"

namespace bsbr {

namespace {

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

std::string isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    default: return "isa#" + std::to_string(static_cast<int>(isa));
  }
}

}  // namespace

int process_threads() {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/task", ec); !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) ++n;
  return ec ? 0 : n;
}

namespace {

// The CPUs of every OpenMP place, when the runtime binds threads (OMP_PROC_BIND or OMP_PLACES); an
// empty set otherwise. libgomp binds the initial thread to its first place when it loads, and an
// exec'd image inherits that thread's mask: without widening it back, the re-executed process would
// see one core (libgomp's omp_get_num_procs 1, and a --threads limit of 4).
cpu_set_t places_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (omp_get_proc_bind() == omp_proc_bind_false) return set;
  for (int p = 0; p < omp_get_num_places(); ++p) {
    std::vector<int> ids(static_cast<std::size_t>(std::max(0, omp_get_place_num_procs(p))));
    omp_get_place_proc_ids(p, ids.data());
    for (int id : ids)
      if (id >= 0 && id < CPU_SETSIZE) CPU_SET(id, &set);
  }
  return set;
}

}  // namespace

void apply_omp_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv("BSBR_OMP_WAIT_POLICY_SET"))
    return;  // the user's choice, or re-executed already
  const char* opt_out = std::getenv("BSBR_NO_REEXEC");
  if (opt_out && std::strcmp(opt_out, "0") != 0 && *opt_out) return;
  ::setenv("OMP_WAIT_POLICY", kDefaultOmpWaitPolicy, 1);
  ::setenv("GOMP_SPINCOUNT", kDefaultGompSpinCount, 1);
  ::setenv("BSBR_OMP_WAIT_POLICY_SET", kDefaultOmpWaitPolicy, 1);
  const cpu_set_t places = places_cpus();
  cpu_set_t bound;  // the initial thread's mask as libgomp left it
  const bool widen = CPU_COUNT(&places) > 0 && sched_getaffinity(0, sizeof bound, &bound) == 0;
  if (widen) sched_setaffinity(0, sizeof places, &places);
  ::execv("/proc/self/exe", argv);
  // Only reached when the exec failed: run on with libgomp's default and say so in the environment.
  if (widen) sched_setaffinity(0, sizeof bound, &bound);
  ::unsetenv("OMP_WAIT_POLICY");
  ::unsetenv("GOMP_SPINCOUNT");
  ::unsetenv("BSBR_OMP_WAIT_POLICY_SET");
}

Environment collect_environment(int threads) {
  Environment e;
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* ours = std::getenv("BSBR_OMP_WAIT_POLICY_SET");
  e.omp_wait_policy = policy ? policy : "";
  e.omp_wait_policy_source = !policy ? "unset" : (ours && std::strcmp(ours, policy) == 0) ? "bsbr-bench" : "user";
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  e.gomp_spincount = spin ? spin : "";
  switch (omp_get_proc_bind()) {
    case omp_proc_bind_false: e.omp_proc_bind = "false"; break;
    case omp_proc_bind_true: e.omp_proc_bind = "true"; break;
    case omp_proc_bind_master: e.omp_proc_bind = "primary"; break;
    case omp_proc_bind_close: e.omp_proc_bind = "close"; break;
    case omp_proc_bind_spread: e.omp_proc_bind = "spread"; break;
    default: e.omp_proc_bind = "unknown"; break;
  }
  const char* places = std::getenv("OMP_PLACES");
  e.omp_places = places ? places : "";
  e.cpu_model = cpu_model_name();
  e.cores = omp_get_num_procs();
  e.threads = threads;
  const dnnl_version_t* v = dnnl_version();
  e.onednn_version = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) +
                     (v->cpu_runtime == DNNL_RUNTIME_OMP ? " (OpenMP runtime)" : "");
  e.onednn_isa = isa_name(dnnl::get_effective_cpu_isa());
  e.compiler = build_info::kCompiler;
  e.cxx_flags = build_info::kCxxFlags;
  e.build_type = build_info::kBuildType;
  // The commit the binary was built from (tools/git_commit.cmake, at build time): the run's results
  // describe this binary, whatever the source tree holds when it runs, and a host without git or the
  // tree (a portable bundle) still records it.
  e.git_commit = build_info::kGitCommit;
  e.tool_version = build_info::kVersion;
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  e.utc_time = buf;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) == 0) e.hostname = host;
  return e;
}

nlohmann::json to_json(const Environment& e) {
  return {{"cpu_model", e.cpu_model},     {"cores", e.cores},         {"threads", e.threads},
          {"onednn_version", e.onednn_version}, {"onednn_isa", e.onednn_isa}, {"compiler", e.compiler},
          {"cxx_flags", e.cxx_flags},     {"build_type", e.build_type}, {"git_commit", e.git_commit},
          {"utc_time", e.utc_time},       {"hostname", e.hostname},   {"tool_version", e.tool_version},
          {"omp_wait_policy", e.omp_wait_policy.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.omp_wait_policy)},
          {"omp_wait_policy_source", e.omp_wait_policy_source},
          {"gomp_spincount", e.gomp_spincount.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.gomp_spincount)},
          {"omp_proc_bind", e.omp_proc_bind},
          {"omp_places", e.omp_places.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.omp_places)}};
}

}  // namespace bsbr

// Range checks of numeric inputs (core/limits.hpp).
#include "core/limits.hpp"

#include <sched.h>

#include <algorithm>
#include <charconv>

#include "core/errors.hpp"

// OpenMP's count of processors, where the program links an OpenMP runtime (a weak reference: the
// parsers' fuzz targets link none and take the fallback below).
extern "C" int omp_get_num_procs(void) __attribute__((weak));

namespace bsbr {

namespace {
// CPUs this process may run on, as OpenMP's omp_get_num_procs counts them: the affinity mask the
// process started with. With OMP_PROC_BIND (or OMP_PLACES) set, libgomp binds the initial thread to
// its first place when it loads, so the thread's own mask (sched_getaffinity) then holds one core,
// and --threads 16 on a 16-core host was refused as above 4 x the CPUs; libgomp counted its
// processors before that binding. Without an OpenMP runtime: the kernel's affinity mask.
int64_t usable_cpus() {
  if (omp_get_num_procs != nullptr) return std::max(1, omp_get_num_procs());
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}
}  // namespace

int64_t max_threads() { return std::min<int64_t>(limits::kMaxThreads, limits::kThreadsPerCpu * usable_cpus()); }

Limit threads_limit() { return Limit{"threads", 0, max_threads()}; }

namespace {
std::string range_text(const Limit& l) { return "[" + std::to_string(l.lo) + ", " + std::to_string(l.hi) + "]"; }
}  // namespace

void check_range(const std::string& where, const Limit& l, int64_t v) {
  if (v < l.lo || v > l.hi) throw UserError(where + " must be an integer in " + range_text(l) + ", got " + std::to_string(v));
}

int64_t parse_int_in(const std::string& flag, const std::string& text, const Limit& l) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || p != end)
    throw UserError(flag + " must be an integer in " + range_text(l) + ", got '" + text + "'");
  if (v < l.lo || v > l.hi) throw UserError(flag + " must be an integer in " + range_text(l) + ", got '" + text + "'");
  return v;
}

std::vector<int64_t> parse_ints_in(const std::string& flag, const std::vector<std::string>& texts, const Limit& l) {
  std::vector<int64_t> out;
  for (const std::string& t : texts) out.push_back(parse_int_in(flag, t, l));
  return out;
}

std::vector<std::pair<std::string, std::string>> limits_table() {
  using namespace limits;
  std::vector<std::pair<std::string, std::string>> t;
  for (const Limit& l : {kSeqLength, kNTokens, kRepeats, kWarmup, kVerifyLength, kSeed, kVocabSize, kHiddenDim, kNumLayers, kNumHeads, kFfDim,
                         kChunkSize, kWindowSize, kLinearChunkSize, kExpansionFactor, kCompressionFactor, kBatchSize, kEvalLength,
                         kHeatmapLength, kHeatmapIndex})
    t.emplace_back(l.name, range_text(l));
  t.emplace_back("threads", "[0, min(" + std::to_string(kMaxThreads) + ", " + std::to_string(kThreadsPerCpu) + " x logical CPUs)]");
  return t;
}

}  // namespace bsbr

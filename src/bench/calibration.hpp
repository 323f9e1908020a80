// Calibration: a large f32 matmul timed in the same run as the benchmark, giving the machine's
// attainable GFLOP/s. Results from different machines then compare as ratios (SPEC §3), and
// `check` normalises timings by it.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ops/context.hpp"

namespace bsbr {

struct Calibration {
  int64_t m = 0, n = 0, k = 0;
  int threads = 0;
  std::vector<double> samples_s;
  double median_s = 0;
  double gflops = 0;  // 2mnk / median
  std::string impl;
};

// Times C[size, size] = A . B with oneDNN (warm-up, then `repeats` samples).
Calibration calibrate(ops::Context& ctx, int64_t size = 2048, int repeats = 5);
nlohmann::json to_json(const Calibration& c);

// The last-level cache (README "How it measures", bandwidth calibration): the largest `size` of
// /sys/devices/system/cpu/cpu0/cache/index*/ with the highest `level` (data or unified caches);
// when sysfs gives none, kFallbackLlcBytes, and source says "fallback".
inline constexpr std::size_t kFallbackLlcBytes = std::size_t{32} << 20;  // 32 MiB
struct LastLevelCache {
  std::size_t bytes = kFallbackLlcBytes;
  int level = 0;                  // 0 when unknown
  std::string source = "fallback";  // "sysfs" | "fallback"
};
LastLevelCache read_last_level_cache(const std::string& sysfs_cpu0_cache = "/sys/devices/system/cpu/cpu0/cache");
// A sysfs cache size ("32768K", "2M", "512"): bytes, or 0 when it does not parse.
std::size_t parse_cache_size(const std::string& text);

// One read-bandwidth measurement: a streaming f32 sum over `bytes`, `passes` times per sample.
struct BandwidthSample {
  std::size_t bytes = 0;
  int64_t passes = 0;
  std::vector<double> samples_s;
  double median_s = 0;
  double gbps = 0;  // bytes x passes / median / 1e9
};
// The second calibration: read bandwidth on a buffer larger than the LLC (max(4 x LLC, 64 MiB):
// memory) and on one smaller (LLC / 4, at least 256 KiB: cache), on ctx.threads() threads, each
// thread summing its contiguous slice. The buffer is allocated and written once, outside timing.
struct BandwidthCalibration {
  int threads = 0;
  LastLevelCache llc;
  BandwidthSample large, small;
};
BandwidthCalibration calibrate_bandwidth(ops::Context& ctx, int repeats = 5, const LastLevelCache& llc = read_last_level_cache());
nlohmann::json to_json(const BandwidthCalibration& c);

// The calibrations at one thread count, as the results file's calibration.per_threads entries:
// {"threads", "matmul": to_json(Calibration), "bandwidth": to_json(BandwidthCalibration)}.
nlohmann::json per_threads_json(const Calibration& matmul, const BandwidthCalibration& bandwidth);

}  // namespace bsbr

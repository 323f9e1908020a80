// Calibration: a large f32 matmul timed in the same run as the benchmark, giving the machine's
// attainable GFLOP/s. Results from different machines then compare as ratios (SPEC §3), and
// `check` normalises timings by it.
#pragma once
#include <cstdint>
#include <functional>
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

// The read kernel: the sum of x[0, count), read as kReadStreams contiguous sub-ranges side by side,
// one cache line (kReadLanes floats) of each per step into that stream's own accumulators, then the
// tail in order. Several streams per thread keep several hardware-prefetch streams and many cache
// misses in flight; the accumulators are independent chains (no add latency bound) and the inner
// loop vectorises without -ffast-math (plain loads and adds). Float sums are not associative, so the
// result equals a plain loop's exactly only when every partial sum is exact (small integers).
inline constexpr int kReadStreams = 8, kReadLanes = 16;
float read_sum(const float* x, int64_t count);

// One read-bandwidth measurement: read_sum over `bytes`, `passes` times per sample.
struct BandwidthSample {
  std::size_t bytes = 0;
  int64_t passes = 0;
  std::vector<double> samples_s;
  double median_s = 0;
  double best_s = 0;  // the fastest sample
  double gbps = 0;    // bytes x passes / best_s / 1e9 (a ceiling: the best of the samples)
};
// The sampling protocol of one rung, given run(passes) (one timed sample of that many passes, in
// seconds). Passes per sample are sized for about 10 ms from untimed runs growing 8x until one takes
// 2 ms; at that count the least of three runs sizes them, so one run slowed by a neighbour cannot
// shrink every sample. If the samples still come out shorter than 5 ms, passes are sized again from
// the best sample and the samples taken again (at most twice): a rung of few passes is timed at its
// fork/join and cold first pass, not its bandwidth (a loud host gave 9 GB/s at 16 threads, 1.5 MiB,
// 2 passes, between rungs of 700-970 GB/s).
BandwidthSample sample_read_bandwidth(std::size_t bytes, int repeats, const std::function<double(int64_t passes)>& run);

// The second calibration, on ctx.threads() threads, each thread reading its contiguous slice
// `passes` times inside one parallel item (so a slice that fits a core's cache stays there, as a
// decode step's share of the weights does from token to token). The buffer is allocated and written
// once, by the threads that read it, outside timing; a sample's passes follow one untimed pass.
//   large: max(4 x LLC, 64 MiB) (memory);  small: max(LLC / 4, 256 KiB) (cache);
//   ladder: 256 KiB, 384 KiB, 512 KiB, 768 KiB, 1 MiB, ... (each power of two and 1.5 times it)
//   below `large`, then `large`: the bandwidth at each working-set size, for the decode roofline
//   (Results::bandwidth_gbps_for; steps of at most 1.5x keep the rung below a working set close).
struct BandwidthCalibration {
  int threads = 0;
  LastLevelCache llc;
  BandwidthSample large, small;
  std::vector<BandwidthSample> ladder;  // ascending bytes
};
// The ladder's buffer sizes for a large buffer of `large` bytes.
std::vector<std::size_t> bandwidth_ladder_bytes(std::size_t large);
BandwidthCalibration calibrate_bandwidth(ops::Context& ctx, int repeats = 5, const LastLevelCache& llc = read_last_level_cache());
nlohmann::json to_json(const BandwidthCalibration& c);

// The calibrations at one thread count, as the results file's calibration.per_threads entries:
// {"threads", "matmul": to_json(Calibration), "bandwidth": to_json(BandwidthCalibration)}.
nlohmann::json per_threads_json(const Calibration& matmul, const BandwidthCalibration& bandwidth);

}  // namespace bsbr

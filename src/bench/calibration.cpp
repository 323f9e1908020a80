// The calibration matmul.
#include "bench/calibration.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "bench/stats.hpp"
#include "core/rng.hpp"
#include "ops/ops.hpp"

namespace bsbr {

Calibration calibrate(ops::Context& ctx, int64_t size, int repeats) {
  using ops::MatLayout;
  Calibration c;
  c.m = c.n = c.k = size;
  c.threads = ctx.threads();
  Tensor a = ctx.tensor(MemCategory::kActivations, {size, size});
  Tensor b = ctx.tensor(MemCategory::kActivations, {size, size});
  Tensor out = ctx.tensor(MemCategory::kActivations, {size, size});
  CounterRng rng(12345, hash_name("calibration"));
  for (int64_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<float>(rng.uniform(2 * i) - 0.5);
    b[i] = static_cast<float>(rng.uniform(2 * i + 1) - 0.5);
  }
  ops::MatMul mm(ctx, {MatLayout::dense(size, size), MatLayout::dense(size, size), MatLayout::dense(size, size), false, 1.f, {}});
  c.impl = mm.impl();
  ops::FrozenRegion frozen(ctx);
  for (int w = 0; w < 2; ++w) mm.run(ctx, a.data(), b.data(), out.data());
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    mm.run(ctx, a.data(), b.data(), out.data());
    ctx.stream().wait();
    c.samples_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  c.median_s = compute_stats(c.samples_s).median;
  ctx.release_scratchpad();  // so the first benchmark point's peak memory does not include it
  c.gflops = 2.0 * size * size * size / c.median_s / 1e9;
  return c;
}

nlohmann::json to_json(const Calibration& c) {
  return {{"kind", "matmul_f32"}, {"m", c.m}, {"n", c.n}, {"k", c.k}, {"threads", c.threads}, {"samples_s", c.samples_s},
          {"median_s", c.median_s}, {"gflops", c.gflops}, {"impl", c.impl}};
}

std::size_t parse_cache_size(const std::string& text) {
  std::size_t i = 0, v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    if (v > (std::size_t{1} << 50)) return 0;
    v = v * 10 + static_cast<std::size_t>(text[i++] - '0');
  }
  if (i == 0) return 0;
  std::size_t scale = 1;
  if (i < text.size() && (text[i] == 'K' || text[i] == 'k')) scale = 1024, ++i;
  else if (i < text.size() && text[i] == 'M') scale = std::size_t{1} << 20, ++i;
  else if (i < text.size() && text[i] == 'G') scale = std::size_t{1} << 30, ++i;
  while (i < text.size() && (text[i] == '\n' || text[i] == ' ')) ++i;
  return i == text.size() ? v * scale : 0;
}

LastLevelCache read_last_level_cache(const std::string& dir) {
  LastLevelCache llc;
  std::error_code ec;
  auto read = [](const std::filesystem::path& p) {
    std::ifstream f(p);
    std::string s;
    std::getline(f, s);
    return s;
  };
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("index", 0) != 0) continue;
    if (read(it->path() / "type") == "Instruction") continue;
    const std::size_t bytes = parse_cache_size(read(it->path() / "size"));
    int level = 0;
    try {
      level = std::stoi(read(it->path() / "level"));
    } catch (const std::exception&) {
      continue;
    }
    if (bytes == 0) continue;
    if (level > llc.level || (level == llc.level && bytes > llc.bytes)) {
      llc.level = level;
      llc.bytes = bytes;
      llc.source = "sysfs";
    }
  }
  return llc;
}

namespace {

// Sums x[0, count) with 32 independent accumulators (vectorisable without -ffast-math; one
// accumulator would be a latency-bound chain), so the loop is limited by reads, not adds.
float stream_sum(const float* x, int64_t count) {
  constexpr int kLanes = 32;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes)
    for (int k = 0; k < kLanes; ++k) acc[k] += x[i + k];
  float s = 0;
  for (; i < count; ++i) s += x[i];
  for (float a : acc) s += a;
  return s;
}

// Times `passes` streaming sums of buf[0, floats) per sample, each thread summing its slice.
BandwidthSample time_reads(ops::Context& ctx, const float* buf, int64_t floats, int repeats, std::vector<float>& partial) {
  const int threads = ctx.threads();
  const int64_t slice = (floats + threads - 1) / threads;
  auto one_pass = [&] {
    ops::parallel_items(ctx, threads, true, [&](int64_t t) {
      const int64_t lo = std::min(floats, t * slice), hi = std::min(floats, lo + slice);
      partial[static_cast<std::size_t>(t)] += stream_sum(buf + lo, hi - lo);
    });
  };
  using Clock = std::chrono::steady_clock;
  // Passes per sample: enough for about 20 ms, so a cache-resident buffer is not timed at the
  // clock's resolution. One untimed pass warms the caches (and sizes the sample).
  auto t0 = Clock::now();
  one_pass();
  const double one = std::max(1e-7, std::chrono::duration<double>(Clock::now() - t0).count());
  BandwidthSample s;
  s.bytes = static_cast<std::size_t>(floats) * sizeof(float);
  s.passes = std::max<int64_t>(1, std::min<int64_t>(100000, static_cast<int64_t>(0.02 / one)));
  for (int r = 0; r < repeats; ++r) {
    t0 = Clock::now();
    for (int64_t p = 0; p < s.passes; ++p) one_pass();
    s.samples_s.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  s.median_s = compute_stats(s.samples_s).median;
  s.gbps = static_cast<double>(s.bytes) * static_cast<double>(s.passes) / s.median_s / 1e9;
  return s;
}

nlohmann::json to_json(const BandwidthSample& s) {
  return {{"bytes", s.bytes}, {"passes", s.passes}, {"samples_s", s.samples_s}, {"median_s", s.median_s}, {"gbps", s.gbps}};
}

}  // namespace

BandwidthCalibration calibrate_bandwidth(ops::Context& ctx, int repeats, const LastLevelCache& llc) {
  BandwidthCalibration c;
  c.threads = ctx.threads();
  c.llc = llc;
  const std::size_t large = std::max<std::size_t>(std::size_t{64} << 20, 4 * llc.bytes);
  const std::size_t small = std::max<std::size_t>(std::size_t{256} << 10, llc.bytes / 4);
  const int64_t large_floats = static_cast<int64_t>(large / sizeof(float)), small_floats = static_cast<int64_t>(small / sizeof(float));
  Tensor buf = ctx.tensor(MemCategory::kActivations, {large_floats});  // [large / 4]
  // Written by the threads that will read it (first touch places pages near them).
  const int64_t slice = (large_floats + ctx.threads() - 1) / ctx.threads();
  float* data = buf.data();
  ops::parallel_items(ctx, ctx.threads(), true, [&](int64_t t) {
    const int64_t lo = std::min(large_floats, t * slice), hi = std::min(large_floats, lo + slice);
    for (int64_t i = lo; i < hi; ++i) data[i] = static_cast<float>(i % 7) * 0.125f;
  });
  std::vector<float> partial(static_cast<std::size_t>(ctx.threads()), 0.f);
  c.large = time_reads(ctx, data, large_floats, repeats, partial);
  c.small = time_reads(ctx, data, small_floats, repeats, partial);
  // The sums must be used, or the reads could be dropped.
  volatile float sink = 0;
  for (float p : partial) sink = sink + p;
  (void)sink;
  return c;
}

nlohmann::json to_json(const BandwidthCalibration& c) {
  return {{"kind", "read_sum_f32"},
          {"threads", c.threads},
          {"llc_bytes", c.llc.bytes},
          {"llc_level", c.llc.level},
          {"llc_source", c.llc.source},
          {"larger_than_llc", to_json(c.large)},
          {"smaller_than_llc", to_json(c.small)}};
}

nlohmann::json per_threads_json(const Calibration& matmul, const BandwidthCalibration& bandwidth) {
  return {{"threads", matmul.threads}, {"matmul", to_json(matmul)}, {"bandwidth", to_json(bandwidth)}};
}

}  // namespace bsbr

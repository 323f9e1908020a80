// The calibration matmul.
#include "bench/calibration.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>

#include "bench/stats.hpp"
#include "core/errors.hpp"
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

float read_sum(const float* x, int64_t count) {
  float acc[kReadStreams][kReadLanes] = {};
  const int64_t per = count / (kReadStreams * kReadLanes) * kReadLanes;  // floats per stream
  for (int64_t i = 0; i < per; i += kReadLanes)
    for (int s = 0; s < kReadStreams; ++s) {
      const float* line = x + s * per + i;
#pragma omp simd
      for (int k = 0; k < kReadLanes; ++k) acc[s][k] += line[k];
    }
  float sum = 0;
  for (int64_t i = kReadStreams * per; i < count; ++i) sum += x[i];
  for (const auto& stream : acc)
    for (float a : stream) sum += a;
  return sum;
}

namespace {

// Times read_sum over buf[0, floats): each thread reads its slice (whole cache lines) `passes` times
// in one parallel item per sample, so there is one fork/join per sample, not per pass.
BandwidthSample time_reads(ops::Context& ctx, const float* buf, int64_t floats, int repeats, std::vector<float>& partial) {
  const int threads = ctx.threads();
  const int64_t slice = ((floats + threads - 1) / threads + kReadLanes - 1) / kReadLanes * kReadLanes;
  using Clock = std::chrono::steady_clock;
  auto run = [&](int64_t passes) {
    const auto t0 = Clock::now();
    ops::parallel_items(ctx, threads, true, [&](int64_t t) {
      const int64_t lo = std::min(floats, t * slice), hi = std::min(floats, lo + slice);
      float sum = 0;
      for (int64_t p = 0; p < passes; ++p) {
        // read_sum is pure: without this barrier (the slice's address made opaque, memory
        // clobbered) the compiler computes it once and reuses it for every pass.
        const float* slice_begin = buf + lo;
        asm volatile("" : "+r"(slice_begin) : : "memory");
        sum += read_sum(slice_begin, hi - lo);
      }
      partial[static_cast<std::size_t>(t)] += sum;
    });
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  return sample_read_bandwidth(static_cast<std::size_t>(floats) * sizeof(float), repeats, run);
}

nlohmann::json to_json(const BandwidthSample& s) {
  return {{"bytes", s.bytes}, {"passes", s.passes}, {"samples_s", s.samples_s}, {"median_s", s.median_s}, {"best_s", s.best_s}, {"gbps", s.gbps}};
}

}  // namespace

BandwidthSample sample_read_bandwidth(std::size_t bytes, int repeats, const std::function<double(int64_t passes)>& run) {
  constexpr int64_t kMaxPasses = 1000000;
  constexpr double kTargetS = 0.01, kSizingS = 0.002, kShortS = 0.005;
  constexpr int kResizes = 2;
  BSBR_CHECK(repeats >= 1, "read-bandwidth calibration with no samples");
  const auto passes_for = [&](int64_t passes, double took) {  // passes for about kTargetS at that rate
    return std::clamp<int64_t>(static_cast<int64_t>(static_cast<double>(passes) * kTargetS / std::max(took, 1e-9)), 1, kMaxPasses);
  };
  // Untimed sizing runs (they also warm the caches).
  int64_t passes = 1;
  double took = run(passes);
  while (took < kSizingS && passes < kMaxPasses) took = run(passes = std::min(kMaxPasses, passes * 8));
  for (int i = 0; i < 2; ++i) took = std::min(took, run(passes));
  BandwidthSample s;
  s.bytes = bytes;
  s.passes = passes_for(passes, took);
  for (int attempt = 0;; ++attempt) {
    s.samples_s.clear();
    for (int r = 0; r < repeats; ++r) s.samples_s.push_back(run(s.passes));
    s.best_s = *std::min_element(s.samples_s.begin(), s.samples_s.end());
    if (s.best_s >= kShortS || s.passes >= kMaxPasses || attempt == kResizes) break;
    s.passes = std::max(s.passes + 1, passes_for(s.passes, s.best_s));
  }
  s.median_s = compute_stats(s.samples_s).median;
  s.gbps = static_cast<double>(s.bytes) * static_cast<double>(s.passes) / s.best_s / 1e9;
  return s;
}

std::vector<std::size_t> bandwidth_ladder_bytes(std::size_t large) {
  std::vector<std::size_t> out;
  for (std::size_t b = std::size_t{256} << 10; b < large; b *= 2) {
    out.push_back(b);
    if (b / 2 * 3 < large) out.push_back(b / 2 * 3);
  }
  out.push_back(large);
  return out;
}

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
  for (std::size_t bytes : bandwidth_ladder_bytes(large)) {
    c.ladder.push_back(time_reads(ctx, data, static_cast<int64_t>(bytes / sizeof(float)), repeats, partial));
    if (bytes == large) c.large = c.ladder.back();
  }
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
          {"smaller_than_llc", to_json(c.small)},
          {"ladder", [&] {
             nlohmann::json a = nlohmann::json::array();
             for (const BandwidthSample& s : c.ladder) a.push_back(to_json(s));
             return a;
           }()}};
}

nlohmann::json per_threads_json(const Calibration& matmul, const BandwidthCalibration& bandwidth) {
  return {{"threads", matmul.threads}, {"matmul", to_json(matmul)}, {"bandwidth", to_json(bandwidth)}};
}

}  // namespace bsbr

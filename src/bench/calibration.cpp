// The calibration matmul.
#include "bench/calibration.hpp"

#include <chrono>

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

}  // namespace bsbr

// Intervals over seeds.
#include "lm/aggregate.hpp"

#include <cmath>
#include <limits>

#include "analysis/distributions.hpp"

namespace bsbr::lm {

Interval t_interval(const std::vector<double>& values, double confidence) {
  Interval r;
  double sum = 0;
  for (double v : values)
    if (std::isfinite(v)) {
      sum += v;
      ++r.n;
    }
  if (r.n == 0) {
    r.mean = r.half = std::numeric_limits<double>::quiet_NaN();
    return r;
  }
  r.mean = sum / static_cast<double>(r.n);
  if (r.n == 1) return r;
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - r.mean) * (v - r.mean);
  const double sd = std::sqrt(ss / static_cast<double>(r.n - 1));
  r.half = analysis::student_t_quantile(0.5 + confidence / 2, static_cast<double>(r.n - 1)) * sd / std::sqrt(static_cast<double>(r.n));
  return r;
}

void summarize(ModelResult& m) {
  ModelSummary& s = m.summary;
  s = ModelSummary{};
  auto over = [&](auto get) {
    std::vector<double> v;
    for (const SeedRun& r : m.seeds) v.push_back(get(r));
    return t_interval(v);
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  s.test_perplexity = over([](const SeedRun& r) { return r.test_perplexity; });
  s.final_val_loss = over([](const SeedRun& r) { return r.final_val_loss; });
  s.tokens_per_second = over([](const SeedRun& r) { return r.tokens_per_second; });
  s.target_steps = over([&](const SeedRun& r) { return r.target_reached ? static_cast<double>(r.target_step) : nan; });
  s.target_seconds = over([&](const SeedRun& r) { return r.target_reached ? r.target_seconds : nan; });
  for (const SeedRun& r : m.seeds) s.target_reached += r.target_reached;
  if (m.seeds.empty()) return;
  const std::size_t contexts = m.seeds.front().contexts.size();
  for (std::size_t c = 0; c < contexts; ++c) {
    s.context_perplexity.push_back(over([&](const SeedRun& r) { return c < r.contexts.size() ? r.contexts[c].perplexity() : nan; }));
    std::vector<Interval> row;
    const std::size_t buckets = m.seeds.front().contexts[c].buckets.size();
    for (std::size_t k = 0; k < buckets; ++k)
      row.push_back(over([&](const SeedRun& r) {
        return c < r.contexts.size() && k < r.contexts[c].buckets.size() ? r.contexts[c].buckets[k].perplexity() : nan;
      }));
    s.bucket_perplexity.push_back(std::move(row));
  }
}

}  // namespace bsbr::lm

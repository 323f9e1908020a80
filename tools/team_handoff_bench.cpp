// The held team's hand-off, alone (src/ops/team.hpp): per-job wall of jobs whose parts read a slice of
// their own per thread, for 2, 4, 8 and 16 threads (as many as the machine has). Slices: none (the
// bare publish-and-wait round trip), 32 KiB (a layer's GEMV part at 16 threads) and 640 KiB (the LM
// head's part at 16 threads). Printed per job, medians over 4 holds of 100-1,000 jobs:
//   wall          the main line's publish to its return from the job's wait;
//   latest start  when the last worker began its part, from the publish;
//   longest own   the slowest thread's own part time; thread 0 own: the main line's;
//   per hold      each counted hold's median wall (thread placement can change between holds).
// Build and run (no dependencies beyond OpenMP; the bundle's lib/ has libgomp for another host):
//   g++ -std=c++17 -O2 -march=x86-64-v3 -fopenmp -Isrc tools/team_handoff_bench.cpp src/ops/team.cpp -o /tmp/team_handoff_bench
//   /tmp/team_handoff_bench [label]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "ops/team.hpp"

namespace {

double now_ns() { return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct alignas(128) PartRecord {  // one thread's part of the last job (own 128-byte line: no sharing)
  double start = 0, duration = 0, sink = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const std::string label = argc > 1 ? argv[1] : "team";
  for (int threads : {2, 4, 8, 16}) {
    // The machine's processors, not this thread's affinity (OMP_PROC_BIND binds the main thread to one).
    if (threads > static_cast<int>(std::thread::hardware_concurrency())) continue;
    bsbr::ops::Team team(threads);
    for (std::size_t bytes : {std::size_t{0}, std::size_t{32} << 10, std::size_t{640} << 10}) {
      const std::size_t floats = bytes / sizeof(float);
      std::vector<std::vector<float>> slices(threads, std::vector<float>(std::max<std::size_t>(floats, 8), 1.f));
      std::vector<PartRecord> parts(threads);
      const int jobs = bytes >= (std::size_t{256} << 10) ? 100 : 1000;
      std::vector<double> wall, latest_start, longest_own, own0;
      std::string per_hold;  // each counted hold's median wall, microseconds: placement changes between holds
      for (int hold = 0; hold < 5; ++hold) {  // the first hold warms the caches and is not counted
        const std::size_t first = wall.size();
        team.hold([&] {
          for (int j = 0; j < jobs; ++j) {
            const double published = now_ns();
            team.run_parts(threads, [&](int64_t t) {
              const double start = now_ns();
              const float* p = slices[t].data();
              float acc[8] = {};
              for (std::size_t i = 0; i < floats; i += 8)
                for (int k = 0; k < 8; ++k) acc[k] += p[i + k];
              for (float a : acc) parts[t].sink += a;
              parts[t].start = start;
              parts[t].duration = now_ns() - start;
            });
            const double done = now_ns();
            if (hold == 0) continue;
            double late = 0, longest = 0;
            for (const PartRecord& r : parts) {
              late = std::max(late, r.start - published);
              longest = std::max(longest, r.duration);
            }
            wall.push_back(done - published);
            latest_start.push_back(late);
            longest_own.push_back(longest);
            own0.push_back(parts[0].duration);
          }
        });
        if (hold > 0) per_hold += " " + std::to_string(static_cast<int>(median({wall.begin() + first, wall.end()}) / 1000));
      }
      std::printf("%s threads %2d slice %7zu B: wall %8.0f ns, latest start %6.0f, longest own %8.0f, thread 0 own %8.0f; per hold (us):%s\n",
                  label.c_str(), threads, bytes, median(wall), median(latest_start), median(longest_own), median(own0), per_hold.c_str());
    }
  }
}

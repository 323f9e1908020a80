// Threads as a sweep dimension (issue 14, the measurement side): config and flag parsing, the sweep
// expansion and its repro lines, the per-thread calibrations (matmul and read bandwidth), the decode
// roofline, the speed-up / parallel-efficiency analysis, check's pairing by thread count and the
// issue-14 targets, on synthetic results (no timing is asserted).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "analysis/analysis.hpp"
#include "analysis/check.hpp"
#include "analysis/scaling.hpp"
#include "analysis/targets.hpp"
#include "bench/calibration.hpp"
#include "bench/runner.hpp"
#include "core/config.hpp"
#include "core/errors.hpp"
#include "core/io.hpp"
#include "report/fingerprint.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

using nlohmann::json;

// ---- config and flags ----

TEST(ThreadSweep, ConfigTakesACountOrAList) {
  Config c = parse_config("benchmark:\n  threads: [1, 2, 4]\n", "t.yaml");
  EXPECT_EQ(c.bench.thread_sweep(), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(c.bench.threads, 1);  // the first count, for readers of one count
  c = parse_config("benchmark:\n  threads: 2\n", "t.yaml");
  EXPECT_EQ(c.bench.thread_sweep(), (std::vector<int64_t>{2}));
  EXPECT_TRUE(c.bench.thread_counts.empty());
  // A scalar after a list replaces it (--set after a config).
  c = parse_config("benchmark:\n  threads: [1, 2]\n", "t.yaml");
  apply_override(c, "benchmark.threads=1");
  EXPECT_EQ(c.bench.thread_sweep(), (std::vector<int64_t>{1}));
}

TEST(ThreadSweep, BadListsAreUserErrors) {
  auto message = [](const std::string& text) {
    try {
      parse_config(text, "t.yaml");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message("benchmark:\n  threads: [1, 2, 1]\n").find("benchmark.threads lists 1 twice"), std::string::npos);
  EXPECT_NE(message("benchmark:\n  threads: []\n").find("empty"), std::string::npos);
  EXPECT_NE(message("benchmark:\n  threads: [1, 1000000]\n").find("benchmark.threads"), std::string::npos);
  EXPECT_NE(message("benchmark:\n  threads: [1, -1]\n").find("benchmark.threads"), std::string::npos);
  EXPECT_NE(message("benchmark:\n  threads: [1, x]\n").find("benchmark.threads[1]"), std::string::npos);
}

TEST(ThreadSweep, ExpansionOrderIsThreadsThenModelThenLengthThenWorkload) {
  BenchConfig b;
  b.seq_lengths = {64, 128};
  b.workloads = {Workload::kPrefill, Workload::kDecode};
  const std::vector<Problem> p = expand_sweep(b, {"A", "B"}, {1, 4});
  ASSERT_EQ(p.size(), 16u);
  std::vector<std::string> got;
  for (const Problem& x : p) got.push_back(x.model + " " + to_string(x.workload) + " " + std::to_string(x.n) + " t" + std::to_string(x.threads));
  const std::vector<std::string> want = {
      "A prefill 64 t1", "A decode 64 t1", "A prefill 128 t1", "A decode 128 t1", "B prefill 64 t1", "B decode 64 t1", "B prefill 128 t1", "B decode 128 t1",
      "A prefill 64 t4", "A decode 64 t4", "A prefill 128 t4", "A decode 128 t4", "B prefill 64 t4", "B decode 64 t4", "B prefill 128 t4", "B decode 128 t4"};
  EXPECT_EQ(got, want);
}

// compare --threads 1 2: every point at each count, in the sweep's order, each with its own repro
// line; the calibration block holds both counts' matmul and bandwidth figures.
TEST(ThreadSweep, CompareRunsEveryPointAtEachCount) {
  const std::string dir = test::temp_dir("threads_compare");
  const std::string small = " --set model.vocab_size=64 --set model.hidden_dim=32 --set model.ff_dim=32 --set model.num_layers=1";
  const test::CliResult r = test::run_cli("compare --threads 1 2 --models Linear Standard --seq_lengths 16 24 --workloads prefill decode "
                                          "--n_tokens 2 --repeats 2 --warmup 0 --no-verify --no-analysis" + small + " --out '" + dir + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Results res = load_results(dir + "/comparison_results.json");
  ASSERT_EQ(res.runs.size(), 16u);
  const std::vector<int64_t> counts = res.thread_counts();
  EXPECT_EQ(counts, (std::vector<int64_t>{1, 2}));
  for (std::size_t i = 0; i < res.runs.size(); ++i) {
    const RunRecord& run = res.runs[i];
    const int64_t t = i < 8 ? 1 : 2;
    EXPECT_EQ(run.threads, t) << i;
    EXPECT_NE(run.repro.find("--threads " + std::to_string(t)), std::string::npos) << run.repro;
    EXPECT_NE(run.repro.find("--models " + run.problem.model + " --workloads " + to_string(run.problem.workload) + " --seq_lengths " +
                             std::to_string(run.problem.n)),
              std::string::npos)
        << run.repro;
  }
  EXPECT_EQ(res.runs[0].problem.model, "Linear");
  EXPECT_EQ(res.runs[4].problem.model, "Standard");
  EXPECT_EQ(res.environment.at("thread_counts"), json::array({1, 2}));
  EXPECT_EQ(res.config.at("benchmark").at("thread_counts"), json::array({1, 2}));
  for (int64_t t : {1, 2}) {
    EXPECT_TRUE(res.calibration_gflops_at(t).has_value()) << t;
    EXPECT_TRUE(res.bandwidth_gbps_for(t, 1.0).has_value()) << t;
    EXPECT_TRUE(res.bandwidth_gbps_for(t, 1e12).has_value()) << t;
  }
  // Decode points carry their bytes per token and a roofline fraction; prefill points an efficiency.
  const json file = json::parse(read_file(dir + "/comparison_results.json", "results"));
  for (const json& run : file.at("runs")) {
    EXPECT_TRUE(run.at("efficiency").is_number()) << run.dump();
    if (run.at("workload") == "decode") {
      EXPECT_GT(run.at("bytes_per_token").get<double>(), 0);
      EXPECT_TRUE(run.at("roofline_fraction").is_number());
    } else {
      EXPECT_FALSE(run.contains("roofline_fraction"));
    }
  }
}

TEST(ThreadSweep, BadThreadFlagsAreExitTwoNamingTheFlag) {
  const std::string dir = test::temp_dir("threads_flags");
  for (const char* t : {"1 1", "1 100000", "1 x"}) {
    const test::CliResult r = test::run_cli(std::string("compare --threads ") + t + " --models Linear --seq_lengths 16 --no-verify --out '" + dir + "'");
    EXPECT_EQ(r.exit_code, 2) << t << ": " << r.err;
    EXPECT_NE(r.err.find("--threads"), std::string::npos) << r.err;
  }
}

// ---- calibrations ----

TEST(ThreadSweep, CacheSizesParse) {
  EXPECT_EQ(parse_cache_size("32768K"), std::size_t{32} << 20);
  EXPECT_EQ(parse_cache_size("2M\n"), std::size_t{2} << 20);
  EXPECT_EQ(parse_cache_size("512"), 512u);
  EXPECT_EQ(parse_cache_size("K"), 0u);
  EXPECT_EQ(parse_cache_size("12Q"), 0u);
  EXPECT_EQ(parse_cache_size(""), 0u);
}

TEST(ThreadSweep, LastLevelCacheFromSysfsElseFallback) {
  namespace fs = std::filesystem;
  const fs::path dir = test::temp_dir("threads_llc");
  auto index = [&](int i, const char* level, const char* type, const char* size) {
    fs::create_directories(dir / ("index" + std::to_string(i)));
    std::ofstream(dir / ("index" + std::to_string(i)) / "level") << level << "\n";
    std::ofstream(dir / ("index" + std::to_string(i)) / "type") << type << "\n";
    std::ofstream(dir / ("index" + std::to_string(i)) / "size") << size << "\n";
  };
  index(0, "1", "Data", "48K");
  index(1, "1", "Instruction", "32K");
  index(2, "2", "Unified", "2048K");
  index(3, "3", "Unified", "107520K");
  const LastLevelCache llc = read_last_level_cache(dir.string());
  EXPECT_EQ(llc.bytes, std::size_t{107520} * 1024);
  EXPECT_EQ(llc.level, 3);
  EXPECT_EQ(llc.source, "sysfs");
  const LastLevelCache none = read_last_level_cache((dir / "absent").string());
  EXPECT_EQ(none.bytes, kFallbackLlcBytes);
  EXPECT_EQ(none.source, "fallback");
}

// The sampling protocol against a scripted clock: 10 us a pass plus 0.3 ms a sample (the fork/join and
// the cold first pass of a rung), and one sizing run slowed to 50 ms by a neighbour. Sized from that run
// alone, a sample would be a few passes (12 for the slowed 64-pass run: 0.42 ms, most of it overhead);
// the protocol must still time samples of at least 5 ms. And when the rate rises after sizing (a
// neighbour left), the short samples make it size them again.
TEST(ThreadSweep, BandwidthSamplesAreLongDespiteASlowSizingRun) {
  for (int slow_call : {3, 4, 5}) {  // calls 1-3: 1, 8, 64 passes (64: 0.94 ms); 4: 512 passes; 5: its repeat
    int calls = 0;
    const auto run = [&](int64_t passes) {
      ++calls;
      return calls == slow_call ? 0.05 : 3e-4 + 1e-5 * static_cast<double>(passes);
    };
    const BandwidthSample s = sample_read_bandwidth(std::size_t{1} << 20, 3, run);
    ASSERT_EQ(s.samples_s.size(), 3u) << slow_call;
    EXPECT_GE(s.best_s, 0.005) << slow_call;
    EXPECT_NEAR(s.gbps, (1 << 20) * static_cast<double>(s.passes) / s.best_s / 1e9, 1e-9 * s.gbps) << slow_call;
    EXPECT_GT(s.gbps, 0.9 * (1 << 20) / 1e-5 / 1e9) << slow_call;  // within 10 % of the scripted rate
  }
  // The first samples short because the rate rose after sizing (a neighbour left): 1 ms a pass in the
  // four sizing runs (1, 8, then 8 twice: 10 passes a sample), 10 us after (a 0.1 ms sample).
  int calls = 0;
  const auto speeding = [&](int64_t passes) {
    ++calls;
    return (calls <= 4 ? 1e-3 : 1e-5) * static_cast<double>(passes);
  };
  const BandwidthSample s = sample_read_bandwidth(std::size_t{1} << 20, 2, speeding);
  EXPECT_GE(s.best_s, 0.005);
  EXPECT_NEAR(s.gbps, (1 << 20) / 1e-5 / 1e9, 1e-6 * s.gbps);
}

TEST(ThreadSweep, BandwidthCalibrationMeasuresBothBuffersAndTheLadder) {
  ops::Context ctx(1);
  LastLevelCache llc;
  llc.bytes = std::size_t{1} << 20;  // a small "LLC": a 64 MiB and a 256 KiB buffer
  const BandwidthCalibration b = calibrate_bandwidth(ctx, 2, llc);
  EXPECT_EQ(b.large.bytes, std::size_t{64} << 20);
  EXPECT_EQ(b.small.bytes, std::size_t{256} << 10);
  // 256 KiB, 384 KiB, 512 KiB, ... 32 MiB, 48 MiB, then the large buffer.
  ASSERT_EQ(b.ladder.size(), 17u);
  for (std::size_t i = 0; i + 1 < b.ladder.size(); ++i)
    EXPECT_EQ(b.ladder[i].bytes, ((std::size_t{256} << 10) << (i / 2)) / 2 * (i % 2 ? 3 : 2)) << i;
  EXPECT_EQ(b.ladder.back().bytes, std::size_t{64} << 20);
  std::vector<const BandwidthSample*> all = {&b.large, &b.small};
  for (const BandwidthSample& s : b.ladder) all.push_back(&s);
  for (const BandwidthSample* s : all) {
    EXPECT_EQ(s->samples_s.size(), 2u);
    EXPECT_GE(s->passes, 1);
    EXPECT_GT(s->gbps, 0);
    EXPECT_DOUBLE_EQ(s->best_s, std::min(s->samples_s[0], s->samples_s[1]));  // the best sample
    EXPECT_NEAR(s->gbps, static_cast<double>(s->bytes) * static_cast<double>(s->passes) / s->best_s / 1e9, 1e-9 * s->gbps);
  }
  const json j = to_json(b);
  ASSERT_EQ(j.at("ladder").size(), b.ladder.size());
  EXPECT_EQ(j.at("ladder")[6].at("bytes").get<std::size_t>(), std::size_t{2} << 20);
  EXPECT_EQ(ctx.memory().current(MemCategory::kActivations), 0u);  // the buffer is released
  EXPECT_EQ(bandwidth_ladder_bytes(std::size_t{1} << 20), (std::vector<std::size_t>{256 << 10, 384 << 10, 512 << 10, 768 << 10, 1 << 20}));
  EXPECT_EQ(bandwidth_ladder_bytes(std::size_t{600} << 10), (std::vector<std::size_t>{256 << 10, 384 << 10, 512 << 10, 600 << 10}));
}

// The read kernel sums every element once: small integers keep every partial sum exact, so its sum
// equals a plain loop's whatever the order; lengths around the streams' and lanes' multiples
// exercise the tail.
TEST(ThreadSweep, ReadKernelSumsWhatAPlainLoopSums) {
  const int64_t block = kReadStreams * kReadLanes;
  std::vector<float> x(static_cast<std::size_t>(5 * block + 37));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 13) - 6.0f + static_cast<float>(i % 3) * 16.0f;
  for (int64_t count : {int64_t{0}, int64_t{1}, int64_t{15}, block - 1, block, block + 1, 3 * block + 17, 5 * block + 37}) {
    double plain = 0;
    for (int64_t i = 0; i < count; ++i) plain += x[static_cast<std::size_t>(i)];
    EXPECT_EQ(static_cast<double>(read_sum(x.data(), count)), plain) << count;
  }
}

// A calibration block with per-thread entries: matmul `gflops(t)`, bandwidth `large`/`small` GB/s.
json calibration_block(const std::vector<int64_t>& threads, const std::function<double(int64_t)>& gflops,
                       const std::function<double(int64_t)>& large, const std::function<double(int64_t)>& small, double llc_bytes = 32 << 20) {
  auto matmul = [&](int64_t t) {
    const double s = 2.0 * 2048 * 2048 * 2048 / (gflops(t) * 1e9);
    return json{{"kind", "matmul_f32"}, {"m", 2048}, {"n", 2048}, {"k", 2048}, {"threads", t}, {"samples_s", std::vector<double>(3, s)},
                {"median_s", s}, {"gflops", gflops(t)}};
  };
  json c = matmul(threads.front());
  json per = json::array();
  for (int64_t t : threads)
    per.push_back({{"threads", t},
                   {"matmul", matmul(t)},
                   {"bandwidth", {{"threads", t}, {"llc_bytes", llc_bytes}, {"larger_than_llc", {{"bytes", 4 * llc_bytes}, {"gbps", large(t)}}},
                                  {"smaller_than_llc", {{"bytes", llc_bytes / 4}, {"gbps", small(t)}}}}}});
  c["per_threads"] = per;
  return c;
}

RunRecord ok_run(const std::string& model, Workload w, int64_t n, int64_t threads, double seconds) {
  RunRecord r;
  r.problem = {model, w, n};
  r.threads = threads;
  r.repeats = 5;
  r.n_tokens = w == Workload::kPrefill ? 0 : 8;
  r.unit = w == Workload::kDecode ? "s/token" : "s";
  r.samples_s = {seconds, seconds * 0.99, seconds * 1.01, seconds, seconds};
  r.stats = compute_stats(r.samples_s);
  return r;
}

TEST(ThreadSweep, CalibrationIsLookedUpAtThePointsThreadCount) {
  Results r;
  r.calibration = calibration_block({1, 2}, [](int64_t t) { return t == 1 ? 100.0 : 180.0; }, [](int64_t t) { return 10.0 * t; },
                                    [](int64_t t) { return 40.0 * t; });
  EXPECT_DOUBLE_EQ(*r.calibration_gflops_at(1), 100);
  EXPECT_DOUBLE_EQ(*r.calibration_gflops_at(2), 180);
  EXPECT_NEAR(*r.calibration_attainable_gflops_at(2), 180, 1e-9);
  EXPECT_FALSE(r.calibration_gflops_at(4).has_value());  // never another count's figure
  RunRecord p = ok_run("A", Workload::kPrefill, 4096, 2, 0.1);
  p.gflops = 90;
  EXPECT_DOUBLE_EQ(*efficiency(r, p), 0.5);  // over 180 (2 threads), not 100
  p.threads = 4;
  EXPECT_FALSE(efficiency(r, p).has_value());
  // A file without per_threads (one count, older files): the top-level figure at any count.
  Results old;
  old.calibration = {{"gflops", 120.0}, {"threads", 2}};
  EXPECT_DOUBLE_EQ(*old.calibration_gflops_at(2), 120);
  EXPECT_DOUBLE_EQ(*old.calibration_gflops_at(7), 120);
  EXPECT_FALSE(old.bandwidth_gbps_for(2, 1e6).has_value());
  // The bandwidth matches the working set: above the LLC the memory figure, else the cache figure.
  EXPECT_DOUBLE_EQ(*r.bandwidth_gbps_for(2, 64.0 * (1 << 20)), 20);
  EXPECT_DOUBLE_EQ(*r.bandwidth_gbps_for(2, 1.0 * (1 << 20)), 80);
  EXPECT_DOUBLE_EQ(*r.bandwidth_gbps_for(1, 32.0 * (1 << 20)), 40);  // equal to the LLC: fits
  // With a ladder: the figure of the largest buffer at most the working set (else the smallest).
  json& bw = r.calibration["per_threads"][1]["bandwidth"];
  bw["ladder"] = json::array({json{{"bytes", 1 << 20}, {"gbps", 300.0}}, json{{"bytes", 4 << 20}, {"gbps", 200.0}},
                              json{{"bytes", 16 << 20}, {"gbps", 50.0}}});
  EXPECT_DOUBLE_EQ(*r.bandwidth_gbps_for(2, 1000.0), 300);
  EXPECT_DOUBLE_EQ(*r.bandwidth_gbps_for(2, 1.0 * (1 << 20)), 300);
  EXPECT_DOUBLE_EQ(*r.bandwidth_gbps_for(2, 15.9 * (1 << 20)), 200);
  EXPECT_DOUBLE_EQ(*r.bandwidth_gbps_for(2, 16.0 * (1 << 20)), 50);
  EXPECT_DOUBLE_EQ(*r.bandwidth_gbps_for(2, 1e12), 50);
  EXPECT_DOUBLE_EQ(*r.bandwidth_gbps_for(1, 32.0 * (1 << 20)), 40);  // the other count has no ladder
}

TEST(ThreadSweep, DecodeBytesPerToken) {
  ModelConfig cfg;  // V = 10000, d = 256
  // Every parameter but the embedding rows not read (V - batch of them) and those the steps leave
  // unread, plus the state read.
  EXPECT_DOUBLE_EQ(decode_bytes_per_token(cfg, 20'000'000, {1'000'000, 0}, 1), 20'000'000 - 9999.0 * 256 * 4 + 1'000'000);
  EXPECT_DOUBLE_EQ(decode_bytes_per_token(cfg, 20'000'000, {0, 0}, 4), 20'000'000 - 9996.0 * 256 * 4);
  EXPECT_DOUBLE_EQ(decode_bytes_per_token(cfg, 20'000'000, {1'000'000, 500'000}, 1), 20'000'000 - 9999.0 * 256 * 4 - 500'000 + 1'000'000);
}

TEST(ThreadSweep, RooflineFraction) {
  Results r;
  r.calibration = calibration_block({1, 2}, [](int64_t t) { return 100.0 * t; }, [](int64_t t) { return 10.0 * t; },
                                    [](int64_t t) { return 40.0 * t; });
  RunRecord d = ok_run("Linear", Workload::kDecode, 1024, 2, 1e-4);
  d.bytes_per_token = 2e6;  // < LLC: 80 GB/s at 2 threads -> 25 us
  EXPECT_NEAR(*roofline_fraction(r, d), 2e6 / 80e9 / 1e-4, 1e-12);
  d.bytes_per_token = 3e8;  // > LLC: 20 GB/s -> 15 ms
  d.samples_s.assign(5, 0.03);
  d.stats = compute_stats(d.samples_s);
  EXPECT_NEAR(*roofline_fraction(r, d), 0.5, 1e-12);
  d.bytes_per_token = 0;  // unknown bytes: no figure
  EXPECT_FALSE(roofline_fraction(r, d).has_value());
  RunRecord p = ok_run("Linear", Workload::kPrefill, 1024, 2, 1e-4);
  p.bytes_per_token = 2e6;
  EXPECT_FALSE(roofline_fraction(r, p).has_value());  // decode only
  // Written to and read back from the file.
  d.bytes_per_token = 3e8;
  r.runs = {d, p};
  r.models = {"Linear"};
  r.seq_lengths = {1024};
  const json j = to_json(r);
  EXPECT_NEAR(j.at("runs")[0].at("roofline_fraction").get<double>(), 0.5, 1e-12);
  EXPECT_FALSE(j.at("runs")[1].contains("roofline_fraction"));
  const Results back = parse_results(j.dump(), "mem.json");
  EXPECT_DOUBLE_EQ(back.runs[0].bytes_per_token, 3e8);
  EXPECT_NEAR(*roofline_fraction(back, back.runs[0]), 0.5, 1e-12);
}

TEST(ThreadSweep, HostileCalibrationBlocksAreUserErrors) {
  Results r;
  r.calibration = calibration_block({1}, [](int64_t) { return 100.0; }, [](int64_t) { return 10.0; }, [](int64_t) { return 40.0; });
  r.runs = {ok_run("A", Workload::kPrefill, 64, 1, 0.1)};
  r.models = {"A"};
  r.seq_lengths = {64};
  json j = to_json(r);
  EXPECT_NO_THROW(parse_results(j.dump(), "ok.json"));
  for (const std::function<void(json&)>& spoil : std::vector<std::function<void(json&)>>{
           [](json& c) { c["per_threads"] = 3; },
           [](json& c) { c["per_threads"][0]["threads"] = -1; },
           [](json& c) { c["per_threads"].push_back(c["per_threads"][0]); },
           [](json& c) { c["per_threads"][0]["bandwidth"]["larger_than_llc"]["gbps"] = "fast"; },
           [](json& c) { c["per_threads"][0]["bandwidth"]["ladder"] = 3; },
           [](json& c) { c["per_threads"][0]["bandwidth"]["ladder"] = json::array({json{{"bytes", 1024}}}); },
           [](json& c) { c["per_threads"][0]["bandwidth"]["ladder"] = json::array({json{{"bytes", 0}, {"gbps", 3.0}}}); },
           [](json& c) { c["per_threads"][0]["bandwidth"]["ladder"] = json::array({json{{"bytes", 1024}, {"gbps", -1.0}}}); },
           [](json& c) { c["per_threads"][0]["matmul"]["gflops"] = -5; },
           [](json& c) { c["per_threads"][0]["matmul"]["per_threads"] = json::array(); }}) {
    json bad = j;
    spoil(bad["calibration"]);
    EXPECT_THROW(parse_results(bad.dump(), "bad.json"), UserError) << bad["calibration"].dump();
  }
  // Two records of one point at different thread counts are fine; at the same count, not.
  json two = j;
  json second = two["runs"][0];
  second["threads"] = 2;
  two["runs"].push_back(second);
  EXPECT_NO_THROW(parse_results(two.dump(), "two.json"));
  two["runs"].push_back(second);
  EXPECT_THROW(parse_results(two.dump(), "dup.json"), UserError);
}

// ---- speed-up analysis ----

TEST(ThreadSweep, SpeedupAndParallelEfficiency) {
  EXPECT_DOUBLE_EQ(analysis::speedup(2.0, 0.5), 4.0);
  // 4x faster while the calibration got 5x faster: 80 % parallel efficiency.
  EXPECT_DOUBLE_EQ(analysis::parallel_efficiency(2.0, 0.5, 100, 500), 0.8);
}

// Prefill time 1 / t^0.8 s per unit n; calibration 100 t GFLOP/s (perfect).
Results sweep_results(const std::vector<int64_t>& threads) {
  Results r;
  r.models = {"A", "B"};
  r.seq_lengths = {1024, 2048, 4096};
  r.calibration = calibration_block(threads, [](int64_t t) { return 100.0 * t; }, [](int64_t t) { return 10.0 * t; },
                                    [](int64_t t) { return 40.0 * t; });
  for (int64_t t : threads)
    for (const std::string& m : r.models)
      for (int64_t n : r.seq_lengths) r.runs.push_back(ok_run(m, Workload::kPrefill, n, t, (m == "A" ? 1e-4 : 2e-4) * n / std::pow(t, 0.8)));
  return r;
}

TEST(ThreadSweep, ScalingTable) {
  const analysis::ScalingAnalysis s = analysis::analyze_scaling(sweep_results({1, 2, 4}));
  ASSERT_FALSE(s.empty());
  EXPECT_EQ(s.base_threads, 1);
  EXPECT_EQ(s.threads, (std::vector<int64_t>{1, 2, 4}));
  ASSERT_EQ(s.calibration.size(), 3u);
  EXPECT_DOUBLE_EQ(*s.calibration[2].speedup, 4.0);
  ASSERT_EQ(s.rows.size(), 6u);  // 2 models x 3 lengths
  const analysis::SpeedupRow& row = s.rows[2];
  EXPECT_EQ(row.model, "A");
  EXPECT_EQ(row.n, 4096);
  EXPECT_NEAR(*row.cells[2].speedup, std::pow(4.0, 0.8), 1e-6);
  EXPECT_NEAR(*row.cells[2].parallel_efficiency, std::pow(4.0, 0.8) / 4.0, 1e-6);
  EXPECT_NEAR(*row.cells[0].speedup, 1.0, 1e-12);
  // Without a 1-thread run the base is the smallest count.
  const analysis::ScalingAnalysis s2 = analysis::analyze_scaling(sweep_results({2, 4}));
  EXPECT_EQ(s2.base_threads, 2);
  EXPECT_NEAR(*s2.rows[0].cells[1].speedup, std::pow(2.0, 0.8), 1e-6);
  EXPECT_NEAR(*s2.rows[0].cells[1].parallel_efficiency, std::pow(2.0, 0.8) / 2.0, 1e-6);
  // One count: no scaling analysis.
  EXPECT_TRUE(analysis::analyze_scaling(sweep_results({2})).empty());
}

TEST(ThreadSweep, AnalyzeFitsTheFirstCountOnly) {
  const Results r = sweep_results({2, 1});  // the sweep's first count is 2
  const analysis::Analysis a = analysis::analyze(r, {}, "sweep.json");
  EXPECT_EQ(a.threads, 2);
  const analysis::WorkloadAnalysis* p = a.find(Workload::kPrefill);
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->series.size(), 2u);
  EXPECT_NEAR(p->series[0].median_s[0], 1e-4 * 1024 / std::pow(2.0, 0.8), 1e-12);
  EXPECT_FALSE(a.scaling.empty());
}

// ---- check pairs points by thread count ----

TEST(ThreadSweep, CheckPairsByThreadsAndNormalisesByEachCountsCalibration) {
  const Results base = sweep_results({1, 2});
  Results cur = base;
  // The same times on a machine whose 2-thread calibration is twice as fast: the 2-thread points
  // are 2x slower relative to the machine, the 1-thread points unchanged.
  cur.calibration = calibration_block({1, 2}, [](int64_t t) { return t == 1 ? 100.0 : 400.0; }, [](int64_t t) { return 10.0 * t; },
                                      [](int64_t t) { return 40.0 * t; });
  analysis::CheckOptions o;
  const analysis::CheckResult c = analysis::check_regressions(base, cur, o);
  ASSERT_EQ(c.points.size(), 12u);
  for (const auto& p : c.points) {
    EXPECT_NEAR(p.ratio, p.threads == 2 ? 2.0 : 1.0, 1e-9) << p.model << " " << p.n << " t" << p.threads;
    EXPECT_EQ(p.regression, p.threads == 2);
  }
  EXPECT_EQ(c.exponents.size(), 4u);  // one series per model and count
  // A point missing at one count only is unpaired at that count.
  Results fewer = cur;
  fewer.runs.pop_back();
  const analysis::CheckResult c2 = analysis::check_regressions(base, fewer, o);
  ASSERT_EQ(c2.unpaired.size(), 1u);
  EXPECT_EQ(c2.unpaired[0].threads, 2);
}

TEST(ThreadSweep, FingerprintRefusesDifferentSweeps) {
  Results a = sweep_results({1, 2}), b = sweep_results({1, 4});
  a.environment = {{"threads", 1}, {"thread_counts", {1, 2}}};
  b.environment = {{"threads", 1}, {"thread_counts", {1, 4}}};
  const auto d = fingerprint_differences(a, b, FingerprintScope::kSettings);
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d[0].field, "environment.thread_counts");
  // A file from before thread sweeps (environment.threads only) matches a one-count sweep.
  Results old = sweep_results({1}), now = sweep_results({1});
  old.environment = {{"threads", 1}};
  now.environment = {{"threads", 1}, {"thread_counts", {1}}};
  EXPECT_TRUE(fingerprint_differences(old, now, FingerprintScope::kSettings).empty());
  now.environment["thread_counts"] = {2};
  EXPECT_FALSE(fingerprint_differences(old, now, FingerprintScope::kSettings).empty());
}

// ---- issue 14's targets ----

// A file meeting every target at `threads`: prefill at 4096 and 16384 attaining 80 % of the
// calibration (100 t GFLOP/s), times scaling perfectly; decode at 80 % of the roofline for Linear
// (n = 1024 and 65536, 20 MB per token: within the 32 MiB LLC) and Standard at 65536 (300 MB:
// memory), BSBR's decode present but not a target.
Results targets_file(const std::vector<int64_t>& threads) {
  Results r;
  r.models = {"BSBR", "Linear", "Standard"};
  r.seq_lengths = {1024, 4096, 16384, 65536};
  r.calibration = calibration_block(threads, [](int64_t t) { return 100.0 * t; }, [](int64_t t) { return 10.0 * t; },
                                    [](int64_t t) { return 40.0 * t; });
  for (int64_t t : threads) {
    for (const std::string& m : r.models)
      for (int64_t n : {4096, 16384}) {
        RunRecord p = ok_run(m, Workload::kPrefill, n, t, 1e-5 * n / t);
        p.gflops = 0.8 * 100.0 * t;
        r.runs.push_back(p);
      }
    auto decode = [&](const std::string& m, int64_t n, double bytes, double gbps) {
      RunRecord d = ok_run(m, Workload::kDecode, n, t, bytes / (gbps * 1e9) / 0.8);
      d.bytes_per_token = bytes;
      r.runs.push_back(d);
    };
    decode("Linear", 1024, 20e6, 40.0 * t);
    decode("Linear", 65536, 20e6, 40.0 * t);
    decode("Standard", 65536, 300e6, 10.0 * t);
    decode("BSBR", 65536, 30e6, 40.0 * t * 0.1);  // far from its roofline: not a target (growing state)
  }
  return r;
}

RunRecord& run_of(Results& r, const std::string& m, Workload w, int64_t n, int64_t t) {
  for (RunRecord& run : r.runs)
    if (run.problem.model == m && run.problem.workload == w && run.problem.n == n && run.threads == t) return run;
  throw std::runtime_error("no such run");
}

void set_median(RunRecord& run, double seconds) {
  run.samples_s.assign(5, seconds);
  run.stats = compute_stats(run.samples_s);
}

std::vector<std::string> misses(const Results& r) {
  std::vector<std::string> out;
  for (const analysis::TargetCheck& c : analysis::evaluate_scaling_targets({{"f.json", &r}}).checks)
    if (!c.pass) out.push_back(c.target + " | " + c.model + " | " + c.point);
  return out;
}

TEST(ScalingTargets, AllMet) {
  const Results r = targets_file({1, 2, 4, 16});
  const analysis::ScalingTargets t = analysis::evaluate_scaling_targets({{"f.json", &r}});
  EXPECT_TRUE(misses(r).empty());
  // 3 models x 2 lengths x 3 counts (1, 2, 16; not 4) + 6 speed-ups + 3 decode x 3 counts.
  EXPECT_EQ(t.checks.size(), 18u + 6u + 9u);
  for (const auto& c : t.checks) EXPECT_EQ(c.point.find("t=4"), std::string::npos) << c.point;
  // BSBR's decode (growing state) is not a target, its prefill is.
  EXPECT_TRUE(std::none_of(t.checks.begin(), t.checks.end(), [](const auto& c) { return c.model == "BSBR" && c.target.find("decode") != std::string::npos; }));
}

TEST(ScalingTargets, EachCheckFailsOnItsMutation) {
  {  // 1. efficiency at 2 threads below 60 %
    Results r = targets_file({1, 2, 16});
    run_of(r, "BSBR", Workload::kPrefill, 4096, 2).gflops = 0.55 * 200;
    const auto m = misses(r);
    ASSERT_EQ(m.size(), 1u);
    EXPECT_NE(m[0].find("attains >= 60%"), std::string::npos) << m[0];
    EXPECT_NE(m[0].find("BSBR | prefill n=4096 t=2"), std::string::npos) << m[0];
  }
  {  // 2. 16 threads only 10x faster than 1 while the calibration is 16x: 0.625 < 0.7
    Results r = targets_file({1, 2, 16});
    set_median(run_of(r, "Linear", Workload::kPrefill, 16384, 16), run_of(r, "Linear", Workload::kPrefill, 16384, 1).stats.median / 10);
    const auto m = misses(r);
    ASSERT_EQ(m.size(), 1u);
    EXPECT_NE(m[0].find("speed-up 1->16"), std::string::npos) << m[0];
    EXPECT_NE(m[0].find("Linear | prefill n=16384 t=1->16"), std::string::npos) << m[0];
  }
  {  // 3. Linear decode at 1 thread at 60 % of its roofline (needs 1 / 1.5 = 67 %)
    Results r = targets_file({1, 2, 16});
    set_median(run_of(r, "Linear", Workload::kDecode, 1024, 1), 20e6 / 40e9 / 0.6);
    const auto m = misses(r);
    ASSERT_EQ(m.size(), 1u);
    EXPECT_NE(m[0].find("bandwidth roofline"), std::string::npos) << m[0];
    EXPECT_NE(m[0].find("Linear | decode n=1024 t=1"), std::string::npos) << m[0];
  }
  {  // 3. Standard at 65,536 is judged against the memory bandwidth (300 MB > LLC)
    Results r = targets_file({1, 2, 16});
    set_median(run_of(r, "Standard", Workload::kDecode, 65536, 16), 300e6 / 160e9 / 0.6);
    const auto m = misses(r);
    ASSERT_EQ(m.size(), 1u);
    EXPECT_NE(m[0].find("Standard | decode n=65536 t=16"), std::string::npos) << m[0];
  }
}

TEST(ScalingTargets, AbsentCountsAreSaid) {
  const Results two_core = targets_file({1, 2});
  const analysis::ScalingTargets t = analysis::evaluate_scaling_targets({{"two.json", &two_core}});
  ASSERT_FALSE(t.absent.empty());
  EXPECT_NE(t.absent[0].find("two.json: no runs at 16 thread(s)"), std::string::npos) << t.absent[0];
  EXPECT_NE(t.absent[0].find("target 2"), std::string::npos) << t.absent[0];
  // Two files (two machines): each judged against its own calibrations.
  const Results host = targets_file({1, 2, 4, 16});
  const analysis::ScalingTargets both = analysis::evaluate_scaling_targets({{"two.json", &two_core}, {"host.json", &host}});
  EXPECT_EQ(both.checks.size(), (12u + 6u) + (18u + 6u + 9u));
}

TEST(ScalingTargets, UnusableFilesAreUserErrors) {
  Results empty;
  EXPECT_THROW(analysis::evaluate_scaling_targets({{"e.json", &empty}}), UserError);
  Results no_bandwidth = targets_file({1, 2});
  for (json& e : no_bandwidth.calibration["per_threads"]) e.erase("bandwidth");
  EXPECT_THROW(analysis::evaluate_scaling_targets({{"nb.json", &no_bandwidth}}), UserError);
  Results no_bytes = targets_file({1});
  run_of(no_bytes, "Linear", Workload::kDecode, 1024, 1).bytes_per_token = 0;
  EXPECT_THROW(analysis::evaluate_scaling_targets({{"nbytes.json", &no_bytes}}), UserError);
  Results nothing = targets_file({4});  // only 4 threads: no target count
  EXPECT_THROW(analysis::evaluate_scaling_targets({{"four.json", &nothing}}), UserError);
}

TEST(ScalingTargets, CliExitCodes) {
  const std::string dir = test::temp_dir("threads_targets");
  const std::string good = test::save_synthetic(targets_file({1, 2, 16}), dir, "good.json");
  Results bad = targets_file({1, 2, 16});
  run_of(bad, "BSBR", Workload::kPrefill, 4096, 16).gflops = 100;
  const std::string missed = test::save_synthetic(bad, dir, "missed.json");
  const test::CliResult ok = test::run_cli("targets --scaling '" + good + "'");
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("every check met"), std::string::npos) << ok.out;
  const test::CliResult miss = test::run_cli("targets --scaling '" + good + "' '" + missed + "'");
  EXPECT_EQ(miss.exit_code, 1) << miss.out << miss.err;
  EXPECT_NE(miss.out.find("MISSED"), std::string::npos) << miss.out;
  const test::CliResult unusable = test::run_cli("targets --scaling '" + dir + "/absent.json'");
  EXPECT_EQ(unusable.exit_code, 2) << unusable.err;
}

}  // namespace
}  // namespace bsbr

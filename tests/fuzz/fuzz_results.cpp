// The results-file loader (analyze, check, targets) on arbitrary text, then what every reader does
// next with a loaded file: write it back (recursive dump of environment/config) and read its
// calibration.
#include "fuzz_common.hpp"
#include "report/results.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  return bsbr::fuzz::run([&] {
    const bsbr::Results r = bsbr::parse_results(bsbr::fuzz::text(data, size), "fuzz.json");
    (void)bsbr::to_json(r).dump();
    (void)r.calibration_attainable_gflops();
  });
}

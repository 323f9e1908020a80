// The config loader (YAML and JSON: yaml-cpp reads both) on arbitrary text.
#include "core/config.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  return bsbr::fuzz::run([&] { bsbr::parse_config(bsbr::fuzz::text(data, size), "fuzz.yaml"); });
}

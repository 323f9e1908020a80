// GPT-2 config.json parsing on arbitrary text.
#include "fuzz_common.hpp"
#include "io/gpt2_checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  return bsbr::fuzz::run([&] { bsbr::parse_gpt2_config(bsbr::fuzz::text(data, size), "config.json"); });
}

// The safetensors reader's validation on arbitrary bytes, then a read of every tensor it accepted
// (the read must stay inside the buffer: ASan checks it).
#include <vector>

#include "fuzz_common.hpp"
#include "io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  return bsbr::fuzz::run([&] {
    const bsbr::SafetensorsLayout layout = bsbr::parse_safetensors_layout(data, size, "fuzz.safetensors");
    for (const bsbr::TensorInfo& t : layout.tensors) {
      const unsigned char* p = data + layout.data_offset + t.begin;
      // Touch the first and last byte of the range the reader would copy.
      if (t.end > t.begin) {
        volatile unsigned char first = p[0], last = p[t.end - t.begin - 1];
        (void)first;
        (void)last;
      }
    }
  });
}

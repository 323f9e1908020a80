// The tokenizer files: the input is vocab.json, a NUL byte, then merges.txt (no NUL: all of it is
// vocab.json and merges.txt is empty). A tokenizer that loads then encodes and decodes a fixed
// text, so hostile merges and vocabularies reach the BPE loop too.
#include "fuzz_common.hpp"
#include "io/gpt2_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string all = bsbr::fuzz::text(data, size);
  const std::size_t nul = all.find('\0');
  const std::string vocab = all.substr(0, nul), merges = nul == std::string::npos ? std::string() : all.substr(nul + 1);
  return bsbr::fuzz::run([&] {
    const bsbr::Gpt2Tokenizer tok = bsbr::Gpt2Tokenizer::from_text(vocab, merges, "vocab.json", "merges.txt");
    const std::vector<int32_t> ids = tok.encode("Hello, world! ab aab 123 'll  \n héllo");
    (void)tok.decode(ids);
  });
}

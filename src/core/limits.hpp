// The accepted range of every numeric input (flags, config keys, --set values): one table, the
// one the README's "Errors and limits" section prints. Every value is checked against its range
// before anything is allocated; a value outside is a UserError naming the input and the range
// (exit 2), never a clamp or a fallback to a default.
//
// The ranges are chosen so that the size arithmetic of one point stays below 2^63 for the
// products the code forms from single inputs (batch x length x vocabulary x 4 bytes <= 2^56,
// batch x length x GAU width x 4 <= 2^52, a decode capacity length + n_tokens <= 2^23);
// repeats) < 2^32); products of several inputs (x layers, x chunk states) are computed with
// core/checked.hpp, and what does not fit in memory is the memory guard's business.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bsbr {

struct Limit {
  const char* name;  // the input, as the user spells it
  int64_t lo, hi;    // inclusive
};

namespace limits {
inline constexpr int64_t kMaxLength = int64_t{1} << 22;  // 4,194,304 tokens
inline constexpr Limit kSeqLength{"seq_lengths", 1, kMaxLength};
inline constexpr Limit kNTokens{"n_tokens", 1, 65536};
inline constexpr Limit kRepeats{"repeats", 1, 10000};
inline constexpr Limit kWarmup{"warmup", 0, 10000};
inline constexpr Limit kVerifyLength{"verify_length", 1, 4096};  // the oracle is O(L^2): keep it small
// Threads: also at most kThreadsPerCpu x the logical CPUs of the machine (max_threads()).
inline constexpr int64_t kMaxThreads = 1024;
inline constexpr int64_t kThreadsPerCpu = 4;
inline constexpr Limit kSeed{"seed", 0, INT64_MAX};
inline constexpr Limit kVocabSize{"vocab_size", 1, int64_t{1} << 24};       // 16,777,216
inline constexpr Limit kHiddenDim{"hidden_dim", 1, 16384};
inline constexpr Limit kNumLayers{"num_layers", 1, 1024};
inline constexpr Limit kNumHeads{"num_heads", 1, 16384};                    // and divides hidden_dim
inline constexpr Limit kFfDim{"ff_dim", 1, int64_t{1} << 18};               // 262,144
inline constexpr Limit kChunkSize{"chunk_size", 1, kMaxLength};
inline constexpr Limit kWindowSize{"window_size", 0, kMaxLength};
inline constexpr Limit kLinearChunkSize{"linear_chunk_size", 1, kMaxLength};
inline constexpr Limit kExpansionFactor{"expansion_factor", 1, 64};
inline constexpr Limit kCompressionFactor{"compression_factor", 0, 16384};  // 0 = none; divides hidden_dim
inline constexpr Limit kBatchSize{"batch_size", 1, 256};
inline constexpr Limit kEvalLength{"eval_length", 0, kMaxLength};          // convert; 0 = automatic
inline constexpr Limit kHeatmapLength{"heatmap_length", 2, 4096};           // convert
inline constexpr Limit kHeatmapIndex{"heatmap_layer/heatmap_head", 0, 16383};
}  // namespace limits

// The largest --threads this machine accepts: min(kMaxThreads, kThreadsPerCpu x logical CPUs).
int64_t max_threads();
Limit threads_limit();

// Throws UserError "<where> must be an integer in [lo, hi], got v" when v is outside l.
void check_range(const std::string& where, const Limit& l, int64_t v);
// Parses a flag's text strictly (an optional '-', digits, nothing else) and checks the range:
// "--threads must be an integer in [0, 8], got '4294967297'". No clamping, no default.
int64_t parse_int_in(const std::string& flag, const std::string& text, const Limit& l);
std::vector<int64_t> parse_ints_in(const std::string& flag, const std::vector<std::string>& texts, const Limit& l);

// The table of ranges above, as (input, range text) rows (for the README check and --help).
std::vector<std::pair<std::string, std::string>> limits_table();

}  // namespace bsbr

// Perplexity against evaluation context (README "bsbr-bench lm"): the held-out documents cut into
// eval_windows(split, context) (every text token a target exactly once at every context), each
// window run through the benchmarked inference path, Model::prefill with LogitsMode::kAll, and
// every position's next-token negative log-likelihood taken from a log-softmax of its logits,
// accumulated in double, in total and per position bucket.
#pragma once
#include <cstdint>
#include <vector>

#include "data/brown.hpp"
#include "lm/results.hpp"
#include "model/model.hpp"

namespace bsbr::lm {

// The windows of the first `docs` documents of `split` (0 = all) at `context`.
std::vector<EvalWindow> windows_of(const TokenSplit& split, int64_t context, int64_t docs);
// Text tokens of the first `docs` documents (0 = all): the targets each context scores.
int64_t text_tokens_of(const TokenSplit& split, int64_t docs);

// The length a window of `length` tokens runs at: rounded up to a multiple of min(128, context),
// at most context. A causal model's outputs at positions < length do not depend on the padding
// after them (tested invariant), so a document's short last window shares primitives with others
// instead of needing its own length (at most context / 128 lengths per context).
int64_t padded_length(int64_t length, int64_t context);

// -log softmax(row)[target] in double: max + log(sum exp(row - max)) - row[target]. row: [V].
double next_token_nll(const float* row, int64_t V, int32_t target);

// Buckets of window positions: starts[k] .. starts[k + 1] (the last up to `max_context`). A
// prediction made at window position p (it sees the window's first p + 1 tokens) goes to the
// bucket holding p.
std::vector<BucketNll> make_buckets(const std::vector<int64_t>& starts, int64_t max_context);

// Scores every window of `split` (first `docs` documents) at `context` with `model`, batch 1.
// Prepares the model for the windows' padded lengths (LogitsMode::kAll) and releases it after.
// Polls for interrupts between windows.
ContextEval evaluate_context(ops::Context& ctx, Model& model, const TokenSplit& split, int64_t context, const std::vector<int64_t>& bucket_starts,
                             int64_t max_context, int64_t docs);

}  // namespace bsbr::lm

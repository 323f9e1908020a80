// Context evaluation: windows -> Model::prefill (kAll) -> per-position log-softmax NLL (double).
#include "lm/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/errors.hpp"
#include "core/interrupt.hpp"
#include "ops/context.hpp"

namespace bsbr::lm {

namespace {
// Below this a float probability has lost digits to underflow (float's normal range ends at 1.2e-38).
constexpr float kMinProbability = 1e-30f;
}  // namespace

std::vector<EvalWindow> windows_of(const TokenSplit& split, int64_t context, int64_t docs) {
  std::vector<EvalWindow> w = eval_windows(split, context);
  if (docs > 0) w.erase(std::remove_if(w.begin(), w.end(), [&](const EvalWindow& x) { return x.doc >= docs; }), w.end());
  return w;
}

int64_t text_tokens_of(const TokenSplit& split, int64_t docs) {
  const int64_t d = docs > 0 ? std::min(docs, split.documents()) : split.documents();
  return split.doc_begin[static_cast<std::size_t>(d)] - d;  // minus one <|endoftext|> per document
}

int64_t padded_length(int64_t length, int64_t context) {
  const int64_t q = std::min<int64_t>(128, context);
  return std::min(context, (length + q - 1) / q * q);
}

double next_token_nll(const float* row, int64_t V, int32_t target) {
  float mx = row[0];
  for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
  return static_cast<double>(mx) + std::log(sum) - static_cast<double>(row[target]);
}

std::vector<BucketNll> make_buckets(const std::vector<int64_t>& starts, int64_t max_context) {
  std::vector<BucketNll> b;
  for (std::size_t k = 0; k < starts.size(); ++k) b.push_back({starts[k], k + 1 < starts.size() ? starts[k + 1] : max_context, 0.0, 0});
  return b;
}

ContextEval evaluate_context(ops::Context& ctx, Model& model, const TokenSplit& split, int64_t context, const std::vector<int64_t>& bucket_starts,
                             int64_t max_context, int64_t docs) {
  const std::vector<EvalWindow> windows = windows_of(split, context, docs);
  ContextEval out;
  out.context = context;
  out.buckets = make_buckets(bucket_starts, max_context);
  out.windows = static_cast<int64_t>(windows.size());
  if (windows.empty()) return out;
  std::set<int64_t> lengths;
  for (const EvalWindow& w : windows) lengths.insert(padded_length(w.length, context));
  RunShape shape;
  shape.batch = 1;
  shape.prefill_lengths.assign(lengths.begin(), lengths.end());
  model.prepare(ctx, shape, LogitsMode::kAll);
  const int64_t V = model.config().vocab_size;
  // Probabilities by oneDNN's softmax (vectorised; one op per padded length), each target's
  // -log p in double; a probability too small for float's precision is recomputed in double from
  // the logits (next_token_nll), so no target's NLL is lost to underflow.
  std::map<int64_t, ops::SoftmaxOp> softmax;
  for (int64_t n : lengths) softmax.emplace(n, ops::SoftmaxOp(ctx, ops::MatLayout::dense(n, V)));
  Tensor probs = ctx.tensor(MemCategory::kActivations, {*lengths.rbegin(), V});  // [plen, V]
  std::vector<int32_t> input(static_cast<std::size_t>(context));
  std::vector<double> nll(static_cast<std::size_t>(context));
  for (const EvalWindow& w : windows) {
    throw_if_interrupted();
    const int64_t len = w.length, plen = padded_length(len, context);
    const int32_t* tok = split.tokens.data() + w.begin;
    std::copy(tok, tok + len, input.begin());
    std::fill(input.begin() + len, input.begin() + plen, tok[0]);  // padding: any id (causality: it changes no scored position)
    model.prefill(ctx, input.data(), plen);
    const float* logits = model.logits();  // [plen, V]
    softmax.at(plen).run(ctx, logits, probs.data());
    const float* pr = probs.data();
    ops::parallel_items(ctx, len, true, [&](int64_t p) {
      const float q = pr[p * V + tok[p + 1]];
      nll[static_cast<std::size_t>(p)] = q > kMinProbability ? -std::log(static_cast<double>(q)) : next_token_nll(logits + p * V, V, tok[p + 1]);
    });
    std::size_t k = 0;
    for (int64_t p = 0; p < len; ++p) {
      while (k + 1 < out.buckets.size() && p >= out.buckets[k + 1].lo) ++k;
      out.buckets[k].nll += nll[static_cast<std::size_t>(p)];
      out.buckets[k].tokens += 1;
      out.nll += nll[static_cast<std::size_t>(p)];
    }
    out.tokens += len;
  }
  model.release(ctx);
  return out;
}

}  // namespace bsbr::lm

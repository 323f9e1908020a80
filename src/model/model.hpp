// The shared model skeleton (SPEC §1) around an architecture's mixer:
//   token embedding [V, d] + positions (sinusoidal, or learned for GPT-2),
//   L pre-LN blocks: x += Attn(LN1(x)); x += W2.GELU(W1.LN2(x) + b1) + b2,
//   final LayerNorm, LM head Linear(d, V) (or tied to the embedding for GPT-2).
// Prefill runs the whole sequence; step() runs one token against the mixers' decode state.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "model/mixer.hpp"
#include "model/params.hpp"
#include "ops/ops.hpp"

namespace bsbr {

// Differences between the study's skeleton and GPT-2's (used by the conversion study).
struct SkeletonOptions {
  enum class Positions { kSinusoidal, kLearned };
  Positions positions = Positions::kSinusoidal;
  int64_t learned_positions = 0;  // rows of the learned table ("pos_embed.weight")
  ops::Eltwise ffn_activation = ops::Eltwise::kGeluErf;
  bool tied_lm_head = false;      // logits = h . embed^T, no bias (GPT-2)
  // Register the parameters' shapes without allocating them (Model::weight_bytes only: such a
  // model can report its parameters, nothing else).
  bool shapes_only = false;
};

enum class LogitsMode { kLast, kAll };

// Optional capture of per-layer activations during prefill (the conversion study's fidelity
// metrics and attention maps). Off by default; when off, prefill pays one null check per block and
// never copies. Buffers belong to the caller; layer l's rows start at l * capacity_rows * d.
struct LayerCapture {
  float* mixer_inputs = nullptr;  // [L, rows, d]: each block's LN1 output (the mixer's input)
  float* residuals = nullptr;     // [L, rows, d]: the residual stream after each block
  int64_t capacity_rows = 0;      // rows per layer the buffers hold (>= b * n of any captured prefill)
};

class Model {
 public:
  Model(ops::Context& ctx, const ModelConfig& cfg, const Architecture& arch, SkeletonOptions opts = {});
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::string& name() const { return name_; }
  const ModelConfig& config() const { return cfg_; }
  const SkeletonOptions& options() const { return opts_; }
  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }
  // Parameter count without the LM head (the study's convention) or with it.
  int64_t param_count(bool with_head) const { return params_.count(with_head); }

  // Creates every primitive and buffer the point needs. logits: last position only (what
  // generation needs) or every position (forward dumps). With decode capacity, the step's products
  // keep packed copies of their weights (ops::MatMul's bound_weights): prepare again after changing
  // the weights, or step() computes with the old ones.
  void prepare(ops::Context& ctx, const RunShape& shape, LogitsMode logits = LogitsMode::kLast);
  void release(ops::Context& ctx);

  // tokens: [b, n] row-major. Leaves final hidden states in hidden() and logits in logits().
  void prefill(ops::Context& ctx, const int32_t* tokens, int64_t n);
  // tokens: [b], the token at position pos for each sequence. Logits of that position in logits().
  void step(ops::Context& ctx, const int32_t* tokens, int64_t pos);

  const float* hidden() const { return h_.data(); }        // [b, n, d] after prefill (final LN output)
  const float* step_hidden() const { return hs_.data(); }  // [b, d] after step (final LN output)
  const float* logits() const { return logits_.data(); }   // [b, V] (kLast / step) or [b, n, V] (kAll)
  // Decode-state snapshot (prepared when shape.snapshot): save_state() after a prefill copies what
  // a step overwrites in place (Mixer::overwritten_state); restore_state() copies it back, so the
  // next step at the prefill's length starts from the same state. Allocation-free.
  void save_state();
  void restore_state();
  // Greedy next token per sequence from the latest logits. out: [b]
  void argmax(int32_t* out) const;

  // Analytic FLOPs (multiply-add = 2): a prefill over n tokens (logits of the last position
  // only), and one decode step at position pos (including LM head).
  double prefill_flops(int64_t n) const;
  double step_flops(int64_t pos) const;
  // Decode-state bytes after a prefill of n tokens (sum over layers).
  std::size_t state_bytes(int64_t n) const;
  // What the step at position pos reads (Mixer::step_reads summed over layers; state_bytes for the
  // whole batch).
  StepReads step_reads(int64_t pos) const;
  // Upper bound of the bytes prepare(shape) allocates (memory guard): working memory and, with decode
  // capacity, the step's packed weights.
  std::size_t estimate_bytes(const RunShape& shape, int threads, LogitsMode logits = LogitsMode::kLast) const;
  // Bytes of the weights a Model(ctx, cfg, arch, opts) would allocate, computed from the shapes
  // without allocating them (the memory guard asks before the weights exist). Checked arithmetic.
  static std::size_t weight_bytes(ops::Context& ctx, const ModelConfig& cfg, const Architecture& arch, SkeletonOptions opts = {});

  Mixer& mixer(int layer) { return *blocks_[layer].mixer; }
  // Captures per-layer activations of later prefills into caller buffers (LayerCapture{} = off).
  void set_capture(const LayerCapture& capture) { capture_ = capture; }

 private:
  struct Block {
    ParamStore::LayerNormRef ln1, ln2;
    std::unique_ptr<Mixer> mixer;
    ParamStore::LinearRef ff1, ff2;
  };
  // Ops for one sequence length (rows = b * n), or for the decode step (rows = b), whose products
  // are bound to their weights (ops::MatMul's bound_weights: a packed copy for the hand GEMV), so
  // the step has its FFN products per block (each block has its own weights).
  struct RowOps {
    ops::LayerNormOp ln;
    ops::MatMul ff1, ff2, head;                      // prefill (ff1, ff2 for every block), head
    std::vector<ops::MatMul> step_ff1, step_ff2;     // step: block l's
  };
  RowOps make_row_ops(ops::Context& ctx, int64_t n, bool head_all_rows, bool step) const;
  void run_blocks(ops::Context& ctx, const RowOps& ro, float* x, float* h, float* f, int64_t n, bool step, int64_t pos);
  void embed(const int32_t* tokens, int64_t count, int64_t first_pos, float* out) const;
  void ensure_positions(ops::Context& ctx, int64_t positions);
  const float* head_weight() const;

  std::string name_;
  ModelConfig cfg_;
  SkeletonOptions opts_;
  ParamStore params_;
  Tensor* embed_ = nullptr;      // [V, d]
  Tensor* pos_embed_ = nullptr;  // [P, d] learned positions, or null
  std::vector<Block> blocks_;
  ParamStore::LayerNormRef final_ln_{};
  ParamStore::LinearRef lm_head_{};  // [d, V], [V]; null when tied

  // Prepared state for the current point.
  Tensor positions_;  // sinusoidal table [P, d], P = the point's last position + 1: O(n), so working memory
  std::vector<std::pair<Tensor*, Tensor>> snapshot_;  // (mixer state, its copy) for save/restore_state
  LogitsMode logits_mode_ = LogitsMode::kLast;
  int64_t batch_ = 1;
  std::map<int64_t, RowOps> prefill_ops_;  // by sequence length
  RowOps step_ops_;
  bool has_step_ = false;
  Tensor x_, h_, f_, logits_;      // prefill: [b, n, d], [b, n, d], [b, n, ff], logits
  Tensor xs_, hs_, fs_;            // step: [b, d], [b, d], [b, ff]
  int64_t last_n_ = 0;
  LayerCapture capture_;
};

}  // namespace bsbr

// The interface every architecture implements: its token mixer (the attention variant of SPEC §2).
// The shared skeleton (embedding, positions, pre-LN blocks, FFN, final LN, LM head) is in model.hpp;
// one architecture = one mixer file + one registry row + one plain-loop oracle in src/ref/.
//
// Life cycle for one benchmark point: construct (registers parameters) -> prepare(shape) (creates
// every primitive and buffer) -> prefill / step any number of times (no allocation, no primitive
// creation) -> release().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "model/params.hpp"
#include "ops/context.hpp"

namespace bsbr {

// What one benchmark point will run, so prepare() can size everything up front.
struct RunShape {
  int64_t batch = 1;
  // Every prefill length the point runs (prefill/generate/decode: {n}; recompute: {n+N}, its longest,
  // each shorter length being prepared in turn just before its forward).
  std::vector<int64_t> prefill_lengths;
  // Positions the decode state must hold (prefill length + generated tokens); 0 = no decode.
  int64_t capacity = 0;
  // The decode workload restores the state left by its prefill before every sample
  // (Model::save_state / restore_state): prepare() then sizes a snapshot of it.
  bool snapshot = false;
  int64_t max_prefill() const;
};

// What one decode step at position pos reads, for the decode roofline (bytes_per_token, README
// "How it measures"). Activations and scratch (a few rows) are not counted.
struct StepReads {
  // Per sequence: bytes of decode state the step reads, each state element once (also one the step
  // wrote before reading it: the row of its own position).
  double state_bytes = 0;
  // Shared by the batch: bytes of the mixer's parameters the step does not read (BSBR's meta and
  // compression projections, used only at a chunk boundary).
  double unread_param_bytes = 0;
};

class Mixer {
 public:
  virtual ~Mixer() = default;

  // Creates primitives and buffers for every length in `shape`.
  virtual void prepare(ops::Context& ctx, const RunShape& shape) = 0;
  // Frees what prepare() allocated.
  virtual void release() = 0;

  // x: LN1 output [b, n, d] (batch stride n*d). Adds Attn(x) into residual [b, n, d].
  // Resets the decode state and leaves it ready for step() at position n.
  virtual void prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) = 0;
  // x: LN1 output [b, d] of the token at position pos (pos == tokens seen so far). Adds Attn(x)
  // into residual [b, d] and advances the decode state.
  virtual void step(ops::Context& ctx, const float* x, float* residual, int64_t pos) = 0;

  // The decode state a step overwrites in place (recurrent states, the current chunk, a ring
  // buffer), valid after prepare(): Model::save_state() copies it after a prefill and
  // restore_state() copies it back, so every decode sample starts from the same state at the same
  // position. Rows a step writes at its own position and reads only after writing them (a KV
  // cache, BSBR's chunk memory rows of chunks >= the current one) are not listed: a replay from
  // position n rewrites them first (truncation by position).
  virtual std::vector<Tensor*> overwritten_state() = 0;

  // Per sequence (batch 1) -- the skeleton multiplies by the batch size:
  // bytes of decode state (KV cache, recurrent state, chunk states) held after a prefill of n
  // tokens, per the architecture's formula; tests check it against the tracker.
  virtual std::size_t state_bytes(int64_t n) const = 0;
  // What the step at position pos reads (decode roofline). Default: a step that reads all of its
  // state as it holds it once it has written position pos (state_bytes(pos + 1): a KV cache's pos + 1
  // rows, a recurrent state, a ring) and every parameter; chunked mixers override it.
  virtual StepReads step_reads(int64_t pos) const { return {static_cast<double>(state_bytes(pos + 1)), 0.0}; }
  // For the whole batch: upper bound of the bytes prepare(shape) allocates (buffers, state, tiles); the memory guard
  // uses it to skip a point that would not fit before running it.
  virtual std::size_t estimate_bytes(const RunShape& shape, int threads) const = 0;
  // FLOPs (multiply-add = 2) of the mixer's prefill over n tokens, and of one step at position pos.
  // Counted: matmul-like work (projections, scores, state updates). Not counted: elementwise ops.
  virtual double prefill_flops(int64_t n) const = 0;
  virtual double step_flops(int64_t pos) const = 0;
};

// Registry row signature: builds a mixer for block `layer`, registering its parameters under
// `prefix` (e.g. "layers.0.attn").
using MixerFactory = std::unique_ptr<Mixer> (*)(const ModelConfig& cfg, ParamStore& params, const std::string& prefix);

struct Architecture {
  const char* name;         // as in the study's results ("BSBR", "Standard", ...)
  MixerFactory make;
  const char* description;  // one line for --help and reports
};

// The registry table (registry.cpp), in the study's order.
const std::vector<Architecture>& architectures();
// The registered names, in the table's order.
std::vector<std::string> architecture_names();
// Looks a name up; throws UserError listing the known names.
const Architecture& find_architecture(const std::string& name);

}  // namespace bsbr

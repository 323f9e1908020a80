// The training interface of a mixer (see src/train/README.md), the Linear layer's training ops,
// and the training registry.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "model/params.hpp"
#include "ops/ops.hpp"
#include "ops/train_ops.hpp"
#include "train/grads.hpp"

namespace bsbr::train {

// Buffers that several users take turns on (src/train/README.md, "Buffers and recomputation"): the
// i-th take() after a rewind() returns a view of slot i, allocated (in `category`) by the first
// user that reaches it. Blocks prepare the same buffers in the same order, so every block's i-th
// request has the same shape; a larger one is a broken invariant.
class SharedBuffers {
 public:
  explicit SharedBuffers(MemCategory category = MemCategory::kActivations) : category_(category) {}
  void rewind() { next_ = 0; }
  Tensor take(ops::Context& ctx, const Shape& shape);
  void clear();

 private:
  MemCategory category_;
  std::vector<Tensor> slots_;  // moving a Tensor keeps its memory: views stay valid when this grows
  std::size_t next_ = 0;
};

// Where a trainable mixer (and its kernels) get their buffers:
//   saved(shape): written by forward() and read by backward() of the same block: the block's own
//     (MemCategory::kSaved), or, with recomputation, shared by every block (the block's forward is
//     re-run just before its backward; the buffers are then working memory);
//   work(shape): used inside one forward() or backward() call (working gradients, per-thread
//     tiles): shared by every block, since blocks run one at a time.
// MixerBuffers(ctx) alone owns everything (saved: kSaved, work: kActivations): a mixer or kernel
// used by itself (tests).
class MixerBuffers {
 public:
  explicit MixerBuffers(ops::Context& ctx) : ctx_(&ctx) {}
  MixerBuffers(ops::Context& ctx, SharedBuffers* shared_saved, SharedBuffers* shared_work)
      : ctx_(&ctx), saved_(shared_saved), work_(shared_work) {}
  Tensor saved(Shape shape) { return saved_ ? saved_->take(*ctx_, shape) : ctx_->tensor(MemCategory::kSaved, std::move(shape)); }
  Tensor work(Shape shape) { return work_ ? work_->take(*ctx_, shape) : ctx_->tensor(MemCategory::kActivations, std::move(shape)); }

 private:
  ops::Context* ctx_;
  SharedBuffers* saved_ = nullptr;
  SharedBuffers* work_ = nullptr;
};

// Floats a trainable mixer allocates for batch b and length n (the memory guard's estimate, before
// anything exists; tests/test_train_bench.cpp checks it against what prepare() allocates):
// saved (per block, or once with recomputation), work (once, shared by the blocks) and owned
// (per block whatever the mode: the Linear ops' ones rows for bias gradients). In double: the
// formulas multiply several inputs and must not wrap around before the guard sees them (exact
// below 2^53 floats).
struct MixerFloats {
  double saved = 0, work = 0, owned = 0;
};

class TrainableMixer {
 public:
  virtual ~TrainableMixer() = default;
  // Creates every op and buffer (saved activations included) for batch b and length n; buffers
  // come from `buffers` (see MixerBuffers).
  virtual void prepare(ops::Context& ctx, MixerBuffers& buffers, int64_t batch, int64_t n) = 0;
  virtual void release() = 0;
  // x: LN1 output [b, n, d]. out [b, n, d] += Attn(x). Saves what backward() needs.
  virtual void forward(ops::Context& ctx, const float* x, float* out) = 0;
  // After forward(x): dout = dL/dAttn(x) [b, n, d]. Writes dx = dL/dx [b, n, d] and the mixer's
  // parameter gradients into `grads` (both overwritten).
  virtual void backward(ops::Context& ctx, const float* x, const float* dout, float* dx, Grads& grads) = 0;
  // Saved-activation floats (per prepared batch and length), for memory reports.
  virtual int64_t saved_floats() const = 0;

  // Test hook for the mutation tests: breaks the named gradient term of this mixer's backward
  // (the names are listed by faults()). Returns false for an unknown name. Never called outside tests.
  virtual bool inject_fault(std::string_view name) = 0;
  virtual std::vector<std::string> faults() const = 0;
};

// A Linear(in, out) (y = x.W + b, W [in, out]) over `rows` dense rows: forward and backward ops.
class LinearTrain {
 public:
  LinearTrain() = default;
  // accumulate: forward adds into y (a residual) instead of overwriting it.
  LinearTrain(ops::Context& ctx, const ParamStore::LinearRef& lin, int64_t rows, int64_t in, int64_t out, bool accumulate = false);
  // y [rows, out] (=|+=) x.W + b
  void forward(ops::Context& ctx, const float* x, float* y) const;
  // From dy = dL/d(x.W + b) [rows, out]: dW = x^T.dy, db = colsum(dy) into grads (overwritten);
  // dx [rows, in] = dy.W^T (overwritten, or added when accumulate_dx) unless dx is null.
  void backward(ops::Context& ctx, const float* x, const float* dy, Grads& grads, float* dx, bool accumulate_dx = false) const;

 private:
  ParamStore::LinearRef lin_{};
  ops::MatMul fwd_, dw_, dx_, dx_acc_;
  ops::ColumnSumOp db_;
};

// Base of the mixers built as q/k/v/out Linear(d, d) projections (SPEC's Standard, Hopfield,
// SlidingWindow, Linear) around a per-head kernel that saves one [b, heads, n] statistic per row
// (log-sum-exp, normaliser). Saved: q, k, v, o [b*n, d] and the statistic.
class ProjectedAttentionTrain : public TrainableMixer {
 public:
  ProjectedAttentionTrain(const ModelConfig& cfg, ParamStore& params, const std::string& prefix);
  void prepare(ops::Context& ctx, MixerBuffers& buffers, int64_t batch, int64_t n) final;
  // What prepare() allocates besides the kernel's own buffers.
  static MixerFloats floats(const ModelConfig& cfg, int64_t batch, int64_t n);
  void release() final;
  void forward(ops::Context& ctx, const float* x, float* out) final;
  void backward(ops::Context& ctx, const float* x, const float* dout, float* dx, Grads& grads) final;
  int64_t saved_floats() const final { return saved_; }

 protected:
  virtual void prepare_kernel(ops::Context& ctx, MixerBuffers& buffers, int64_t batch, int64_t n) = 0;
  virtual void release_kernel() = 0;
  // q, k, v, o, dq, dk, dv, dout: [b, n, d]; stat: [b, heads, n].
  virtual void kernel_forward(ops::Context& ctx, const float* q, const float* k, const float* v, float* o, float* stat) = 0;
  virtual void kernel_backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* o, const float* stat,
                               const float* dout, float* dq, float* dk, float* dv) = 0;
  const ModelConfig& config() const { return cfg_; }

 private:
  struct Ops {
    LinearTrain q, k, v, out;
  };
  ModelConfig cfg_;
  ParamStore::LinearRef q_, k_, v_, out_;
  Ops ops_;
  Tensor q_buf_, k_buf_, v_buf_, o_buf_, stat_;  // saved
  Tensor dq_, dk_, dv_, do_;                     // working gradients [b*n, d]
  int64_t saved_ = 0;
};

// A ProjectedAttentionTrain around a kernel class with
//   Kernel(ctx, Kernel::Geometry), forward(ctx, q, k, v, o, stat),
//   backward(ctx, q, k, v, o, stat, dout, dq, dk, dv, Kernel::Fault),
// `geometry(batch, n)` giving its geometry and `faults` naming the faults tests may inject.
template <class Kernel>
class KernelAttentionTrain final : public ProjectedAttentionTrain {
 public:
  using Geometry = typename Kernel::Geometry;
  using Fault = typename Kernel::Fault;
  using Faults = std::vector<std::pair<std::string, Fault>>;
  KernelAttentionTrain(const ModelConfig& cfg, ParamStore& params, const std::string& prefix,
                       std::function<Geometry(int64_t batch, int64_t n)> geometry, Faults faults)
      : ProjectedAttentionTrain(cfg, params, prefix), geometry_(std::move(geometry)), faults_(std::move(faults)) {}

  bool inject_fault(std::string_view name) override {
    for (const auto& [n, f] : faults_)
      if (n == name) {
        fault_ = f;
        return true;
      }
    return false;
  }
  std::vector<std::string> faults() const override {
    std::vector<std::string> names;
    for (const auto& f : faults_) names.push_back(f.first);
    return names;
  }

 protected:
  void prepare_kernel(ops::Context& ctx, MixerBuffers& buffers, int64_t batch, int64_t n) override {
    kernel_ = Kernel(ctx, geometry_(batch, n), &buffers);
  }
  void release_kernel() override { kernel_ = Kernel(); }
  void kernel_forward(ops::Context& ctx, const float* q, const float* k, const float* v, float* o, float* stat) override {
    kernel_.forward(ctx, q, k, v, o, stat);
  }
  void kernel_backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* o, const float* stat,
                       const float* dout, float* dq, float* dk, float* dv) override {
    kernel_.backward(ctx, q, k, v, o, stat, dout, dq, dk, dv, fault_);
  }

 private:
  std::function<Geometry(int64_t, int64_t)> geometry_;
  Faults faults_;
  Kernel kernel_;
  Fault fault_ = Fault::kNone;
};

// Builds the trainable mixer of architecture `arch` reading the parameters registered under
// `prefix` in `params`; nullptr when the architecture has no backward yet.
std::unique_ptr<TrainableMixer> make_trainable_mixer(const std::string& arch, const ModelConfig& cfg, ParamStore& params,
                                                     const std::string& prefix);
// Architectures with a gradient-checked backward.
std::vector<std::string> trainable_architectures();
// The floats make_trainable_mixer(arch, cfg, ...)'s prepare(batch, n) allocates with `threads`
// worker threads (kernels' per-thread tiles included), from the shapes alone.
MixerFloats trainable_mixer_floats(const std::string& arch, const ModelConfig& cfg, int64_t batch, int64_t n, int threads);


// The Linear registered as "<prefix>.weight" / "<prefix>.bias" (fails when absent).
ParamStore::LinearRef find_linear(ParamStore& params, const std::string& prefix);
ParamStore::LayerNormRef find_layer_norm(ParamStore& params, const std::string& prefix);

// y[i] += x[i], i < count (the residual stream's gradient gathering its branches).
void add_into(float* y, const float* x, int64_t count);

}  // namespace bsbr::train

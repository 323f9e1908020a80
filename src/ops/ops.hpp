// The thin op layer over oneDNN. Models call these, never oneDNN directly.
//
// Each op is built once for a fixed geometry (in prepare(), outside any timed region): it creates
// its oneDNN primitive, reserves its scratchpad in the Context, and makes one set of memory
// handles per worker thread. run() only points those handles at the caller's data and executes,
// so it allocates nothing. An op made for one thread (created under ops::SingleThreadOps, or small
// work) may be called concurrently from our own parallel loops; an op made for the whole team runs
// at the top level only (oneDNN uses all threads), and running it inside a parallel loop is a
// broken invariant (its scratchpad exists once, for thread 0).
//
// All data is f32. Layouts are strided views; shapes are documented as [rows, cols].
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "ops/context.hpp"

namespace bsbr::ops {

// A (batched) strided matrix: element (b, r, c) lives at b*batch_stride + r*row_stride + c*col_stride.
struct MatLayout {
  int64_t batch = 1, rows = 0, cols = 0;
  int64_t batch_stride = 0, row_stride = 0, col_stride = 1;

  static MatLayout dense(int64_t rows, int64_t cols) { return {1, rows, cols, rows * cols, cols, 1}; }
  static MatLayout strided(int64_t rows, int64_t cols, int64_t row_stride) { return {1, rows, cols, 0, row_stride, 1}; }
  static MatLayout batched(int64_t batch, int64_t rows, int64_t cols) { return {batch, rows, cols, rows * cols, cols, 1}; }
  // Consecutive blocks of `rows` rows of a strided matrix read as a batch (block i starts at row
  // i*rows): the chunks of a sequence, e.g. one head's [C, dh] chunks in a [n, d] buffer.
  static MatLayout chunks(int64_t count, int64_t rows, int64_t cols, int64_t row_stride) {
    return {count, rows, cols, rows * row_stride, row_stride, 1};
  }
  MatLayout with_batch(int64_t b, int64_t stride) const {
    MatLayout m = *this;
    m.batch = b;
    m.batch_stride = stride;
    return m;
  }
  // The same memory read as its transpose: [cols, rows].
  MatLayout transposed() const { return {batch, cols, rows, batch_stride, col_stride, row_stride}; }
  std::string str() const;
};

enum class Eltwise {
  kIdentity,  // no-op (lets callers pass "no activation")
  kGeluErf,   // exact GELU (SPEC §1)
  kGeluTanh,  // GPT-2's tanh approximation
  kElu,       // elu(x) with alpha; elu+1 is Elu followed by Linear(1, 1)
  kSigmoid,
  kExp,
  kLinear,    // alpha*x + beta
  kRelu,
  kSquare,
  kSqrt,
};

struct EltwiseSpec {
  Eltwise kind = Eltwise::kIdentity;
  float alpha = 0.f, beta = 0.f;
};

// A post-op fused into a MatMul: applied to the result in order.
struct PostOp {
  enum class Kind { kEltwise, kSum, kBinaryAdd, kBinaryMul };
  Kind kind = Kind::kEltwise;
  EltwiseSpec eltwise{};  // kEltwise
  float sum_scale = 1.f;  // kSum: dst = sum_scale*dst_old + result
  MatLayout src1{};       // kBinary*: the second operand (broadcast where a dim is 1)

  static PostOp eltwise_op(Eltwise k, float a = 0.f, float b = 0.f) { return {Kind::kEltwise, {k, a, b}, 1.f, {}}; }
  static PostOp accumulate(float scale = 1.f) { return {Kind::kSum, {}, scale, {}}; }
  static PostOp add(const MatLayout& src1) { return {Kind::kBinaryAdd, {}, 1.f, src1}; }
  static PostOp mul(const MatLayout& src1) { return {Kind::kBinaryMul, {}, 1.f, src1}; }
};

// Shared machinery of every op: the primitive, its implementation name, and per-thread bindings
// (memory handles plus the C argument array that points at them), so run() allocates nothing.
class PrimitiveOp {
 public:
  bool valid() const { return static_cast<bool>(prim_); }
  // oneDNN's implementation name, e.g. "brg:avx512_core".
  const std::string& impl() const { return impl_; }

 protected:
  using ArgDescs = std::vector<std::pair<int, dnnl::memory::desc>>;
  // args: the DNNL_ARG_* ids with their descriptors, in the order execute() receives pointers.
  // serial: the primitive was created under a SerialScope and runs under one: small work, or an
  // op made for one thread (SingleThreadOps) that may run inside our parallel loops.
  void init(Context& ctx, const dnnl::primitive_desc_base& pd, dnnl::primitive prim, const ArgDescs& args, bool serial);
  void execute(Context& ctx, const void* const* ptrs, std::size_t count) const;
  void execute(Context& ctx, std::initializer_list<const void*> ptrs) const { execute(ctx, ptrs.begin(), ptrs.size()); }

 private:
  struct Binding {
    std::vector<dnnl::memory> mems;
    std::vector<dnnl_exec_arg_t> args;
  };
  dnnl::primitive prim_;
  std::string impl_;
  bool has_scratchpad_ = false;
  std::size_t scratch_bytes_ = 0;
  bool serial_ = false;
  mutable std::vector<Binding> bindings_;  // one per worker thread
};

// Matmuls with at most this many rows (2-D) are decode-shaped: the hand GEMV computes them
// (ops/gemv.hpp) when their layouts allow, else oneDNN's runtime-rows gemm:jit (see MatMul).
inline constexpr int64_t kGemvMaxRows = 8;
inline constexpr int64_t kGemvMaxWeights = int64_t{1} << 20;  // elements of the [K, N] operand

struct MatMulSpec {
  MatLayout a;  // [M, K] (batch B or 1)
  MatLayout b;  // [K, N] (batch B or 1 = shared)
  MatLayout c;  // [M, N]
  bool bias = false;  // bias[N] added to every row
  float scale = 1.f;  // c = scale * (a . b) (+ bias) then post-ops; scale and bias are exclusive
  std::vector<PostOp> post_ops;
};

class MatMul;

// One product of MatMul::run_together.
struct MatMulCall {
  const MatMul& op;
  const float* a;
  const float* b;
  float* c;
  const float* bias = nullptr;
};

// c = post_ops(scale * a.b + bias)
class MatMul : public PrimitiveOp {
 public:
  MatMul() = default;
  MatMul(Context& ctx, const MatMulSpec& spec) : MatMul(ctx, spec, nullptr) {}
  // A product whose weights b stay the same from call to call (a decode step's projections): when
  // the hand GEMV takes it (decode-shaped, a layout it reads; on any thread count, one block
  // included), it keeps a copy of b in the GEMV's panel layout (ops/gemv.hpp: each thread's share
  // one contiguous range), counted as MemCategory::kPackedParams, and reads that instead. run()
  // and run_together() must then be given this same b (checked), and b must not change while the op
  // lives: a model makes its step's ops again (prepare) after its weights change. Otherwise (oneDNN
  // runs it) bound_weights is ignored. Null: as the two-argument form.
  MatMul(Context& ctx, const MatMulSpec& spec, const float* bound_weights);
  // binary_srcs: one pointer per binary post-op, in order.
  void run(Context& ctx, const float* a, const float* b, float* c, const float* bias = nullptr,
           std::initializer_list<const float*> binary_srcs = {}) const;
  // Runs independent products (none reads another's output, none has a binary post-op), such as a
  // decode step's q, k and v projections of one x: when every one is a hand GEMV of two or more
  // column blocks, in one OpenMP region, their weights split over the team as one range of bytes
  // (ops/gemv.hpp): one fork/join instead of one per product. Otherwise one after another.
  static void run_together(Context& ctx, std::initializer_list<MatMulCall> calls);
  // True when run() reads a packed copy of its weights (the bound_weights constructor).
  bool weights_packed() const { return bound_weights_ != nullptr; }
  const MatMulSpec& spec() const { return spec_; }
  bool valid() const { return hand() || PrimitiveOp::valid(); }
  const std::string& impl() const { return hand() ? gemv_impl_ : PrimitiveOp::impl(); }
  // Column blocks of a hand GEMV (ops/gemv.hpp), each on its own thread; 0 when oneDNN runs it.
  int64_t column_blocks() const { return gemv_blocks_; }

 private:
  // Checks the bias pointer against the spec and adds the product's FLOPs to the counter (run and
  // run_together).
  void check_bias_and_count(Context& ctx, const float* bias) const;
  // The weights a GEMV reads for the b its caller passed: the packed copy when bound (checked to be
  // the bound b), else b itself.
  const float* gemv_weights(const float* b) const;
  bool hand() const { return gemv_blocks_ > 0 || gemv_entries_ > 0 || outer_; }

  MatMulSpec spec_;
  Tensor packed_;                         // the bound weights in the GEMV's panel layout
  const float* bound_weights_ = nullptr;  // the b that packed_ copies
  int64_t gemv_blocks_ = 0;
  bool outer_ = false;  // a small rank-1 product (K = 1) by a loop (ops/gemv.hpp)
  // A small batched product of a few rows per entry: the hand GEMV once per batch entry, on the
  // calling thread, with entry_spec_ (spec_'s layouts at batch 1).
  int64_t gemv_entries_ = 0;
  MatMulSpec entry_spec_;
  std::string gemv_impl_;
};

// dst = f(src), elementwise; src and dst may alias when their layouts match.
class EltwiseOp : public PrimitiveOp {
 public:
  EltwiseOp() = default;
  EltwiseOp(Context& ctx, const MatLayout& src, const MatLayout& dst, EltwiseSpec f);
  void run(Context& ctx, const float* src, float* dst) const;

};

// dst = src0 (op) src1 with numpy-style broadcast of src1 (a dim of 1 broadcasts).
class BinaryOp : public PrimitiveOp {
 public:
  enum class Kind { kAdd, kMul, kSub, kDiv, kMax };
  BinaryOp() = default;
  BinaryOp(Context& ctx, Kind kind, const MatLayout& src0, const MatLayout& src1, const MatLayout& dst,
           std::vector<PostOp> post_ops = {});
  void run(Context& ctx, const float* src0, const float* src1, float* dst) const;

};

// LayerNorm over the last dim of [rows, d] (rows may be strided); gamma, beta: [d].
class LayerNormOp : public PrimitiveOp {
 public:
  LayerNormOp() = default;
  LayerNormOp(Context& ctx, const MatLayout& src, const MatLayout& dst, float eps);
  void run(Context& ctx, const float* src, const float* gamma, const float* beta, float* dst) const;

 private:
  // Decode shapes (2-D, at most kGemvMaxRows rows, unit column stride) run a plain loop per row
  // instead: on the 2-core box oneDNN 2.6's layer norm (simple_layer_normalization, run serially
  // at this size) takes 1.1 us for 9 rows of 256 on a 1-thread context and 1.7 us on a 2-thread
  // one, the loop 0.1 us for a row (timing loops of 20,000 calls); a decode step runs 2 per layer
  // plus the final one. The primitive is still made (valid(), larger shapes).
  bool by_rows_ = false;
  int64_t rows_ = 0, cols_ = 0, src_stride_ = 0, dst_stride_ = 0;
  float eps_ = 0.f;
};

// Softmax over the last dim of a (batched) [rows, cols] matrix; in place when src == dst.
class SoftmaxOp : public PrimitiveOp {
 public:
  SoftmaxOp() = default;
  SoftmaxOp(Context& ctx, const MatLayout& data);
  void run(Context& ctx, const float* src, float* dst) const;

};

// Copies between two layouts of the same (batched) [rows, cols] matrix: transposes, gathers heads.
class ReorderOp : public PrimitiveOp {
 public:
  ReorderOp() = default;
  ReorderOp(Context& ctx, const MatLayout& src, const MatLayout& dst);
  void run(Context& ctx, const float* src, float* dst) const;

};

// Reduces a (batched) [rows, cols] matrix along cols into [rows, 1] (dst layout given).
class ReductionOp : public PrimitiveOp {
 public:
  enum class Kind { kSum, kMax, kMean, kNormL2 };
  ReductionOp() = default;
  ReductionOp(Context& ctx, Kind kind, const MatLayout& src, const MatLayout& dst);
  void run(Context& ctx, const float* src, float* dst) const;

};

// The oneDNN memory descriptor of a layout (2-D when batch == 1 unless force_3d).
dnnl::memory::desc to_desc(const MatLayout& m, bool force_3d = false);

}  // namespace bsbr::ops

// Op layer implementation: descriptor building, primitive creation, allocation-free execution.
#include "ops/ops.hpp"

#include <algorithm>
#include <cmath>

#include "core/alloc_count.hpp"
#include "core/errors.hpp"
#include "ops/gemv.hpp"

namespace bsbr::ops {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

std::string MatLayout::str() const {
  return "[" + std::to_string(batch) + "x" + std::to_string(rows) + "x" + std::to_string(cols) + " strides " +
         std::to_string(batch_stride) + "," + std::to_string(row_stride) + "," + std::to_string(col_stride) + "]";
}

memory::desc to_desc(const MatLayout& m, bool force_3d) {
  BSBR_CHECK(m.rows > 0 && m.cols > 0 && m.batch > 0, "empty matrix layout " + m.str());
  if (m.batch == 1 && !force_3d) return memory::desc({m.rows, m.cols}, dt::f32, memory::dims{m.row_stride, m.col_stride});
  // A broadcast batch (batch == 1) still needs a stride; oneDNN ignores it but checks it is sane.
  int64_t bs = m.batch == 1 ? m.rows * m.cols * std::max<int64_t>(1, std::max(m.row_stride, m.col_stride)) : m.batch_stride;
  return memory::desc({m.batch, m.rows, m.cols}, dt::f32, memory::dims{bs, m.row_stride, m.col_stride});
}

namespace {

dnnl::algorithm eltwise_alg(Eltwise k) {
  using A = dnnl::algorithm;
  switch (k) {
    case Eltwise::kIdentity: return A::eltwise_linear;  // alpha=1, beta=0 set by caller
    case Eltwise::kGeluErf: return A::eltwise_gelu_erf;
    case Eltwise::kGeluTanh: return A::eltwise_gelu_tanh;
    case Eltwise::kElu: return A::eltwise_elu;
    case Eltwise::kSigmoid: return A::eltwise_logistic;
    case Eltwise::kExp: return A::eltwise_exp;
    case Eltwise::kLinear: return A::eltwise_linear;
    case Eltwise::kRelu: return A::eltwise_relu;
    case Eltwise::kSquare: return A::eltwise_square;
    case Eltwise::kSqrt: return A::eltwise_sqrt;
  }
  return A::eltwise_linear;
}

// Elementwise work small enough to run on one thread (see SerialScope).
bool small(const MatLayout& m) { return static_cast<double>(m.batch) * m.rows * m.cols * 8 < kSerialWorkThreshold; }

std::pair<float, float> eltwise_params(const EltwiseSpec& f) {
  if (f.kind == Eltwise::kIdentity) return {1.f, 0.f};
  return {f.alpha, f.beta};
}

dnnl::primitive_attr make_attr(const std::vector<PostOp>& post_ops, bool ndims3, std::vector<memory::desc>& binary_descs) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops po;
  for (const PostOp& p : post_ops) {
    switch (p.kind) {
      case PostOp::Kind::kEltwise: {
        auto [a, b] = eltwise_params(p.eltwise);
        po.append_eltwise(1.f, eltwise_alg(p.eltwise.kind), a, b);
        break;
      }
      case PostOp::Kind::kSum: po.append_sum(p.sum_scale); break;
      case PostOp::Kind::kBinaryAdd:
      case PostOp::Kind::kBinaryMul: {
        memory::desc d = to_desc(p.src1, ndims3);
        binary_descs.push_back(d);
        po.append_binary(p.kind == PostOp::Kind::kBinaryAdd ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul, d);
        break;
      }
    }
  }
  attr.set_post_ops(po);
  return attr;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
void PrimitiveOp::init(Context& ctx, const dnnl::primitive_desc_base& pd, dnnl::primitive prim, const ArgDescs& args, bool serial) {
  prim_ = std::move(prim);
  serial_ = serial;
  impl_ = pd.impl_info_str();
  std::size_t scratch = pd.scratchpad_desc().get_size();
  has_scratchpad_ = scratch > 0;
  scratch_bytes_ = scratch;
  ctx.reserve_scratchpad(scratch, serial);
  bindings_.assign(ctx.threads(), {});
  for (Binding& b : bindings_) {
    for (auto& [arg, desc] : args) b.mems.emplace_back(desc, ctx.engine(), static_cast<void*>(DNNL_MEMORY_NONE));
    if (has_scratchpad_) b.mems.emplace_back(pd.scratchpad_desc(), ctx.engine(), static_cast<void*>(DNNL_MEMORY_NONE));
    for (std::size_t i = 0; i < args.size(); ++i) b.args.push_back({args[i].first, b.mems[i].get()});
    if (has_scratchpad_) b.args.push_back({DNNL_ARG_SCRATCHPAD, b.mems.back().get()});
  }
}

void PrimitiveOp::execute(Context& ctx, const void* const* ptrs, std::size_t count) const {
  BSBR_CHECK(valid(), "op used before it was created in prepare()");
  const bool nested = !ctx.may_fork();
  // An op made for the whole team inside one of our parallel loops would share thread 0's
  // scratchpad with the other workers (and oneDNN would run it on one thread anyway). On a held
  // team's main line (ops/team.hpp) it runs on thread 0 alone, with thread 0's scratchpad.
  if (nested && !serial_)
    invariant_failed("serial_", __FILE__, __LINE__, "the op " + impl_ + " was made for the whole team and runs inside a parallel loop: create it under ops::SingleThreadOps");
  Binding& b = bindings_[Context::thread_id()];
  BSBR_CHECK(count == b.mems.size() - (has_scratchpad_ ? 1 : 0), "op run() given the wrong number of pointers");
  for (std::size_t i = 0; i < count; ++i) b.mems[i].set_data_handle(const_cast<void*>(ptrs[i]));
  if (has_scratchpad_) {
    BSBR_CHECK(scratch_bytes_ <= ctx.thread_scratchpad_bytes(), "scratchpad of " + impl_ + " not reserved on this thread");
    b.mems.back().set_data_handle(ctx.scratchpad());
  }
  SerialScope one_thread(serial_);
  // oneDNN's execute allocates its argument map, and its threaded gemm drivers their packing
  // buffers on its worker threads (core/alloc_count.hpp).
  LibraryAllocations in_onednn(!serial_ && !nested);
  dnnl_status_t st = dnnl_primitive_execute(prim_.get(), ctx.stream().get(), static_cast<int>(b.args.size()), b.args.data());
  BSBR_CHECK(st == dnnl_success, "oneDNN primitive execution failed (status " + std::to_string(st) + ") in " + impl_);
}

// ---------------------------------------------------------------------------------------------
MatMul::MatMul(Context& ctx, const MatMulSpec& spec, const float* bound_weights) : spec_(spec) {
  ctx.check_creation_allowed("matmul creation");
  const MatLayout &A = spec.a, &B = spec.b, &C = spec.c;
  BSBR_CHECK(A.cols == B.rows && A.rows == C.rows && B.cols == C.cols,
             "matmul shapes do not chain: a " + A.str() + " b " + B.str() + " c " + C.str());
  BSBR_CHECK(!(spec.bias && spec.scale != 1.f), "matmul: scale and bias are exclusive in this layer");
  bool nd3 = A.batch > 1 || B.batch > 1 || C.batch > 1;
  bool binary_post_op = false;
  for (const PostOp& p : spec.post_ops)
    binary_post_op |= p.kind == PostOp::Kind::kBinaryAdd || p.kind == PostOp::Kind::kBinaryMul;
  // Decode-shaped products (a few rows, 2-D): the hand GEMV (ops/gemv.hpp), one column block per
  // thread by the weights' size; made for one thread under SingleThreadOps.
  // Serial at the top level (one block: one thread, or weights under two blocks' worth), the hand
  // loop runs only bound (packed) weights, and oneDNN's own GEMV the rest: reading row-major
  // weights, the CI timing gate (interleaved A/B, one thread) measured decode 12-25 % slower with
  // the hand loop (main 5dd8bce against e4dc8ad, 2-core box); reading them packed, the hand loop
  // made one-thread decode steps 24-40 % faster than oneDNN's (interleaved A/B, n = 4,096, 2-core
  // box, bound weights on one thread against bound weights on two or more only).
  const int64_t blocks = ctx.single_thread_ops() ? 1 : gemv_column_blocks(spec, ctx.threads());
  if (!nd3 && gemv_supports(spec) && (ctx.single_thread_ops() || blocks > 1 || bound_weights)) {
    gemv_blocks_ = blocks;
    gemv_impl_ = "gemv:hand" + (gemv_blocks_ > 1 ? "x" + std::to_string(gemv_blocks_) : std::string());
    if (bound_weights) {
      packed_ = ctx.tensor(MemCategory::kPackedParams, {gemv_packed_floats(B.rows, B.cols)});
      gemv_pack(spec, bound_weights, packed_.data());
      bound_weights_ = bound_weights;
      gemv_impl_ += ":packed";
    }
    return;
  }
  // Batched decode-shaped products, a few rows per entry and one thread's work in all (BSBR's
  // o_h += q_h . G_h over the heads of a step): the hand GEMV entry by entry. oneDNN's batched
  // matmul spent 2-3 us of call overhead on these 16K multiply-adds (step profile, issue 14).
  if (nd3 && !binary_post_op && A.batch == B.batch && B.batch == C.batch &&
      2.0 * A.batch * A.rows * A.cols * B.cols < kSerialWorkThreshold) {
    MatMulSpec entry = spec;
    for (MatLayout* l : {&entry.a, &entry.b, &entry.c}) l->batch = 1, l->batch_stride = 0;
    if (gemv_supports(entry)) {
      entry_spec_ = entry;
      gemv_entries_ = A.batch;
      gemv_impl_ = "gemv:hand:batch" + std::to_string(A.batch);
      return;
    }
  }
  if (outer_supports(spec)) {  // K = 1, small: a loop (ops/gemv.hpp)
    outer_ = true;
    gemv_impl_ = "outer:hand";
    return;
  }
  // Otherwise (a layout the hand GEMV does not take), a decode-shaped primitive is created with a
  // runtime row count, which oneDNN 2.6 serves with gemm:jit: for a [1, K] x [K, N] GEMV that is
  // 2-4x faster than the brgemm it picks for a static shape (one thread: 256x512 3.1 vs 13.5 us).
  const bool gemv = !nd3 && A.rows <= kGemvMaxRows && !binary_post_op && B.rows * B.cols < kGemvMaxWeights;
  const bool serial = ctx.single_thread_ops() || gemv || 2.0 * std::max(A.batch, B.batch) * A.rows * A.cols * B.cols < kSerialWorkThreshold;
  SerialScope one_thread(serial);
  memory::desc a = to_desc(A, nd3), b = to_desc(B, nd3), c = to_desc(C, nd3);
  memory::desc a_pd = a, c_pd = c;  // what the primitive is created for (runtime rows for a GEMV)
  if (gemv) {
    a_pd = memory::desc({DNNL_RUNTIME_DIM_VAL, A.cols}, dt::f32, memory::dims{A.row_stride, A.col_stride});
    c_pd = memory::desc({DNNL_RUNTIME_DIM_VAL, C.cols}, dt::f32, memory::dims{C.row_stride, C.col_stride});
  }
  std::vector<memory::desc> binary_descs;
  dnnl::primitive_attr attr = make_attr(spec.post_ops, nd3, binary_descs);
  if (spec.scale != 1.f) attr.set_output_scales(0, {spec.scale});
  memory::desc bias_d;
  if (spec.bias) bias_d = nd3 ? memory::desc({1, 1, C.cols}, dt::f32, tag::abc) : memory::desc({1, C.cols}, dt::f32, tag::ab);
  dnnl::matmul::desc d = spec.bias ? dnnl::matmul::desc(a_pd, b, bias_d, c_pd) : dnnl::matmul::desc(a_pd, b, c_pd);
  dnnl::matmul::primitive_desc pd;
  try {
    pd = dnnl::matmul::primitive_desc(d, attr, ctx.engine());
  } catch (const dnnl::error& e) {
    invariant_failed("matmul primitive_desc", __FILE__, __LINE__,
                     std::string("oneDNN rejected matmul a ") + A.str() + " b " + B.str() + " c " + C.str() + ": " + e.what());
  }
  ArgDescs args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
  if (spec.bias) args.push_back({DNNL_ARG_BIAS, bias_d});
  int bi = 0;
  for (std::size_t i = 0; i < spec.post_ops.size(); ++i) {
    auto k = spec.post_ops[i].kind;
    if (k == PostOp::Kind::kBinaryAdd || k == PostOp::Kind::kBinaryMul)
      args.push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP(static_cast<int>(i)) | DNNL_ARG_SRC_1, binary_descs[bi++]});
  }
  init(ctx, pd, dnnl::matmul(pd), args, serial);
}

void MatMul::check_bias_and_count(Context& ctx, const float* bias) const {
  BSBR_CHECK(spec_.bias == (bias != nullptr), "matmul bias pointer does not match its spec");
  if (ctx.counting_flops())
    ctx.count_flops(2.0 * static_cast<double>(std::max(spec_.a.batch, spec_.b.batch)) * spec_.a.rows * spec_.a.cols * spec_.b.cols);
}

const float* MatMul::gemv_weights(const float* b) const {
  if (!bound_weights_) return b;
  BSBR_CHECK(b == bound_weights_, "matmul run() given other weights than the ones bound to it");
  return packed_.data();
}

void MatMul::run(Context& ctx, const float* a, const float* b, float* c, const float* bias,
                 std::initializer_list<const float*> binary_srcs) const {
  check_bias_and_count(ctx, bias);
  // Pointers in argument order: src, weights, dst, [bias], binary post-op sources.
  const void* p[8];
  int n = 0;
  p[n++] = a;
  p[n++] = b;
  p[n++] = c;
  if (bias) p[n++] = bias;
  BSBR_CHECK(binary_srcs.size() + n <= 8, "too many binary post-ops");
  for (const float* s : binary_srcs) p[n++] = s;
  if (gemv_blocks_ > 0) {
    BSBR_CHECK(static_cast<int64_t>(binary_srcs.size()) ==
                   std::count_if(spec_.post_ops.begin(), spec_.post_ops.end(),
                                 [](const PostOp& q) { return q.kind == PostOp::Kind::kBinaryAdd || q.kind == PostOp::Kind::kBinaryMul; }),
               "matmul run() given the wrong number of binary post-op sources");
    gemv_run(ctx, spec_, gemv_blocks_, a, gemv_weights(b), weights_packed(), c, bias, binary_srcs.begin());
    return;
  }
  if (gemv_entries_ > 0) {
    for (int64_t i = 0; i < gemv_entries_; ++i)
      gemv_run(ctx, entry_spec_, 1, a + i * spec_.a.batch_stride, b + i * spec_.b.batch_stride, false, c + i * spec_.c.batch_stride, bias,
               nullptr);
    return;
  }
  if (outer_) {
    outer_run(spec_, a, b, c, bias);
    return;
  }
  execute(ctx, p, static_cast<std::size_t>(n));
}

void MatMul::run_together(Context& ctx, std::initializer_list<MatMulCall> calls) {
  constexpr std::size_t kMaxTogether = 4;
  BSBR_CHECK(calls.size() <= kMaxTogether, "MatMul::run_together takes at most 4 products");
  bool one_region = ctx.may_fork();
  for (const MatMulCall& call : calls) {
    for (const PostOp& p : call.op.spec_.post_ops)
      BSBR_CHECK(p.kind != PostOp::Kind::kBinaryAdd && p.kind != PostOp::Kind::kBinaryMul, "MatMul::run_together: a binary post-op");
    one_region = one_region && call.op.gemv_blocks_ > 1;
  }
  if (!one_region) {
    for (const MatMulCall& call : calls) call.op.run(ctx, call.a, call.b, call.c, call.bias);
    return;
  }
  GemvCall set[kMaxTogether];
  int count = 0;
  for (const MatMulCall& call : calls) {
    call.op.check_bias_and_count(ctx, call.bias);
    set[count++] = GemvCall{&call.op.spec_, call.a, call.op.gemv_weights(call.b), call.c, call.bias, nullptr, call.op.weights_packed()};
  }
  gemv_run_set(ctx, set, count, gemv_set_parts(set, count, ctx.threads()));
}

// ---------------------------------------------------------------------------------------------
EltwiseOp::EltwiseOp(Context& ctx, const MatLayout& src, const MatLayout& dst, EltwiseSpec f) {
  ctx.check_creation_allowed("eltwise creation");
  const bool serial = ctx.single_thread_ops() || small(src);
  SerialScope one_thread(serial);
  bool nd3 = src.batch > 1 || dst.batch > 1;
  memory::desc s = to_desc(src, nd3), d = to_desc(dst, nd3);
  auto [a, b] = eltwise_params(f);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_inference, eltwise_alg(f.kind), s, a, b);
  // eltwise_forward in 2.6 takes one descriptor for src and dst; a different dst layout goes
  // through a reorder-free path only when they match, which every caller here guarantees.
  BSBR_CHECK(s == d, "eltwise src and dst layouts must match: " + src.str() + " vs " + dst.str());
  dnnl::eltwise_forward::primitive_desc pd(desc, attr, ctx.engine());
  init(ctx, pd, dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, s}, {DNNL_ARG_DST, d}}, serial);
}

void EltwiseOp::run(Context& ctx, const float* src, float* dst) const { execute(ctx, {src, dst}); }

// ---------------------------------------------------------------------------------------------
BinaryOp::BinaryOp(Context& ctx, Kind kind, const MatLayout& src0, const MatLayout& src1, const MatLayout& dst,
                   std::vector<PostOp> post_ops) {
  ctx.check_creation_allowed("binary creation");
  const bool serial = ctx.single_thread_ops() || small(dst);
  SerialScope one_thread(serial);
  bool nd3 = src0.batch > 1 || src1.batch > 1 || dst.batch > 1;
  memory::desc s0 = to_desc(src0, nd3), s1 = to_desc(src1, nd3), d = to_desc(dst, nd3);
  using A = dnnl::algorithm;
  A alg = kind == Kind::kAdd ? A::binary_add : kind == Kind::kMul ? A::binary_mul : kind == Kind::kSub ? A::binary_sub
          : kind == Kind::kDiv ? A::binary_div : A::binary_max;
  std::vector<memory::desc> binary_descs;
  dnnl::primitive_attr attr = make_attr(post_ops, nd3, binary_descs);
  BSBR_CHECK(binary_descs.empty(), "binary op: binary post-ops are not supported here");
  dnnl::binary::desc desc(alg, s0, s1, d);
  dnnl::binary::primitive_desc pd(desc, attr, ctx.engine());
  init(ctx, pd, dnnl::binary(pd), {{DNNL_ARG_SRC_0, s0}, {DNNL_ARG_SRC_1, s1}, {DNNL_ARG_DST, d}}, serial);
}

void BinaryOp::run(Context& ctx, const float* src0, const float* src1, float* dst) const { execute(ctx, {src0, src1, dst}); }

// ---------------------------------------------------------------------------------------------
LayerNormOp::LayerNormOp(Context& ctx, const MatLayout& src, const MatLayout& dst, float eps) {
  ctx.check_creation_allowed("layer norm creation");
  const bool serial = ctx.single_thread_ops() || small(src);
  SerialScope one_thread(serial);
  memory::desc s = to_desc(src), d = to_desc(dst);
  BSBR_CHECK(src.rows == dst.rows && src.cols == dst.cols, "layer norm src/dst shapes differ");
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  // 2.6's layer norm takes one data descriptor; strided src/dst must therefore share a layout.
  BSBR_CHECK(s == d, "layer norm src and dst layouts must match");
  dnnl::layer_normalization_forward::desc desc(dnnl::prop_kind::forward_inference, s, eps, flags);
  dnnl::layer_normalization_forward::primitive_desc pd(desc, attr, ctx.engine());
  memory::desc gd({src.cols}, dt::f32, tag::a);
  init(ctx, pd, dnnl::layer_normalization_forward(pd),
       {{DNNL_ARG_SRC, s}, {DNNL_ARG_DST, d}, {DNNL_ARG_SCALE, gd}, {DNNL_ARG_SHIFT, gd}}, serial);
  by_rows_ = src.batch == 1 && src.rows <= kGemvMaxRows && src.col_stride == 1 && dst.col_stride == 1;
  rows_ = src.rows;
  cols_ = src.cols;
  src_stride_ = src.row_stride;
  dst_stride_ = dst.row_stride;
  eps_ = eps;
}

void LayerNormOp::run(Context& ctx, const float* src, const float* gamma, const float* beta, float* dst) const {
  if (!by_rows_) {
    execute(ctx, {src, dst, gamma, beta});
    return;
  }
  // y = (x - mean) / sqrt(var + eps) * gamma + beta per row, var the biased variance (oneDNN's
  // definition), from the mean in a second pass.
  const float n = static_cast<float>(cols_);
  for (int64_t r = 0; r < rows_; ++r) {
    const float* x = src + r * src_stride_;
    float* y = dst + r * dst_stride_;
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < cols_; ++c) sum += x[c];
    const float mean = sum / n;
    float squares = 0.f;
#pragma omp simd reduction(+ : squares)
    for (int64_t c = 0; c < cols_; ++c) squares += (x[c] - mean) * (x[c] - mean);
    const float inv = 1.f / std::sqrt(squares / n + eps_);
#pragma omp simd
    for (int64_t c = 0; c < cols_; ++c) y[c] = (x[c] - mean) * inv * gamma[c] + beta[c];
  }
}

// ---------------------------------------------------------------------------------------------
SoftmaxOp::SoftmaxOp(Context& ctx, const MatLayout& data) {
  ctx.check_creation_allowed("softmax creation");
  const bool serial = ctx.single_thread_ops() || small(data);
  SerialScope one_thread(serial);
  memory::desc s = to_desc(data);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  int axis = data.batch > 1 ? 2 : 1;
  dnnl::softmax_v2_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::softmax_accurate, s, s, axis);
  dnnl::softmax_v2_forward::primitive_desc pd(desc, attr, ctx.engine());
  init(ctx, pd, dnnl::softmax_v2_forward(pd), {{DNNL_ARG_SRC, s}, {DNNL_ARG_DST, s}}, serial);
}

void SoftmaxOp::run(Context& ctx, const float* src, float* dst) const { execute(ctx, {src, dst}); }

// ---------------------------------------------------------------------------------------------
ReorderOp::ReorderOp(Context& ctx, const MatLayout& src, const MatLayout& dst) {
  ctx.check_creation_allowed("reorder creation");
  const bool serial = ctx.single_thread_ops() || small(src);
  SerialScope one_thread(serial);
  BSBR_CHECK(src.rows == dst.rows && src.cols == dst.cols && src.batch == dst.batch,
             "reorder shapes differ: " + src.str() + " vs " + dst.str());
  bool nd3 = src.batch > 1;
  memory::desc s = to_desc(src, nd3), d = to_desc(dst, nd3);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc pd(ctx.engine(), s, ctx.engine(), d, attr);
  init(ctx, pd, dnnl::reorder(pd), {{DNNL_ARG_FROM, s}, {DNNL_ARG_TO, d}}, serial);
}

void ReorderOp::run(Context& ctx, const float* src, float* dst) const { execute(ctx, {src, dst}); }

// ---------------------------------------------------------------------------------------------
ReductionOp::ReductionOp(Context& ctx, Kind kind, const MatLayout& src, const MatLayout& dst) {
  ctx.check_creation_allowed("reduction creation");
  const bool serial = ctx.single_thread_ops() || small(src);
  SerialScope one_thread(serial);
  bool nd3 = src.batch > 1;
  memory::desc s = to_desc(src, nd3), d = to_desc(dst, nd3);
  using A = dnnl::algorithm;
  A alg = kind == Kind::kSum ? A::reduction_sum : kind == Kind::kMax ? A::reduction_max : kind == Kind::kMean ? A::reduction_mean
          : A::reduction_norm_lp_sum;
  float p = kind == Kind::kNormL2 ? 2.f : 0.f;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reduction::desc desc(alg, s, d, p, 0.f);
  dnnl::reduction::primitive_desc pd(desc, attr, ctx.engine());
  init(ctx, pd, dnnl::reduction(pd), {{DNNL_ARG_SRC, s}, {DNNL_ARG_DST, d}}, serial);
}

void ReductionOp::run(Context& ctx, const float* src, float* dst) const { execute(ctx, {src, dst}); }

}  // namespace bsbr::ops

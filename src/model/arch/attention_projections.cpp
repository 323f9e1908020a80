// AttentionProjections: registration and the four projection matmuls.
#include "model/arch/attention_projections.hpp"

namespace bsbr {

using ops::MatLayout;
using ops::MatMul;
using ops::PostOp;

AttentionProjections::AttentionProjections(ParamStore& params, const std::string& prefix, int64_t d) : d_(d) {
  q_ = params.add_linear(prefix + ".q_proj", d, d);
  k_ = params.add_linear(prefix + ".k_proj", d, d);
  v_ = params.add_linear(prefix + ".v_proj", d, d);
  out_ = params.add_linear(prefix + ".out_proj", d, d);
}

AttentionProjections::Ops AttentionProjections::make_ops(ops::Context& ctx, const MatLayout& rows, const MatLayout& kv) const {
  return make_ops(ctx, rows, rows, kv, rows, rows);
}

AttentionProjections::Ops AttentionProjections::make_ops(ops::Context& ctx, const MatLayout& x, const MatLayout& q, const MatLayout& kv,
                                                         const MatLayout& o, const MatLayout& residual) const {
  const MatLayout w = MatLayout::dense(d_, d_);
  Ops ops;
  ops.q = MatMul(ctx, {x, w, q, true, 1.f, {}});
  ops.k = MatMul(ctx, {x, w, kv, true, 1.f, {}});
  ops.v = MatMul(ctx, {x, w, kv, true, 1.f, {}});
  ops.out = MatMul(ctx, {o, w, residual, true, 1.f, {PostOp::accumulate()}});  // residual += o.Wo + bo
  return ops;
}

AttentionProjections::Ops AttentionProjections::make_step_ops(ops::Context& ctx, const MatLayout& rows, const MatLayout& kv) const {
  const MatLayout w = MatLayout::dense(d_, d_);
  Ops ops;
  ops.q = MatMul(ctx, {rows, w, rows, true, 1.f, {}}, q_.weight->data());
  ops.k = MatMul(ctx, {rows, w, kv, true, 1.f, {}}, k_.weight->data());
  ops.v = MatMul(ctx, {rows, w, kv, true, 1.f, {}}, v_.weight->data());
  ops.out = MatMul(ctx, {rows, w, rows, true, 1.f, {PostOp::accumulate()}}, out_.weight->data());  // residual += o.Wo + bo
  return ops;
}

void AttentionProjections::project(ops::Context& ctx, const Ops& ops, const float* x, float* q, float* k, float* v) const {
  MatMul::run_together(ctx, {{ops.q, x, q_.weight->data(), q, q_.bias->data()},
                             {ops.k, x, k_.weight->data(), k, k_.bias->data()},
                             {ops.v, x, v_.weight->data(), v, v_.bias->data()}});
}

void AttentionProjections::output(ops::Context& ctx, const Ops& ops, const float* o, float* residual) const {
  ops.out.run(ctx, o, out_.weight->data(), residual, out_.bias->data());
}

}  // namespace bsbr

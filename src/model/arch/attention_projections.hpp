// The four Linear(d, d) projections of multi-head softmax attention — q_proj, k_proj, v_proj and
// out_proj — shared by the architectures that use exactly these (Standard, Hopfield, SlidingWindow):
// parameter registration under the mixer's prefix, and the matmuls for one row layout.
#pragma once
#include <string>

#include "model/params.hpp"
#include "ops/ops.hpp"

namespace bsbr {

class AttentionProjections {
 public:
  // Registers "<prefix>.{q,k,v,out}_proj.{weight [d, d], bias [d]}".
  AttentionProjections(ParamStore& params, const std::string& prefix, int64_t d);

  // The matmuls for one row layout: x, q and o are [rows, d] laid out as `rows` (a prefill's
  // [b, n, d] or a step's [b, d]); k and v are written in layout `kv` (a cache or ring).
  struct Ops {
    ops::MatMul q, k, v, out;
  };
  Ops make_ops(ops::Context& ctx, const ops::MatLayout& rows, const ops::MatLayout& kv) const;
  // The same with separate layouts: q, k and v are projected from the rows of `x` (one row count),
  // q written in layout `q`, k and v in `kv`; the output projection reads o in layout `o` and adds
  // into `residual` (another row count, e.g. a prefill slab that recomputes rows of history for k
  // and v but outputs only its own rows).
  Ops make_ops(ops::Context& ctx, const ops::MatLayout& x, const ops::MatLayout& q, const ops::MatLayout& kv,
               const ops::MatLayout& o, const ops::MatLayout& residual) const;

  // A decode step's: x, q and o are [rows, d], k and v written in layout `kv`, each product bound to
  // its weights (ops::MatMul's bound_weights: a packed copy for the hand GEMV), which stay the same
  // from token to token.
  Ops make_step_ops(ops::Context& ctx, const ops::MatLayout& rows, const ops::MatLayout& kv) const;

  // q = x.Wq + bq, k = x.Wk + bk, v = x.Wv + bv.
  void project(ops::Context& ctx, const Ops& ops, const float* x, float* q, float* k, float* v) const;
  // residual += o.Wo + bo.
  void output(ops::Context& ctx, const Ops& ops, const float* o, float* residual) const;

 private:
  int64_t d_;
  ParamStore::LinearRef q_, k_, v_, out_;
};

}  // namespace bsbr

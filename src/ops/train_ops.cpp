// Training ops: oneDNN layer_normalization (forward_training + backward), eltwise_backward,
// reduction for bias gradients.
#include "ops/train_ops.hpp"

#include <algorithm>

#include "core/errors.hpp"

namespace bsbr::ops {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

bool small_work(int64_t rows, int64_t cols) { return static_cast<double>(rows) * cols * 8 < kSerialWorkThreshold; }

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::normalization_flags ln_flags() { return dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift; }

dnnl::layer_normalization_forward::primitive_desc ln_forward_pd(Context& ctx, const memory::desc& s, float eps) {
  dnnl::layer_normalization_forward::desc desc(dnnl::prop_kind::forward_training, s, eps, ln_flags());
  return dnnl::layer_normalization_forward::primitive_desc(desc, user_scratchpad(), ctx.engine());
}

dnnl::algorithm backward_alg(Eltwise k) {
  using A = dnnl::algorithm;
  switch (k) {
    case Eltwise::kGeluErf: return A::eltwise_gelu_erf;
    case Eltwise::kGeluTanh: return A::eltwise_gelu_tanh;
    case Eltwise::kElu: return A::eltwise_elu;
    case Eltwise::kSigmoid: return A::eltwise_logistic;
    case Eltwise::kExp: return A::eltwise_exp;
    case Eltwise::kRelu: return A::eltwise_relu;
    default: break;
  }
  invariant_failed("eltwise backward", __FILE__, __LINE__, "activation without a backward op here");
}

}  // namespace

LayerNormTrainOp::LayerNormTrainOp(Context& ctx, int64_t rows, int64_t d, float eps) {
  ctx.check_creation_allowed("layer norm (training) creation");
  const bool serial = small_work(rows, d);
  SerialScope one_thread(serial);
  memory::desc s = to_desc(MatLayout::dense(rows, d));
  auto pd = ln_forward_pd(ctx, s, eps);
  memory::desc gd({d}, dt::f32, tag::a);
  init(ctx, pd, dnnl::layer_normalization_forward(pd),
       {{DNNL_ARG_SRC, s}, {DNNL_ARG_DST, s}, {DNNL_ARG_SCALE, gd}, {DNNL_ARG_SHIFT, gd}, {DNNL_ARG_MEAN, pd.mean_desc()},
        {DNNL_ARG_VARIANCE, pd.variance_desc()}},
       serial);
}

void LayerNormTrainOp::run(Context& ctx, const float* src, const float* gamma, const float* beta, float* dst, float* mean,
                           float* var) const {
  execute(ctx, {src, dst, gamma, beta, mean, var});
}

LayerNormBackwardOp::LayerNormBackwardOp(Context& ctx, int64_t rows, int64_t d, float eps) {
  ctx.check_creation_allowed("layer norm backward creation");
  const bool serial = small_work(rows, d);
  SerialScope one_thread(serial);
  memory::desc s = to_desc(MatLayout::dense(rows, d));
  auto hint = ln_forward_pd(ctx, s, eps);
  dnnl::layer_normalization_backward::desc desc(dnnl::prop_kind::backward, s, s, eps, ln_flags());
  dnnl::layer_normalization_backward::primitive_desc pd(desc, user_scratchpad(), ctx.engine(), hint);
  // Every argument's descriptor as the primitive reports it. 2.6 counts SHIFT among the backward's
  // inputs when use_shift is set (execution fails with invalid_arguments without it), though the
  // gradient does not depend on it.
  auto md = [&](int arg) { return pd.query_md(dnnl::query::exec_arg_md, arg); };
  init(ctx, pd, dnnl::layer_normalization_backward(pd),
       {{DNNL_ARG_SRC, md(DNNL_ARG_SRC)}, {DNNL_ARG_MEAN, md(DNNL_ARG_MEAN)}, {DNNL_ARG_VARIANCE, md(DNNL_ARG_VARIANCE)},
        {DNNL_ARG_DIFF_DST, md(DNNL_ARG_DIFF_DST)}, {DNNL_ARG_SCALE, md(DNNL_ARG_SCALE)}, {DNNL_ARG_SHIFT, md(DNNL_ARG_SHIFT)},
        {DNNL_ARG_DIFF_SRC, md(DNNL_ARG_DIFF_SRC)},
        {DNNL_ARG_DIFF_SCALE, md(DNNL_ARG_DIFF_SCALE)}, {DNNL_ARG_DIFF_SHIFT, md(DNNL_ARG_DIFF_SHIFT)}},
       serial);
  for (int arg : {DNNL_ARG_SRC, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE, DNNL_ARG_DIFF_DST, DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_SCALE,
                  DNNL_ARG_DIFF_SHIFT})
    BSBR_CHECK(md(arg).get_size() > 0, "layer norm backward: argument " + std::to_string(arg) + " has no descriptor");
}

void LayerNormBackwardOp::run(Context& ctx, const float* src, const float* mean, const float* var, const float* ddst,
                              const float* gamma, const float* beta, float* dsrc, float* dgamma, float* dbeta) const {
  execute(ctx, {src, mean, var, ddst, gamma, beta, dsrc, dgamma, dbeta});
}

EltwiseBackwardOp::EltwiseBackwardOp(Context& ctx, int64_t rows, int64_t cols, EltwiseSpec f) {
  ctx.check_creation_allowed("eltwise backward creation");
  const bool serial = small_work(rows, cols);
  SerialScope one_thread(serial);
  memory::desc s = to_desc(MatLayout::dense(rows, cols));
  const dnnl::algorithm alg = backward_alg(f.kind);
  dnnl::eltwise_forward::desc fdesc(dnnl::prop_kind::forward_training, alg, s, f.alpha, f.beta);
  dnnl::eltwise_forward::primitive_desc hint(fdesc, user_scratchpad(), ctx.engine());
  dnnl::eltwise_backward::desc desc(alg, s, s, f.alpha, f.beta);
  dnnl::eltwise_backward::primitive_desc pd(desc, user_scratchpad(), ctx.engine(), hint);
  init(ctx, pd, dnnl::eltwise_backward(pd), {{DNNL_ARG_SRC, s}, {DNNL_ARG_DIFF_DST, s}, {DNNL_ARG_DIFF_SRC, s}}, serial);
}

void EltwiseBackwardOp::run(Context& ctx, const float* src, const float* ddst, float* dsrc) const { execute(ctx, {src, ddst, dsrc}); }

ColumnSumOp::ColumnSumOp(Context& ctx, int64_t rows, int64_t cols)
    : sum_(ctx, {MatLayout::dense(1, rows), MatLayout::dense(rows, cols), MatLayout::dense(1, cols), false, 1.f, {}}),
      ones_(ctx.tensor(MemCategory::kActivations, {1, rows})) {
  std::fill(ones_.data(), ones_.data() + rows, 1.f);
}

void ColumnSumOp::run(Context& ctx, const float* src, float* dst) const { sum_.run(ctx, ones_.data(), src, dst); }

}  // namespace bsbr::ops

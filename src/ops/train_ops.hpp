// Op-layer additions for training (backward passes), built on oneDNN's training primitives. New
// classes only: the forward ops in ops.hpp keep their signatures. Same rules as there: each op is
// built once for a fixed geometry in prepare(); run() only points handles at data and executes.
#pragma once
#include "ops/ops.hpp"

namespace bsbr::ops {

// LayerNorm forward for training over [rows, d] (dense): like LayerNormOp, and it also writes the
// per-row mean and variance ([rows] each) that LayerNormBackwardOp needs.
class LayerNormTrainOp : public PrimitiveOp {
 public:
  LayerNormTrainOp() = default;
  LayerNormTrainOp(Context& ctx, int64_t rows, int64_t d, float eps);
  void run(Context& ctx, const float* src, const float* gamma, const float* beta, float* dst, float* mean, float* var) const;
};

// LayerNorm backward over [rows, d] (dense), from the forward's src, mean and variance:
//   dsrc [rows, d] = dLN/dsrc^T . ddst (overwritten),
//   dgamma [d] = sum_rows ddst * xhat, dbeta [d] = sum_rows ddst (both overwritten).
class LayerNormBackwardOp : public PrimitiveOp {
 public:
  LayerNormBackwardOp() = default;
  LayerNormBackwardOp(Context& ctx, int64_t rows, int64_t d, float eps);
  // beta is read by nothing but is an argument oneDNN 2.6 requires.
  void run(Context& ctx, const float* src, const float* mean, const float* var, const float* ddst, const float* gamma,
           const float* beta, float* dsrc, float* dgamma, float* dbeta) const;
};

// Elementwise backward over [rows, cols] (dense): dsrc = f'(src) * ddst (overwritten), from the
// forward's input src. Supports the activations the models use (GELU erf/tanh, sigmoid, elu, exp).
class EltwiseBackwardOp : public PrimitiveOp {
 public:
  EltwiseBackwardOp() = default;
  EltwiseBackwardOp(Context& ctx, int64_t rows, int64_t cols, EltwiseSpec f);
  void run(Context& ctx, const float* src, const float* ddst, float* dsrc) const;
};

// Column sums of a dense [rows, cols] matrix into [cols] (overwritten): the bias gradient of a
// Linear from its output gradient. A [1, rows] x [rows, cols] matmul with a row of ones: oneDNN
// 2.6's reduction over the row dimension runs its reference implementation (ref:any, one thread).
class ColumnSumOp {
 public:
  ColumnSumOp() = default;
  ColumnSumOp(Context& ctx, int64_t rows, int64_t cols);
  void run(Context& ctx, const float* src, float* dst) const;

 private:
  MatMul sum_;
  Tensor ones_;  // [1, rows]
};

}  // namespace bsbr::ops

// Plain-loop building blocks for the oracles: written straight from SPEC §1, double accumulation,
// no tiling, no oneDNN. Matrices are row-major std::vector<float>.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace bsbr::ref {

using Mat = std::vector<float>;

// Multiply-adds an oracle performs in matmul-like work (projections, scores, weighted sums, state
// updates; not elementwise ops). A mixer's prefill_flops(n) must equal 2 x its oracle's count: the
// FLOP formulas are checked against this direct count.
struct MacCounter {
  double macs = 0;
};

// y[n, out] = x[n, in] . W[in, out] + b[out]
Mat linear(const Mat& x, int64_t n, int64_t in, const float* W, const float* b, int64_t out, MacCounter* count = nullptr);
// LayerNorm over rows of [n, d] with gamma, beta, eps.
Mat layer_norm(const Mat& x, int64_t n, int64_t d, const float* gamma, const float* beta, double eps);
double gelu_erf(double x);
double gelu_tanh(double x);
double sigmoid(double x);
// Softmax of v in place (max-subtracted).
void softmax(std::vector<double>& v);
// Columns [h*dh, (h+1)*dh) of row t of a [n, d] matrix.
inline const float* head_row(const Mat& m, int64_t t, int64_t d, int64_t h, int64_t dh) { return m.data() + t * d + h * dh; }
double dot(const float* a, const float* b, int64_t n, MacCounter* count = nullptr);
// One query row of one head attending to the key rows s in [lo, hi]: keys at k + s*row_stride
// (width dh), values at v + s*row_stride (width dv): out[i] = Σ_s softmax_s(scale q.k_s) v_s[i].
// Counts (hi - lo + 1) * (dh + dv) multiply-adds (scores and weighted sum).
void attend(const float* q, const float* k, const float* v, int64_t row_stride, int64_t dh, int64_t dv, int64_t lo, int64_t hi,
            double scale, float* out, MacCounter& macs);
// The same for the head whose columns start at `col` (width `width`) of [*, row_stride] K and V.
inline void attend(const float* q, const Mat& k, const Mat& v, int64_t row_stride, int64_t col, int64_t width, int64_t lo, int64_t hi,
                   double scale, float* out, MacCounter& macs) {
  attend(q, k.data() + col, v.data() + col, row_stride, width, width, lo, hi, scale, out, macs);
}
// Row r of a [*, cols] matrix as its own [1, cols] matrix.
inline Mat row_of(const Mat& m, int64_t r, int64_t cols) { return Mat(m.begin() + r * cols, m.begin() + (r + 1) * cols); }

}  // namespace bsbr::ref

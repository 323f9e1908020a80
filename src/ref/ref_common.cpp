// Plain-loop building blocks.
#include "ref/ref_common.hpp"

#include <algorithm>

namespace bsbr::ref {

Mat linear(const Mat& x, int64_t n, int64_t in, const float* W, const float* b, int64_t out, MacCounter* count) {
  if (count) count->macs += static_cast<double>(n) * in * out;
  Mat y(n * out);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b ? b[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += static_cast<double>(x[t * in + i]) * W[i * out + o];
      y[t * out + o] = static_cast<float>(acc);
    }
  return y;
}

Mat layer_norm(const Mat& x, int64_t n, int64_t d, const float* gamma, const float* beta, double eps) {
  Mat y(n * d);
  for (int64_t t = 0; t < n; ++t) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i) mean += x[t * d + i];
    mean /= d;
    for (int64_t i = 0; i < d; ++i) var += (x[t * d + i] - mean) * (x[t * d + i] - mean);
    var /= d;
    double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < d; ++i) y[t * d + i] = static_cast<float>((x[t * d + i] - mean) * inv * gamma[i] + beta[i]);
  }
  return y;
}

double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

void softmax(std::vector<double>& v) {
  double m = *std::max_element(v.begin(), v.end()), s = 0;
  for (double& x : v) s += (x = std::exp(x - m));
  for (double& x : v) x /= s;
}

double dot(const float* a, const float* b, int64_t n, MacCounter* count) {
  if (count) count->macs += static_cast<double>(n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

void attend(const float* q, const float* k, const float* v, int64_t row_stride, int64_t dh, int64_t dv, int64_t lo, int64_t hi,
            double scale, float* out, MacCounter& macs) {
  std::vector<double> w(hi - lo + 1);
  for (int64_t s = lo; s <= hi; ++s) w[s - lo] = scale * dot(q, k + s * row_stride, dh, &macs);
  softmax(w);
  macs.macs += static_cast<double>(hi - lo + 1) * dv;  // the weighted sum below
  for (int64_t i = 0; i < dv; ++i) {
    double acc = 0;
    for (int64_t s = lo; s <= hi; ++s) acc += w[s - lo] * v[s * row_stride + i];
    out[i] = static_cast<float>(acc);
  }
}

}  // namespace bsbr::ref

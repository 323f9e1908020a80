// Hand-written loops (see kernels.hpp for why each exists).
#include "ops/kernels.hpp"

#include <algorithm>
#include <cstring>

namespace bsbr::ops {

void embed_tokens(const int32_t* tokens, int64_t n, const float* table, int64_t d, const float* pos_table,
                  int64_t first_pos, float* out, int64_t out_row_stride) {
  for (int64_t t = 0; t < n; ++t) {
    const float* e = table + static_cast<int64_t>(tokens[t]) * d;
    float* o = out + t * out_row_stride;
    if (pos_table) {
      const float* p = pos_table + (first_pos + t) * d;
      for (int64_t i = 0; i < d; ++i) o[i] = e[i] + p[i];
    } else {
      std::memcpy(o, e, sizeof(float) * d);
    }
  }
}

void sinusoidal_positions(int64_t first_pos, int64_t n, int64_t d, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    double p = static_cast<double>(first_pos + t);
    for (int64_t i = 0; 2 * i < d; ++i) {
      double angle = p / std::pow(10000.0, static_cast<double>(2 * i) / static_cast<double>(d));
      out[t * d + 2 * i] = static_cast<float>(std::sin(angle));
      if (2 * i + 1 < d) out[t * d + 2 * i + 1] = static_cast<float>(std::cos(angle));
    }
  }
}

void argmax_rows(const float* x, int64_t rows, int64_t cols, int64_t row_stride, int32_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * row_stride;
    int64_t best = 0;
    for (int64_t c = 1; c < cols; ++c)
      if (row[c] > row[best]) best = c;
    out[r] = static_cast<int32_t>(best);
  }
}

void online_softmax_update(float* scores, int64_t rows, int64_t cols, int64_t key_first, const int64_t* lo,
                           const int64_t* hi, float* m, float* l, float* acc, int64_t dh) {
  for (int64_t r = 0; r < rows; ++r) {
    float* s = scores + r * cols;
    // Visible columns form one interval [c0, c1] of this tile.
    int64_t c0 = 0, c1 = cols - 1;
    if (lo) {
      c0 = std::max<int64_t>(0, lo[r] - key_first);
      c1 = std::min<int64_t>(cols - 1, hi[r] - key_first);
    }
    if (c0 > c1) {  // nothing visible in this tile for this row
      std::fill(s, s + cols, 0.0f);
      continue;
    }
    float tile_max = kNegInf;
#pragma omp simd reduction(max : tile_max)
    for (int64_t c = c0; c <= c1; ++c) tile_max = std::max(tile_max, s[c]);
    float m_old = m[r];
    float m_new = std::max(m_old, tile_max);
    float sum = 0.0f;
    for (int64_t c = 0; c < c0; ++c) s[c] = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = c0; c <= c1; ++c) {
      float p = fast_exp(s[c] - m_new);
      s[c] = p;
      sum += p;
    }
    for (int64_t c = c1 + 1; c < cols; ++c) s[c] = 0.0f;
    float alpha = (m_old == kNegInf) ? 0.0f : fast_exp(m_old - m_new);
    l[r] = l[r] * alpha + sum;
    m[r] = m_new;
    float* a = acc + r * dh;
    for (int64_t i = 0; i < dh; ++i) a[i] *= alpha;
  }
}

}  // namespace bsbr::ops

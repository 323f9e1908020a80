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

// The first index of the row's largest value (NaN never wins over row[0]; a NaN row[0] gives 0).
// 16 independent lanes, each keeping its largest value and where it first saw it (selects, which
// vectorise, not a dependent reload of row[best]: that loop cost ~13 us for the 10,000 logits of a
// decode step on the 16-core host); then the lanes' winner, the lowest index among equal values.
void argmax_rows(const float* x, int64_t rows, int64_t cols, int64_t row_stride, int32_t* out) {
  constexpr int64_t kLanes = 16;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * row_stride;
    float lane[kLanes];
    int32_t at[kLanes];
    std::fill(lane, lane + kLanes, row[0]);
    std::fill(at, at + kLanes, 0);
    int64_t c = 0;
    for (; c + kLanes <= cols; c += kLanes)
#pragma omp simd
      for (int64_t j = 0; j < kLanes; ++j) {
        const bool more = row[c + j] > lane[j];
        lane[j] = more ? row[c + j] : lane[j];
        at[j] = more ? static_cast<int32_t>(c + j) : at[j];
      }
    float best = row[0];
    int32_t best_at = 0;
    for (int64_t j = 0; j < kLanes; ++j)
      if (lane[j] > best || (lane[j] == best && at[j] < best_at)) {
        best = lane[j];
        best_at = at[j];
      }
    for (; c < cols; ++c)
      if (row[c] > best) {
        best = row[c];
        best_at = static_cast<int32_t>(c);
      }
    out[r] = best_at;
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
    // The row's max over the order keys of the scores (an integer max reduction: a float one is
    // left scalar under -ftrapping-math, a chain of dependent maxss at ~4 cycles a score). A NaN
    // score with its sign bit clear becomes the max, so the row's output is NaN.
    int32_t key_max = float_order_key(std::bit_cast<int32_t>(kNegInf));
#pragma omp simd reduction(max : key_max)
    for (int64_t c = c0; c <= c1; ++c) key_max = std::max(key_max, float_order_key(std::bit_cast<int32_t>(s[c])));
    const float tile_max = std::bit_cast<float>(float_order_key(key_max));
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

void l2_normalize_rows(float* x, int64_t rows, int64_t cols, int64_t row_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * row_stride;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < cols; ++c) sum += row[c] * row[c];
    const float inv = 1.0f / std::sqrt(sum);
    for (int64_t c = 0; c < cols; ++c) row[c] *= inv;
  }
}

void prefix_sum_blocks(float* blocks, int64_t count, int64_t block_size) {
  for (int64_t i = 1; i < count; ++i) {
    const float* __restrict prev = blocks + (i - 1) * block_size;
    float* __restrict cur = blocks + i * block_size;
    for (int64_t j = 0; j < block_size; ++j) cur[j] += prev[j];
  }
}

void exclusive_prefix_sum_blocks(float* running, float* blocks, int64_t count, int64_t width, int64_t block_stride) {
  float* __restrict run = running;
  for (int64_t i = 0; i < count; ++i) {
    float* __restrict block = blocks + i * block_stride;
    for (int64_t j = 0; j < width; ++j) {
      const float contribution = block[j];
      block[j] = run[j];
      run[j] += contribution;
    }
  }
}

void ut_transform(float* t, const float* beta, int64_t beta_stride, int64_t chunk) {
  constexpr int64_t kBlock = 16;  // output columns held in registers (one AVX-512 vector)
  const int64_t C = chunk;
  for (int64_t i = 0; i < C; ++i) {
    // Row i: T[i, :] = beta_i e_i + sum_{m<i} a_m T[m, :] with a_m = -beta_i k_i.k_m, where the
    // rows m < i are final and T[m, j] = 0 for j > m. The a_m overwrite k_i.k_m in place; output
    // block [j0, j0+16) reads only a_m with m >= j0, so blocks written in ascending order never
    // clobber a coefficient still to be read. (Measured 3.4x faster than a column-by-column
    // substitution, which runs short variable-length loops.)
    float* row = t + i * C;
    const float beta_i = beta[i * beta_stride];
    for (int64_t m = 0; m < i; ++m) row[m] *= -beta_i;
    for (int64_t j0 = 0; j0 < C; j0 += kBlock) {
      float acc[kBlock] = {};
      if (j0 + kBlock <= C) {
        for (int64_t m = j0; m < i; ++m) {
          const float a = row[m];
          const float* prev = t + m * C + j0;
#pragma omp simd
          for (int64_t j = 0; j < kBlock; ++j) acc[j] += a * prev[j];
        }
        for (int64_t j = 0; j < kBlock; ++j) row[j0 + j] = acc[j];
      } else {  // the narrower last block when C is not a multiple of 16
        const int64_t width = C - j0;
        for (int64_t m = j0; m < i; ++m)
          for (int64_t j = 0; j < width; ++j) acc[j] += row[m] * t[m * C + j0 + j];
        for (int64_t j = 0; j < width; ++j) row[j0 + j] = acc[j];
      }
    }
    row[i] = beta_i;
  }
}

double ut_transform_macs(int64_t chunk) {
  constexpr int64_t kBlock = 16;  // as in ut_transform
  double macs = 0;
  for (int64_t i = 0; i < chunk; ++i)
    for (int64_t j0 = 0; j0 < i; j0 += kBlock) macs += static_cast<double>(i - j0) * std::min(kBlock, chunk - j0);
  return macs;
}

// Row i of M: M[i, :] += a * u; o += q_i * M[i, :] (the updated row).
namespace {
void update_read_rows(int64_t dh, const float* q, const float* k, const float* u, float scale, float* m, float* o) {
  std::fill(o, o + dh, 0.f);
  for (int64_t i = 0; i < dh; ++i) {
    float* row = m + i * dh;
    const float a = scale * k[i], qi = q[i];
#pragma omp simd
    for (int64_t j = 0; j < dh; ++j) {
      row[j] += a * u[j];
      o[j] += qi * row[j];
    }
  }
}
}  // namespace

void linear_attention_step(int64_t pairs, int64_t dh, const float* q, const float* k, const float* v, float* state, float* z, float eps,
                           float* o) {
  for (int64_t p = 0; p < pairs; ++p) {
    const float *qp = q + p * dh, *kp = k + p * dh;
    float* op = o + p * dh;
    update_read_rows(dh, qp, kp, v + p * dh, 1.f, state + p * dh * dh, op);
    if (!z) continue;
    float* zp = z + p * dh;
    float den = 0.f;
    for (int64_t i = 0; i < dh; ++i) {
      zp[i] += kp[i];
      den += qp[i] * zp[i];
    }
    den += eps;
    for (int64_t j = 0; j < dh; ++j) op[j] /= den;
  }
}

void delta_rule_step(int64_t pairs, int64_t dh, const float* q, const float* k, const float* v, const float* beta, float* state, float* u,
                     float* o) {
  for (int64_t p = 0; p < pairs; ++p) {
    const float* kp = k + p * dh;
    float* m = state + p * dh * dh;
    float* up = u + p * dh;
    std::copy(v + p * dh, v + (p + 1) * dh, up);  // u = v - M^T k, M read row by row
    for (int64_t i = 0; i < dh; ++i) {
      const float ki = kp[i];
      const float* row = m + i * dh;
#pragma omp simd
      for (int64_t j = 0; j < dh; ++j) up[j] -= ki * row[j];
    }
    update_read_rows(dh, q + p * dh, kp, up, beta[p], m, o + p * dh);
  }
}

}  // namespace bsbr::ops

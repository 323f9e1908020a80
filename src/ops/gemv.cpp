// The hand GEMV (gemv.hpp): tiles of output columns, the weights streamed four rows at a time, or
// panel by panel from a packed copy.
#include "ops/gemv.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/errors.hpp"
#include "ops/kernels.hpp"
#include "ops/ops.hpp"
#include "ops/vmath.hpp"

namespace bsbr::ops {
namespace {

// Output columns per tile: the [m, kTile] accumulator (at most 8 x 512 floats, 16 KB) and four
// weight rows' segments (8 KB) stay in L1 while the k loop runs.
constexpr int64_t kTile = 512;

// acc[r, 0:w) = sum_k a[r, k] b[k, j0 + 0:w) for b row-major (row stride ldb): four weight rows
// per pass, each a contiguous stream, so every loaded accumulator serves four FMAs.
void tile_kn(const float* a, int64_t lda, int64_t m, int64_t K, const float* b, int64_t ldb, int64_t j0, int64_t w, float* acc) {
  std::fill(acc, acc + m * kTile, 0.f);
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    const float* w0 = b + k * ldb + j0;
    const float *w1 = w0 + ldb, *w2 = w1 + ldb, *w3 = w2 + ldb;
    for (int64_t r = 0; r < m; ++r) {
      const float* ar = a + r * lda + k;
      const float a0 = ar[0], a1 = ar[1], a2 = ar[2], a3 = ar[3];
      float* y = acc + r * kTile;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) y[j] += a0 * w0[j] + a1 * w1[j] + a2 * w2[j] + a3 * w3[j];
    }
  }
  for (; k < K; ++k) {
    const float* w0 = b + k * ldb + j0;
    for (int64_t r = 0; r < m; ++r) {
      const float a0 = a[r * lda + k];
      float* y = acc + r * kTile;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) y[j] += a0 * w0[j];
    }
  }
}

// Sixteen floats as one value (GCC vector extension: a zmm register on AVX-512, two ymm on AVX2);
// eight (a ymm register).
typedef float F16 __attribute__((vector_size(64)));
typedef int I16 __attribute__((vector_size(64)));
typedef float F8 __attribute__((vector_size(32)));
typedef int I8 __attribute__((vector_size(32)));

// A vector loaded from unaligned floats.
template <class V>
V load_v(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// sums[c] = the sum of the 16 lanes of s[c], for 16 vectors at once: four levels of "fold the
// halves of each column's lanes, two inputs into one", so no lane is ever summed one by one. After
// level L each vector holds 2^L columns of 16 / 2^L partial sums, in column order.
F16 reduce16(const F16* s) {
  constexpr I16 lo1 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}, hi1 = lo1 + 8;
  constexpr I16 lo2 = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27}, hi2 = lo2 + 4;
  constexpr I16 lo3 = {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29}, hi3 = lo3 + 2;
  constexpr I16 lo4 = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}, hi4 = lo4 + 1;
  F16 a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i) a[i] = __builtin_shuffle(s[2 * i], s[2 * i + 1], lo1) + __builtin_shuffle(s[2 * i], s[2 * i + 1], hi1);
  for (int i = 0; i < 4; ++i) b[i] = __builtin_shuffle(a[2 * i], a[2 * i + 1], lo2) + __builtin_shuffle(a[2 * i], a[2 * i + 1], hi2);
  for (int i = 0; i < 2; ++i) c[i] = __builtin_shuffle(b[2 * i], b[2 * i + 1], lo3) + __builtin_shuffle(b[2 * i], b[2 * i + 1], hi3);
  return __builtin_shuffle(c[0], c[1], lo4) + __builtin_shuffle(c[0], c[1], hi4);
}

// The same for b read transposed: b(k, j) = bt[j * ldb + k], so output column j is the dot
// product of a row of a with the contiguous row j of bt (a tied LM head; q.K^T of a decode step,
// where j is a key). Sixteen columns at a time, each accumulated in its own vector over k and the
// sixteen reduced together (reduce16): a horizontal sum per column cost more than its dot product.
void tile_nk(const float* a, int64_t lda, int64_t m, int64_t K, const float* bt, int64_t ldb, int64_t j0, int64_t w, float* acc) {
  const int64_t K16 = K / 16 * 16;
  for (int64_t r = 0; r < m; ++r) {
    const float* ar = a + r * lda;
    float* y = acc + r * kTile;
    int64_t j = 0;
    if (K16 > 0)
      for (; j + 16 <= w; j += 16) {
        const float* col0 = bt + (j0 + j) * ldb;
        F16 s[16] = {};
        for (int64_t k = 0; k < K16; k += 16) {
          const F16 av = load_v<F16>(ar + k);
          for (int c = 0; c < 16; ++c) s[c] += av * load_v<F16>(col0 + c * ldb + k);
        }
        const F16 sums = reduce16(s);
        std::memcpy(y + j, &sums, sizeof sums);
        for (int c = 0; c < 16 && K16 < K; ++c)
          for (int64_t k = K16; k < K; ++k) y[j + c] += ar[k] * col0[c * ldb + k];
      }
    for (; j < w; ++j) {
      const float* col = bt + (j0 + j) * ldb;
      float sum = 0.f;
#pragma omp simd reduction(+ : sum)
      for (int64_t k = 0; k < K; ++k) sum += ar[k] * col[k];
      y[j] = sum;
    }
  }
}

// y[0:w) = f(y[0:w)) by oneDNN's definitions of the eltwise algorithms (dnnl_types.h), alpha and
// beta as eltwise_params passes them. One loop per algorithm, so each vectorises on AVX2 and AVX-512
// (vmath.hpp; elu's and relu's x > 0 is vmath's bit compare and blend, for the same reason).
void apply_eltwise(const EltwiseSpec& f, float* y, int64_t w) {
  const float alpha = f.alpha, beta = f.beta;
  switch (f.kind) {
    case Eltwise::kIdentity: return;
    case Eltwise::kGeluErf:
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) y[j] = 0.5f * y[j] * (1.f + vmath::erf(y[j] * 0.70710678118654752f));
      return;
    case Eltwise::kGeluTanh:  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) {
        const float x = y[j];
        y[j] = 0.5f * x * (1.f + vmath::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
      }
      return;
    case Eltwise::kElu:
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) y[j] = vmath::select(vmath::positive(y[j]), y[j], alpha * vmath::expm1(y[j]));
      return;
    case Eltwise::kSigmoid:
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) y[j] = vmath::sigmoid(y[j]);
      return;
    case Eltwise::kExp:
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) y[j] = fast_exp(y[j]);
      return;
    case Eltwise::kLinear:
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) y[j] = alpha * y[j] + beta;
      return;
    case Eltwise::kRelu:
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) y[j] = vmath::select(vmath::positive(y[j]), y[j], alpha * y[j]);
      return;
    case Eltwise::kSquare:
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) y[j] = y[j] * y[j];
      return;
    case Eltwise::kSqrt:
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) y[j] = std::sqrt(y[j]);
      return;
  }
}

// Columns [j0, j1) of the product, tile by tile: accumulate, then scale, bias and the post-ops in
// order (oneDNN's order), written to c.
void run_columns(const GemvCall& o, int64_t j0, int64_t j1) {
  const MatMulSpec& s = *o.spec;
  alignas(64) float acc[kGemvMaxRows * kTile];
  const int64_t m = s.a.rows, K = s.a.cols;
  const bool transposed = s.b.col_stride != 1;
  for (int64_t t0 = j0; t0 < j1; t0 += kTile) {
    const int64_t w = std::min(kTile, j1 - t0);
    if (o.b_packed)
      gemv_packed_columns(o.a, s.a.row_stride, m, K, o.b, t0, w, acc, kTile);
    else if (transposed)
      tile_nk(o.a, s.a.row_stride, m, K, o.b, s.b.col_stride, t0, w, acc);
    else
      tile_kn(o.a, s.a.row_stride, m, K, o.b, s.b.row_stride, t0, w, acc);
    for (int64_t r = 0; r < m; ++r) {
      float* y = acc + r * kTile;
      float* c = o.c + r * s.c.row_stride + t0;
      if (s.scale != 1.f)
        for (int64_t j = 0; j < w; ++j) y[j] *= s.scale;
      if (o.bias)
        for (int64_t j = 0; j < w; ++j) y[j] += o.bias[t0 + j];
      int64_t binary = 0;
      for (const PostOp& p : s.post_ops) {
        switch (p.kind) {
          case PostOp::Kind::kEltwise:
            apply_eltwise(p.eltwise, y, w);
            break;
          case PostOp::Kind::kSum:  // dst = sum_scale * dst_old + result
            for (int64_t j = 0; j < w; ++j) y[j] += p.sum_scale * c[j];
            break;
          case PostOp::Kind::kBinaryAdd:
          case PostOp::Kind::kBinaryMul: {
            const MatLayout& l = p.src1;  // [1 or m, 1 or N]
            const float* src = o.binary_srcs[binary++] + (l.rows == 1 ? 0 : r * l.row_stride);
            const bool add = p.kind == PostOp::Kind::kBinaryAdd;
            for (int64_t j = 0; j < w; ++j) {
              const float v = src[l.cols == 1 ? 0 : (t0 + j) * l.col_stride];
              y[j] = add ? y[j] + v : y[j] * v;
            }
            break;
          }
        }
      }
      std::copy(y, y + w, c);
    }
  }
}

// Bytes of weights per output column of a product.
int64_t column_bytes(const MatMulSpec& s) { return s.b.rows * static_cast<int64_t>(sizeof(float)); }

int64_t set_bytes(const GemvCall* calls, int count) {
  int64_t total = 0;
  for (int i = 0; i < count; ++i) total += column_bytes(*calls[i].spec) * calls[i].spec->c.cols;
  return total;
}

// Column of a product (N columns, cb bytes of weights each) at which byte p of its weights falls,
// rounded down to a whole 16-column group (64-byte lines of the output); N at or past its end. Both
// neighbours of a boundary compute it from the same p, so the parts cover every column once.
int64_t column_at(int64_t p, int64_t cb, int64_t N) {
  if (p >= cb * N) return N;
  return std::min(N, p / cb / 16 * 16);
}

// First byte of part t of `parts` over `total` bytes (equal shares, the remainder spread).
int64_t part_start(int64_t t, int64_t parts, int64_t total) { return total / parts * t + total % parts * t / parts; }

// Part t of `parts` of the set: the columns of each product that fall in the part's share of the
// weights, the products' weights taken one after another as one range of bytes.
void run_part(const GemvCall* calls, int count, int64_t t, int64_t parts, int64_t total) {
  const int64_t p0 = part_start(t, parts, total), p1 = part_start(t + 1, parts, total);
  int64_t offset = 0;  // first byte of product i in that range
  for (int i = 0; i < count; ++i) {
    const int64_t N = calls[i].spec->c.cols, cb = column_bytes(*calls[i].spec), bytes = cb * N;
    if (p1 > offset && p0 < offset + bytes) {
      const int64_t j0 = p0 <= offset ? 0 : column_at(p0 - offset, cb, N), j1 = column_at(p1 - offset, cb, N);
      if (j0 < j1) run_columns(calls[i], j0, j1);
    }
    offset += bytes;
  }
}

}  // namespace

bool gemv_supports(const MatMulSpec& s) {
  const MatLayout &A = s.a, &B = s.b, &C = s.c;
  if (A.batch != 1 || B.batch != 1 || C.batch != 1 || A.rows > kGemvMaxRows) return false;
  if (A.col_stride != 1 || C.col_stride != 1 || (B.col_stride != 1 && B.row_stride != 1)) return false;
  for (const PostOp& p : s.post_ops)
    if (p.kind == PostOp::Kind::kBinaryAdd || p.kind == PostOp::Kind::kBinaryMul) {
      const MatLayout& l = p.src1;
      if (l.batch != 1 || (l.rows != 1 && l.rows != C.rows) || (l.cols != 1 && l.cols != C.cols)) return false;
    }
  return true;
}

int64_t gemv_column_blocks(const MatMulSpec& s, int threads) {
  const GemvCall one{&s, nullptr, nullptr, nullptr, nullptr, nullptr, false};
  return gemv_set_parts(&one, 1, threads);
}

int64_t gemv_set_parts(const GemvCall* calls, int count, int threads) {
  int64_t groups = 0;
  for (int i = 0; i < count; ++i) groups += (calls[i].spec->c.cols + 15) / 16;
  const int64_t by_size = std::max<int64_t>(1, set_bytes(calls, count) / kGemvBytesPerBlock);
  return std::max<int64_t>(1, std::min({by_size, static_cast<int64_t>(threads), groups}));
}

int64_t gemv_packed_floats(int64_t K, int64_t N) { return (N + 15) / 16 * 16 * K; }

void gemv_pack(const MatMulSpec& s, const float* b, float* packed) {
  const MatLayout& B = s.b;
  const int64_t K = B.rows, N = B.cols;
  for (int64_t g = 0; g * 16 < N; ++g)
    for (int64_t k = 0; k < K; ++k) {
      float* out = packed + (g * K + k) * 16;
      for (int64_t i = 0; i < 16; ++i) {
        const int64_t j = g * 16 + i;
        out[i] = j < N ? b[k * B.row_stride + j * B.col_stride] : 0.f;
      }
    }
}

void gemv_run(const Context& ctx, const MatMulSpec& s, int64_t blocks, const float* a, const float* b, bool b_packed, float* c,
              const float* bias, const float* const* binary_srcs) {
  const GemvCall one{&s, a, b, c, bias, binary_srcs, b_packed};
  gemv_run_set(ctx, &one, 1, blocks);
}

void gemv_run_set(const Context& ctx, const GemvCall* calls, int count, int64_t parts) {
  const int64_t total = set_bytes(calls, count);
  if (parts <= 1 || !ctx.may_fork()) {
    run_part(calls, count, 0, 1, total);
    return;
  }
  BSBR_CHECK(parts <= ctx.threads(), "GEMV set with more parts than threads");
  if (ctx.team().dispatching()) {  // a held step: part t on thread t, as in the region below
    ctx.team().run_parts(parts, [&](int64_t t) { run_part(calls, count, t, parts, total); });
    return;
  }
#pragma omp parallel num_threads(ctx.threads())
  {
    const int64_t t = omp_get_thread_num();
    if (t < parts) run_part(calls, count, t, parts, total);
  }
}

namespace {

// The single-query kernels in two vector widths: 16 floats (a zmm register) and 8 (a ymm). A build
// uses its own register's (kNativeLanes): with AVX-512 enabled 16, otherwise 8 (the x86-64-v3 build
// of the 16-core host's bundle), where sixteen 16-float accumulators are 32 ymm registers of 16 and
// spilling them made the scores kernel half of a Standard decode step.

F16 reduce_lanes(const F16* s) { return reduce16(s); }
// reduce16's folding for 8 lanes: three levels.
F8 reduce_lanes(const F8* s) {
  constexpr I8 lo1 = {0, 1, 2, 3, 8, 9, 10, 11}, hi1 = lo1 + 4;
  constexpr I8 lo2 = {0, 1, 4, 5, 8, 9, 12, 13}, hi2 = lo2 + 2;
  constexpr I8 lo3 = {0, 2, 4, 6, 8, 10, 12, 14}, hi3 = lo3 + 1;
  F8 a[4], b[2];
  for (int i = 0; i < 4; ++i) a[i] = __builtin_shuffle(s[2 * i], s[2 * i + 1], lo1) + __builtin_shuffle(s[2 * i], s[2 * i + 1], hi1);
  for (int i = 0; i < 2; ++i) b[i] = __builtin_shuffle(a[2 * i], a[2 * i + 1], lo2) + __builtin_shuffle(a[2 * i], a[2 * i + 1], hi2);
  return __builtin_shuffle(b[0], b[1], lo3) + __builtin_shuffle(b[0], b[1], hi3);
}

template <class V>
void scores_in(const float* q, const float* k, int64_t stride, int64_t keys, int64_t heads, int64_t dh, float scale, float* scores) {
  constexpr int L = sizeof(V) / sizeof(float);
  // Columns c = j * heads + h in memory order: L at a time, each a dot product over dh kept in its
  // own vector and the L reduced together (reduce_lanes), as tile_nk does.
  const int64_t columns = keys * heads;
  int64_t c = 0;
  if (dh % L == 0)
    for (; c + L <= columns; c += L) {
      V s[L] = {};
      int64_t j = c / heads, h = c % heads;
      int64_t out[L];  // where column c + i's score goes
      for (int i = 0; i < L; ++i) {
        out[i] = h * keys + j;
        const float *qh = q + h * dh, *kj = k + j * stride + h * dh;
        for (int64_t e = 0; e < dh; e += L) s[i] += load_v<V>(qh + e) * load_v<V>(kj + e);
        if (++h == heads) h = 0, ++j;
      }
      const V sums = reduce_lanes(s);
      for (int i = 0; i < L; ++i) scores[out[i]] = scale * sums[i];
    }
  for (; c < columns; ++c) {
    const int64_t j = c / heads, h = c % heads;
    const float *qh = q + h * dh, *kj = k + j * stride + h * dh;
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t e = 0; e < dh; ++e) sum += qh[e] * kj[e];
    scores[h * keys + j] = scale * sum;
  }
}

// R: vectors of a row kept in registers, 16 of AVX-512's 32 zmm or 8 of AVX2's 16 ymm (the rest
// hold the loaded values and the broadcast weights).
template <class V, int R>
void weighted_sum_in(const float* p, const float* v, int64_t stride, int64_t keys, int64_t heads, int64_t dv, float* acc, int64_t acc_stride) {
  constexpr int L = sizeof(V) / sizeof(float);
  constexpr int64_t slice = int64_t{R} * L;  // floats of a row per pass: 256 or 64
  // The common shapes (a multiple of `slice` floats across the heads, dv a multiple of L; d = 256
  // is one slice of 16-float vectors, four of 8-float ones): the slice's accumulators in registers,
  // its part of every row read front to back.
  if ((heads * dv) % slice == 0 && dv % L == 0) {
    for (int64_t c0 = 0; c0 < heads * dv; c0 += slice) {
      int64_t head_of[R];  // the head of each vector of the slice
      for (int u = 0; u < R; ++u) head_of[u] = (c0 + u * L) / dv;
      V sum[R] = {};
      for (int64_t j = 0; j < keys; ++j) {
        const float* vj = v + j * stride + c0;
#pragma GCC unroll 16
        for (int u = 0; u < R; ++u) sum[u] += p[head_of[u] * keys + j] * load_v<V>(vj + u * L);
      }
      for (int u = 0; u < R; ++u) {
        float* a = acc + head_of[u] * acc_stride + (c0 + u * L) % dv;
        const V total = load_v<V>(a) + sum[u];
        std::memcpy(a, &total, sizeof total);
      }
    }
    return;
  }
  // Otherwise four rows per pass, so each head's accumulator is loaded and stored once per four rows.
  int64_t j = 0;
  for (; j + 4 <= keys; j += 4) {
    const float* v0 = v + j * stride;
    const float *v1 = v0 + stride, *v2 = v1 + stride, *v3 = v2 + stride;
    for (int64_t h = 0; h < heads; ++h) {
      const float* ph = p + h * keys + j;
      const float p0 = ph[0], p1 = ph[1], p2 = ph[2], p3 = ph[3];
      float* a = acc + h * acc_stride;
      const int64_t o = h * dv;
#pragma omp simd
      for (int64_t i = 0; i < dv; ++i) a[i] += p0 * v0[o + i] + p1 * v1[o + i] + p2 * v2[o + i] + p3 * v3[o + i];
    }
  }
  for (; j < keys; ++j) {
    const float* vj = v + j * stride;
    for (int64_t h = 0; h < heads; ++h) {
      const float pj = p[h * keys + j];
      float* a = acc + h * acc_stride;
#pragma omp simd
      for (int64_t i = 0; i < dv; ++i) a[i] += pj * vj[h * dv + i];
    }
  }
}

}  // namespace

void multihead_scores(const float* q, const float* k, int64_t stride, int64_t keys, int64_t heads, int64_t dh, float scale, float* scores,
                      int lanes) {
  BSBR_CHECK(lanes == 8 || lanes == 16, "multihead_scores: lanes must be 8 or 16");
  if (lanes == 16)
    scores_in<F16>(q, k, stride, keys, heads, dh, scale, scores);
  else
    scores_in<F8>(q, k, stride, keys, heads, dh, scale, scores);
}

void multihead_weighted_sum(const float* p, const float* v, int64_t stride, int64_t keys, int64_t heads, int64_t dv, float* acc,
                            int64_t acc_stride, int lanes) {
  BSBR_CHECK(lanes == 8 || lanes == 16, "multihead_weighted_sum: lanes must be 8 or 16");
  if (lanes == 16)
    weighted_sum_in<F16, 16>(p, v, stride, keys, heads, dv, acc, acc_stride);
  else
    weighted_sum_in<F8, 8>(p, v, stride, keys, heads, dv, acc, acc_stride);
}

namespace {

// One panel of the packed layout ([K, 16] contiguous, read front to back) against R rows of a:
// out[r * 16 + 0:16) = sum_k a[r, k] p[k, 0:16), in vectors V of L floats (16 / L per panel row).
// C independent chains per row over k (k mod C) hide the FMA latency when there are few rows;
// R * C * 16 / L accumulators, at most 8 registers (16-float vectors on AVX-512, 8-float ones on
// AVX2, where 16-float GCC vectors were lowered through the stack: 5x slower in a standalone loop).
template <class V, int R, int C>
void panel_rows(const float* a, int64_t lda, int64_t K, const float* p, float* out) {
  constexpr int L = sizeof(V) / sizeof(float), H = 16 / L;
  V s[R][C][H] = {};
  int64_t k = 0;
  for (; k + C <= K; k += C)
    for (int c = 0; c < C; ++c)
      for (int h = 0; h < H; ++h) {
        const V w = load_v<V>(p + (k + c) * 16 + h * L);
        for (int r = 0; r < R; ++r) s[r][c][h] += a[r * lda + k + c] * w;
      }
  for (; k < K; ++k)
    for (int h = 0; h < H; ++h) {
      const V w = load_v<V>(p + k * 16 + h * L);
      for (int r = 0; r < R; ++r) s[r][0][h] += a[r * lda + k] * w;
    }
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < H; ++h) {
      V total = s[r][0][h];
      for (int c = 1; c < C; ++c) total += s[r][c][h];
      std::memcpy(out + r * 16 + h * L, &total, sizeof total);
    }
}

template <class V>
void packed_columns(const float* a, int64_t lda, int64_t m, int64_t K, const float* panels, int64_t j0, int64_t w, float* out, int64_t ldo) {
  alignas(64) float rows[4 * 16];
  for (int64_t j = 0; j < w; j += 16) {
    const float* p = panels + (j0 + j) * K;  // panel (j0 + j) / 16
    const int64_t cols = std::min<int64_t>(16, w - j);
    for (int64_t r = 0; r < m; r += 4) {
      const float* ar = a + r * lda;
      const int64_t count = std::min<int64_t>(4, m - r);
      switch (count) {
        case 1: panel_rows<V, 1, 4>(ar, lda, K, p, rows); break;
        case 2: panel_rows<V, 2, 2>(ar, lda, K, p, rows); break;
        case 3: panel_rows<V, 3, 1>(ar, lda, K, p, rows); break;
        default: panel_rows<V, 4, 1>(ar, lda, K, p, rows); break;
      }
      for (int64_t i = 0; i < count; ++i) std::memcpy(out + (r + i) * ldo + j, rows + i * 16, cols * sizeof(float));
    }
  }
}

}  // namespace

void gemv_packed_columns(const float* a, int64_t lda, int64_t m, int64_t K, const float* packed, int64_t j0, int64_t w, float* out,
                         int64_t ldo, int lanes) {
  BSBR_CHECK(lanes == 8 || lanes == 16, "gemv_packed_columns: lanes must be 8 or 16");
  BSBR_CHECK(j0 % 16 == 0, "gemv_packed_columns: the first column must start a panel");
  if (lanes == 16)
    packed_columns<F16>(a, lda, m, K, packed, j0, w, out, ldo);
  else
    packed_columns<F8>(a, lda, m, K, packed, j0, w, out, ldo);
}

bool outer_supports(const MatMulSpec& s) {
  if (s.a.cols != 1 || s.c.col_stride != 1) return false;
  for (const PostOp& p : s.post_ops)
    if (p.kind != PostOp::Kind::kSum) return false;
  return 2.0 * std::max(s.a.batch, s.b.batch) * s.c.rows * s.c.cols < kSerialWorkThreshold;
}

void outer_run(const MatMulSpec& s, const float* a, const float* b, float* c, const float* bias) {
  const int64_t batch = std::max(s.a.batch, s.b.batch), M = s.c.rows, N = s.c.cols;
  // Sum post-ops in order: dst = sum_scale * dst_old + result, so several compose to one factor.
  bool sum = false;
  float keep = 1.f;
  for (const PostOp& p : s.post_ops) {
    keep = sum ? keep * p.sum_scale : p.sum_scale;
    sum = true;
  }
  for (int64_t bb = 0; bb < batch; ++bb) {
    const float* ab = a + (s.a.batch > 1 ? bb * s.a.batch_stride : 0);
    const float* bv = b + (s.b.batch > 1 ? bb * s.b.batch_stride : 0);
    float* cb = c + bb * s.c.batch_stride;
    for (int64_t i = 0; i < M; ++i) {
      const float ai = s.scale * ab[i * s.a.row_stride];
      float* ci = cb + i * s.c.row_stride;
      const int64_t bs = s.b.col_stride;
      if (sum) {
#pragma omp simd
        for (int64_t j = 0; j < N; ++j) ci[j] = keep * ci[j] + ai * bv[j * bs] + (bias ? bias[j] : 0.f);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < N; ++j) ci[j] = ai * bv[j * bs] + (bias ? bias[j] : 0.f);
      }
    }
  }
}

}  // namespace bsbr::ops

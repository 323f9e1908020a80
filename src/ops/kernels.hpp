// Hand-written loops, each for work oneDNN 2.6 has no primitive for:
//   - embedding gather (+ position table add): no gather primitive;
//   - argmax over logits: reduction has max but no arg-max;
//   - the online-softmax tile update of tiled attention: no online/streaming softmax primitive
//     (oneDNN 2.6 has no fused attention), so max/exp/sum/rescale are fused in one pass here;
//   - a vectorisable exp used by that update (the polynomial is the classic Cephes expf scheme);
//   - row-wise L2 normalisation (DeltaNet's q, k): 2.6's norm_lp reduction has only its reference
//     implementation (~280 ms for 512K rows of 64 here), and the jit route (square -> sum -> sqrt
//     -> divide) takes four passes and a temporary as large as the input; one fused pass here;
//   - a running sum over chunk states (Linear's prefix over chunks): oneDNN has no scan primitive;
//   - DeltaNet's UT transform, a triangular solve per chunk: oneDNN has no triangular solve.
// Loops are written plainly so GCC vectorises them at -O3 -march=native.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace bsbr::ops {

// Order-preserving map between a float's bits and an int32 (an involution): for non-NaN floats,
// a < b exactly when float_order_key(a) < float_order_key(b) as signed integers.
constexpr int32_t float_order_key(int32_t bits) { return bits ^ ((bits >> 31) & 0x7fffffff); }

// exp(x) for x <= 88, with relative error ~2e-7; returns ~1e-38 (not 0) below -87; NaN gives NaN.
inline float fast_exp(float x) {
  // Clamp to [-87, 88] by integer min/max on the order key. A float compare may raise FE_INVALID, so
  // under -ftrapping-math (the default) GCC will not turn ?:, std::min or std::max into vector
  // selects without AVX-512 masks: with them, an x86-64-v3 (AVX2) build ran this loop scalar at
  // ~4x the time per score. Integer selects vectorise on every ISA. A NaN keeps its bits.
  constexpr int32_t kLo = float_order_key(std::bit_cast<int32_t>(-87.0f)), kHi = float_order_key(std::bit_cast<int32_t>(88.0f));
  const int32_t bits = std::bit_cast<int32_t>(x);
  const int32_t key = float_order_key(bits);
  const int32_t clamped = std::min(std::max(key, kLo), kHi);
  x = std::bit_cast<float>(float_order_key((bits & 0x7fffffff) > 0x7f800000 ? key : clamped));
  // k = round(x / ln 2) by the 1.5 * 2^23 shifter: unlike std::floor this vectorises without
  // -fno-trapping-math (measured 11x faster here).
  constexpr float kShifter = 12582912.0f;
  const float shifted = x * 1.44269504088896341f + kShifter;  // 1.5 * 2^23 + k: k in the low mantissa bits
  float kf = shifted - kShifter;
  float r = x - kf * 0.693359375f + kf * 2.12194440e-4f;    // x - k ln2, ln2 split hi/lo
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^k from the shifter's bits, in unsigned arithmetic: a float-to-int conversion of kf would be
  // undefined for a NaN x (UBSan's float-cast-overflow), and p is NaN then anyway.
  const uint32_t k_bits = std::bit_cast<uint32_t>(shifted) - std::bit_cast<uint32_t>(kShifter);  // k mod 2^32
  const uint32_t two_k = (k_bits + 127u) << 23;
  return p * std::bit_cast<float>(two_k);
}

inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// out[t, :] = table[tokens[t], :] + (pos ? pos[first_pos + t, :] : 0), t in [0, n).  [n, d]
void embed_tokens(const int32_t* tokens, int64_t n, const float* table, int64_t d, const float* pos_table,
                  int64_t first_pos, float* out, int64_t out_row_stride);

// Sinusoidal positions (SPEC §1): pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(same). [n, d]
void sinusoidal_positions(int64_t first_pos, int64_t n, int64_t d, float* out);

// Index of the largest value in each row of [rows, cols] (first one on ties).
void argmax_rows(const float* x, int64_t rows, int64_t cols, int64_t row_stride, int32_t* out);

// One step of the online softmax (Milakov & Gimelshein 2018) over a [rows, cols] score tile:
// for each row r, visible keys are columns c with key_first + c in [lo[r], hi[r]] (inclusive);
// the others are masked. Updates the running max m[r] and sum l[r], replaces scores by
// p = exp(s - m_new) (0 where masked), and scales acc[r, :dh] by exp(m_old - m_new).
// lo/hi == nullptr means every column is visible.
void online_softmax_update(float* scores, int64_t rows, int64_t cols, int64_t key_first, const int64_t* lo,
                           const int64_t* hi, float* m, float* l, float* acc, int64_t dh);

// x[r, :] /= ||x[r, :]||_2 for each row of [rows, cols] (row stride). No epsilon: a zero row
// becomes NaN, as the plain formula does (SPEC §2: no clamping).
void l2_normalize_rows(float* x, int64_t rows, int64_t cols, int64_t row_stride);

// Running sum over `count` consecutive blocks of `block_size` floats, in place:
// block[i] += block[i-1] for i = 1 .. count-1. (With block 0 an initial state and block i > 0 the
// state contribution of chunk i-1, block i becomes the state before chunk i.)
void prefix_sum_blocks(float* blocks, int64_t count, int64_t block_size);
// The exclusive form, over `width` floats of `count` blocks `block_stride` floats apart (a column
// range of larger blocks, so threads can each take one), with the running sum kept apart: in
// order, block i takes the running sum and the running sum adds what block i held. On entry the
// blocks hold contributions (a group's K^T V) and `running` the state before the first; on exit
// block i holds the state before contribution i and `running` the state after the last.
void exclusive_prefix_sum_blocks(float* running, float* blocks, int64_t count, int64_t width, int64_t block_stride);

// DeltaNet's UT transform of one chunk (Yang et al. 2024, "Parallelizing Linear Transformers with
// the Delta Rule over Sequence Length", §3): on entry t [C, C] holds K.K^T of the chunk's C keys;
// on exit it holds the lower-triangular
//   T = (I + tril(diag(beta) K K^T, -1))^-1 diag(beta)
// by forward substitution, row by row: T[i, :] = beta_i e_i - beta_i sum_{m<i} (k_i.k_m) T[m, :].
// beta: the chunk's C values with stride beta_stride.
void ut_transform(float* t, const float* beta, int64_t beta_stride, int64_t chunk);
// Multiply-adds ut_transform runs for one chunk of C rows (its loops, not the triangle's C³/6:
// whole 16-column blocks are accumulated): for the executed-FLOP count.
double ut_transform_macs(int64_t chunk);

// The decode steps of the rank-1 matrix-state recurrences (SPEC §2), per pair p (a sequence's head)
// of `pairs`: state M_p [dh, dh] row-major (pairs one after another), rows q_p, k_p, v_p, o_p of
// [pairs, dh]. Each is one pass over M for the update and the read of the updated state (DeltaNet:
// one more for its retrieval), row i of M updated and then read while it is in registers. The four
// or five oneDNN calls per layer these replace (4 x 64 x 64 and smaller, 0.6-1.7 us each on one
// thread of the 2-core box, DNNL_VERBOSE; 10-11 us together at 16 threads on the 16-core host, per-job
// timings of the held step) were most of a decode step's serial work.
//
// Linear: M_p += k_p v_p^T; o_p = q_p^T M_p; with z (not null, [pairs, dh]): z_p += k_p and
// o_p /= (q_p.z_p + eps).
void linear_attention_step(int64_t pairs, int64_t dh, const float* q, const float* k, const float* v, float* state, float* z, float eps,
                           float* o);
// DeltaNet (M = S^T): u_p = v_p - M_p^T k_p; M_p += beta_p k_p u_p^T; o_p = q_p^T M_p.
// beta: [pairs]; u: [pairs, dh], written (the pseudo-values).
void delta_rule_step(int64_t pairs, int64_t dh, const float* q, const float* k, const float* v, const float* beta, float* state, float* u,
                     float* o);

}  // namespace bsbr::ops

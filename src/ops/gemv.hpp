// The decode-shaped product (GEMV): c[m, N] = post_ops(scale * a[m, K] . b[K, N] + bias) for a few
// rows m (at most kGemvMaxRows), by a hand loop that streams the weights once.
//
// Why a hand loop: a decode step is one pass over the weights, so a GEMV is bound by how fast the
// weights stream from cache or memory, and its threads must split the columns for a step to scale.
// oneDNN 2.6's GEMV did not scale on the 16-core host (LM head 479, 268, 202, 183 and 190-220 us on
// 1, 2, 4, 8 and 16 threads). On one thread it is faster than the loop over row-major weights: the
// CI gate's interleaved A/B of whole decode steps measured that loop 12-25 % slower there (the
// DNNL_VERBOSE per-call times that had suggested the opposite, 463 against 163 us for the head, did
// not hold up); the loop over packed weights is faster than both (ops.cpp).
//
// MatMul takes it for products of two or more column blocks, for ops made for one thread (inside
// our parallel loops) and for products with bound (packed) weights; one block of row-major weights
// at the top level stays on oneDNN (ops.cpp says why).
// Threads follow the size: a product gets one column block per kGemvBytesPerBlock of weights (at
// least one, at most the context's threads), each block a contiguous range of whole cache lines of
// the output. Blocks run in one OpenMP region of the context's full team (idle threads skip):
// libgomp reuses its team only when the size repeats, and a new team is a heap allocation inside the
// timed region. Since every thread of the team enters the region whatever the split, the fork/join is
// paid once; a block only has to be long enough to amortise its tile set-up.
// Independent products of one step (the q, k and v projections of one x) can share one region
// (gemv_run_set, MatMul::run_together): their weights are split over the team as one range of bytes.
// Weights that stay the same from step to step are read from a packed copy (gemv_pack, kept by a
// MatMul made with bound_weights): panels of 16 columns, each [K, 16] contiguous, so a thread's
// share of a product is one contiguous range read front to back. Row-major [K, N] weights split by
// columns are K short segments per thread, one per weight row (2.5 KiB each for the LM head on 16
// threads, 512 B for a [512, 256] product on two), which the hardware prefetchers follow poorly: a
// standalone loop over a decode step's products (2 layers and the head, 14 MiB) on the 2-core box
// took 118-168 us per step on two threads reading them row-major, 86-113 us packed.
#pragma once
#include <cstdint>

namespace bsbr::ops {

class Context;
struct MatMulSpec;

// Least weights (bytes of the [K, N] operand) per column block of a GEMV: 16 KiB, about half a
// microsecond of reading on one core, against the fork/join of a region that every thread enters
// anyway (about 2 us on the 2-core box; 5-7 us at 16 threads on the 16-core host, from a perf
// profile). It was 128 KiB per block: at 16 threads a 256 KiB projection then ran on 2 threads while
// 14 waited at the join.
inline constexpr int64_t kGemvBytesPerBlock = int64_t{16} << 10;

// True when the hand GEMV computes this product: 2-D, at most kGemvMaxRows rows, a and c with unit
// column stride, b read row-major ([K, N], unit column stride) or transposed ([N, K] rows, unit row
// stride: a tied LM head, K^T), and binary post-ops whose operand is [1 or m, 1 or N].
bool gemv_supports(const MatMulSpec& spec);
// Column blocks of the product on `threads` threads (1 = run on the calling thread).
int64_t gemv_column_blocks(const MatMulSpec& spec, int threads);
// Runs it: c = post_ops(scale * a.b + bias); binary_srcs[i] is the operand of the i-th binary post-op.
// Inside one of our parallel loops every block runs on the calling thread.
// b_packed: b is in the panel layout (gemv_pack).
void gemv_run(const Context& ctx, const MatMulSpec& spec, int64_t blocks, const float* a, const float* b, bool b_packed, float* c,
              const float* bias, const float* const* binary_srcs);

// Floats of a [K, N] operand in the panel layout: ceil(N / 16) panels of [K, 16], the last one
// zero-padded past column N. Element (k, j) sits at (j / 16) * K * 16 + k * 16 + j % 16.
int64_t gemv_packed_floats(int64_t K, int64_t N);
// Copies b (laid out as spec.b: row-major, or read transposed) into that layout.
void gemv_pack(const MatMulSpec& spec, const float* b, float* packed);

// One product of a set that runs in one region (gemv_run_set).
struct GemvCall {
  const MatMulSpec* spec;
  const float *a, *b;  // b: laid out as spec->b, or packed (gemv_pack) when b_packed
  float* c;
  const float* bias;
  const float* const* binary_srcs;
  bool b_packed = false;
};
// Parts a set of independent products splits into on `threads` threads: one per kGemvBytesPerBlock
// of their weights together, at most one per thread and per 16-column group.
int64_t gemv_set_parts(const GemvCall* calls, int count, int threads);
// Runs the set (no product reads another's output) in one OpenMP region: thread t of `parts` takes
// the t-th equal share of the products' weights taken together as one range of bytes, in whole
// 16-column groups, so the team is balanced whatever the products' sizes.
void gemv_run_set(const Context& ctx, const GemvCall* calls, int count, int64_t parts);

// A single query against a block of `keys` key/value rows holding every head side by side (row j:
// head h at columns [h*dh, (h+1)*dh) of k, [h*dv, (h+1)*dv) of v; row stride `stride` floats), the
// decode step of softmax attention. The rows are read front to back, every head of a row before the
// next row, so a block is one contiguous stream the hardware prefetchers follow; a product per head
// read a quarter of every row at a 1 KiB stride and ran at about half the memory's bandwidth.
//   scores[h * keys + j] = scale * q[h*dh, (h+1)*dh) . k[j*stride + h*dh, ...)     (SPEC 2.1: q.k / sqrt(dh))
// `lanes`: the vector width the loops use, 8 or 16 floats; the build's own register's by default
// (kNativeLanes; the tests run both).
#if defined(__AVX512F__)
inline constexpr int kNativeLanes = 16;
#else
inline constexpr int kNativeLanes = 8;
#endif
// The packed GEMV's kernel: out[r * ldo + 0:w) = sum_k a[r * lda + k] b(k, j0 + 0:w) for b in the
// panel layout (gemv_pack) of a [K, N] operand, j0 a multiple of 16, j0 + w <= N, m <= kGemvMaxRows.
// `lanes` as for the single-query kernels below (the tests run both).
void gemv_packed_columns(const float* a, int64_t lda, int64_t m, int64_t K, const float* packed, int64_t j0, int64_t w, float* out,
                         int64_t ldo, int lanes = kNativeLanes);

void multihead_scores(const float* q, const float* k, int64_t stride, int64_t keys, int64_t heads, int64_t dh, float scale, float* scores,
                      int lanes = kNativeLanes);
//   acc[h * acc_stride + i] += p[h * keys + j] * v[j*stride + h*dv + i], for every j < keys, i < dv.
void multihead_weighted_sum(const float* p, const float* v, int64_t stride, int64_t keys, int64_t heads, int64_t dv, float* acc,
                            int64_t acc_stride, int lanes = kNativeLanes);

// The rank-1 product (K = 1, any batch): c[b] = sum? c[b] + scale * a[b] b[b]^T (+ bias), the decode
// step's state update S += k v^T. oneDNN 2.6's brgemm takes 9-10 us for four heads of 64 x 64 on one
// thread of the 2-core box (DNNL_VERBOSE), a loop over the 16K outputs about a microsecond. Taken
// when the work is small (one thread's, kSerialWorkThreshold) and the post-ops are sums only.
bool outer_supports(const MatMulSpec& spec);
void outer_run(const MatMulSpec& spec, const float* a, const float* b, float* c, const float* bias);

}  // namespace bsbr::ops

// Each op of the oneDNN layer against a plain loop, including strided, batched and fused forms.
#include <gtest/gtest.h>

#include <bit>
#include <limits>

#include <cmath>

#include "core/errors.hpp"
#include "ops/attention.hpp"
#include "ops/gemv.hpp"
#include "ops/kernels.hpp"
#include "ops/ops.hpp"
#include "ops/vmath.hpp"
#include "ref/ref_common.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

using ops::MatLayout;
using test::exact;
using test::is_close;
using test::within;
using test::random_vector;

float at(const std::vector<float>& v, const MatLayout& m, int64_t b, int64_t r, int64_t c) {
  return v[b * m.batch_stride + r * m.row_stride + c * m.col_stride];
}

// c = a.b (+bias) for strided, batched layouts, in double.
std::vector<float> ref_matmul(const std::vector<float>& a, const MatLayout& A, const std::vector<float>& b, const MatLayout& B,
                              const MatLayout& C, std::size_t c_size, const float* bias, float scale) {
  std::vector<float> c(c_size, 0.f);
  int64_t batch = std::max(A.batch, B.batch);
  for (int64_t bb = 0; bb < batch; ++bb)
    for (int64_t i = 0; i < C.rows; ++i)
      for (int64_t j = 0; j < C.cols; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < A.cols; ++k)
          acc += static_cast<double>(at(a, A, A.batch > 1 ? bb : 0, i, k)) * at(b, B, B.batch > 1 ? bb : 0, k, j);
        c[bb * C.batch_stride + i * C.row_stride + j] = static_cast<float>(scale * acc + (bias ? bias[j] : 0.f));
      }
  return c;
}

class OpsTest : public ::testing::Test {
 protected:
  ops::Context ctx{2};
};

// Decode-shaped products (at most kGemvMaxRows rows) run on the hand GEMV (ops/gemv.hpp): against
// the loop for 1, 3 and 8 rows, odd K and N (the k remainder and a partial 16-column group), the
// weights row-major or read transposed (a tied LM head), with a bias, a scale, an accumulate, an
// eltwise chain (elu + 1) and binary post-ops over [m, N] and [1, N]; on 1, 2 and 5 threads, with
// one column block per kGemvBytesPerBlock of weights (here every thread; a single block at the top
// level is oneDNN's GEMV, checked against the same loop). The
// FLOPs are counted once, for the whole product.
TEST(MatMulGemv, MatchesTheLoopOnEveryThreadCount) {
  const int64_t k = 257, n = 1043;  // 1.07 MB of weights: 8 blocks' worth
  for (int threads : {1, 2, 5}) {
    ops::Context ctx(threads);
    for (int64_t m : {int64_t{1}, int64_t{3}, ops::kGemvMaxRows}) {
      auto a = random_vector(m * k, 1), b = random_vector(k * n, 2), bias = random_vector(n, 3);
      const MatLayout A = MatLayout::dense(m, k), C = MatLayout::dense(m, n);
      for (bool transposed : {false, true}) {
        const MatLayout B = transposed ? MatLayout::dense(n, k).transposed() : MatLayout::dense(k, n);
        ops::MatMul mm(ctx, {A, B, C, !transposed, 1.f, {}});
        // One block at the top level is oneDNN's GEMV (column_blocks 0), more are the hand loop's.
        const int64_t blocks = std::min<int64_t>(threads, k * n * 4 / ops::kGemvBytesPerBlock);
        EXPECT_EQ(mm.column_blocks(), blocks > 1 ? blocks : 0) << threads;
        EXPECT_TRUE(mm.valid());
        std::vector<float> c(m * n, 0.f);
        ctx.start_counting_flops();
        mm.run(ctx, a.data(), b.data(), c.data(), transposed ? nullptr : bias.data());
        EXPECT_EQ(ctx.stop_counting_flops(), 2.0 * m * k * n);
        auto want = ref_matmul(a, A, b, B, C, m * n, transposed ? nullptr : bias.data(), 1.f);
        EXPECT_TRUE(is_close(c, want, within(1e-5))) << threads << " threads, " << m << " rows, transposed " << transposed;
      }
      // Accumulate: c = 0.5 * a.b + c.
      ops::MatMul acc(ctx, {A, MatLayout::dense(k, n), C, false, 0.5f, {ops::PostOp::accumulate()}});
      std::vector<float> c = random_vector(m * n, 4), want = ref_matmul(a, A, b, MatLayout::dense(k, n), C, m * n, nullptr, 0.5f);
      for (std::size_t i = 0; i < c.size(); ++i) want[i] += c[i];
      acc.run(ctx, a.data(), b.data(), c.data());
      EXPECT_TRUE(is_close(c, want, within(1e-5))) << threads << " threads, accumulate";
      // elu(x) + 1, then * g [m, N], then + h [1, N] (broadcast over rows).
      const MatLayout row = MatLayout::dense(1, n);
      ops::MatMul fused(ctx, {A, MatLayout::dense(k, n), C, true, 1.f,
                              {ops::PostOp::eltwise_op(ops::Eltwise::kElu, 1.f), ops::PostOp::eltwise_op(ops::Eltwise::kLinear, 1.f, 1.f),
                               ops::PostOp::mul(C), ops::PostOp::add(row)}});
      auto g = random_vector(m * n, 5), h = random_vector(n, 6);
      std::vector<float> f(m * n);
      fused.run(ctx, a.data(), b.data(), f.data(), bias.data(), {g.data(), h.data()});
      want = ref_matmul(a, A, b, MatLayout::dense(k, n), C, m * n, bias.data(), 1.f);
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < n; ++j) {
          float& x = want[r * n + j];
          x = (x > 0 ? x : std::expm1(x)) + 1.f;
          x = x * g[r * n + j] + h[j];
        }
      EXPECT_TRUE(is_close(f, want, within(1e-5))) << threads << " threads, fused post-ops";
    }
  }
}

// A GEMV is split by its weights' size: one block per kGemvBytesPerBlock, at most one per thread and
// one per 16-column group of the output.
TEST(MatMulGemv, BlocksFollowTheWeights) {
  ops::Context ctx(16);
  auto blocks = [&](int64_t k, int64_t n) { return ops::gemv_column_blocks({MatLayout::dense(1, k), MatLayout::dense(k, n), MatLayout::dense(1, n), false, 1.f, {}}, 16); };
  EXPECT_EQ(blocks(256, 256), 16);    // a 256 KiB projection: every thread
  EXPECT_EQ(blocks(256, 32), 2);      // 32 KiB: two blocks
  EXPECT_EQ(blocks(64, 32), 1);       // 8 KiB: one
  EXPECT_EQ(blocks(4096, 40), 3);     // 640 KiB but three 16-column groups
}

// Independent products in one region (MatMul::run_together): each against the loop, on 1, 2, 5 and
// 16 threads, for products of different K and N (so the byte shares of the team cut them at
// different columns, the last group partial), one with an accumulate and an eltwise post-op; the
// outputs start as NaN, so a column no part covers fails. Also with a product oneDNN runs (then one
// after another), and the FLOPs counted once per product.
TEST(MatMulGemv, RunTogetherMatchesEachProduct) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Shape {
    int64_t k, n;
  };
  const std::vector<Shape> shapes{{257, 1043}, {64, 77}, {300, 515}};
  for (int threads : {1, 2, 5, 16}) {
    ops::Context ctx(threads);
    const int64_t m = 3;
    auto a = random_vector(m * 300, 21);
    std::vector<std::vector<float>> b, bias, c, want;
    std::vector<ops::MatMul> mm;
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      const auto [k, n] = shapes[i];
      const MatLayout A{1, m, k, m * 300, 300, 1}, B = MatLayout::dense(k, n), C = MatLayout::dense(m, n);
      b.push_back(random_vector(k * n, 22 + static_cast<int>(i)));
      bias.push_back(random_vector(n, 30 + static_cast<int>(i)));
      std::vector<ops::PostOp> post;
      if (i == 1) post = {ops::PostOp::eltwise_op(ops::Eltwise::kElu, 1.f)};
      if (i == 2) post = {ops::PostOp::accumulate()};
      mm.emplace_back(ctx, ops::MatMulSpec{A, B, C, i != 2, 1.f, post});
      c.emplace_back(m * n, i == 2 ? 0.5f : nan);
      want.push_back(ref_matmul(a, A, b[i], B, C, m * n, i != 2 ? bias[i].data() : nullptr, 1.f));
      for (float& x : want[i]) x = i == 1 ? (x > 0 ? x : std::expm1(x)) : i == 2 ? x + 0.5f : x;
    }
    ctx.start_counting_flops();
    ops::MatMul::run_together(ctx, {{mm[0], a.data(), b[0].data(), c[0].data(), bias[0].data()},
                                    {mm[1], a.data(), b[1].data(), c[1].data(), bias[1].data()},
                                    {mm[2], a.data(), b[2].data(), c[2].data()}});
    double flops = 0;
    for (const auto& [k, n] : shapes) flops += 2.0 * m * k * n;
    EXPECT_EQ(ctx.stop_counting_flops(), flops) << threads;
    for (std::size_t i = 0; i < shapes.size(); ++i)
      EXPECT_TRUE(is_close(c[i], want[i], within(1e-5))) << threads << " threads, product " << i << " (" << mm[i].impl() << ")";
  }
}

// Products bound to their weights (MatMul's bound_weights, a decode step's) read a packed copy in
// the GEMV's panel layout, on every thread count, one block included: against the loop for 1, 2, 3,
// 5 and 8 rows (each row grouping of the panel kernel and a group of four plus one), odd K and N (the
// k remainder after the kernel's chains and a partial last panel), row-major and transposed weights,
// with a bias, an accumulate and an eltwise chain, alone and in run_together; outputs start as NaN,
// so an unwritten column fails. The copy is counted as packed weights, exactly its size; run() given other
// weights than the bound ones is a broken invariant.
TEST(MatMulGemv, BoundWeightsMatchTheLoop) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t k = 257, n = 1043;
  const int64_t packed_bytes = (n + 15) / 16 * 16 * k * static_cast<int64_t>(sizeof(float));
  for (int threads : {1, 2, 5}) {
    ops::Context ctx(threads);
    for (int64_t m : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{5}, ops::kGemvMaxRows}) {
      auto a = random_vector(m * k, 41), b = random_vector(k * n, 42), b2 = random_vector(k * n, 43), bias = random_vector(n, 44);
      const MatLayout A = MatLayout::dense(m, k), C = MatLayout::dense(m, n);
      for (bool transposed : {false, true}) {
        const MatLayout B = transposed ? MatLayout::dense(n, k).transposed() : MatLayout::dense(k, n);
        const std::size_t packed_before = ctx.memory().current(MemCategory::kPackedParams);
        ops::MatMul mm(ctx, {A, B, C, !transposed, 1.f, {}}, b.data());
        EXPECT_EQ(ctx.memory().current(MemCategory::kPackedParams) - packed_before, static_cast<std::size_t>(packed_bytes));
        EXPECT_TRUE(mm.weights_packed()) << threads;
        EXPECT_NE(mm.impl().find(":packed"), std::string::npos) << mm.impl();
        std::vector<float> c(m * n, nan);
        ctx.start_counting_flops();
        mm.run(ctx, a.data(), b.data(), c.data(), transposed ? nullptr : bias.data());
        EXPECT_EQ(ctx.stop_counting_flops(), 2.0 * m * k * n);
        auto want = ref_matmul(a, A, b, B, C, m * n, transposed ? nullptr : bias.data(), 1.f);
        // 257 float products in one chain per row (three rows or more): 1e-4 (the sanitizer build,
        // without -march=native, measured 1.08e-5 at 1e-5).
        EXPECT_TRUE(is_close(c, want, within(1e-4))) << threads << " threads, " << m << " rows, transposed " << transposed;
        EXPECT_THROW(mm.run(ctx, a.data(), b2.data(), c.data(), transposed ? nullptr : bias.data()), InvariantError);
      }
      // Accumulate and elu + 1, run together with a second bound product of other weights.
      ops::MatMul acc(ctx, {A, MatLayout::dense(k, n), C, false, 0.5f, {ops::PostOp::accumulate()}}, b.data());
      ops::MatMul elu(ctx,
                      {A, MatLayout::dense(k, n), C, true, 1.f,
                       {ops::PostOp::eltwise_op(ops::Eltwise::kElu, 1.f), ops::PostOp::eltwise_op(ops::Eltwise::kLinear, 1.f, 1.f)}},
                      b2.data());
      std::vector<float> c1 = random_vector(m * n, 45), c2(m * n, nan);
      auto want1 = ref_matmul(a, A, b, MatLayout::dense(k, n), C, m * n, nullptr, 0.5f);
      for (std::size_t i = 0; i < c1.size(); ++i) want1[i] += c1[i];
      auto want2 = ref_matmul(a, A, b2, MatLayout::dense(k, n), C, m * n, bias.data(), 1.f);
      for (float& x : want2) x = (x > 0 ? x : std::expm1(x)) + 1.f;
      ops::MatMul::run_together(ctx, {{acc, a.data(), b.data(), c1.data()}, {elu, a.data(), b2.data(), c2.data(), bias.data()}});
      EXPECT_TRUE(is_close(c1, want1, within(1e-4))) << threads << " threads, " << m << " rows, accumulate";
      EXPECT_TRUE(is_close(c2, want2, within(1e-4))) << threads << " threads, " << m << " rows, elu + 1";
    }
  }
}

// The packed GEMV's kernel in both vector widths (16 floats: the AVX-512 build's; 8: the portable
// x86-64-v3 build's), against a double loop: every row count up to kGemvMaxRows (each grouping of
// rows by four), odd K (the k remainder after the chains), column ranges starting at several panels
// and a partial last panel; the rest of each output row stays NaN, so a write past w fails too.
TEST(MatMulGemv, PackedColumnsMatchTheLoopInBothWidths) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t k = 257, n = 1043, m_max = ops::kGemvMaxRows;
  auto a = random_vector(m_max * (k + 5), 51), b = random_vector(k * n, 52);
  const ops::MatMulSpec spec{MatLayout::dense(1, k), MatLayout::dense(k, n), MatLayout::dense(1, n), false, 1.f, {}};
  std::vector<float> packed(ops::gemv_packed_floats(k, n));
  ops::gemv_pack(spec, b.data(), packed.data());
  for (int lanes : {8, 16})
    for (int64_t m = 1; m <= m_max; ++m)
      for (auto [j0, w] : std::vector<std::pair<int64_t, int64_t>>{{0, 512}, {16, 35}, {512, 531}, {1024, 19}}) {
        const int64_t ldo = w + 3;
        std::vector<float> out(m * ldo, nan), want(m * ldo, nan);
        ops::gemv_packed_columns(a.data(), k + 5, m, k, packed.data(), j0, w, out.data(), ldo, lanes);
        for (int64_t r = 0; r < m; ++r)
          for (int64_t j = 0; j < w; ++j) {
            double acc = 0;
            for (int64_t kk = 0; kk < k; ++kk) acc += static_cast<double>(a[r * (k + 5) + kk]) * b[kk * n + j0 + j];
            want[r * ldo + j] = static_cast<float>(acc);
          }
        for (int64_t r = 0; r < m; ++r)
          for (int64_t j = w; j < ldo; ++j) EXPECT_TRUE(std::isnan(out[r * ldo + j])) << lanes << " lanes, row " << r << ", column " << j;
        for (int64_t i = 0; i < m * ldo; ++i)
          if (std::isnan(want[i])) out[i] = want[i] = 0.f;
        // 257 float products summed in one chain per row (three rows or more): 1e-4, not 1e-5.
        EXPECT_TRUE(is_close(out, want, within(1e-4))) << lanes << " lanes, " << m << " rows, columns " << j0 << " + " << w;
      }
}

// The GEMV's eltwise post-ops follow oneDNN's definitions: each against the primitive oneDNN runs for
// a product it cannot hand to the GEMV (a batched one), on the same inputs.
TEST(MatMulGemv, EltwisePostOpsMatchOneDnn) {
  ops::Context ctx(1);
  const int64_t k = 24, n = 40;
  auto a = random_vector(k, 7, 2.f), b = random_vector(k * n, 8), a2(a);
  a2.insert(a2.end(), a.begin(), a.end());  // two identical batch entries for the oneDNN product
  using ops::Eltwise;
  for (auto [kind, alpha, beta] : std::vector<std::tuple<Eltwise, float, float>>{{Eltwise::kGeluErf, 0, 0}, {Eltwise::kGeluTanh, 0, 0},
                                                                                 {Eltwise::kElu, 0.7f, 0}, {Eltwise::kSigmoid, 0, 0},
                                                                                 {Eltwise::kExp, 0, 0}, {Eltwise::kLinear, 2.f, -1.f},
                                                                                 {Eltwise::kRelu, 0.1f, 0}, {Eltwise::kSquare, 0, 0},
                                                                                 {Eltwise::kIdentity, 0, 0}}) {
    const std::vector<ops::PostOp> post{ops::PostOp::eltwise_op(kind, alpha, beta)};
    ops::MatMul gemv = [&] {
      ops::SingleThreadOps single(ctx);  // made for one thread: the hand GEMV (one block)
      return ops::MatMul(ctx, {MatLayout::dense(1, k), MatLayout::dense(k, n), MatLayout::dense(1, n), false, 1.f, post});
    }();
    ops::MatMul onednn(ctx, {MatLayout::batched(2, 1, k), MatLayout::dense(k, n), MatLayout::batched(2, 1, n), false, 1.f, post});
    ASSERT_EQ(gemv.column_blocks(), 1);
    ASSERT_EQ(onednn.column_blocks(), 0);
    std::vector<float> got(n), want(2 * n);
    gemv.run(ctx, a.data(), b.data(), got.data());
    onednn.run(ctx, a2.data(), b.data(), want.data());
    want.resize(n);
    EXPECT_TRUE(is_close(got, want, within(1e-5))) << static_cast<int>(kind);
  }
}

// The GEMV's post-op math (ops/vmath.hpp) against double-precision libm, per element
// (|got - want| <= 1e-37 + rtol |want|), on a 1e-3 grid over [-30, 30], both sides of every branch
// (|x| = 0.5, 0), and NaN in, NaN out (exp is fast_exp, tested below). The tolerances are each
// function's bound (vmath.hpp) with little room, so a dropped series term fails: erf without its x^11
// term is 6.4e-7 off at 0.49, expm1 without x^8 2.6e-7 at 0.49.
TEST(VMath, MatchesLibmPerElement) {
  struct Fn {
    const char* name;
    float (*got)(float);
    double (*want)(double);
    double rtol, lo, hi;
  };
  const Fn fns[] = {{"expm1", ops::vmath::expm1, [](double x) { return std::expm1(x); }, 2e-7, -30.0, 30.0},
                    {"erf", ops::vmath::erf, [](double x) { return std::erf(x); }, 6e-7, -30.0, 30.0},
                    {"tanh", ops::vmath::tanh, [](double x) { return std::tanh(x); }, 2.5e-7, -30.0, 30.0},
                    {"sigmoid", ops::vmath::sigmoid, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, 2e-7, -30.0, 30.0}};
  for (const Fn& f : fns) {
    std::vector<float> xs;
    for (int64_t i = 0; f.lo + i * 1e-3 <= f.hi; ++i) xs.push_back(static_cast<float>(f.lo + i * 1e-3));
    for (float edge : {0.5f, -0.5f, 0.f, -0.f, 1e-30f, -1e-30f, 1e-6f, -1e-6f})
      xs.insert(xs.end(), {edge, std::nextafter(edge, 1.f), std::nextafter(edge, -1.f)});
    int64_t bad = 0;
    for (float x : xs) {
      const double want = f.want(x), got = f.got(x);
      if (!(std::fabs(got - want) <= 1e-37 + f.rtol * std::fabs(want)) && bad++ < 3)  // 1e-37: denormal results
        ADD_FAILURE() << f.name << "(" << x << ") = " << got << ", want " << want;
    }
    EXPECT_EQ(bad, 0) << f.name;
    EXPECT_TRUE(std::isnan(f.got(std::nanf("")))) << f.name;
  }
  EXPECT_EQ(ops::vmath::tanh(100.f), 1.f);
  EXPECT_EQ(ops::vmath::tanh(-std::numeric_limits<float>::infinity()), -1.f);
  EXPECT_EQ(ops::vmath::sigmoid(-100.f) + 1.f, 1.f);
  EXPECT_EQ(ops::vmath::erf(-30.f), -1.f);
}

// Small rank-1 products (K = 1: a decode step's S += k v^T) run on a loop (ops/gemv.hpp): batched
// with accumulate and a scale, 2-D with a bias, and with the row operand strided; against the loop.
TEST(MatMulOuter, MatchesTheLoop) {
  ops::Context ctx(2);
  const int64_t bt = 4, m = 64, n = 37;
  auto a = random_vector(bt * m, 1), b = random_vector(bt * n * 3, 2), c0 = random_vector(bt * m * n, 3), bias = random_vector(n, 4);
  const MatLayout A{bt, m, 1, m, 1, 1}, B = MatLayout::batched(bt, 1, n), C = MatLayout::batched(bt, m, n);
  ops::MatMul acc(ctx, {A, B, C, false, 0.5f, {ops::PostOp::accumulate()}});
  EXPECT_EQ(acc.impl(), "outer:hand");
  std::vector<float> c = c0, want = ref_matmul(a, A, b, B, C, c.size(), nullptr, 0.5f);
  for (std::size_t i = 0; i < c.size(); ++i) want[i] += c0[i];
  acc.run(ctx, a.data(), b.data(), c.data());
  EXPECT_TRUE(is_close(c, want, within(1e-6))) << "batched, accumulate";
  // 2-D, 20 rows (not a GEMV), bias, the row operand read with column stride 3.
  const MatLayout A2 = MatLayout::dense(20, 1), B2{1, 1, n, 0, 3 * n, 3}, C2 = MatLayout::dense(20, n);
  ops::MatMul plain(ctx, {A2, B2, C2, true, 1.f, {}});
  EXPECT_EQ(plain.impl(), "outer:hand");
  std::vector<float> c2(20 * n, 9.f);
  plain.run(ctx, a.data(), b.data(), c2.data(), bias.data());
  EXPECT_TRUE(is_close(c2, ref_matmul(a, A2, b, B2, C2, c2.size(), bias.data(), 1.f), within(1e-6))) << "2-D, bias, strided";
}

TEST_F(OpsTest, MatMulDenseWithBiasOddShapes) {
  for (auto [m, k, n] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 7, 5}, {7, 64, 33}, {65, 256, 97}, {300, 31, 1}}) {
    auto a = random_vector(m * k, 1), b = random_vector(k * n, 2), bias = random_vector(n, 3);
    std::vector<float> c(m * n);
    ops::MatMul mm(ctx, {MatLayout::dense(m, k), MatLayout::dense(k, n), MatLayout::dense(m, n), true, 1.f, {}});
    mm.run(ctx, a.data(), b.data(), c.data(), bias.data());
    auto want = ref_matmul(a, MatLayout::dense(m, k), b, MatLayout::dense(k, n), MatLayout::dense(m, n), m * n, bias.data(), 1.f);
    EXPECT_TRUE(is_close(c, want, within(1e-5))) << m << "x" << k << "x" << n;
  }
}

TEST_F(OpsTest, MatMulTransposedStridedScaled) {
  // K rows with stride 48 read as K^T: the attention score pattern.
  const int64_t m = 9, k = 16, n = 13, stride = 48;
  auto a = random_vector(m * k, 4), kt = random_vector(n * stride, 5);
  MatLayout B = MatLayout::strided(n, k, stride).transposed();
  std::vector<float> c(m * n);
  ops::MatMul mm(ctx, {MatLayout::dense(m, k), B, MatLayout::dense(m, n), false, 0.25f, {}});
  mm.run(ctx, a.data(), kt.data(), c.data());
  auto want = ref_matmul(a, MatLayout::dense(m, k), kt, B, MatLayout::dense(m, n), m * n, nullptr, 0.25f);
  EXPECT_TRUE(is_close(c, want, within(1e-5)));
}

TEST_F(OpsTest, MatMulBatchedBroadcastWeights) {
  const int64_t bt = 3, m = 5, k = 8, n = 6;
  auto a = random_vector(bt * m * k, 6), b = random_vector(k * n, 7);
  MatLayout A = MatLayout::batched(bt, m, k), C = MatLayout::batched(bt, m, n);
  std::vector<float> c(bt * m * n);
  ops::MatMul mm(ctx, {A, MatLayout::dense(k, n), C, false, 1.f, {}});
  mm.run(ctx, a.data(), b.data(), c.data());
  auto want = ref_matmul(a, A, b, MatLayout::dense(k, n), C, c.size(), nullptr, 1.f);
  EXPECT_TRUE(is_close(c, want, within(1e-5)));
}

// Small batched products of a few rows per entry (BSBR's o_h += q_h . G_h of a decode step) run by
// the hand GEMV entry by entry: every entry's own a, b and c (batch strides past the dense ones),
// b row-major and transposed, the bias broadcast over entries, scale, accumulate, 1 and 3 rows.
TEST_F(OpsTest, MatMulSmallBatchedByTheHandGemv) {
  const int64_t bt = 4, k = 19, n = 13;
  for (int64_t m : {int64_t{1}, int64_t{3}})
    for (bool transposed : {false, true})
      for (bool accumulate : {false, true}) {
        const MatLayout A = MatLayout::dense(m, k).with_batch(bt, m * k + 5), C = MatLayout::dense(m, n).with_batch(bt, m * n + 3);
        const MatLayout B = transposed ? MatLayout::dense(n, k).with_batch(bt, n * k + 7).transposed() : MatLayout::dense(k, n).with_batch(bt, k * n + 7);
        auto a = random_vector(bt * A.batch_stride, 20), b = random_vector(bt * B.batch_stride, 21), bias = random_vector(n, 22);
        const auto c0 = random_vector(bt * C.batch_stride, 23);
        std::vector<ops::PostOp> post;
        if (accumulate) post.push_back(ops::PostOp::accumulate());
        const bool with_bias = !accumulate;  // bias and scale are exclusive in this layer
        ops::MatMul mm(ctx, {A, B, C, with_bias, with_bias ? 1.f : 0.5f, post});
        ASSERT_EQ(mm.impl(), "gemv:hand:batch4");
        std::vector<float> c = c0;
        mm.run(ctx, a.data(), b.data(), c.data(), with_bias ? bias.data() : nullptr);
        auto lin = ref_matmul(a, A, b, B, C, c.size(), with_bias ? bias.data() : nullptr, with_bias ? 1.f : 0.5f);
        std::vector<float> want = c0;  // the gaps between entries keep their values
        for (int64_t e = 0; e < bt; ++e)
          for (int64_t r = 0; r < m; ++r)
            for (int64_t j = 0; j < n; ++j) {
              const int64_t i = e * C.batch_stride + r * n + j;
              want[i] = (accumulate ? c0[i] : 0.f) + lin[i];
            }
        EXPECT_TRUE(is_close(c, want, within(1e-5))) << "m " << m << " transposed " << transposed << " accumulate " << accumulate;
      }
  // Past one thread's work, oneDNN's batched matmul as before.
  ops::MatMul large(ctx, {MatLayout::batched(64, 4, 256), MatLayout::batched(64, 256, 256), MatLayout::batched(64, 4, 256), false, 1.f, {}});
  EXPECT_EQ(large.impl().rfind("gemv", 0), std::string::npos) << large.impl();
}

TEST_F(OpsTest, MatMulPostOpsGeluAndAccumulate) {
  const int64_t m = 7, k = 12, n = 10;
  auto a = random_vector(m * k, 8), b = random_vector(k * n, 9), bias = random_vector(n, 10);
  auto c0 = random_vector(m * n, 11);
  std::vector<float> g(m * n), acc = c0;
  ops::MatMul gelu(ctx, {MatLayout::dense(m, k), MatLayout::dense(k, n), MatLayout::dense(m, n), true, 1.f,
                         {ops::PostOp::eltwise_op(ops::Eltwise::kGeluErf)}});
  gelu.run(ctx, a.data(), b.data(), g.data(), bias.data());
  ops::MatMul sum(ctx, {MatLayout::dense(m, k), MatLayout::dense(k, n), MatLayout::dense(m, n), true, 1.f, {ops::PostOp::accumulate()}});
  sum.run(ctx, a.data(), b.data(), acc.data(), bias.data());
  auto lin = ref_matmul(a, MatLayout::dense(m, k), b, MatLayout::dense(k, n), MatLayout::dense(m, n), m * n, bias.data(), 1.f);
  std::vector<float> want_g(m * n), want_acc(m * n);
  for (int64_t i = 0; i < m * n; ++i) {
    want_g[i] = static_cast<float>(ref::gelu_erf(lin[i]));
    want_acc[i] = c0[i] + lin[i];
  }
  EXPECT_TRUE(is_close(g, want_g, within(1e-5)));
  EXPECT_TRUE(is_close(acc, want_acc, within(1e-5)));
}

TEST_F(OpsTest, MatMulBinaryMulPostOp) {
  const int64_t m = 6, k = 5, n = 4;
  auto a = random_vector(m * k, 12), b = random_vector(k * n, 13), gate = random_vector(m * n, 14);
  std::vector<float> c(m * n);
  ops::MatMul mm(ctx, {MatLayout::dense(m, k), MatLayout::dense(k, n), MatLayout::dense(m, n), false, 1.f,
                       {ops::PostOp::mul(MatLayout::dense(m, n))}});
  mm.run(ctx, a.data(), b.data(), c.data(), nullptr, {gate.data()});
  auto lin = ref_matmul(a, MatLayout::dense(m, k), b, MatLayout::dense(k, n), MatLayout::dense(m, n), m * n, nullptr, 1.f);
  for (int64_t i = 0; i < m * n; ++i) lin[i] *= gate[i];
  EXPECT_TRUE(is_close(c, lin, within(1e-5)));
}

// Up to kGemvMaxRows rows run the op's own loop, more run oneDNN's: both against the double loop,
// odd widths, rows far from zero mean (0, 40 and 80: float inputs near 80 are only good to 8e-6,
// so both paths miss 1e-5 by a hair there), and in place.
TEST_F(OpsTest, LayerNormMatchesLoop) {
  for (int64_t d : {48, 257})
    for (int64_t rows : {1, 7, 8, 9, 65}) {
      auto x = random_vector(rows * d, 20, 3.0f), g = random_vector(d, 21), b = random_vector(d, 22);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += 40.f * static_cast<float>(i / d % 3);
      std::vector<float> y(rows * d);
      ops::LayerNormOp ln(ctx, MatLayout::dense(rows, d), MatLayout::dense(rows, d), 1e-5f);
      ln.run(ctx, x.data(), g.data(), b.data(), y.data());
      auto want = ref::layer_norm(x, rows, d, g.data(), b.data(), 1e-5);
      EXPECT_TRUE(is_close(y, want, within(3e-5))) << rows << " rows of " << d;
      ln.run(ctx, x.data(), g.data(), b.data(), x.data());
      EXPECT_TRUE(is_close(x, want, within(3e-5))) << rows << " rows of " << d << " in place";
    }
}

TEST_F(OpsTest, SoftmaxBatchedInPlace) {
  const int64_t bt = 3, rows = 5, cols = 17;
  auto x = random_vector(bt * rows * cols, 30, 4.0f);
  auto want = x;
  for (int64_t r = 0; r < bt * rows; ++r) {
    std::vector<double> v(want.begin() + r * cols, want.begin() + (r + 1) * cols);
    ref::softmax(v);
    for (int64_t c = 0; c < cols; ++c) want[r * cols + c] = static_cast<float>(v[c]);
  }
  ops::SoftmaxOp sm(ctx, MatLayout::batched(bt, rows, cols));
  sm.run(ctx, x.data(), x.data());
  EXPECT_TRUE(is_close(x, want, within(1e-6)));
}

TEST_F(OpsTest, EltwiseKinds) {
  const int64_t n = 257;
  auto x = random_vector(n, 40, 2.0f);
  struct Case {
    ops::Eltwise kind;
    float alpha, beta;
    double (*f)(double);
  };
  std::vector<Case> cases = {
      {ops::Eltwise::kGeluErf, 0, 0, [](double v) { return ref::gelu_erf(v); }},
      {ops::Eltwise::kGeluTanh, 0, 0, [](double v) { return ref::gelu_tanh(v); }},
      {ops::Eltwise::kSigmoid, 0, 0, [](double v) { return ref::sigmoid(v); }},
      {ops::Eltwise::kElu, 1, 0, [](double v) { return v > 0 ? v : std::expm1(v); }},
      {ops::Eltwise::kExp, 0, 0, [](double v) { return std::exp(v); }},
      {ops::Eltwise::kLinear, 2, 1, [](double v) { return 2 * v + 1; }},
  };
  for (const Case& c : cases) {
    std::vector<float> y(n), want(n);
    ops::EltwiseOp op(ctx, MatLayout::dense(1, n), MatLayout::dense(1, n), {c.kind, c.alpha, c.beta});
    op.run(ctx, x.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = static_cast<float>(c.f(x[i]));
    EXPECT_TRUE(is_close(y, want, within(1e-5))) << static_cast<int>(c.kind);
  }
}

TEST_F(OpsTest, BinaryBroadcastReorderReduction) {
  const int64_t rows = 6, cols = 9;
  auto a = random_vector(rows * cols, 50), col = random_vector(rows, 51);
  std::vector<float> y(rows * cols), t(rows * cols), s(rows), want(rows * cols);
  ops::BinaryOp sub(ctx, ops::BinaryOp::Kind::kSub, MatLayout::dense(rows, cols), MatLayout::dense(rows, 1), MatLayout::dense(rows, cols));
  sub.run(ctx, a.data(), col.data(), y.data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) want[r * cols + c] = a[r * cols + c] - col[r];
  EXPECT_TRUE(is_close(y, want, within(1e-6)));

  ops::ReorderOp tr(ctx, MatLayout::dense(rows, cols), MatLayout::dense(cols, rows).transposed());
  tr.run(ctx, a.data(), t.data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(t[c * rows + r], a[r * cols + c]);

  ops::ReductionOp norm(ctx, ops::ReductionOp::Kind::kNormL2, MatLayout::dense(rows, cols), MatLayout::dense(rows, 1));
  norm.run(ctx, a.data(), s.data());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += a[r * cols + c] * a[r * cols + c];
    EXPECT_NEAR(s[r], std::sqrt(ss), 1e-5 * std::sqrt(ss));
  }
}

TEST(Kernels, FastExpAccuracy) {
  double worst = 0;
  for (float x = -80.f; x <= 80.f; x += 0.0137f) worst = std::max(worst, std::fabs(ops::fast_exp(x) / std::exp(static_cast<double>(x)) - 1));
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(ops::fast_exp(0.f), 1.f);
  // The clamp to [-87, 88] (integer selects on the order key): below, ~exp(-87), never 0 or garbage;
  // above, exp(88); a NaN stays NaN.
  for (float x : {-87.f, -100.f, -1e30f, -std::numeric_limits<float>::infinity()}) {
    EXPECT_NEAR(ops::fast_exp(x) / std::exp(-87.0), 1.0, 5e-7) << x;
  }
  for (float x : {88.f, 100.f, std::numeric_limits<float>::infinity()}) EXPECT_NEAR(ops::fast_exp(x) / std::exp(88.0), 1.0, 5e-7) << x;
  EXPECT_TRUE(std::isnan(ops::fast_exp(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(ops::fast_exp(-std::numeric_limits<float>::quiet_NaN())));
}

// The order key sorts floats as < does (signed zeros equal in value, -0 below +0), and maps back.
TEST(Kernels, FloatOrderKeyPreservesOrder) {
  const float inf = std::numeric_limits<float>::infinity(), tiny = std::numeric_limits<float>::denorm_min();
  const std::vector<float> xs{-inf, -3e38f, -88.5f, -87.f, -1.f, -1e-30f, -tiny, -0.f, 0.f, tiny, 1e-30f, 1.f, 88.f, 3e38f, inf};
  auto key = [](float x) { return ops::float_order_key(std::bit_cast<int32_t>(x)); };
  for (std::size_t i = 0; i + 1 < xs.size(); ++i) EXPECT_LT(key(xs[i]), key(xs[i + 1])) << xs[i] << " " << xs[i + 1];
  for (float x : xs) EXPECT_EQ(std::bit_cast<int32_t>(x), ops::float_order_key(key(x))) << x;
}

// The online softmax's row max (an integer max over order keys) and a NaN score: the row's sum is
// NaN whatever the NaN's sign bit; other rows are untouched.
TEST(Kernels, OnlineSoftmaxMaxAndNaN) {
  const int64_t cols = 37, dh = 3;
  std::vector<float> s(3 * cols), acc(3 * dh, 1.f), m(3, ops::kNegInf), l(3, 0.f);
  for (int64_t c = 0; c < cols; ++c) s[c] = s[cols + c] = s[2 * cols + c] = -0.5f * static_cast<float>((c * 11) % 37);
  s[17] = 2.5f;                                          // row 0's max, mid-row
  s[cols + 3] = std::numeric_limits<float>::quiet_NaN();   // row 1
  s[2 * cols + 30] = -std::numeric_limits<float>::quiet_NaN();  // row 2, sign bit set
  ops::online_softmax_update(s.data(), 3, cols, 0, nullptr, nullptr, m.data(), l.data(), acc.data(), dh);
  EXPECT_EQ(m[0], 2.5f);
  // Every score negative (signed-integer order of raw bits would pick the most negative).
  std::vector<float> neg{-3.f, -0.25f, -7.f, -1e-20f, -2.f};
  float mn = ops::kNegInf, ln = 0, an = 0;
  ops::online_softmax_update(neg.data(), 1, 5, 0, nullptr, nullptr, &mn, &ln, &an, 1);
  EXPECT_EQ(mn, -1e-20f);
  EXPECT_EQ(s[17], 1.f);
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c) sum += std::exp(c == 17 ? 0.0 : -0.5 * ((c * 11) % 37) - 2.5);
  EXPECT_NEAR(l[0], sum, 1e-6 * sum);
  EXPECT_TRUE(std::isnan(l[1]));
  EXPECT_TRUE(std::isnan(l[2]));
}

TEST(Kernels, ArgmaxFirstOnTies) {
  std::vector<float> x{1, 3, 3, 2, 0, -1, -1, -5};
  int32_t out[2];
  ops::argmax_rows(x.data(), 2, 4, 4, out);
  EXPECT_EQ(out[0], 1);
  EXPECT_EQ(out[1], 0);
}

// The exclusive running sum over a column range of strided blocks: each block becomes the sum before
// it, the running sum the total; columns outside the range untouched.
TEST(Kernels, ExclusivePrefixSumOverAColumnRange) {
  const int64_t count = 5, stride = 37, c0 = 3, width = 29;
  auto blocks = random_vector(count * stride, 50), running = random_vector(stride, 51);
  const auto blocks0 = blocks, running0 = running;
  ops::exclusive_prefix_sum_blocks(running.data() + c0, blocks.data() + c0, count, width, stride);
  for (int64_t j = 0; j < stride; ++j) {
    const bool in = j >= c0 && j < c0 + width;
    double acc = running0[j];
    for (int64_t i = 0; i < count; ++i) {
      EXPECT_NEAR(blocks[i * stride + j], in ? acc : blocks0[i * stride + j], 1e-5) << i << ", " << j;
      acc += blocks0[i * stride + j];
    }
    EXPECT_NEAR(running[j], in ? acc : running0[j], 1e-5) << j;
  }
}

// Rows longer than the 16 lanes against the one-pass loop: the maximum in the tail, in a lane's
// middle, tied across lanes (the first wins), all negative, a NaN past position 0 (skipped) and at
// position 0 (index 0, as the one-pass loop gives).
TEST(Kernels, ArgmaxMatchesTheOnePassLoop) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto one_pass = [](const std::vector<float>& row) {
    int64_t best = 0;
    for (std::size_t c = 1; c < row.size(); ++c)
      if (row[c] > row[best]) best = static_cast<int64_t>(c);
    return best;
  };
  for (int64_t cols : {1, 15, 16, 17, 100, 10000}) {
    std::vector<std::vector<float>> rows(6, random_vector(cols, 40 + static_cast<int>(cols)));
    rows[0][cols - 1] = 9.f;
    rows[1][cols / 2] = 9.f;
    rows[2][cols / 3] = 9.f;
    rows[2][cols - 1] = 9.f;
    for (float& v : rows[3]) v = -std::abs(v) - 1.f;
    rows[4][cols / 2] = nan;
    rows[5][0] = nan;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      int32_t got = -1;
      ops::argmax_rows(rows[i].data(), 1, cols, cols, &got);
      EXPECT_EQ(got, one_pass(rows[i])) << cols << " columns, row " << i;
    }
  }
}

TEST_F(OpsTest, FrozenContextRejectsPrimitiveCreation) {
  ops::FrozenRegion frozen(ctx);
  ops::MatMulSpec spec{MatLayout::dense(2, 2), MatLayout::dense(2, 2), MatLayout::dense(2, 2), false, 1.f, {}};
  EXPECT_THROW(ops::MatMul(ctx, spec), InvariantError);
}

// Scratchpads: one buffer per thread for ops made for one thread, one for the team's (thread 0);
// a budget stops growth before anything is allocated.
TEST(ContextScratchpad, GrowsWithThreadsTimesTheOneThreadScratchOnly) {
  ops::Context ctx(4);
  ctx.reserve_scratchpad(1000, false);  // an op made for the team
  ctx.reserve_scratchpad(100, true);    // an op made for one thread
  EXPECT_EQ(ctx.scratchpad_reserved_bytes(), 1000u + 3 * 100u);
  EXPECT_EQ(ctx.memory().current(MemCategory::kScratch), 1300u);
  {
    ops::ScratchBudget budget(ctx, 1500);
    EXPECT_THROW(ctx.reserve_scratchpad(200, true), ops::ScratchBudgetExceeded);    // 1000 + 3 x 200
    EXPECT_THROW(ctx.reserve_scratchpad(1300, false), ops::ScratchBudgetExceeded);  // 1300 + 3 x 100
    EXPECT_EQ(ctx.memory().current(MemCategory::kScratch), 1300u) << "nothing allocated past the budget";
    ctx.reserve_scratchpad(1200, false);
    EXPECT_EQ(ctx.memory().current(MemCategory::kScratch), 1500u);
  }
  ctx.reserve_scratchpad(300, true);  // the budget is gone with its scope
  EXPECT_EQ(ctx.scratchpad_reserved_bytes(), 1200u + 3 * 300u);
  ctx.release_scratchpad();
  EXPECT_EQ(ctx.memory().current(MemCategory::kScratch), 0u);
}

// An op made for the whole team may not run inside one of our parallel loops (its scratchpad
// exists once); made under SingleThreadOps, the same product runs there and gives the same result.
TEST(ContextScratchpad, TeamOpsStayOutOfParallelLoops) {
  ops::Context ctx(2);
  const int64_t n = 192;  // 2 n³ flops: far above the serial threshold, so made for the team
  const MatLayout m = MatLayout::dense(n, n);
  ops::MatMul team(ctx, {m, m, m, false, 1.f, {}});
  ops::MatMul single;
  {
    ops::SingleThreadOps one(ctx);
    single = ops::MatMul(ctx, {m, m, m, false, 1.f, {}});
  }
  auto a = random_vector(n * n, 7), b = random_vector(n * n, 8);
  std::vector<float> want(n * n), got(2 * n * n);
  team.run(ctx, a.data(), b.data(), want.data());  // top level: fine
  int refused = 0;
  ops::parallel_items(ctx, 2, true, [&](int64_t i) {
    try {
      team.run(ctx, a.data(), b.data(), got.data() + i * n * n);
    } catch (const InvariantError&) {
#pragma omp atomic
      ++refused;
    }
  });
  EXPECT_EQ(refused, 2);
  ops::parallel_items(ctx, 2, true, [&](int64_t i) { single.run(ctx, a.data(), b.data(), got.data() + i * n * n); });
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(is_close(got.data() + i * n * n, want.data(), n * n, within(1e-5))) << "item " << i;
}

// ---- tiled causal attention against a plain O(n^2) loop ----
std::vector<float> ref_attention(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v, int64_t n,
                                 int64_t heads, int64_t dh, float scale, int64_t window, int64_t q_pos) {
  const int64_t d = heads * dh, nq = static_cast<int64_t>(q.size()) / d;
  std::vector<float> o(nq * d);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t r = 0; r < nq; ++r) {
      int64_t t = q_pos + r, lo = window < 0 ? 0 : std::max<int64_t>(0, t - window);
      std::vector<double> w;
      for (int64_t s = lo; s <= t; ++s) w.push_back(scale * ref::dot(&q[r * d + h * dh], &k[s * d + h * dh], dh));
      ref::softmax(w);
      for (int64_t i = 0; i < dh; ++i) {
        double acc = 0;
        for (int64_t s = lo; s <= t; ++s) acc += w[s - lo] * v[s * d + h * dh + i];
        o[r * d + h * dh + i] = static_cast<float>(acc);
      }
    }
  (void)n;
  return o;
}

struct AttnCase {
  int64_t n, window, tile;
  int64_t block = 0;  // AttentionGeometry::k_block (0: key tiles only)
};

class AttentionOpTest : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionOpTest, PrefillMatchesLoop) {
  ops::Context ctx(2);
  const auto [n, window, tile, block] = GetParam();
  const int64_t heads = 3, dh = 16, d = heads * dh;
  const int64_t rows = ops::CausalAttention::padded_kv_rows(n, tile);
  auto q = random_vector(n * d, 60, 1.5f), k = random_vector(rows * d, 61, 1.5f), v = random_vector(rows * d, 62);
  ops::AttentionGeometry g;
  g.heads = heads;
  g.head_dim = dh;
  g.q_row_stride = g.kv_row_stride = g.o_row_stride = d;
  g.scale = 0.3f;
  g.window = window;
  g.q_tile = g.k_tile = tile;
  g.k_block = block;
  ops::CausalAttention attn(ctx, g, n);
  std::vector<float> o(n * d);
  ctx.start_counting_flops();
  attn.run(ctx, q.data(), k.data(), v.data(), o.data(), 0, n);
  const double flops = ctx.stop_counting_flops();
  EXPECT_TRUE(is_close(o, ref_attention(q, k, v, n, heads, dh, 0.3f, window, 0), within(1e-5)));
  // Key blocks group the same key tiles: the same products run.
  g.k_block = 0;
  ops::CausalAttention tiles(ctx, g, n);
  ctx.start_counting_flops();
  tiles.run(ctx, q.data(), k.data(), v.data(), o.data(), 0, n);
  EXPECT_EQ(flops, ctx.stop_counting_flops());
}

INSTANTIATE_TEST_SUITE_P(Lengths, AttentionOpTest,
                         ::testing::Values(AttnCase{1, -1, 16}, AttnCase{7, -1, 16}, AttnCase{15, -1, 16}, AttnCase{16, -1, 16},
                                           AttnCase{17, -1, 16}, AttnCase{63, -1, 32}, AttnCase{64, -1, 32}, AttnCase{65, -1, 32},
                                           AttnCase{300, -1, 32}, AttnCase{300, -1, 128}, AttnCase{300, 5, 16}, AttnCase{77, 32, 32},
                                           AttnCase{129, 0, 32}, AttnCase{300, -1, 16, 64}, AttnCase{300, -1, 32, 128},
                                           AttnCase{333, 100, 16, 48}, AttnCase{40, -1, 8, 32}));

TEST(AttentionOp, DecodeRowAtArbitraryPositionsAndBatch) {
  ops::Context ctx(2);
  const int64_t heads = 2, dh = 8, d = heads * dh, batch = 2, cap = 128;
  auto k = random_vector(batch * cap * d, 70), v = random_vector(batch * cap * d, 71), q = random_vector(batch * d, 72);
  ops::AttentionGeometry g;
  g.batch = batch;
  g.heads = heads;
  g.head_dim = dh;
  g.q_row_stride = g.kv_row_stride = g.o_row_stride = d;
  g.q_batch_stride = g.o_batch_stride = d;
  g.kv_batch_stride = cap * d;
  g.scale = 0.5f;
  g.q_tile = 1;
  g.k_tile = 32;
  ops::CausalAttention attn(ctx, g, 1);
  for (int64_t pos : {0, 1, 31, 32, 33, 100, 127}) {
    std::vector<float> o(batch * d);
    attn.run(ctx, q.data(), k.data(), v.data(), o.data(), pos, 1);
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<float> qb(q.begin() + b * d, q.begin() + (b + 1) * d);
      std::vector<float> kb(k.begin() + b * cap * d, k.begin() + (b + 1) * cap * d);
      std::vector<float> vb(v.begin() + b * cap * d, v.begin() + (b + 1) * cap * d);
      auto want = ref_attention(qb, kb, vb, pos + 1, heads, dh, 0.5f, -1, pos);
      EXPECT_TRUE(is_close(o.data() + b * d, want.data(), d, within(1e-5))) << "pos " << pos << " batch " << b;
    }
  }
}

// A decode row over a long cache splits its keys into segments, one work item each (every head of
// a sequence inside it, block by block), merged after the loop (flash-decoding): the result equals
// the plain loop, with and without a window (segments whose keys a row cannot see weigh 0), and
// the executed FLOPs are the visible key blocks' (every block holding a visible key once).
TEST(AttentionOp, DecodeSplitsKeysIntoSegments) {
  ops::Context ctx(5);  // oversubscribed on a small machine: the split does not depend on the cores
  // Work above the serial threshold (2 heads x 2500+ keys x 2 x 128 flops), so the call runs in parallel.
  const int64_t heads = 2, dh = 64, d = heads * dh, cap = 6000, kt = 128;
  // Whole key tiles are read: the buffers hold cap rounded up to kt (the op's contract).
  const int64_t rows = ops::CausalAttention::padded_kv_rows(cap, kt);
  auto k = random_vector(rows * d, 73), v = random_vector(rows * d, 74), q = random_vector(d, 75);
  for (int64_t window : {int64_t{-1}, int64_t{2500}}) {
    ops::AttentionGeometry g = ops::AttentionGeometry::packed_heads(1, heads, dh, 0.3f);
    g.q_batch_stride = g.o_batch_stride = d;
    g.kv_batch_stride = rows * d;
    g.q_tile = 1;
    g.k_tile = kt;
    g.window = window;
    ASSERT_EQ(ops::CausalAttention::max_segments(g, 1, ctx.threads()), 5);
    ops::CausalAttention attn(ctx, g, 1);
    for (int64_t pos : {int64_t{5999}, int64_t{4100}}) {
      std::vector<float> o(d);
      ctx.start_counting_flops();
      attn.run(ctx, q.data(), k.data(), v.data(), o.data(), pos, 1);
      const double flops = ctx.stop_counting_flops();
      auto want = ref_attention(q, k, v, pos + 1, heads, dh, 0.3f, window, pos);
      EXPECT_TRUE(is_close(o.data(), want.data(), d, within(1e-5))) << "pos " << pos << " window " << window;
      // Executed: every head's products over the blocks of kDecodeKeys keys that hold a visible key.
      const int64_t B = ops::CausalAttention::kDecodeKeys;
      const int64_t first_block = (window < 0 ? 0 : pos - window) / B, blocks = pos / B - first_block + 1;
      EXPECT_EQ(flops, heads * blocks * 2.0 * (2.0 * B * dh)) << "pos " << pos << " window " << window;
    }
  }
}

// The single-query path's kernels (ops/gemv.hpp) against per-head loops in double: every head
// side by side in a row, rows wider than the heads (keys and values in one buffer); the register
// path (heads * dv = 256), the four-row path and dh not a multiple of 16 (scalar dot products);
// odd key counts (the tail of a vector's columns, of four rows); both vector widths, whatever the
// build's own (8 lanes: four 64-float slices of d = 256 and one of heads x dv = 2 x 32; 16 lanes: one
// 256-float slice). The weighted sum accumulates into acc, one slot every acc_stride floats per head.
TEST(MultiheadKernels, MatchThePerHeadLoops) {
  struct Shape {
    int64_t heads, dh, stride;
  };
  for (int lanes : {8, 16})
  for (const Shape& sh : {Shape{4, 64, 256}, Shape{4, 64, 512}, Shape{2, 64, 128}, Shape{3, 8, 30}, Shape{16, 16, 256}, Shape{2, 32, 70}})
    for (int64_t keys : {int64_t{1}, int64_t{5}, int64_t{37}, int64_t{256}}) {
      const int64_t H = sh.heads, dh = sh.dh, stride = sh.stride, acc_stride = dh + 2;
      const std::string what = "lanes " + std::to_string(lanes) + " heads " + std::to_string(H) + " dh " + std::to_string(dh) + " stride " +
                               std::to_string(stride) + " keys " + std::to_string(keys);
      const auto q = random_vector(H * dh, 90), rows = random_vector(keys * stride, 91), p = random_vector(H * keys, 92);
      const auto acc0 = random_vector(H * acc_stride, 93);
      std::vector<float> scores(H * keys, std::numeric_limits<float>::quiet_NaN()), want_scores(scores.size());
      ops::multihead_scores(q.data(), rows.data(), stride, keys, H, dh, 0.3f, scores.data(), lanes);
      std::vector<float> acc = acc0, want_acc = acc0;
      ops::multihead_weighted_sum(p.data(), rows.data(), stride, keys, H, dh, acc.data(), acc_stride, lanes);
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t j = 0; j < keys; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < dh; ++e) dot += static_cast<double>(q[h * dh + e]) * rows[j * stride + h * dh + e];
          want_scores[h * keys + j] = static_cast<float>(0.3 * dot);
        }
        for (int64_t i = 0; i < dh; ++i) {
          double sum = acc0[h * acc_stride + i];
          for (int64_t j = 0; j < keys; ++j) sum += static_cast<double>(p[h * keys + j]) * rows[j * stride + h * dh + i];
          want_acc[h * acc_stride + i] = static_cast<float>(sum);
        }
      }
      EXPECT_TRUE(is_close(scores, want_scores, within(1e-5))) << what;
      EXPECT_TRUE(is_close(acc, want_acc, within(1e-5))) << what;
    }
}

// Values wider than the keys (BSBR's retrieval: keys H_j, values f_j or F_j) in one buffer whose
// rows are [keys (heads x dh) | values (heads x dv)], queries at arbitrary positions.
TEST(AttentionOp, ValueDimWiderThanKeys) {
  ops::Context ctx(2);
  const int64_t heads = 2, dh = 8, dv = 20, n = 37, tile = 16, width = heads * (dh + dv);
  const int64_t rows = ops::CausalAttention::padded_kv_rows(n, tile);
  auto kv = random_vector(rows * width, 80, 1.5f), q = random_vector(n * heads * dh, 81, 1.5f);
  ops::AttentionGeometry g;
  g.heads = heads;
  g.head_dim = dh;
  g.value_dim = dv;
  g.q_row_stride = heads * dh;
  g.kv_row_stride = width;
  g.o_row_stride = heads * dv;
  g.scale = 0.4f;
  g.q_tile = g.k_tile = tile;
  ops::CausalAttention attn(ctx, g, n);
  for (int64_t q_pos : {int64_t{0}, int64_t{5}}) {
    const int64_t count = n - q_pos;
    std::vector<float> o(count * heads * dv);
    attn.run(ctx, q.data() + q_pos * heads * dh, kv.data(), kv.data() + heads * dh, o.data(), q_pos, count);
    std::vector<float> want(o.size());
    ref::MacCounter macs;
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t r = 0; r < count; ++r)
        ref::attend(&q[(q_pos + r) * heads * dh + h * dh], &kv[h * dh], &kv[heads * dh + h * dv], width, dh, dv, 0, q_pos + r, 0.4,
                    &want[r * heads * dv + h * dv], macs);
    EXPECT_TRUE(is_close(o, want, within(1e-5))) << "q_pos " << q_pos;
  }
}

// One query per (sequence, head) over the first len rows of a [capacity] key/value buffer whose rows
// are [keys (heads x dh) | values (heads x dv)]; rows past len hold values that must not leak in.
TEST(DecodeAttentionOp, MatchesLoop) {
  ops::Context ctx(2);
  for (int64_t dv : {int64_t{8}, int64_t{20}}) {
    const int64_t batch = 2, heads = 3, dh = 8, cap = 37, width = heads * (dh + dv);
    auto kv = random_vector(batch * cap * width, 100, 1.5f), q = random_vector(batch * heads * dh, 101, 1.5f);
    ops::DecodeAttentionGeometry g;
    g.batch = batch;
    g.heads = heads;
    g.head_dim = dh;
    g.value_dim = dv;
    g.capacity = cap;
    g.q_batch_stride = heads * dh;
    g.o_batch_stride = heads * dv;
    g.kv_row_stride = width;
    g.kv_batch_stride = cap * width;
    g.scale = 0.4f;
    ops::DecodeAttention attn(ctx, g);
    for (int64_t len : {int64_t{1}, int64_t{7}, cap}) {
      std::vector<float> o(batch * heads * dv), want(o.size());
      attn.run(ctx, q.data(), kv.data(), kv.data() + heads * dh, o.data(), len);
      ref::MacCounter macs;
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t h = 0; h < heads; ++h) {  // sequence b's rows: keys at column h*dh, values at heads*dh + h*dv
          const float* rows = &kv[b * cap * width];
          ref::attend(&q[(b * heads + h) * dh], rows + h * dh, rows + heads * dh + h * dv, width, dh, dv, 0, len - 1, 0.4,
                      &want[(b * heads + h) * dv], macs);
        }
      EXPECT_TRUE(is_close(o, want, within(1e-5))) << "dv " << dv << " len " << len;
    }
  }
}

// Causal attention inside chunks against a plain loop: several heads, a partial last chunk (its
// padding rows hold garbage that must not leak into valid rows), chunk = 1 and a single chunk.
TEST(ChunkLocalAttentionOp, MatchesLoop) {
  ops::Context ctx(2);
  struct Case {
    int64_t n, chunk;
  };
  // 1000 rows of chunk 16: 63 chunks in parallel groups (heads and chunks together), the last group shorter.
  for (Case c : {Case{37, 8}, Case{64, 16}, Case{5, 1}, Case{20, 32}, Case{1000, 16}}) {
    const int64_t heads = 3, dh = 8, d = heads * dh, chunks = (c.n + c.chunk - 1) / c.chunk, rows = chunks * c.chunk;
    auto q = random_vector(rows * d, 90, 1.5f), k = random_vector(rows * d, 91, 1.5f), v = random_vector(rows * d, 92);
    ops::ChunkLocalAttention attn(ctx, {heads, dh, c.chunk, d, 0.3f}, chunks);
    std::vector<float> o(rows * d);
    attn.run(ctx, q.data(), k.data(), v.data(), o.data());
    std::vector<float> want(c.n * d);
    ref::MacCounter macs;
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < c.n; ++t) ref::attend(&q[t * d + h * dh], k, v, d, h * dh, dh, t / c.chunk * c.chunk, t, 0.3, &want[t * d + h * dh], macs);
    EXPECT_TRUE(is_close(o.data(), want.data(), c.n * d, within(1e-5))) << "n " << c.n << " chunk " << c.chunk;
  }
}

TEST(Kernels, L2NormalizeRowsStrided) {
  const int64_t rows = 7, cols = 19, stride = 24;
  auto x = random_vector(rows * stride, 80, 3.0f);
  auto y = x;
  ops::l2_normalize_rows(y.data(), rows, cols, stride);
  for (int64_t r = 0; r < rows; ++r) {
    double norm = 0;
    for (int64_t c = 0; c < cols; ++c) norm += static_cast<double>(x[r * stride + c]) * x[r * stride + c];
    norm = std::sqrt(norm);
    for (int64_t c = 0; c < cols; ++c) EXPECT_NEAR(y[r * stride + c], x[r * stride + c] / norm, 1e-6) << r << "," << c;
    for (int64_t c = cols; c < stride; ++c) EXPECT_EQ(y[r * stride + c], x[r * stride + c]) << "outside the row";
  }
}

TEST(Kernels, PrefixSumBlocks) {
  const int64_t count = 5, size = 37;
  auto x = random_vector(count * size, 81);
  auto y = x;
  ops::prefix_sum_blocks(y.data(), count, size);
  for (int64_t j = 0; j < size; ++j) {
    double run = 0;
    for (int64_t i = 0; i < count; ++i) {
      run += x[i * size + j];
      EXPECT_NEAR(y[i * size + j], run, 1e-5) << "block " << i;
    }
  }
}

// T = (I + tril(diag(beta) K K^T, -1))^-1 diag(beta): checked as (I + L) T == diag(beta) in double,
// and T lower triangular, for chunk sizes below, at and around the 16-column register block.
TEST(Kernels, UtTransformSolvesTheTriangularSystem) {
  for (int64_t C : {int64_t{1}, int64_t{5}, int64_t{16}, int64_t{37}, int64_t{64}}) {
    const int64_t dk = 12, beta_stride = 3;
    auto k = random_vector(C * dk, 82 + C);
    for (int64_t i = 0; i < C; ++i) {  // unit keys, as DeltaNet's
      double norm = 0;
      for (int64_t j = 0; j < dk; ++j) norm += k[i * dk + j] * k[i * dk + j];
      for (int64_t j = 0; j < dk; ++j) k[i * dk + j] = static_cast<float>(k[i * dk + j] / std::sqrt(norm));
    }
    auto beta = random_vector(C * beta_stride, 90 + C);
    for (float& b : beta) b = 1.0f + b;  // in (0, 2)
    std::vector<double> kkt(C * C);
    std::vector<float> t(C * C);
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j < C; ++j) t[i * C + j] = static_cast<float>(kkt[i * C + j] = ref::dot(&k[i * dk], &k[j * dk], dk));
    ops::ut_transform(t.data(), beta.data(), beta_stride, C);
    double worst = 0;
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j < C; ++j) {
        if (j > i) {
          EXPECT_EQ(t[i * C + j], 0.0f) << "T not lower triangular at " << i << "," << j;
        }
        double lhs = t[i * C + j];  // ((I + L) T)[i, j], L[i, m] = beta_i k_i.k_m for m < i
        for (int64_t m = 0; m < i; ++m) lhs += beta[i * beta_stride] * kkt[i * C + m] * t[m * C + j];
        worst = std::max(worst, std::fabs(lhs - (i == j ? beta[i * beta_stride] : 0.0)));
      }
    EXPECT_LT(worst, 1e-5) << "chunk " << C;
  }
}

// The rank-1 state steps (ops::linear_attention_step, ops::delta_rule_step) against the recurrences
// written out in double (SPEC §2), for several pairs and a head width that is not a multiple of the
// vector width. For Linear, a second case whose normaliser is exactly zero before the 1e-6: only
// there does the epsilon show (anywhere else it is far below the tolerance), and dropping it gives
// infinities.
TEST(RankOneStateSteps, MatchTheRecurrences) {
  const int64_t pairs = 3, dh = 20;
  const float eps = 1e-6f;
  const std::vector<float> q = random_vector(pairs * dh, 1), k = random_vector(pairs * dh, 2), v = random_vector(pairs * dh, 3);
  const std::vector<float> s0 = random_vector(pairs * dh * dh, 4), z0 = random_vector(pairs * dh, 5), beta = {0.3f, 0.9f, 1.0f};
  for (const bool zero_normaliser : {false, true}) {
    std::vector<float> s = s0, z = z0, o(pairs * dh);
    if (zero_normaliser)
      for (int64_t i = 0; i < pairs * dh; ++i) z[i] = -k[i];  // z + k = 0: the denominator is eps alone
    std::vector<float> s_ref(pairs * dh * dh), z_ref(pairs * dh), o_ref(pairs * dh);
    for (int64_t p = 0; p < pairs; ++p) {
      double den = eps;
      for (int64_t i = 0; i < dh; ++i) {
        z_ref[p * dh + i] = static_cast<float>(static_cast<double>(z[p * dh + i]) + k[p * dh + i]);
        den += static_cast<double>(q[p * dh + i]) * (static_cast<double>(z[p * dh + i]) + k[p * dh + i]);
      }
      for (int64_t j = 0; j < dh; ++j) {
        double acc = 0;
        for (int64_t i = 0; i < dh; ++i) {
          const double m = static_cast<double>(s[(p * dh + i) * dh + j]) + static_cast<double>(k[p * dh + i]) * v[p * dh + j];
          s_ref[(p * dh + i) * dh + j] = static_cast<float>(m);
          acc += static_cast<double>(q[p * dh + i]) * m;
        }
        o_ref[p * dh + j] = static_cast<float>(acc / den);
      }
    }
    ops::linear_attention_step(pairs, dh, q.data(), k.data(), v.data(), s.data(), z.data(), eps, o.data());
    EXPECT_TRUE(is_close(s, s_ref, within(1e-5))) << "state, zero normaliser " << zero_normaliser;
    EXPECT_TRUE(is_close(z, z_ref, within(1e-6))) << "normaliser, zero normaliser " << zero_normaliser;
    EXPECT_TRUE(is_close(o, o_ref, within(zero_normaliser ? 1e-3 : 1e-5))) << "output, zero normaliser " << zero_normaliser;
    // Without z: the unnormalised read.
    std::vector<float> s2 = s0, o2(pairs * dh), o2_ref(pairs * dh, 0.f);
    for (int64_t p = 0; p < pairs; ++p)
      for (int64_t j = 0; j < dh; ++j) {
        double acc = 0;
        for (int64_t i = 0; i < dh; ++i)
          acc += static_cast<double>(q[p * dh + i]) * (static_cast<double>(s0[(p * dh + i) * dh + j]) + static_cast<double>(k[p * dh + i]) * v[p * dh + j]);
        o2_ref[p * dh + j] = static_cast<float>(acc);
      }
    ops::linear_attention_step(pairs, dh, q.data(), k.data(), v.data(), s2.data(), nullptr, eps, o2.data());
    EXPECT_TRUE(is_close(o2, o2_ref, within(1e-5)));
  }

  // DeltaNet, M = S^T: u = v - M^T k; M += beta k u^T; o = q^T M.
  std::vector<float> m = s0, u(pairs * dh), o(pairs * dh);
  std::vector<float> m_ref(pairs * dh * dh), u_ref(pairs * dh), o_ref(pairs * dh);
  for (int64_t p = 0; p < pairs; ++p) {
    for (int64_t j = 0; j < dh; ++j) {
      double r = v[p * dh + j];
      for (int64_t i = 0; i < dh; ++i) r -= static_cast<double>(k[p * dh + i]) * s0[(p * dh + i) * dh + j];
      u_ref[p * dh + j] = static_cast<float>(r);
    }
    for (int64_t j = 0; j < dh; ++j) {
      double acc = 0;
      for (int64_t i = 0; i < dh; ++i) {
        const double mm = static_cast<double>(s0[(p * dh + i) * dh + j]) + static_cast<double>(beta[p]) * k[p * dh + i] * u_ref[p * dh + j];
        m_ref[(p * dh + i) * dh + j] = static_cast<float>(mm);
        acc += static_cast<double>(q[p * dh + i]) * mm;
      }
      o_ref[p * dh + j] = static_cast<float>(acc);
    }
  }
  ops::delta_rule_step(pairs, dh, q.data(), k.data(), v.data(), beta.data(), m.data(), u.data(), o.data());
  EXPECT_TRUE(is_close(u, u_ref, within(1e-5)));
  EXPECT_TRUE(is_close(m, m_ref, within(1e-5)));
  EXPECT_TRUE(is_close(o, o_ref, within(1e-4)));
}

}  // namespace
}  // namespace bsbr

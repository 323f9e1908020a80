// DeltaNet: linear attention with the delta rule (Schlag et al. 2021; Yang et al. 2024; SPEC §2).
// Per head, with q_t, k_t L2-normalised and beta_t constant (config beta) or learned
// (beta_mode: learned, beta_t = sigmoid(W_beta x_t + b_beta), one per head):
//   S_t = S_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T,   o_t = S_t q_t,   no clamping anywhere.
//
// State convention: the SPEC's S is [dv, dk] with o = S q. This file stores its transpose
// M = S^T, [dk, dv], so that tokens are rows: o_t^T = q_t^T M_t and
//   M_t = M_{t-1} + beta_t k_t (v_t^T - k_t^T M_{t-1}).
// (The same [dk, dv] convention as Linear's state and flash-linear-attention's.)
//
// Prefill: the chunkwise WY/UT algorithm (Yang et al. 2024, "Parallelizing Linear Transformers
// with the Delta Rule over Sequence Length"). For a chunk of C rows K, V, Q, betas beta and the
// state M_0 before it, the pseudo-values u_t = beta_t (v_t - M_{t-1}^T k_t) satisfy
//   (I + L) U = diag(beta) (V - K M_0),   L = tril(diag(beta) K K^T, -1),
// so with the UT transform T = (I + L)^-1 diag(beta) (forward substitution, ops::ut_transform):
//   W = T K,  U_pre = T V,  U = U_pre - W M_0,
//   O = Q M_0 + (Q K^T ⊙ Mask) U,   M_C = M_0 + K^T U   (Mask: causal, diagonal included).
// Expanding U gives the form used here, where only one dk x dk product per chunk is sequential:
//   O     = A U_pre + Q~ M_0,       A = Q K^T ⊙ Mask,   Q~ = Q - A W
//   M_C   = M_0 - G M_0 + H,        G = K^T W,       H = K^T U_pre
// In the three phases of ChunkedRecurrence:
//   1. intra (blocks of chunks of every head in parallel): L2-normalise the block's q, k rows; K K^T,
//      T (the hand loop: oneDNN has no triangular solve), W, U_pre, A, Q~, G, H and O = A U_pre as
//      matmuls batched over the block's chunks; H_c into state slot c+1, G_c kept per chunk;
//   2. scan: the chunk states in order, M_{c+1} = M_c - G_c M_c + H_c, one [dk, dk] x [dk, dv]
//      matmul per chunk (the only sequential part); the columns of M evolve independently, so the
//      scan runs (head, block of dv columns) items in parallel when heads alone are too few;
//   3. inter (blocks in parallel): O += Q~_c M_c.
// Never a per-token loop in prefill: O(n C dh + n dh^2) work; the prefill runs in slabs
// (ChunkedRecurrence), M carried from slab to slab, so O(slab) memory. Decode is the recurrence,
// O(dh^2) per head and token:
//   u = v - M^T k,   M += (beta k) u^T,   o = M^T q   (batched over (sequence, head) pairs).
//
// FLOPs (multiply-add = 2) count the architecture's arithmetic, the recurrence, as the oracle
// does -- not what the chunked prefill executes (it does more): per token, projections 4 d^2
// (+ d h for the learned beta projection), and per head S k (dh^2), the rank-1 update (dh^2) and
// S q (dh^2). The L2 norms and the beta scaling are elementwise and not counted:
//   prefill_flops(n) = 2 n (4 d^2 + [learned] d h + 3 h dh^2),  step_flops = the same with n = 1.
#include <algorithm>
#include <cstring>

#include "model/arch/chunked_recurrence.hpp"
#include "ops/kernels.hpp"

namespace bsbr {
namespace {

using ops::BinaryOp;
using ops::MatLayout;
using ops::MatMul;
using ops::PostOp;

class DeltaNet : public ChunkedRecurrence {
 public:
  DeltaNet(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling)
      : ChunkedRecurrence(cfg, params, prefix, {}, tiling), learned_beta_(cfg.beta_mode == BetaMode::kLearned),
        constant_beta_(static_cast<float>(cfg.beta)) {
    if (learned_beta_) beta_proj_ = params.add_linear(prefix + ".beta_proj", d_, heads_);
  }

  std::vector<Tensor*> overwritten_state() override { return {&state_}; }
  std::size_t state_bytes(int64_t n) const override;
  std::size_t estimate_bytes(const RunShape& shape, int threads) const override;
  double prefill_flops(int64_t n) const override;
  double step_flops(int64_t pos) const override;

 private:
  // Ops over one block of `count` chunks of one head (batch = count), made for one thread.
  struct BlockOps {
    MatMul kkt;      // K K^T                      [count, C, C]  (becomes T in place)
    MatMul w, u;     // W = T K, U_pre = T V       [count, C, dh]
    MatMul scores;   // Q K^T                      [count, C, C]
    BinaryOp mask;   // A = scores ⊙ Mask
    MatMul q_tilde;  // Q~ = Q - A W, in place over Q's rows
    MatMul h, g;     // H = K^T U_pre -> state slots; G = K^T W -> g slots   [count, dh, dh]
    MatMul intra;    // O = A U_pre                -> o rows
    MatMul inter;    // O += Q~ M_c
  };
  struct Workspace {  // per worker thread, for one block
    Tensor t, scores;  // [blk, C, C]
    Tensor w, u;       // [blk, C, dh]
  };

  void prepare_core(ops::Context& ctx, const RunShape& shape) override;
  void release_core() override;
  void prefill_slab(ops::Context& ctx, const float* x, int64_t n, const chunked::Slab& slab) override;
  void step_core(ops::Context& ctx, const float* x) override;
  BlockOps make_block_ops(ops::Context& ctx, int64_t count) const;
  void intra_block(ops::Context& ctx, const Block& blk);
  // Phase 2 for columns [col0, col0 + scan_cols_) of pair `item`'s states.
  void scan(ops::Context& ctx, int64_t item, int64_t col0, const chunked::Slab& slab);
  void inter_block(ops::Context& ctx, const Block& blk);
  // G_c of pair `item`'s chunks: [slab_chunks, dh, dh].
  float* g_states(int64_t item) { return g_states_.data() + item * slab_chunks_ * dh_ * dh_; }

  bool learned_beta_;
  float constant_beta_;
  ParamStore::LinearRef beta_proj_{};
  std::map<int64_t, BlockOps> block_ops_;  // by block size
  std::map<std::pair<int64_t, int64_t>, MatMul> beta_ops_;  // by (prefill length, slab rows) (learned beta)
  MatMul chunk_state_;                     // M_{c+1}[:, J] = H_c[:, J] - G_c M_c[:, J]  (J: scan_cols_ columns, one thread)
  int64_t scan_cols_ = 1;                  // columns of M per scan item (a divisor of dh)
  std::vector<Workspace> ws_;
  Tensor g_states_;   // [b*h, slab_chunks, dh, dh]: G_c (g_states())
  Tensor beta_;       // [b, slab_rows, h]
  Tensor state_;      // decode state M [b*h, dh, dh]
  Tensor beta1_;      // [b, h]
  Tensor u1_;         // [b*h, dh]: v_t - M^T k_t
  MatMul beta1_op_;
};

DeltaNet::BlockOps DeltaNet::make_block_ops(ops::Context& ctx, int64_t count) const {
  const int64_t C = chunk_, dh = dh_;
  const MatLayout qc = head_chunks(count), kt = head_chunks_t(count);
  const MatLayout cc = MatLayout::batched(count, C, C), cd = MatLayout::batched(count, C, dh), dd = MatLayout::batched(count, dh, dh);
  ops::SingleThreadOps single(ctx);  // run inside for_each_block
  BlockOps bo;
  bo.kkt = MatMul(ctx, {qc, kt, cc, false, 1.f, {}});
  bo.w = MatMul(ctx, {cc, qc, cd, false, 1.f, {}});
  bo.u = MatMul(ctx, {cc, qc, cd, false, 1.f, {}});
  bo.scores = MatMul(ctx, {qc, kt, cc, false, 1.f, {}});
  bo.mask = make_mask_op(ctx, count);
  bo.q_tilde = MatMul(ctx, {cc, cd, qc, false, -1.f, {PostOp::accumulate()}});  // Q += -(A W)
  bo.h = MatMul(ctx, {kt, cd, dd, false, 1.f, {}});
  bo.g = MatMul(ctx, {kt, cd, dd, false, 1.f, {}});
  bo.intra = MatMul(ctx, {cc, cd, qc, false, 1.f, {}});
  bo.inter = MatMul(ctx, {qc, dd, qc, false, 1.f, {PostOp::accumulate()}});
  return bo;
}

void DeltaNet::prepare_core(ops::Context& ctx, const RunShape& shape) {
  const int64_t b = batch_, bh = batch_ * heads_, dh = dh_, C = chunk_, blk = block_chunks_;
  for (int64_t count : block_sizes(shape)) block_ops_.emplace(count, make_block_ops(ctx, count));
  if (learned_beta_)
    for (const auto& [n, rows] : slab_shapes(shape)) {
      // A slab's beta [b, rows, h] = sigmoid(x W_beta + b_beta): x rows of [b, n, d], into the [b, slab_rows, h] buffer.
      const MatLayout x = MatLayout::dense(rows, d_).with_batch(b, n * d_);
      const MatLayout out = MatLayout::dense(rows, heads_).with_batch(b, slab_rows_ * heads_);
      beta_ops_.emplace(std::make_pair(n, rows),
                        MatMul(ctx, {x, MatLayout::dense(d_, heads_), out, true, 1.f, {PostOp::eltwise_op(ops::Eltwise::kSigmoid)}}));
    }
  // Scan items: (pair, block of columns), halving the blocks down to 16 columns while there are
  // fewer than about two items per thread.
  int64_t blocks = 1;
  while (bh * blocks < 2 * ctx.threads() && dh % (2 * blocks) == 0 && dh / (2 * blocks) >= 16) blocks *= 2;
  scan_cols_ = dh / blocks;
  {
    // M_{c+1}[:, J] = -(G_c M_c[:, J]) + M_{c+1}[:, J] (holding H_c); M_c[:, J] is added by hand
    // (a binary post-op over a strided column block is not a fast path in oneDNN 2.6).
    const MatLayout cols = MatLayout::strided(dh, scan_cols_, dh);
    ops::SingleThreadOps single(ctx);  // run inside parallel_items
    chunk_state_ = MatMul(ctx, {MatLayout::dense(dh, dh), cols, cols, false, -1.f, {PostOp::accumulate()}});
  }
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    w.t = ctx.tensor(MemCategory::kActivations, {blk, C, C});
    w.scores = ctx.tensor(MemCategory::kActivations, {blk, C, C});
    w.w = ctx.tensor(MemCategory::kActivations, {blk, C, dh});
    w.u = ctx.tensor(MemCategory::kActivations, {blk, C, dh});
  }
  g_states_ = ctx.tensor(MemCategory::kActivations, {bh, slab_chunks_, dh, dh});
  beta_ = ctx.tensor(MemCategory::kActivations, {b, slab_rows_, heads_});
  if (!learned_beta_) std::fill(beta_.data(), beta_.data() + beta_.size(), constant_beta_);
  state_ = ctx.tensor(MemCategory::kState, {bh, dh, dh});
  if (shape.capacity > 0) {
    beta1_ = ctx.tensor(MemCategory::kActivations, {b, heads_});
    if (!learned_beta_) std::fill(beta1_.data(), beta1_.data() + beta1_.size(), constant_beta_);
    u1_ = ctx.tensor(MemCategory::kActivations, {bh, dh});
    if (learned_beta_)
      beta1_op_ = MatMul(ctx, {MatLayout::dense(b, d_), MatLayout::dense(d_, heads_), MatLayout::dense(b, heads_), true, 1.f,
                               {PostOp::eltwise_op(ops::Eltwise::kSigmoid)}},
                         beta_proj_.weight->data());
  }
}

void DeltaNet::release_core() {
  block_ops_.clear();
  beta_ops_.clear();
  chunk_state_ = MatMul();
  beta1_op_ = MatMul();
  ws_.clear();
  for (Tensor* t : {&beta_, &g_states_, &state_, &beta1_, &u1_}) t->reset();
}

// Phase 1: everything of the block's chunks that does not need the state before them.
void DeltaNet::intra_block(ops::Context& ctx, const Block& blk) {
  const int64_t C = chunk_, dd = dh_ * dh_, count = blk.chunks;
  const BlockOps& bo = block_ops_.at(count);
  Workspace& w = ws_[blk.thread];
  const auto [q, k, v, o] = head_rows(blk);  // q becomes Q~ below
  const float* beta = beta_.data() + (blk.seq * slab_rows_ + blk.first_chunk * C) * heads_ + blk.head;  // stride h

  // L2-normalise this head's q and k rows (valid rows only: padding rows stay zero).
  ops::l2_normalize_rows(q, blk.rows, dh_, d_);
  ops::l2_normalize_rows(k, blk.rows, dh_, d_);
  bo.kkt.run(ctx, k, k, w.t.data());
  for (int64_t c = 0; c < count; ++c) ops::ut_transform(w.t.data() + c * C * C, beta + c * C * heads_, heads_, C);
  ctx.count_flops(2.0 * static_cast<double>(count) * ops::ut_transform_macs(C));
  bo.w.run(ctx, w.t.data(), k, w.w.data());
  bo.u.run(ctx, w.t.data(), v, w.u.data());
  bo.scores.run(ctx, q, k, w.scores.data());
  bo.mask.run(ctx, w.scores.data(), causal_mask_.data(), w.scores.data());
  bo.q_tilde.run(ctx, w.scores.data(), w.w.data(), q);
  bo.h.run(ctx, k, w.u.data(), chunk_states(blk.item) + (blk.first_chunk + 1) * dd);
  bo.g.run(ctx, k, w.w.data(), g_states(blk.item) + blk.first_chunk * dd);
  bo.intra.run(ctx, w.scores.data(), w.u.data(), o);
}

// Phase 2 for columns [col0, col0 + scan_cols_): M_{c+1} = M_c - G_c M_c + H_c over the slab's
// chunks (slot c+1 holds H_c until then), from the pair's running state.
void DeltaNet::scan(ops::Context& ctx, int64_t item, int64_t col0, const chunked::Slab& slab) {
  const int64_t dh = dh_, dd = dh_ * dh_, w = scan_cols_;
  float* slots = chunk_states(item) + col0;
  const float* G = g_states(item);
  float* M = state_.data() + item * dd + col0;  // the pair's running state (the decode state at the end)
  for (int64_t r = 0; r < dh; ++r)
    for (int64_t j = 0; j < w; ++j) slots[r * dh + j] = slab.chunk0 == 0 ? 0.0f : M[r * dh + j];
  for (int64_t c = 0; c < slab.chunks; ++c) {
    const float* cur = slots + c * dd;
    float* next = slots + (c + 1) * dd;
    chunk_state_.run(ctx, G + c * dd, cur, next);
    for (int64_t r = 0; r < dh; ++r)
      for (int64_t j = 0; j < w; ++j) next[r * dh + j] += cur[r * dh + j];
  }
  const float* last = slots + slab.chunks * dd;
  for (int64_t r = 0; r < dh; ++r)
    for (int64_t j = 0; j < w; ++j) M[r * dh + j] = last[r * dh + j];
}

// Phase 3: O += Q~_c M_c.
void DeltaNet::inter_block(ops::Context& ctx, const Block& blk) {
  const auto [q, k, v, o] = head_rows(blk);
  block_ops_.at(blk.chunks).inter.run(ctx, q, chunk_states(blk.item) + blk.first_chunk * dh_ * dh_, o);
}

void DeltaNet::prefill_slab(ops::Context& ctx, const float* x, int64_t n, const chunked::Slab& slab) {
  if (learned_beta_) beta_ops_.at({n, slab.rows}).run(ctx, x, beta_proj_.weight->data(), beta_.data(), beta_proj_.bias->data());
  for_each_block(ctx, slab, [&](const Block& blk) { intra_block(ctx, blk); });
  const int64_t blocks = dh_ / scan_cols_;
  ops::parallel_items(ctx, batch_ * heads_ * blocks, true, [&](int64_t i) { scan(ctx, i / blocks, i % blocks * scan_cols_, slab); });
  for_each_block(ctx, slab, [&](const Block& blk) { inter_block(ctx, blk); });
}

void DeltaNet::step_core(ops::Context& ctx, const float* x) {
  if (learned_beta_) beta1_op_.run(ctx, x, beta_proj_.weight->data(), beta1_.data(), beta_proj_.bias->data());
  ops::l2_normalize_rows(q1_.data(), batch_ * heads_, dh_, dh_);
  ops::l2_normalize_rows(k1_.data(), batch_ * heads_, dh_, dh_);
  // u = v - M^T k, M += beta k u^T, o = q^T M in two passes over M (ops::delta_rule_step). Executed
  // FLOPs: the retrieval, the update and the read, 2 dh^2 each per head.
  const int64_t pairs = batch_ * heads_;
  ops::delta_rule_step(pairs, dh_, q1_.data(), k1_.data(), v1_.data(), beta1_.data(), state_.data(), u1_.data(), o1_.data());
  const double dh = static_cast<double>(dh_);
  ctx.count_flops(static_cast<double>(pairs) * 6.0 * dh * dh);
}

// Per sequence: M [h, dh, dh].
std::size_t DeltaNet::state_bytes(int64_t /*n*/) const { return sizeof(float) * static_cast<std::size_t>(heads_ * dh_ * dh_); }

std::size_t DeltaNet::estimate_bytes(const RunShape& shape, int threads) const {
  const std::size_t f = sizeof(float), b = shape.batch, bh = b * heads_, dh = dh_, C = chunk_;
  const std::size_t blk = block_chunks(shape, threads), rows = buffer_rows(shape), slab = slab_chunks(shape);
  std::size_t bytes = base_bytes(shape) + f * (b * rows * heads_ + bh * slab * dh * dh + bh * dh * dh + b * heads_ + bh * dh);
  bytes += f * threads * (2 * blk * C * C + 2 * blk * C * dh);
  return bytes;
}

double DeltaNet::prefill_flops(int64_t n) const {
  const double d = static_cast<double>(d_), h = static_cast<double>(heads_), dh = static_cast<double>(dh_);
  return 2.0 * static_cast<double>(n) * (projection_macs() + (learned_beta_ ? d * h : 0.0) + 3.0 * h * dh * dh);
}

double DeltaNet::step_flops(int64_t /*pos*/) const { return prefill_flops(1); }

}  // namespace

std::unique_ptr<Mixer> make_deltanet(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling) {
  return std::make_unique<DeltaNet>(cfg, params, prefix, tiling);
}

std::unique_ptr<Mixer> make_deltanet(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return make_deltanet(cfg, params, prefix, chunked::PrefillTiling{});
}

}  // namespace bsbr

// Linear: causal linear attention (Katharopoulos et al. 2020; SPEC §2). Per head, with the
// feature map phi(x) = elu(x) + 1 (config feature_map: elu1) or phi(x) = x (identity):
//   S_t = sum_{s<=t} phi(k_s) v_s^T   [dh, dh]      z_t = sum_{s<=t} phi(k_s)   [dh]
//   o_t = phi(q_t)^T S_t / (phi(q_t).z_t + 1e-6)    (normalize: true; else o_t = phi(q_t)^T S_t)
// State convention: S is [dk, dv] and the output is the row phi(q)^T S.
//
// Prefill, chunkwise (chunk C = linear_chunk_size), per head, for chunk c of rows Q_c, K_c, V_c
// (phi already applied to Q and K by the projections' fused post-ops):
//   states: S_{<c} = S_0 + sum_{j<c} K_j^T V_j     (one batched matmul for the K_j^T V_j of a block
//           of chunks, then a running sum over chunks: a hand loop, oneDNN has no scan)
//   output: O_c = Q_c S_{<c} + (Q_c K_c^T ⊙ Mask) V_c, Mask = causal, diagonal included
//   normaliser (normalize): den_c = Q_c z_{<c} + (Q_c K_c^T ⊙ Mask) 1 + 1e-6, with z_{<c} the same
//           running sum over z_j = K_j^T 1; then o = O / den (one broadcast divide over all heads).
// The prefill runs in slabs (ChunkedRecurrence), the states carried from slab to slab. Work
// O(n C dh + n dh^2), memory O(slab): the [C, C] score tiles exist for one block of chunks per
// worker thread. Decode: S += phi(k) v^T, z += phi(k), o = phi(q)^T S / (phi(q).z + 1e-6):
// O(dh^2) per head and token.
//
// FLOPs (multiply-add = 2) count the architecture's arithmetic, the recurrence above, as the
// oracle does -- not what the chunked prefill happens to execute (its intra-chunk products do
// more): per token, projections 4 d^2, and per head the update phi(k) v^T dh^2, the read
// phi(q)^T S dh^2 and, with normalize, phi(q).z dh:
//   prefill_flops(n) = 2 n (4 d^2 + h (2 dh^2 + [normalize] dh)),  step_flops = the same with n = 1.
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

constexpr float kDenominatorEps = 1e-6f;  // SPEC §2

// phi(x) = elu(x) + 1 as two fused eltwise post-ops; identity needs none.
std::vector<PostOp> feature_map_post_ops(FeatureMap f) {
  if (f == FeatureMap::kIdentity) return {};
  return {PostOp::eltwise_op(ops::Eltwise::kElu, 1.f), PostOp::eltwise_op(ops::Eltwise::kLinear, 1.f, 1.f)};
}

class LinearAttention : public ChunkedRecurrence {
 public:
  LinearAttention(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling)
      : ChunkedRecurrence(cfg, params, prefix, feature_map_post_ops(cfg.feature_map), tiling), normalize_(cfg.normalize) {}

  std::vector<Tensor*> overwritten_state() override { return {&state_, &z_}; }
  std::size_t state_bytes(int64_t n) const override;
  std::size_t estimate_bytes(const RunShape& shape, int threads) const override;
  double prefill_flops(int64_t n) const override;
  double step_flops(int64_t pos) const override;

 private:
  // Ops over one block of `count` chunks of one head (batch = count).
  struct BlockOps {
    MatMul kv_state;   // K_c^T V_c -> state slots 1..count        [count, dh, dh]
    MatMul z_state;    // K_c^T 1   -> normaliser slots 1..count   [count, dh, 1]
    MatMul scores;     // Q_c K_c^T                                [count, C, C]
    BinaryOp mask;     // scores ⊙ Mask
    MatMul inter;      // O_c = Q_c S_{<c}                         -> o rows
    MatMul intra;      // O_c += scores V_c
    MatMul den_inter;  // den_c = Q_c z_{<c} + eps                 -> den rows
    MatMul den_intra;  // den_c += scores 1
  };
  struct Workspace {     // per worker thread, for one block
    Tensor scores;       // [blk, C, C]
    Tensor states;       // [blk + 1, dh, dh]: slot 0 = state before the block, slot c+1 = after chunk c
    Tensor z;            // [blk + 1, dh]
  };

  void prepare_core(ops::Context& ctx, const RunShape& shape) override;
  void release_core() override;
  void prefill_slab(ops::Context& ctx, const float* x, int64_t n, const chunked::Slab& slab) override;
  void step_core(ops::Context& ctx, const float* x) override;
  BlockOps make_block_ops(ops::Context& ctx, int64_t count) const;
  void run_block(ops::Context& ctx, const Block& blk);

  bool normalize_;
  std::map<int64_t, BlockOps> block_ops_;  // by block size
  std::map<int64_t, BinaryOp> divide_;     // by slab rows: o [rows*h, dh] /= den [rows*h, 1]
  std::vector<Workspace> ws_;
  Tensor den_;            // [b, slab_rows, h]: phi(q_t).z_t + eps per head
  Tensor ones_;           // [C]
  Tensor state_, z_;      // decode state: S [b*h, dh, dh], z [b*h, dh]
  Tensor den1_;           // [b*h]
  MatMul update1_, read1_, den1_op_;
  BinaryOp z_add1_, divide1_;
};

LinearAttention::BlockOps LinearAttention::make_block_ops(ops::Context& ctx, int64_t count) const {
  const int64_t C = chunk_, dh = dh_;
  const MatLayout qc = head_chunks(count), kt = head_chunks_t(count);
  const MatLayout states = MatLayout::batched(count, dh, dh), scores = MatLayout::batched(count, C, C);
  const MatLayout ones = MatLayout::dense(C, 1);  // broadcast over the batch
  const MatLayout den = MatLayout::chunks(count, C, 1, heads_);  // one head's column of den_
  BlockOps bo;
  bo.kv_state = MatMul(ctx, {kt, qc, states, false, 1.f, {}});
  bo.scores = MatMul(ctx, {qc, kt, scores, false, 1.f, {}});
  bo.mask = make_mask_op(ctx, count);
  bo.inter = MatMul(ctx, {qc, states, qc, false, 1.f, {}});
  bo.intra = MatMul(ctx, {scores, qc, qc, false, 1.f, {PostOp::accumulate()}});
  if (normalize_) {
    bo.z_state = MatMul(ctx, {kt, ones, MatLayout::batched(count, dh, 1), false, 1.f, {}});
    bo.den_inter = MatMul(ctx, {qc, MatLayout::batched(count, dh, 1), den, false, 1.f,
                                {PostOp::eltwise_op(ops::Eltwise::kLinear, 1.f, kDenominatorEps)}});
    bo.den_intra = MatMul(ctx, {scores, ones, den, false, 1.f, {PostOp::accumulate()}});
  }
  return bo;
}

void LinearAttention::prepare_core(ops::Context& ctx, const RunShape& shape) {
  const int64_t b = batch_, bh = batch_ * heads_, dh = dh_, C = chunk_, blk = max_block(shape);
  for (int64_t count : block_sizes(shape)) block_ops_.emplace(count, make_block_ops(ctx, count));
  for (const auto& [n, rows] : slab_shapes(shape))
    if (normalize_ && !divide_.count(rows))
      divide_.emplace(rows, BinaryOp(ctx, BinaryOp::Kind::kDiv, MatLayout::dense(rows * heads_, dh), MatLayout::dense(rows * heads_, 1),
                                     MatLayout::dense(rows * heads_, dh)));
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    w.scores = ctx.tensor(MemCategory::kActivations, {blk, C, C});
    w.states = ctx.tensor(MemCategory::kActivations, {blk + 1, dh, dh});
    if (normalize_) w.z = ctx.tensor(MemCategory::kActivations, {blk + 1, dh});
  }
  state_ = ctx.tensor(MemCategory::kState, {bh, dh, dh});
  if (normalize_) {
    den_ = ctx.tensor(MemCategory::kActivations, {b, slab_rows_, heads_});
    ones_ = ctx.tensor(MemCategory::kActivations, {C});
    std::fill(ones_.data(), ones_.data() + C, 1.0f);
    z_ = ctx.tensor(MemCategory::kState, {bh, dh});
  }
  if (shape.capacity > 0) {
    const auto [row, col, states] = step_layouts();
    update1_ = MatMul(ctx, {col, row, states, false, 1.f, {PostOp::accumulate()}});  // S += phi(k) v^T
    read1_ = MatMul(ctx, {row, states, row, false, 1.f, {}});                         // o = phi(q)^T S
    if (normalize_) {
      den1_ = ctx.tensor(MemCategory::kActivations, {bh});
      z_add1_ = BinaryOp(ctx, BinaryOp::Kind::kAdd, MatLayout::dense(bh, dh), MatLayout::dense(bh, dh), MatLayout::dense(bh, dh));
      den1_op_ = MatMul(ctx, {row, col, MatLayout::batched(bh, 1, 1), false, 1.f,
                              {PostOp::eltwise_op(ops::Eltwise::kLinear, 1.f, kDenominatorEps)}});  // phi(q).z + eps
      divide1_ = BinaryOp(ctx, BinaryOp::Kind::kDiv, MatLayout::dense(bh, dh), MatLayout::dense(bh, 1), MatLayout::dense(bh, dh));
    }
  }
}

void LinearAttention::release_core() {
  block_ops_.clear();
  divide_.clear();
  ws_.clear();
  update1_ = read1_ = den1_op_ = MatMul();
  z_add1_ = divide1_ = BinaryOp();
  for (Tensor* t : {&den_, &ones_, &state_, &z_, &den1_}) t->reset();
}

void LinearAttention::run_block(ops::Context& ctx, const Block& blk) {
  const int64_t dh = dh_, dd = dh_ * dh_, count = blk.chunks;
  const BlockOps& bo = block_ops_.at(count);
  Workspace& w = ws_[blk.thread];
  const auto [q, k, v, o] = head_rows(blk);
  float* states = w.states.data();           // [count + 1, dh, dh]
  float* S = state_.data() + blk.item * dd;  // the pair's running state (the decode state at the end)
  load_running_state(states, S, dd, blk.first);
  bo.kv_state.run(ctx, k, v, states + dd);
  ops::prefix_sum_blocks(states, count + 1, dd);  // slot c = S_{<c}
  bo.scores.run(ctx, q, k, w.scores.data());
  bo.mask.run(ctx, w.scores.data(), causal_mask_.data(), w.scores.data());
  bo.inter.run(ctx, q, states, o);
  bo.intra.run(ctx, w.scores.data(), v, o);
  std::memcpy(S, states + count * dd, sizeof(float) * dd);
  if (!normalize_) return;
  float* zs = w.z.data();  // [count + 1, dh], as states
  float* z = z_.data() + blk.item * dh;
  load_running_state(zs, z, dh, blk.first);
  bo.z_state.run(ctx, k, ones_.data(), zs + dh);
  ops::prefix_sum_blocks(zs, count + 1, dh);
  float* den = den_.data() + (blk.seq * slab_rows_ + blk.first_chunk * chunk_) * heads_ + blk.head;
  bo.den_inter.run(ctx, q, zs, den);
  bo.den_intra.run(ctx, w.scores.data(), ones_.data(), den);
  std::memcpy(z, zs + count * dh, sizeof(float) * dh);
}

void LinearAttention::prefill_slab(ops::Context& ctx, const float* /*x*/, int64_t /*n*/, const chunked::Slab& slab) {
  for_each_block(ctx, slab, [&](const Block& blk) { run_block(ctx, blk); });
  if (!normalize_) return;
  const BinaryOp& divide = chunked::prepared(divide_, slab.rows, "Linear normaliser");  // o [rows, d] as [rows*h, dh], den [rows*h, 1]
  for (int64_t s = 0; s < batch_; ++s) {
    float* o = o_buf_.data() + s * slab_rows_ * d_;
    divide.run(ctx, o, den_.data() + s * slab_rows_ * heads_, o);
  }
}

void LinearAttention::step_core(ops::Context& ctx, const float* /*x*/) {
  update1_.run(ctx, k1_.data(), v1_.data(), state_.data());
  read1_.run(ctx, q1_.data(), state_.data(), o1_.data());
  if (!normalize_) return;
  z_add1_.run(ctx, z_.data(), k1_.data(), z_.data());
  den1_op_.run(ctx, q1_.data(), z_.data(), den1_.data());
  divide1_.run(ctx, o1_.data(), den1_.data(), o1_.data());
}

// Per sequence: S [h, dh, dh] and, with normalize, z [h, dh].
std::size_t LinearAttention::state_bytes(int64_t /*n*/) const {
  return sizeof(float) * static_cast<std::size_t>(heads_ * (dh_ * dh_ + (normalize_ ? dh_ : 0)));
}

std::size_t LinearAttention::estimate_bytes(const RunShape& shape, int threads) const {
  const std::size_t f = sizeof(float), b = shape.batch, bh = b * heads_, dh = dh_, C = chunk_;
  const std::size_t blk = max_block(shape), rows = buffer_rows(shape);
  std::size_t bytes = base_bytes(shape) + f * bh * dh * dh;
  bytes += f * threads * (blk * C * C + (blk + 1) * dh * dh);
  if (normalize_) bytes += f * (b * rows * heads_ + C + bh * dh + bh + threads * (blk + 1) * dh);
  return bytes;
}

double LinearAttention::prefill_flops(int64_t n) const {
  const double dh = static_cast<double>(dh_), per_head = 2.0 * dh * dh + (normalize_ ? dh : 0.0);
  return 2.0 * static_cast<double>(n) * (projection_macs() + static_cast<double>(heads_) * per_head);
}

double LinearAttention::step_flops(int64_t /*pos*/) const { return prefill_flops(1); }

}  // namespace

std::unique_ptr<Mixer> make_linear(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling) {
  return std::make_unique<LinearAttention>(cfg, params, prefix, tiling);
}

std::unique_ptr<Mixer> make_linear(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return make_linear(cfg, params, prefix, chunked::PrefillTiling{});
}

}  // namespace bsbr

// Linear: causal linear attention (Katharopoulos et al. 2020; SPEC §2). Per head, with the
// feature map phi(x) = elu(x) + 1 (config feature_map: elu1) or phi(x) = x (identity):
//   S_t = sum_{s<=t} phi(k_s) v_s^T   [dh, dh]      z_t = sum_{s<=t} phi(k_s)   [dh]
//   o_t = phi(q_t)^T S_t / (phi(q_t).z_t + 1e-6)    (normalize: true; else o_t = phi(q_t)^T S_t)
// State convention: S is [dk, dv] and the output is the row phi(q)^T S.
//
// Prefill, chunkwise (chunk C = linear_chunk_size), per head, for chunk c of rows Q_c, K_c, V_c
// (phi already applied to Q and K by the projections' fused post-ops), in the three phases of
// ChunkedRecurrence:
//   1. intra (blocks of chunks of every head in parallel): the chunk's state contribution K_c^T V_c
//      into slot c+1 (and z_c = K_c^T 1), and the intra-chunk output O_c = (Q_c K_c^T ⊙ Mask) V_c,
//      den_c = (Q_c K_c^T ⊙ Mask) 1, Mask = causal, diagonal included;
//   2. scan (per head): a running sum over the slots, so slot c = S_{<c} = S_0 + sum_{j<c} K_j^T V_j
//      (a hand loop, oneDNN has no scan; likewise z_{<c});
//   3. inter (blocks in parallel): O_c += Q_c S_{<c}; den_c += Q_c z_{<c} + 1e-6;
// then o = O / den (normalize: one broadcast divide over all heads).
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
  // Ops over one block of `count` chunks of one head (batch = count), made for one thread.
  struct BlockOps {
    MatMul kv_state;   // K_c^T V_c -> state slots                 [count, dh, dh]
    MatMul z_state;    // K_c^T 1   -> normaliser slots            [count, dh, 1]
    MatMul scores;     // Q_c K_c^T                                [count, C, C]
    BinaryOp mask;     // scores ⊙ Mask
    MatMul intra;      // O_c = scores V_c                         -> o rows
    MatMul inter;      // O_c += Q_c S_{<c}
    MatMul den_intra;  // den_c = scores 1                         -> den rows
    MatMul den_inter;  // den_c += Q_c z_{<c} + eps
  };
  struct Workspace {     // per worker thread, for one block
    Tensor scores;       // [blk, C, C]
  };

  void prepare_core(ops::Context& ctx, const RunShape& shape) override;
  void release_core() override;
  void prefill_slab(ops::Context& ctx, const float* x, int64_t n, const chunked::Slab& slab) override;
  void step_core(ops::Context& ctx, const float* x) override;
  BlockOps make_block_ops(ops::Context& ctx, int64_t count) const;
  void intra_block(ops::Context& ctx, const Block& blk);
  void scan(int64_t item, const chunked::Slab& slab);
  void inter_block(ops::Context& ctx, const Block& blk);
  float* z_states(int64_t item) { return z_states_.data() + item * (slab_chunks_ + 1) * dh_; }
  // The block's first row of its head's column of den_ ([b, slab_rows, h]).
  float* den_row(const Block& blk) { return den_.data() + (blk.seq * slab_rows_ + blk.first_chunk * chunk_) * heads_ + blk.head; }

  bool normalize_;
  std::map<int64_t, BlockOps> block_ops_;  // by block size
  std::map<int64_t, BinaryOp> divide_;     // by slab rows: o [rows*h, dh] /= den [rows*h, 1]
  std::vector<Workspace> ws_;
  Tensor den_;            // [b, slab_rows, h]: phi(q_t).z_t + eps per head
  Tensor z_states_;       // [b*h, slab_chunks + 1, dh]: normaliser slots, as chunk_states()
  Tensor ones_;           // [C]
  Tensor state_, z_;      // decode state: S [b*h, dh, dh], z [b*h, dh]
};

LinearAttention::BlockOps LinearAttention::make_block_ops(ops::Context& ctx, int64_t count) const {
  const int64_t C = chunk_, dh = dh_;
  const MatLayout qc = head_chunks(count), kt = head_chunks_t(count);
  const MatLayout states = MatLayout::batched(count, dh, dh), scores = MatLayout::batched(count, C, C);
  const MatLayout ones = MatLayout::dense(C, 1);  // broadcast over the batch
  const MatLayout den = MatLayout::chunks(count, C, 1, heads_);  // one head's column of den_
  ops::SingleThreadOps single(ctx);  // run inside for_each_block
  BlockOps bo;
  bo.kv_state = MatMul(ctx, {kt, qc, states, false, 1.f, {}});
  bo.scores = MatMul(ctx, {qc, kt, scores, false, 1.f, {}});
  bo.mask = make_mask_op(ctx, count);
  bo.intra = MatMul(ctx, {scores, qc, qc, false, 1.f, {}});
  bo.inter = MatMul(ctx, {qc, states, qc, false, 1.f, {PostOp::accumulate()}});
  if (normalize_) {
    bo.z_state = MatMul(ctx, {kt, ones, MatLayout::batched(count, dh, 1), false, 1.f, {}});
    bo.den_intra = MatMul(ctx, {scores, ones, den, false, 1.f, {}});
    bo.den_inter = MatMul(ctx, {qc, MatLayout::batched(count, dh, 1), den, false, 1.f,
                                {PostOp::accumulate(), PostOp::eltwise_op(ops::Eltwise::kLinear, 1.f, kDenominatorEps)}});
  }
  return bo;
}

void LinearAttention::prepare_core(ops::Context& ctx, const RunShape& shape) {
  const int64_t b = batch_, bh = batch_ * heads_, dh = dh_, C = chunk_, blk = block_chunks_;
  for (int64_t count : block_sizes(shape)) block_ops_.emplace(count, make_block_ops(ctx, count));
  for (const auto& [n, rows] : slab_shapes(shape))
    if (normalize_ && !divide_.count(rows))
      divide_.emplace(rows, BinaryOp(ctx, BinaryOp::Kind::kDiv, MatLayout::dense(rows * heads_, dh), MatLayout::dense(rows * heads_, 1),
                                     MatLayout::dense(rows * heads_, dh)));
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) w.scores = ctx.tensor(MemCategory::kActivations, {blk, C, C});
  state_ = ctx.tensor(MemCategory::kState, {bh, dh, dh});
  if (normalize_) {
    den_ = ctx.tensor(MemCategory::kActivations, {b, slab_rows_, heads_});
    ones_ = ctx.tensor(MemCategory::kActivations, {C});
    std::fill(ones_.data(), ones_.data() + C, 1.0f);
    z_ = ctx.tensor(MemCategory::kState, {bh, dh});
    z_states_ = ctx.tensor(MemCategory::kActivations, {bh, slab_chunks_ + 1, dh});
  }
}

void LinearAttention::release_core() {
  block_ops_.clear();
  divide_.clear();
  ws_.clear();
  for (Tensor* t : {&den_, &z_states_, &ones_, &state_, &z_}) t->reset();
}

// Phase 1: the block's state contributions (slots first+1 .. first+count) and intra-chunk outputs.
void LinearAttention::intra_block(ops::Context& ctx, const Block& blk) {
  const int64_t dh = dh_, dd = dh_ * dh_;
  const BlockOps& bo = block_ops_.at(blk.chunks);
  float* scores = ws_[blk.thread].scores.data();
  const auto [q, k, v, o] = head_rows(blk);
  bo.kv_state.run(ctx, k, v, chunk_states(blk.item) + (blk.first_chunk + 1) * dd);
  bo.scores.run(ctx, q, k, scores);
  bo.mask.run(ctx, scores, causal_mask_.data(), scores);
  bo.intra.run(ctx, scores, v, o);
  if (!normalize_) return;
  bo.z_state.run(ctx, k, ones_.data(), z_states(blk.item) + (blk.first_chunk + 1) * dh);
  bo.den_intra.run(ctx, scores, ones_.data(), den_row(blk));
}

// Phase 2: slot c becomes the state before chunk c; the pair's running state moves to the slab's end.
void LinearAttention::scan(int64_t item, const chunked::Slab& slab) {
  const int64_t dh = dh_, dd = dh_ * dh_;
  float* slots = chunk_states(item);
  float* S = state_.data() + item * dd;  // the pair's running state (the decode state at the end)
  load_running_state(slots, S, dd, slab.chunk0 == 0);
  ops::prefix_sum_blocks(slots, slab.chunks + 1, dd);
  std::memcpy(S, slots + slab.chunks * dd, sizeof(float) * dd);
  if (!normalize_) return;
  float* zs = z_states(item);
  float* z = z_.data() + item * dh;
  load_running_state(zs, z, dh, slab.chunk0 == 0);
  ops::prefix_sum_blocks(zs, slab.chunks + 1, dh);
  std::memcpy(z, zs + slab.chunks * dh, sizeof(float) * dh);
}

// Phase 3: each chunk's read of the state before it.
void LinearAttention::inter_block(ops::Context& ctx, const Block& blk) {
  const BlockOps& bo = block_ops_.at(blk.chunks);
  const auto [q, k, v, o] = head_rows(blk);
  bo.inter.run(ctx, q, chunk_states(blk.item) + blk.first_chunk * dh_ * dh_, o);
  if (normalize_) bo.den_inter.run(ctx, q, z_states(blk.item) + blk.first_chunk * dh_, den_row(blk));
}

void LinearAttention::prefill_slab(ops::Context& ctx, const float* /*x*/, int64_t /*n*/, const chunked::Slab& slab) {
  for_each_block(ctx, slab, [&](const Block& blk) { intra_block(ctx, blk); });
  for_each_pair(ctx, [&](int64_t item) { scan(item, slab); });
  for_each_block(ctx, slab, [&](const Block& blk) { inter_block(ctx, blk); });
  if (!normalize_) return;
  const BinaryOp& divide = chunked::prepared(divide_, slab.rows, "Linear normaliser");  // o [rows, d] as [rows*h, dh], den [rows*h, 1]
  for (int64_t s = 0; s < batch_; ++s) {
    float* o = o_buf_.data() + s * slab_rows_ * d_;
    divide.run(ctx, o, den_.data() + s * slab_rows_ * heads_, o);
  }
}

// One token: S += phi(k) v^T, o = phi(q)^T S, and with normalize z += phi(k), o /= phi(q).z + eps, in
// one pass over S (ops::linear_attention_step). Executed FLOPs: the update and the read, 2 dh^2 each
// per head, and the denominator's dot product, 2 dh.
void LinearAttention::step_core(ops::Context& ctx, const float* /*x*/) {
  const int64_t pairs = batch_ * heads_;
  ops::linear_attention_step(pairs, dh_, q1_.data(), k1_.data(), v1_.data(), state_.data(), normalize_ ? z_.data() : nullptr,
                             kDenominatorEps, o1_.data());
  const double dh = static_cast<double>(dh_);
  ctx.count_flops(static_cast<double>(pairs) * (4.0 * dh * dh + (normalize_ ? 2.0 * dh : 0.0)));
}

// Per sequence: S [h, dh, dh] and, with normalize, z [h, dh].
std::size_t LinearAttention::state_bytes(int64_t /*n*/) const {
  return sizeof(float) * static_cast<std::size_t>(heads_ * (dh_ * dh_ + (normalize_ ? dh_ : 0)));
}

std::size_t LinearAttention::estimate_bytes(const RunShape& shape, int threads) const {
  const std::size_t f = sizeof(float), b = shape.batch, bh = b * heads_, dh = dh_, C = chunk_;
  const std::size_t blk = block_chunks(shape, threads), rows = buffer_rows(shape), slots = slab_chunks(shape) + 1;
  std::size_t bytes = base_bytes(shape) + f * bh * dh * dh;
  bytes += f * threads * blk * C * C;
  if (normalize_) bytes += f * (b * rows * heads_ + bh * slots * dh + C + bh * dh);
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

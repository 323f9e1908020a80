// GAU: the study's chunked gated attention unit (SPEC §2). One head of width E = e*d:
//   Q, K, V = x.W + b  [n, E];  G = sigmoid(x.W_g + b_g)  [n, E]
//   in chunk i (positions [iB, (i+1)B)):
//     local_t = Σ_{u in [iB, t]} softmax_u(q_t.k_u / sqrt(E)) v_u
//     cross_t = q_t.S_i,  S_i = Σ_{j<i} K_j^T V_j  [E, E]  (a running prefix sum; no normaliser)
//   out = ((local + cross) ⊙ G).W_o + b_o
//
// Prefill (per sequence) runs in slabs of whole chunks (chunked.hpp): Q, K, V, G projections and
// the local attention (batched over the slab's chunks), then the prefix sum over groups of chunks
// (group_rows rows, a few chunks each). For a group of chunks [c0, c1), S = Σ_{j<c0} K_j^T V_j:
//   O_g += (Q_g.K_g^T ⊙ M).V_g                    from earlier chunks of the group: M[r, u] = 1 iff
//                                                 chunk(u) < chunk(r), else 0 ([Lg, Lg] tile)
//   O_g += Q_g.S                                  cross terms from chunks before the group
//   S += K_g^T V_g                                over the group's complete chunks (j < cur)
// which is q_t.S_i for every row without holding a state per chunk (all nc chunk states at
// n = 65,536 would be 2 GB), only one per group of the slab, and with big matmuls instead of one per
// chunk. In three phases, as the chunkwise form of linear attention runs (flash-linear-attention):
// every group's K_g^T V_g and intra term at once, one item per group (made for one thread); the
// exclusive running sum of the groups' contributions ([groups, E, E] slots; slot g becomes S before
// group g, the running S the sum after the last), split over threads by columns; every group's cross term at once. Each step of the old
// group-after-group order was a oneDNN call over all threads on a [128, 512] tile, which did not fill
// 16 cores; on one thread, or for a slab of one group, the groups still go one after another
// (groups_in_order), which reads no slots. The gate projection comes last, fused with the gating:
// sigmoid(x.W_g + b_g) ⊙ O.
//
// Decode keeps S (complete chunks) and the current chunk's K, V; at the first token of a chunk
// (pos = iB > 0) the finished chunk is folded into S: O(B E²) once per chunk, O(d E + B E + E²)
// per token.
//
// FLOPs (multiply-add = 2; SPEC §2's algorithm, counted by the oracle tests/ref/ref_gau.cpp),
// cur = (n-1)/B, P(n) = Σ_{t<n} (t mod B + 1):
//   prefill MACs  = 5 n d E              Q, K, V, G and output projections
//                 + 2 E P(n)             local scores and weighted sums
//                 + max(0, n - B) E²     q_t.S_i for tokens past chunk 0
//                 + cur B E²             K_j^T V_j of the complete chunks j < cur
//   step(pos) MACs = 5 d E + 2 E (pos mod B + 1) + [pos >= B] E² + [pos = iB > 0] B E²
// (the intra-group form above reaches the same cross terms in another order; its extra products
// are implementation overhead, not counted). Decode state after a prefill of n, per sequence:
// E² (S) + 2 (n - cur B) E (the current chunk's K and V) floats. A step at pos (r = pos mod B)
// reads 2 (r + 1) E + [pos >= B] E² of it, a boundary 2 B E + E² (the finished chunk's K, V folded
// into S; row 0 then takes pos): step_reads.
#include <algorithm>
#include <cmath>

#include "core/checked.hpp"
#include "model/arch/chunked.hpp"
#include "ops/kernels.hpp"

namespace bsbr {

namespace {

using chunked::prepared;
using ops::MatLayout;
using ops::MatMul;
using ops::PostOp;

class Gau : public Mixer {
 public:
  Gau(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling);

  void prepare(ops::Context& ctx, const RunShape& shape) override;
  void release() override;
  void prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) override;
  void step(ops::Context& ctx, const float* x, float* residual, int64_t pos) override;
  std::vector<Tensor*> overwritten_state() override { return {&prefix_state_, &current_.k_tensor(), &current_.v_tensor()}; }
  std::size_t state_bytes(int64_t n) const override;
  StepReads step_reads(int64_t pos) const override;
  std::size_t estimate_bytes(const RunShape& shape, int threads) const override;
  double prefill_flops(int64_t n) const override;
  double step_flops(int64_t pos) const override;

 private:
  // Rows of the groups that have an intra-group term (more than one chunk), over every length.
  std::set<int64_t> intra_group_rows(const std::vector<int64_t>& lengths, int64_t chunk, int64_t slab_chunks) const;
  void make_slab_ops(ops::Context& ctx, const chunked::Slab& slab, int64_t n);
  void make_decode_ops(ops::Context& ctx);
  void prefill_sequence(ops::Context& ctx, const float* x, float* residual, int64_t n, int64_t s);
  // Rows of a group's complete chunks (j < cur, the current chunk after a prefill): the rows folded into S.
  int64_t folded_rows(const chunked::Slab& group, int64_t cur) const { return (std::min(group.chunk0 + group.chunks, cur) - group.chunk0) * block_; }
  // O_g += (Q_g.K_g^T ⊙ M).V_g for the group of m rows at `offset` floats into the slab buffers,
  // through the [m, m] score tile `scores`.
  void intra_term(ops::Context& ctx, int64_t m, int64_t offset, float* scores);
  void groups_in_order(ops::Context& ctx, const chunked::Slab& slab, const chunked::Slabs& groups, int64_t cur, float* state);
  void groups_in_phases(ops::Context& ctx, const chunked::Slab& slab, const chunked::Slabs& groups, int64_t cur, float* state);
  // Slots of the running sum over a slab's groups: one per group when the team takes them in phases.
  static int64_t slot_count(int threads, int64_t slab_chunks, int64_t group_chunks) {
    const int64_t groups = chunked::chunk_count(slab_chunks, group_chunks);
    return threads > 1 && groups > 1 ? groups : 0;
  }

  int64_t d_, width_, chunk_;  // d, E, B
  float scale_;                // 1/sqrt(E)
  int64_t group_chunks_;        // chunks per group of the prefix-sum recurrence
  int64_t tiling_slab_chunks_;  // chunks per slab of the tiling (a point uses up to this many)
  ParamStore::LinearRef q_, k_, v_, gate_, o_;

  // Prepared for the current point.
  int64_t block_ = 1;  // the point's chunk size (chunked::point_chunk): B unless the point stays in chunk 0
  int64_t batch_ = 1, capacity_ = 0, slab_chunks_ = 1;
  std::set<int64_t> lengths_;
  // By slab rows: x.W + b; gated = sigmoid(x.W_g + b_g) ⊙ o; residual += gated.W_o + b_o.
  std::map<int64_t, MatMul> proj_, gate_op_, out_;
  std::map<int64_t, ops::ChunkLocalAttention> local_;  // by slab chunks
  std::map<int64_t, MatMul> cross_, intra_scores_, intra_apply_;  // by group rows
  std::map<int64_t, Tensor> intra_mask_;               // by group rows: M [m, m]
  std::map<int64_t, MatMul> fold_, fold_slot_;         // by folded rows: S += K^T V, slot = K^T V
  Tensor q_buf_, k_buf_, v_buf_, o_buf_;               // [slab rows, E]; q_buf_ takes the gated output once Q is done
  Tensor intra_;                                       // [threads, group rows, group rows]: each thread's score tile
  Tensor slots_;                                       // [slab groups, E, E]: the running sum's slots (groups_in_phases)
  // Decode state.
  Tensor prefix_state_;  // [b, E, E]: S = Σ K_j^T V_j over the complete chunks
  chunked::CurrentChunk current_;
  // Decode ops and buffers.
  MatMul q1_, k1_, v1_, gate1_, out1_, cross1_;
  // The fold S += K^T V in fold_parts_ row slabs of S, one thread each (made for one thread, run
  // through parallel_items): a decode step holds its threads (ops/team.hpp), so a product made for
  // the whole team would run on one thread there (16.8 MFLOP at the default sizes, once per chunk).
  MatMul fold1_;
  int64_t fold_parts_ = 1;
  Tensor q1_buf_, o1_buf_, gated1_buf_;  // [b, E]
};

Gau::Gau(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling)
    : d_(cfg.hidden_dim),
      width_(checked_mul(cfg.expansion_factor, cfg.hidden_dim, "GAU's width model.expansion_factor x model.hidden_dim")),
      chunk_(cfg.chunk_size),
      scale_(static_cast<float>(1.0 / std::sqrt(static_cast<double>(width_)))),
      group_chunks_(std::max<int64_t>(1, tiling.group_rows / cfg.chunk_size)),
      tiling_slab_chunks_(group_chunks_ * std::max<int64_t>(1, tiling.slab_rows / (group_chunks_ * cfg.chunk_size))) {
  q_ = params.add_linear(prefix + ".q_proj", d_, width_);
  k_ = params.add_linear(prefix + ".k_proj", d_, width_);
  v_ = params.add_linear(prefix + ".v_proj", d_, width_);
  gate_ = params.add_linear(prefix + ".gate_proj", d_, width_);
  o_ = params.add_linear(prefix + ".out_proj", width_, d_);
}

std::set<int64_t> Gau::intra_group_rows(const std::vector<int64_t>& lengths, int64_t chunk, int64_t slab_chunks) const {
  std::set<int64_t> rows;
  for (int64_t n : lengths)
    for (const chunked::Slab& slab : chunked::plan_slabs(n, chunk, slab_chunks))
      for (const chunked::Slab& group : chunked::plan_groups(slab, chunk, group_chunks_))
        if (group.chunks > 1) rows.insert(group.rows);
  return rows;
}

void Gau::make_slab_ops(ops::Context& ctx, const chunked::Slab& slab, int64_t n) {
  const int64_t d = d_, E = width_, B = block_;
  const int64_t cur = chunked::current_chunk(n, B);
  if (!proj_.count(slab.rows)) {
    const MatLayout x = MatLayout::dense(slab.rows, d), y = MatLayout::dense(slab.rows, E), w = MatLayout::dense(d, E);
    proj_.emplace(slab.rows, MatMul(ctx, {x, w, y, true, 1.f, {}}));
    // The gate fused with the gating: sigmoid(x.W_g + b_g) ⊙ o (o is the binary post-op's operand).
    gate_op_.emplace(slab.rows, MatMul(ctx, {x, w, y, true, 1.f, {PostOp::eltwise_op(ops::Eltwise::kSigmoid), PostOp::mul(y)}}));
    out_.emplace(slab.rows, MatMul(ctx, {y, MatLayout::dense(E, d), x, true, 1.f, {PostOp::accumulate()}}));
  }
  if (!local_.count(slab.chunks)) local_.emplace(slab.chunks, ops::ChunkLocalAttention(ctx, {1, E, B, E, scale_}, slab.chunks));
  const MatLayout state = MatLayout::dense(E, E);
  ops::SingleThreadOps single(ctx);  // the group products run inside parallel_items, one group per item
  for (const chunked::Slab& group : chunked::plan_groups(slab, B, group_chunks_)) {
    const int64_t m = group.rows;
    const MatLayout rows = MatLayout::dense(m, E);
    if (!cross_.count(m)) cross_.emplace(m, MatMul(ctx, {rows, state, rows, false, 1.f, {PostOp::accumulate()}}));
    if (group.chunks > 1 && !intra_scores_.count(m)) {
      Tensor mask = ctx.tensor(MemCategory::kActivations, {m, m});
      for (int64_t r = 0; r < m; ++r)
        for (int64_t u = 0; u < m; ++u) mask[r * m + u] = (u / B < r / B) ? 1.0f : 0.0f;
      const MatLayout scores = MatLayout::dense(m, m);
      intra_scores_.emplace(m, MatMul(ctx, {rows, rows.transposed(), scores, false, 1.f, {PostOp::mul(scores)}}));
      intra_apply_.emplace(m, MatMul(ctx, {scores, rows, rows, false, 1.f, {PostOp::accumulate()}}));
      intra_mask_.emplace(m, std::move(mask));
    }
    const int64_t folded = folded_rows(group, cur);
    if (folded > 0 && !fold_.count(folded)) {
      const MatLayout kv = MatLayout::dense(folded, E);
      fold_.emplace(folded, MatMul(ctx, {kv.transposed(), kv, state, false, 1.f, {PostOp::accumulate()}}));
      fold_slot_.emplace(folded, MatMul(ctx, {kv.transposed(), kv, state, false, 1.f, {}}));
    }
  }
}

void Gau::make_decode_ops(ops::Context& ctx) {
  const int64_t b = batch_, d = d_, E = width_, B = block_;
  const MatLayout x1 = MatLayout::dense(b, d), y1 = MatLayout::dense(b, E), w = MatLayout::dense(d, E);
  // The projections are bound to their weights (ops::MatMul's bound_weights: packed for the hand GEMV).
  q1_ = MatMul(ctx, {x1, w, y1, true, 1.f, {}}, q_.weight->data());
  k1_ = MatMul(ctx, {x1, w, current_.row_layout(), true, 1.f, {}}, k_.weight->data());
  v1_ = MatMul(ctx, {x1, w, current_.row_layout(), true, 1.f, {}}, v_.weight->data());
  gate1_ = MatMul(ctx, {x1, w, y1, true, 1.f, {PostOp::eltwise_op(ops::Eltwise::kSigmoid), PostOp::mul(y1)}}, gate_.weight->data());
  out1_ = MatMul(ctx, {y1, MatLayout::dense(E, d), x1, true, 1.f, {PostOp::accumulate()}}, o_.weight->data());
  // Per sequence: o += q.S  ([b, 1, E] . [b, E, E]) and, at a boundary, S += K^T V ([b, E, B] . [b, B, E]).
  const MatLayout q_rows = MatLayout::dense(1, E).with_batch(b, E), states = MatLayout::batched(b, E, E);
  cross1_ = MatMul(ctx, {q_rows, states, q_rows, false, 1.f, {PostOp::accumulate()}});
  // Row slab r of S [b, E, E]: rows [r*R, (r+1)*R) = K^T's rows there = K's columns there, R = E / parts
  // (parts: the largest divisor of E up to the thread count, so every slab has one shape; one slab,
  // K^T V whole, on one thread).
  fold_parts_ = 1;
  for (int64_t p = std::min<int64_t>(ctx.threads(), E); p > 1; --p)
    if (E % p == 0) {
      fold_parts_ = p;
      break;
    }
  {
    const int64_t R = E / fold_parts_;
    const MatLayout k_cols{b, R, B, B * E, 1, E};  // [b, R, B]: columns of K ([b, B, E]), read as rows of K^T
    const MatLayout s_rows{b, R, E, E * E, E, 1};  // [b, R, E]: rows of S
    ops::SingleThreadOps single(ctx);
    fold1_ = MatMul(ctx, {k_cols, MatLayout::batched(b, B, E), s_rows, false, 1.f, {PostOp::accumulate()}});
  }
  for (Tensor* t : {&q1_buf_, &o1_buf_, &gated1_buf_}) *t = ctx.tensor(MemCategory::kActivations, {b, E});
}

void Gau::prepare(ops::Context& ctx, const RunShape& shape) {
  release();
  batch_ = shape.batch;
  capacity_ = shape.capacity;
  block_ = chunked::point_chunk(chunk_, shape);
  const int64_t b = batch_, E = width_, B = block_;
  slab_chunks_ = chunked::point_slab_chunks(tiling_slab_chunks_, shape.max_prefill(), B, group_chunks_);
  prefix_state_ = ctx.tensor(MemCategory::kState, {b, E, E});
  current_.prepare(ctx, b, B, 1, E, scale_);
  for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_}) *t = ctx.tensor(MemCategory::kActivations, {slab_chunks_ * B, E});
  const int64_t group_rows = group_chunks_ * B;
  if (group_chunks_ > 1) intra_ = ctx.tensor(MemCategory::kActivations, {ctx.threads(), group_rows, group_rows});
  if (const int64_t slots = slot_count(ctx.threads(), slab_chunks_, group_chunks_); slots > 0)
    slots_ = ctx.tensor(MemCategory::kActivations, {slots, E, E});
  lengths_.insert(shape.prefill_lengths.begin(), shape.prefill_lengths.end());
  for (int64_t n : shape.prefill_lengths)
    for (const chunked::Slab& slab : chunked::plan_slabs(n, B, slab_chunks_)) make_slab_ops(ctx, slab, n);
  if (capacity_ > 0) make_decode_ops(ctx);
}

void Gau::release() {
  for (auto* m : {&proj_, &gate_op_, &out_, &cross_, &intra_scores_, &intra_apply_, &fold_, &fold_slot_}) m->clear();
  local_.clear();
  intra_mask_.clear();
  for (MatMul* m : {&q1_, &k1_, &v1_, &gate1_, &out1_, &cross1_, &fold1_}) *m = MatMul();
  fold_parts_ = 1;
  for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_, &intra_, &slots_, &prefix_state_, &q1_buf_, &o1_buf_, &gated1_buf_}) t->reset();
  current_.release();
  lengths_.clear();
  capacity_ = 0;
}

void Gau::intra_term(ops::Context& ctx, int64_t m, int64_t offset, float* scores) {
  prepared(intra_scores_, m, "GAU intra-group scores").run(ctx, q_buf_.data() + offset, k_buf_.data() + offset, scores, nullptr,
                                                          {prepared(intra_mask_, m, "GAU mask").data()});
  prepared(intra_apply_, m, "GAU intra-group term").run(ctx, scores, v_buf_.data() + offset, o_buf_.data() + offset);
}

// One group after another (one thread, or one group): cross term from S, intra term, S += K^T V.
void Gau::groups_in_order(ops::Context& ctx, const chunked::Slab& slab, const chunked::Slabs& groups, int64_t cur, float* state) {
  const int64_t E = width_;
  for (const chunked::Slab& group : groups) {
    const int64_t m = group.rows, offset = (group.row0 - slab.row0) * E;
    if (group.chunk0 > 0) prepared(cross_, m, "GAU cross term").run(ctx, q_buf_.data() + offset, state, o_buf_.data() + offset);
    if (group.chunks > 1) intra_term(ctx, m, offset, intra_.data());
    const int64_t folded = folded_rows(group, cur);
    if (folded > 0) prepared(fold_, folded, "GAU state update").run(ctx, k_buf_.data() + offset, v_buf_.data() + offset, state);
  }
}

// The groups in three phases over the team (header): each group's K^T V into its slot and its intra
// term; the running sum over the slots (slot g becomes S before group g, state S after the last);
// each group's cross term from its slot.
void Gau::groups_in_phases(ops::Context& ctx, const chunked::Slab& slab, const chunked::Slabs& groups, int64_t cur, float* state) {
  const int64_t E = width_, count = groups.size();
  float* slots = slots_.data();  // [count, E, E]
  ops::parallel_items(ctx, count, true, [&](int64_t g) {
    const chunked::Slab group = groups[g];
    const int64_t m = group.rows, offset = (group.row0 - slab.row0) * E;
    float* slot = slots + g * E * E;
    const int64_t folded = folded_rows(group, cur);
    if (folded > 0)
      prepared(fold_slot_, folded, "GAU group state").run(ctx, k_buf_.data() + offset, v_buf_.data() + offset, slot);
    else
      std::fill(slot, slot + E * E, 0.0f);
    if (group.chunks > 1) intra_term(ctx, m, offset, intra_.data() + ctx.thread_id() * intra_.dim(1) * intra_.dim(2));  // this thread's tile
  });
  constexpr int64_t kScanColumns = 4096;  // [E, E] floats per item of the running sum
  ops::parallel_items(ctx, (E * E + kScanColumns - 1) / kScanColumns, true, [&](int64_t i) {
    const int64_t c0 = i * kScanColumns;
    ops::exclusive_prefix_sum_blocks(state + c0, slots + c0, count, std::min(kScanColumns, E * E - c0), E * E);
  });
  ops::parallel_items(ctx, count, true, [&](int64_t g) {
    const chunked::Slab group = groups[g];
    if (group.chunk0 == 0) return;  // S = 0 before chunk 0
    const int64_t m = group.rows, offset = (group.row0 - slab.row0) * E;
    prepared(cross_, m, "GAU cross term").run(ctx, q_buf_.data() + offset, slots + g * E * E, o_buf_.data() + offset);
  });
}

void Gau::prefill_sequence(ops::Context& ctx, const float* x, float* residual, int64_t n, int64_t s) {
  const int64_t d = d_, E = width_, B = block_;
  const int64_t cur = chunked::current_chunk(n, B);
  float* state = prefix_state_.data() + s * E * E;  // S [E, E], the running prefix sum
  std::fill(state, state + E * E, 0.0f);
  const chunked::Slabs slabs = chunked::plan_slabs(n, B, slab_chunks_);
  for (const chunked::Slab& slab : slabs) {
    const float* xs = x + slab.row0 * d;
    const MatMul& proj = prepared(proj_, slab.rows, "GAU projection");
    proj.run(ctx, xs, q_.weight->data(), q_buf_.data(), q_.bias->data());
    proj.run(ctx, xs, k_.weight->data(), k_buf_.data(), k_.bias->data());
    proj.run(ctx, xs, v_.weight->data(), v_buf_.data(), v_.bias->data());
    prepared(local_, slab.chunks, "GAU local attention").run(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), o_buf_.data());
    const chunked::Slabs groups = chunked::plan_groups(slab, B, group_chunks_);
    const int64_t count = groups.size();
    if (ctx.threads() == 1 || count == 1)
      groups_in_order(ctx, slab, groups, cur, state);
    else
      groups_in_phases(ctx, slab, groups, cur, state);
    // Gate and gating in one matmul, into q_buf_ (Q is no longer needed), then the output projection.
    prepared(gate_op_, slab.rows, "GAU gate").run(ctx, xs, gate_.weight->data(), q_buf_.data(), gate_.bias->data(), {o_buf_.data()});
    prepared(out_, slab.rows, "GAU output projection").run(ctx, q_buf_.data(), o_.weight->data(), residual + slab.row0 * d, o_.bias->data());
  }
  // Hand the current chunk's K, V rows (still in the last slab's buffers) to the decode state.
  const int64_t first_row = cur * B - slabs.back().row0;
  current_.load(s, k_buf_.data() + first_row * E, v_buf_.data() + first_row * E, n - cur * B);
}

void Gau::prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) {
  BSBR_CHECK(lengths_.count(n), "prefill length " + std::to_string(n) + " not prepared");
  for (int64_t s = 0; s < batch_; ++s) prefill_sequence(ctx, x + s * n * d_, residual + s * n * d_, n, s);
}

void Gau::step(ops::Context& ctx, const float* x, float* residual, int64_t pos) {
  BSBR_CHECK(q1_.valid(), "step() without decode capacity");
  BSBR_CHECK(pos < capacity_, "GAU decode: position " + std::to_string(pos) + " >= capacity " + std::to_string(capacity_));
  // At the first token of a chunk, fold the finished chunk into S before row 0 is overwritten.
  if (pos > 0 && pos % block_ == 0) {
    const int64_t R = width_ / fold_parts_;
    ops::parallel_items(ctx, fold_parts_, true, [&](int64_t r) {
      fold1_.run(ctx, current_.k() + r * R, current_.v(), prefix_state_.data() + r * R * width_);
    });
  }
  ops::MatMul::run_together(ctx, {{q1_, x, q_.weight->data(), q1_buf_.data(), q_.bias->data()},
                                  {k1_, x, k_.weight->data(), current_.k_row(pos), k_.bias->data()},
                                  {v1_, x, v_.weight->data(), current_.v_row(pos), v_.bias->data()}});
  current_.attend(ctx, q1_buf_.data(), o1_buf_.data(), pos);
  if (pos >= block_) cross1_.run(ctx, q1_buf_.data(), prefix_state_.data(), o1_buf_.data());
  gate1_.run(ctx, x, gate_.weight->data(), gated1_buf_.data(), gate_.bias->data(), {o1_buf_.data()});  // sigmoid(x.W_g + b_g) ⊙ o
  out1_.run(ctx, gated1_buf_.data(), o_.weight->data(), residual, o_.bias->data());
}

std::size_t Gau::state_bytes(int64_t n) const {
  const int64_t cur = chunked::current_chunk(n, chunk_);
  return sizeof(float) * static_cast<std::size_t>(width_ * width_ + 2 * (n - cur * chunk_) * width_);
}

StepReads Gau::step_reads(int64_t pos) const {
  const int64_t B = chunk_, r = pos % B, E = width_;
  const bool boundary = pos > 0 && r == 0;
  const int64_t floats = 2 * (boundary ? B : r + 1) * E + (pos >= B ? E * E : 0);
  return {static_cast<double>(sizeof(float)) * static_cast<double>(floats), 0.0};
}

std::size_t Gau::estimate_bytes(const RunShape& shape, int threads) const {
  const int64_t b = shape.batch, E = width_, B = chunked::point_chunk(chunk_, shape), group_rows = group_chunks_ * B;
  const int64_t slab_chunks = chunked::point_slab_chunks(tiling_slab_chunks_, shape.max_prefill(), B, group_chunks_);
  int64_t floats = b * E * E + chunked::CurrentChunk::allocated_floats(b, B, 1, E) +  // decode state
                   4 * slab_chunks * B * E + (group_chunks_ > 1 ? threads * group_rows * group_rows : 0) +  // slab buffers, intra tiles
                   slot_count(threads, slab_chunks, group_chunks_) * E * E;                                 // the running sum's slots
  for (int64_t c : chunked::slab_chunk_counts(shape.prefill_lengths, B, slab_chunks)) floats += ops::ChunkLocalAttention::workspace_floats(B, c, 1, threads);
  for (int64_t m : intra_group_rows(shape.prefill_lengths, B, slab_chunks)) floats += m * m;  // masks
  if (shape.capacity > 0) floats += 3 * b * E;
  return sizeof(float) * static_cast<std::size_t>(floats);
}

double Gau::prefill_flops(int64_t n) const {
  const double N = n, d = d_, E = width_, B = chunk_, cur = chunked::current_chunk(n, chunk_);
  const double macs = 5.0 * N * d * E + 2.0 * E * chunked::local_pairs(n, chunk_) + std::max(0.0, N - B) * E * E + cur * B * E * E;
  return 2.0 * macs;
}

double Gau::step_flops(int64_t pos) const {
  const double d = d_, E = width_, B = chunk_;
  double macs = 5.0 * d * E + 2.0 * E * static_cast<double>(pos % chunk_ + 1) + (pos >= chunk_ ? E * E : 0.0);
  if (pos > 0 && pos % chunk_ == 0) macs += B * E * E;
  return 2.0 * macs;
}

}  // namespace

std::unique_ptr<Mixer> make_gau(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling) {
  return std::make_unique<Gau>(cfg, params, prefix, tiling);
}

std::unique_ptr<Mixer> make_gau(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return make_gau(cfg, params, prefix, chunked::PrefillTiling{});
}

}  // namespace bsbr

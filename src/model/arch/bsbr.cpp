// BSBR: block sparse attention with block retrieval, causal form (SPEC §2).
//
// Per head (dh = d/h, s = 1/sqrt(dh)); chunk i covers positions [iB, (i+1)B); x = the mixer input
// (the block's LN1 output); last(j) = (j+1)B - 1:
//   local_t = Σ_{u in [iB, t]} softmax_u(s q_t.k_u) v_u                      inside chunk i
//   F_j = K_j^T V_j  [dh, dh] (row-major vec: a*dh + b) for every complete chunk j;
//     compressed (c > 0): f_j = vec(F_j).W_c + b_c  [d/c], W_c: dh² -> d/c shared by the heads
//   H_j = x_last(j).W_h + b_h (meta key),  R_i = x_last(i-1).W_r + b_r (meta query; x_last(i) would
//     leak the future)
//   p_ij = softmax_{j<i}(s R_i^h . H_j^h)   on dh-wide head slices
//   G_i = Σ_{j<i} p_ij F_j,  or compressed G_i = unvec((Σ_{j<i} p_ij f_j).W_d + b_d);  G_0 = 0
//   out_t = local_t + q_t.G_i  [1, dh].[dh, dh]; heads concatenated -> out_proj.
//
// Prefill (per sequence) runs in slabs of whole chunks (chunked.hpp). Per slab: Q, K, V [rows, d];
// local attention batched over the slab's chunks; the chunk memory rows [H_j | f_j or F_j] of its
// complete chunks (K^T V batched over chunks per head, then the compression matmul, in groups of
// 16 chunks); retrieval for its chunks i >= 1, which is causal attention of the meta queries over
// the chunk memory (query i at position i-1 sees keys j <= i-1) with values f_j (or F_j); the
// decompression matmul and q.G batched over chunks per head (groups of 16); the output projection.
// Nothing is O(n²): the chunk memory is O(n/B) rows, the retrieval scores are tiled
// (ops::CausalAttention), and slab buffers are O(slab).
//
// Decode keeps the current chunk's K, V (<= B rows), the chunk memory (H_j and f_j or F_j) of past
// chunks, the current G_i and the last mixer input. At the first token of chunk i (pos = iB > 0) it
// finishes chunk i-1 (F, f, H) and computes R_i and G_i once: O((n/B) d + (n/B) h dv) plus
// O(B d dh + d dh d/c) per chunk; every token costs O(d² + B d + d dh). A step's attention over the
// current chunk is ops::DecodeAttention (all heads at once, hand single-query kernels); R_i over the
// chunk memory is ops::CausalAttention; o += q.G is a small batched MatMul (the hand GEMV per head).
//
// FLOPs (multiply-add = 2; SPEC §2's arithmetic, which the oracle tests/ref/ref_bsbr.cpp counts),
// with cur = (n-1)/B the current chunk, P(n) = Σ_{t<n} (t mod B + 1), dv = d/c (or dh²):
//   prefill MACs = 4 n d²                                   q, k, v, out projections
//                + 2 d P(n)                                 local scores and weighted sums
//                + max(0, n - B) d dh                       q.G for tokens past chunk 0
//                + cur (B d dh + 2 d² [+ 2 d dh d/c])       per chunk i >= 1: F_{i-1}, H_{i-1}, R_i
//                                                           [compress f_{i-1}, decompress G_i]
//                + cur(cur+1)/2 (d + h dv)                  retrieval scores and weighted sums
//   step(pos) MACs = 4 d² + 2 d (pos mod B + 1) + [pos >= B] d dh
//                  + [pos = iB > 0] (B d dh + 2 d² [+ 2 d dh d/c] + i (d + h dv))
// so Σ_{t<n} step(t) = prefill(n). Decode state after a prefill of n (floats, per sequence):
//   cur (d + h dv)   chunk memory [H_j | f_j or F_j] of the complete chunks
// + 2 (n - cur B) d  the current chunk's K and V
// + d dh             the current G_i (h heads of [dh, dh])
// + d                the last mixer input (x_last(i-1) for H_{i-1} and R_i at the next boundary)
// A step reads little of it (step_reads, floats per sequence; r = pos mod B, i = pos / B):
//   2 (r + 1) d + [pos >= B] d dh          the current chunk's K, V rows up to pos; G_i
//   at a boundary (pos = iB > 0) instead   2 B d + d dh + d + i (d + h dv): the finished chunk's K, V,
//     G_i, the last input and the chunk memory rows j < i;
// and between boundaries it leaves W_h, W_r (and W_c, W_d) unread: the chunk memory and those
// weights are read once per B tokens.
#include <cmath>
#include <cstring>

#include "model/arch/attention_projections.hpp"
#include "model/arch/chunked.hpp"

namespace bsbr {

namespace {

using chunked::prepared;
using ops::MatLayout;
using ops::MatMul;
using ops::PostOp;

class Bsbr : public Mixer {
 public:
  Bsbr(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling);

  void prepare(ops::Context& ctx, const RunShape& shape) override;
  void release() override;
  void prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) override;
  void step(ops::Context& ctx, const float* x, float* residual, int64_t pos) override;
  // G, the last input and the current chunk's K, V; the chunk memory rows a replay from position n
  // writes (chunks >= the current one) are written before they are read.
  std::vector<Tensor*> overwritten_state() override { return {&retrieved_, &last_input_, &current_.k_tensor(), &current_.v_tensor()}; }
  std::size_t state_bytes(int64_t n) const override;
  StepReads step_reads(int64_t pos) const override;
  std::size_t estimate_bytes(const RunShape& shape, int threads) const override;
  double prefill_flops(int64_t n) const override;
  double step_flops(int64_t pos) const override;

  // Largest key tile of the retrieval attention (the chunk memory is padded to whole key tiles);
  // query tile of prefill retrieval.
  static constexpr int64_t kRetrievalKeyTile = 128, kRetrievalQueryTile = 64;

 private:
  bool compressed() const { return coded_dim_ > 0; }
  // MACs done once per chunk boundary, besides the retrieval over past chunks.
  double boundary_macs() const;
  // Retrieval key tile for a point with `chunks` chunks: up to kRetrievalKeyTile keys, but short
  // sequences pad their chunk memory to a multiple of 8 rows only.
  static int64_t retrieval_key_tile(int64_t chunks) { return std::min<int64_t>(kRetrievalKeyTile, (chunks + 7) / 8 * 8); }
  // Prefill retrieval: queries R (row stride d), keys H_j = memory[:, :d], values memory[:, d:].
  ops::AttentionGeometry retrieval_geometry(int64_t key_tile) const;
  // Decode retrieval: one R_i per sequence (at position i-1) over chunk memory rows j < i, read in
  // whole key tiles up to row i only (not over the whole prepared capacity).
  ops::AttentionGeometry decode_retrieval_geometry(int64_t batch, int64_t key_tile) const;
  // How `count` consecutive chunks are processed between the chunk states and the chunk memory:
  // compressed, in groups of state_group_chunks_ (F_j is only a step towards f_j, and G_i only towards
  // q.G_i, so the [chunks, h, dh²] tile stays small); uncompressed, all at once (F_j is written
  // straight into the chunk memory and G_i is the retrieval's output).
  chunked::Pieces state_groups(int64_t count) const;
  // Chunks the state tile holds for slabs of slab_chunks chunks.
  int64_t tile_chunks(int64_t slab_chunks) const { return compressed() ? std::min(slab_chunks, state_group_chunks_) : slab_chunks; }
  void make_slab_ops(ops::Context& ctx, const chunked::Slab& slab, int64_t n);
  void make_decode_ops(ops::Context& ctx);
  void prefill_sequence(ops::Context& ctx, const float* x, float* residual, int64_t n, int64_t s);
  void finish_chunk_and_retrieve(ops::Context& ctx, int64_t chunk);

  // Configuration.
  int64_t d_, heads_, dh_, chunk_, coded_dim_;  // coded_dim_ = d/c, 0 = uncompressed
  int64_t value_dim_;    // per head in the chunk memory: d/c (f_j) or dh² (F_j)
  int64_t memory_width_; // floats per chunk memory row: [H_j (d) | heads x value_dim_]
  float scale_;
  int64_t tiling_slab_chunks_;  // chunks per slab of the tiling (a point uses up to this many)
  int64_t state_group_chunks_;  // chunks per group of compression / decompression (the tiling's)
  AttentionProjections projections_;  // q_proj, k_proj, v_proj, out_proj
  ParamStore::LinearRef meta_r_, meta_h_, compress_, decompress_;

  // Prepared for the current point.
  int64_t block_ = 1;  // the point's chunk size (chunked::point_chunk): B unless the point stays in chunk 0
  int64_t batch_ = 1, capacity_ = 0, memory_rows_ = 0, key_tile_ = 1, slab_chunks_ = 1;
  std::set<int64_t> lengths_;  // prepared prefill lengths
  // Prefill ops by row / chunk count (the slabs of every prepared length).
  std::map<int64_t, AttentionProjections::Ops> proj_;  // by rows: q, k, v = x.W + b; residual += o.W_o + b_o
  std::map<int64_t, ops::ChunkLocalAttention> local_;  // by chunks
  std::map<int64_t, MatMul> meta_h_op_, meta_r_op_;    // by complete / retrieving chunks in the slab
  std::map<int64_t, MatMul> chunk_state_, compress_op_, decompress_op_, apply_retrieved_;  // by chunks in a state group
  ops::CausalAttention retrieval_;
  // Slab buffers.
  Tensor q_buf_, k_buf_, v_buf_, o_buf_;  // [slab rows, d]
  Tensor meta_query_;                     // [slab chunks, d]: R_i
  Tensor state_tile_;                     // [tile chunks, h, dh²]: F_j before compression, then G_i
  Tensor coded_retrieved_;                // compressed: [slab chunks, h, d/c]: Σ p_ij f_j
  // Decode state.
  Tensor memory_;          // [b, memory_rows, memory_width]: chunk memory rows [H_j | f_j or F_j]
  Tensor retrieved_;       // [b, h, dh²]: G of the current chunk
  Tensor last_input_;      // [b, d]: the mixer input of the latest position
  chunked::CurrentChunk current_;
  // Decode ops and buffers.
  AttentionProjections::Ops proj1_;  // rows [b, d]; k, v into the current chunk
  MatMul state1_, compress1_, meta_h1_, meta_r1_, decompress1_, apply_retrieved1_;
  ops::CausalAttention retrieval1_;
  Tensor q1_buf_, o1_buf_, meta_query1_;  // [b, d]
  Tensor state1_tile_;                    // compressed: [h, dh²]
  Tensor coded_retrieved1_;               // compressed: [b, h, d/c]
};

Bsbr::Bsbr(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling)
    : d_(cfg.hidden_dim),
      heads_(cfg.num_heads),
      dh_(cfg.head_dim()),
      chunk_(cfg.chunk_size),
      coded_dim_(cfg.compression_factor > 0 ? cfg.hidden_dim / cfg.compression_factor : 0),
      value_dim_(coded_dim_ > 0 ? coded_dim_ : dh_ * dh_),
      memory_width_(d_ + heads_ * value_dim_),
      scale_(static_cast<float>(1.0 / std::sqrt(static_cast<double>(dh_)))),
      tiling_slab_chunks_(std::max<int64_t>(1, tiling.slab_rows / cfg.chunk_size)),
      state_group_chunks_(std::max<int64_t>(1, tiling.state_group_chunks)),
      projections_(params, prefix, d_) {
  meta_r_ = params.add_linear(prefix + ".meta_r_proj", d_, d_);
  meta_h_ = params.add_linear(prefix + ".meta_h_proj", d_, d_);
  if (compressed()) {
    compress_ = params.add_linear(prefix + ".compress_proj", dh_ * dh_, coded_dim_);
    decompress_ = params.add_linear(prefix + ".decompress_proj", coded_dim_, dh_ * dh_);
  }
}

chunked::Pieces Bsbr::state_groups(int64_t count) const {
  return chunked::split(count, compressed() ? state_group_chunks_ : count);
}

ops::AttentionGeometry Bsbr::retrieval_geometry(int64_t key_tile) const {
  ops::AttentionGeometry g;
  g.heads = heads_;
  g.head_dim = dh_;
  g.value_dim = value_dim_;
  g.q_row_stride = d_;
  g.kv_row_stride = memory_width_;
  g.o_row_stride = heads_ * value_dim_;
  g.q_batch_stride = d_;
  g.kv_batch_stride = memory_rows_ * memory_width_;
  g.o_batch_stride = heads_ * value_dim_;
  g.scale = scale_;
  g.q_tile = kRetrievalQueryTile;
  g.k_tile = key_tile;
  return g;
}

ops::AttentionGeometry Bsbr::decode_retrieval_geometry(int64_t batch, int64_t key_tile) const {
  ops::AttentionGeometry g = retrieval_geometry(key_tile);
  g.batch = batch;  // one query row per sequence: R_i [b, d] -> values [b, h, value_dim]
  g.q_tile = 1;
  return g;
}

void Bsbr::make_slab_ops(ops::Context& ctx, const chunked::Slab& slab, int64_t n) {
  const int64_t d = d_, B = block_, dh = dh_, h = heads_, dd = dh_ * dh_, W = memory_width_;
  const int64_t cur = chunked::current_chunk(n, B);
  const int64_t complete = std::min(slab.chunk0 + slab.chunks, cur) - slab.chunk0;  // chunks j < cur in the slab
  const int64_t first_query = std::max<int64_t>(slab.chunk0, 1);
  const int64_t queries = slab.chunk0 + slab.chunks - first_query;                 // chunks i >= 1 in the slab
  const MatLayout w_dd = MatLayout::dense(d, d);
  if (!proj_.count(slab.rows)) proj_.emplace(slab.rows, projections_.make_ops(ctx, MatLayout::dense(slab.rows, d), MatLayout::dense(slab.rows, d)));
  if (!local_.count(slab.chunks)) {
    ops::ChunkAttentionGeometry g{h, dh, B, d, scale_};
    local_.emplace(slab.chunks, ops::ChunkLocalAttention(ctx, g, slab.chunks));
  }
  // One head's rows of `count` chunks: [count, B, dh] (batch stride B*d, row stride d).
  auto chunk_rows = [&](int64_t count) { return MatLayout::chunks(count, B, dh, d); };
  if (complete > 0 && !meta_h_op_.count(complete))  // H_j from x rows last(j) (row stride B*d) into chunk memory rows (row stride W)
    meta_h_op_.emplace(complete, MatMul(ctx, {MatLayout::strided(complete, d, B * d), w_dd, MatLayout::strided(complete, d, W), true, 1.f, {}}));
  for (auto [offset, count] : state_groups(std::max<int64_t>(complete, 0))) {
    if (chunk_state_.count(count)) continue;
    // F_j = K_j^T V_j per head: [count, dh, B] . [count, B, dh] -> state tile or chunk memory.
    MatLayout states = compressed() ? MatLayout::dense(dh, dh).with_batch(count, h * dd) : MatLayout::dense(dh, dh).with_batch(count, W);
    chunk_state_.emplace(count, MatMul(ctx, {chunk_rows(count).transposed(), chunk_rows(count), states, false, 1.f, {}}));
    if (compressed()) {
      // f_j = vec(F_j).W_c + b_c, batched over heads: [h, count, dh²] . [dh², d/c] -> memory [h, count, d/c].
      MatLayout a = MatLayout::strided(count, dd, h * dd).with_batch(h, dd);
      MatLayout c = MatLayout::strided(count, coded_dim_, W).with_batch(h, coded_dim_);
      compress_op_.emplace(count, MatMul(ctx, {a, MatLayout::dense(dd, coded_dim_), c, true, 1.f, {}}));
    }
  }
  if (queries > 0 && !meta_r_op_.count(queries))
    meta_r_op_.emplace(queries, MatMul(ctx, {MatLayout::strided(queries, d, B * d), w_dd, MatLayout::dense(queries, d), true, 1.f, {}}));
  for (auto [offset, count] : state_groups(std::max<int64_t>(queries, 0))) {
    if (apply_retrieved_.count(count)) continue;
    if (compressed())  // G_i = unvec((Σ p_ij f_j).W_d + b_d): [count*h, d/c] . [d/c, dh²]
      decompress_op_.emplace(count, MatMul(ctx, {MatLayout::dense(count * h, coded_dim_), MatLayout::dense(coded_dim_, dd),
                                                 MatLayout::dense(count * h, dd), true, 1.f, {}}));
    // o_t += q_t.G_i per head: [count, B, dh] . [count, dh, dh] (batch stride h*dh²).
    apply_retrieved_.emplace(count, MatMul(ctx, {chunk_rows(count), MatLayout::dense(dh, dh).with_batch(count, h * dd), chunk_rows(count),
                                                 false, 1.f, {PostOp::accumulate()}}));
  }
}

void Bsbr::make_decode_ops(ops::Context& ctx) {
  const int64_t b = batch_, d = d_, B = block_, dh = dh_, h = heads_, dd = dh_ * dh_;
  const MatLayout x1 = MatLayout::dense(b, d), w_dd = MatLayout::dense(d, d);
  proj1_ = projections_.make_step_ops(ctx, x1, current_.row_layout());
  // Finishing a chunk (per sequence): F = K^T V batched over heads, [h, dh, B] . [h, B, dh] -> [h, dh, dh].
  const MatLayout head_rows = MatLayout::strided(B, dh, d).with_batch(h, dh);
  state1_ = MatMul(ctx, {head_rows.transposed(), head_rows, MatLayout::batched(h, dh, dh), false, 1.f, {}});
  if (compressed()) {
    // The step's products with weights are bound to them (ops::MatMul's bound_weights), here and below.
    compress1_ = MatMul(ctx, {MatLayout::dense(h, dd), MatLayout::dense(dd, coded_dim_), MatLayout::dense(h, coded_dim_), true, 1.f, {}},
                        compress_.weight->data());
    decompress1_ = MatMul(ctx, {MatLayout::dense(b * h, coded_dim_), MatLayout::dense(coded_dim_, dd), MatLayout::dense(b * h, dd), true, 1.f, {}},
                          decompress_.weight->data());
    state1_tile_ = ctx.tensor(MemCategory::kActivations, {h, dd});
    coded_retrieved1_ = ctx.tensor(MemCategory::kActivations, {b, h, coded_dim_});
  }
  // Meta key into each sequence's chunk memory row (row stride = the memory's batch stride), meta query.
  meta_h1_ = MatMul(ctx, {x1, w_dd, MatLayout::strided(b, d, memory_rows_ * memory_width_), true, 1.f, {}}, meta_h_.weight->data());
  meta_r1_ = MatMul(ctx, {x1, w_dd, x1, true, 1.f, {}}, meta_r_.weight->data());
  retrieval1_ = ops::CausalAttention(ctx, decode_retrieval_geometry(b, key_tile_), 1);
  // o += q.G per (sequence, head): [b*h, 1, dh] . [b*h, dh, dh].
  const MatLayout q_heads = MatLayout::dense(1, dh).with_batch(b * h, dh);
  apply_retrieved1_ = MatMul(ctx, {q_heads, MatLayout::batched(b * h, dh, dh), q_heads, false, 1.f, {PostOp::accumulate()}});
  q1_buf_ = ctx.tensor(MemCategory::kActivations, {b, d});
  o1_buf_ = ctx.tensor(MemCategory::kActivations, {b, d});
  meta_query1_ = ctx.tensor(MemCategory::kActivations, {b, d});
}

void Bsbr::prepare(ops::Context& ctx, const RunShape& shape) {
  release();
  batch_ = shape.batch;
  capacity_ = shape.capacity;
  block_ = chunked::point_chunk(chunk_, shape);
  const int64_t b = batch_, d = d_, h = heads_, dd = dh_ * dh_, B = block_;
  slab_chunks_ = chunked::point_slab_chunks(tiling_slab_chunks_, shape.max_prefill(), B);
  const int64_t slab_rows = slab_chunks_ * B;
  const int64_t chunks = chunked::chunk_count(std::max(shape.max_prefill(), shape.capacity), B);
  key_tile_ = retrieval_key_tile(chunks);
  memory_rows_ = ops::CausalAttention::padded_kv_rows(chunks, key_tile_);
  memory_ = ctx.tensor(MemCategory::kState, {b, memory_rows_, memory_width_});
  retrieved_ = ctx.tensor(MemCategory::kState, {b, h, dd});
  last_input_ = ctx.tensor(MemCategory::kState, {b, d});
  current_.prepare(ctx, b, B, h, dh_, scale_);
  for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_}) *t = ctx.tensor(MemCategory::kActivations, {slab_rows, d});
  meta_query_ = ctx.tensor(MemCategory::kActivations, {slab_chunks_, d});
  state_tile_ = ctx.tensor(MemCategory::kActivations, {tile_chunks(slab_chunks_), h, dd});
  if (compressed()) coded_retrieved_ = ctx.tensor(MemCategory::kActivations, {slab_chunks_, h, coded_dim_});
  retrieval_ = ops::CausalAttention(ctx, retrieval_geometry(key_tile_), slab_chunks_);
  lengths_.insert(shape.prefill_lengths.begin(), shape.prefill_lengths.end());
  for (int64_t n : shape.prefill_lengths)
    for (const chunked::Slab& slab : chunked::plan_slabs(n, B, slab_chunks_)) make_slab_ops(ctx, slab, n);
  if (capacity_ > 0) make_decode_ops(ctx);
}

void Bsbr::release() {
  proj_.clear();
  for (auto* m : {&meta_h_op_, &chunk_state_, &compress_op_, &meta_r_op_, &decompress_op_, &apply_retrieved_}) m->clear();
  local_.clear();
  retrieval_ = ops::CausalAttention();
  retrieval1_ = ops::CausalAttention();
  proj1_ = AttentionProjections::Ops();
  for (MatMul* m : {&state1_, &compress1_, &meta_h1_, &meta_r1_, &decompress1_, &apply_retrieved1_}) *m = MatMul();
  for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_, &meta_query_, &state_tile_, &coded_retrieved_, &memory_,
                    &retrieved_, &last_input_, &q1_buf_, &o1_buf_, &meta_query1_, &state1_tile_, &coded_retrieved1_})
    t->reset();
  current_.release();
  lengths_.clear();
  capacity_ = 0;
}

void Bsbr::prefill_sequence(ops::Context& ctx, const float* x, float* residual, int64_t n, int64_t s) {
  const int64_t d = d_, B = block_, dh = dh_, h = heads_, dd = dh_ * dh_, W = memory_width_;
  const int64_t cur = chunked::current_chunk(n, B);
  float* memory = memory_.data() + s * memory_rows_ * W;  // [memory_rows, W]
  const chunked::Slabs slabs = chunked::plan_slabs(n, B, slab_chunks_);
  int64_t tile_first_chunk = 0;  // the chunk whose G_i is row 0 of the state tile
  for (const chunked::Slab& slab : slabs) {
    const float* xs = x + slab.row0 * d;
    const AttentionProjections::Ops& proj = prepared(proj_, slab.rows, "BSBR projections");
    projections_.project(ctx, proj, xs, q_buf_.data(), k_buf_.data(), v_buf_.data());
    prepared(local_, slab.chunks, "BSBR local attention").run(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), o_buf_.data());

    // Chunk memory rows of the slab's complete chunks j < cur: H_j from x_last(j), then F_j (and f_j).
    const int64_t complete = std::min(slab.chunk0 + slab.chunks, cur) - slab.chunk0;
    if (complete > 0) {
      float* rows = memory + slab.chunk0 * W;
      prepared(meta_h_op_, complete, "BSBR meta key")
          .run(ctx, x + ((slab.chunk0 + 1) * B - 1) * d, meta_h_.weight->data(), rows, meta_h_.bias->data());
      for (auto [offset, count] : state_groups(complete)) {
        const MatMul& state = prepared(chunk_state_, count, "BSBR chunk state");
        const float *k = k_buf_.data() + offset * B * d, *v = v_buf_.data() + offset * B * d;
        float* group_rows = rows + offset * W;
        for (int64_t head = 0; head < h; ++head)
          state.run(ctx, k + head * dh, v + head * dh, compressed() ? state_tile_.data() + head * dd : group_rows + d + head * dd);
        if (compressed())
          prepared(compress_op_, count, "BSBR compression").run(ctx, state_tile_.data(), compress_.weight->data(), group_rows + d, compress_.bias->data());
      }
    }

    // Retrieval for the slab's chunks i >= 1: R_i from x_last(i-1); causal attention of R_i (at
    // position i-1) over the chunk memory rows j <= i-1; G_i (decompressed); o += q.G_i.
    const int64_t first_query = std::max<int64_t>(slab.chunk0, 1);
    const int64_t queries = slab.chunk0 + slab.chunks - first_query;
    if (queries > 0) {
      prepared(meta_r_op_, queries, "BSBR meta query")
          .run(ctx, x + (first_query * B - 1) * d, meta_r_.weight->data(), meta_query_.data(), meta_r_.bias->data());
      float* values = compressed() ? coded_retrieved_.data() : state_tile_.data();  // [queries, h, value_dim]
      retrieval_.run(ctx, meta_query_.data(), memory, memory + d, values, first_query - 1, queries);
      for (auto [offset, count] : state_groups(queries)) {
        if (compressed())
          prepared(decompress_op_, count, "BSBR decompression")
              .run(ctx, coded_retrieved_.data() + offset * h * coded_dim_, decompress_.weight->data(), state_tile_.data(), decompress_.bias->data());
        tile_first_chunk = first_query + (compressed() ? offset : 0);
        const float* G = state_tile_.data() + (first_query + offset - tile_first_chunk) * h * dd;  // [count, h, dh, dh]
        const int64_t row = (first_query + offset - slab.chunk0) * B;
        const MatMul& apply = prepared(apply_retrieved_, count, "BSBR q.G");
        for (int64_t head = 0; head < h; ++head)
          apply.run(ctx, q_buf_.data() + row * d + head * dh, G + head * dd, o_buf_.data() + row * d + head * dh);
      }
    }
    projections_.output(ctx, proj, o_buf_.data(), residual + slab.row0 * d);
  }

  // Hand the decode state over: the current chunk's K, V rows and its G (both still in the last
  // slab's buffers), and the last mixer input.
  const chunked::Slab& last = slabs.back();
  const int64_t first_row = cur * B - last.row0;
  current_.load(s, k_buf_.data() + first_row * d, v_buf_.data() + first_row * d, n - cur * B);
  if (cur > 0) std::memcpy(retrieved_.data() + s * h * dd, state_tile_.data() + (cur - tile_first_chunk) * h * dd, sizeof(float) * h * dd);
  std::memcpy(last_input_.data() + s * d, x + (n - 1) * d, sizeof(float) * d);
}

void Bsbr::prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) {
  BSBR_CHECK(lengths_.count(n), "prefill length " + std::to_string(n) + " not prepared");
  for (int64_t s = 0; s < batch_; ++s) prefill_sequence(ctx, x + s * n * d_, residual + s * n * d_, n, s);
}

// At the first token of chunk i: finish chunk i-1 from the current chunk's K, V and the last input
// (F_{i-1}, f_{i-1}, H_{i-1}), then R_i and G_i.
void Bsbr::finish_chunk_and_retrieve(ops::Context& ctx, int64_t chunk) {
  const int64_t b = batch_, d = d_, B = block_, W = memory_width_;
  const int64_t done = chunk - 1;
  for (int64_t s = 0; s < b; ++s) {
    float* row = memory_.data() + (s * memory_rows_ + done) * W;
    float* states = compressed() ? state1_tile_.data() : row + d;  // [h, dh, dh]
    state1_.run(ctx, current_.k() + s * B * d, current_.v() + s * B * d, states);
    if (compressed()) compress1_.run(ctx, states, compress_.weight->data(), row + d, compress_.bias->data());
  }
  meta_h1_.run(ctx, last_input_.data(), meta_h_.weight->data(), memory_.data() + done * W, meta_h_.bias->data());
  meta_r1_.run(ctx, last_input_.data(), meta_r_.weight->data(), meta_query1_.data(), meta_r_.bias->data());
  float* values = compressed() ? coded_retrieved1_.data() : retrieved_.data();  // [b, h, value_dim]
  retrieval1_.run(ctx, meta_query1_.data(), memory_.data(), memory_.data() + d, values, chunk - 1, 1);  // R_i over H_j, j <= i-1
  if (compressed()) decompress1_.run(ctx, coded_retrieved1_.data(), decompress_.weight->data(), retrieved_.data(), decompress_.bias->data());
}

void Bsbr::step(ops::Context& ctx, const float* x, float* residual, int64_t pos) {
  BSBR_CHECK(proj1_.q.valid(), "step() without decode capacity");
  BSBR_CHECK(pos < capacity_, "BSBR decode state full: position " + std::to_string(pos) + " >= capacity " + std::to_string(capacity_));
  // The boundary reads the finished chunk's K, V before the new token overwrites row 0.
  if (pos > 0 && pos % block_ == 0) finish_chunk_and_retrieve(ctx, pos / block_);
  projections_.project(ctx, proj1_, x, q1_buf_.data(), current_.k_row(pos), current_.v_row(pos));
  current_.attend(ctx, q1_buf_.data(), o1_buf_.data(), pos);
  if (pos >= block_) apply_retrieved1_.run(ctx, q1_buf_.data(), retrieved_.data(), o1_buf_.data());  // G_0 = 0: nothing in chunk 0
  projections_.output(ctx, proj1_, o1_buf_.data(), residual);
  std::memcpy(last_input_.data(), x, sizeof(float) * batch_ * d_);
}

std::size_t Bsbr::state_bytes(int64_t n) const {
  const int64_t cur = chunked::current_chunk(n, chunk_);
  const int64_t floats = cur * memory_width_ + 2 * (n - cur * chunk_) * d_ + d_ * dh_ + d_;
  return sizeof(float) * static_cast<std::size_t>(floats);
}

StepReads Bsbr::step_reads(int64_t pos) const {
  const int64_t B = chunk_, i = pos / B, r = pos % B;
  const bool boundary = pos > 0 && r == 0;
  // The boundary reads the whole current-chunk buffer (the finished chunk; row 0 then takes pos).
  int64_t floats = 2 * (boundary ? B : r + 1) * d_ + (pos >= B ? d_ * dh_ : 0);
  if (boundary) floats += d_ + i * memory_width_;
  auto bytes = [](const ParamStore::LinearRef& w) { return static_cast<double>(sizeof(float)) * static_cast<double>(w.weight->size() + w.bias->size()); };
  double unread = 0;  // compress_, decompress_ exist only when compressed
  if (!boundary) unread = bytes(meta_r_) + bytes(meta_h_) + (compressed() ? bytes(compress_) + bytes(decompress_) : 0.0);
  return {static_cast<double>(sizeof(float)) * static_cast<double>(floats), unread};
}

std::size_t Bsbr::estimate_bytes(const RunShape& shape, int threads) const {
  const int64_t b = shape.batch, d = d_, h = heads_, dd = dh_ * dh_, B = chunked::point_chunk(chunk_, shape);
  const int64_t slab_chunks = chunked::point_slab_chunks(tiling_slab_chunks_, shape.max_prefill(), B);
  const int64_t chunks = chunked::chunk_count(std::max(shape.max_prefill(), shape.capacity), B);
  const int64_t key_tile = retrieval_key_tile(chunks), rows = ops::CausalAttention::padded_kv_rows(chunks, key_tile);
  int64_t floats = b * (rows * memory_width_ + h * dd + d) +                                  // chunk memory, G, last input
                   chunked::CurrentChunk::allocated_floats(b, B, h, dh_) +          // current chunk
                   4 * slab_chunks * B * d + slab_chunks * d +                               // Q, K, V, O; R
                   tile_chunks(slab_chunks) * h * dd + (compressed() ? slab_chunks * h * coded_dim_ : 0) +  // state tile, Σ p f
                   ops::CausalAttention::workspace_floats(retrieval_geometry(key_tile), slab_chunks, threads);
  for (int64_t c : chunked::slab_chunk_counts(shape.prefill_lengths, B, slab_chunks)) floats += ops::ChunkLocalAttention::workspace_floats(B, c, h, threads);
  if (shape.capacity > 0)
    floats += 3 * b * d + (compressed() ? h * dd + b * h * coded_dim_ : 0) +
              ops::CausalAttention::workspace_floats(decode_retrieval_geometry(b, key_tile), 1, threads);
  return sizeof(float) * static_cast<std::size_t>(floats);
}

double Bsbr::boundary_macs() const {
  // F_{i-1} for every head (B dh² each), H_{i-1} and R_i (d² each), and when compressed the
  // compression of F_{i-1} and decompression of G_i (h dh² d/c each).
  const double d = d_, dh = dh_, B = chunk_;
  return B * d * dh + 2.0 * d * d + (compressed() ? 2.0 * d * dh * coded_dim_ : 0.0);
}

double Bsbr::prefill_flops(int64_t n) const {
  const double N = n, d = d_, dh = dh_, cur = chunked::current_chunk(n, chunk_);
  const double per_past_chunk = d + heads_ * static_cast<double>(value_dim_);  // retrieval score + weighted sum, all heads
  const double macs = 4.0 * N * d * d + 2.0 * d * chunked::local_pairs(n, chunk_) + std::max(0.0, N - chunk_) * d * dh +
                      cur * boundary_macs() + cur * (cur + 1) / 2.0 * per_past_chunk;
  return 2.0 * macs;
}

double Bsbr::step_flops(int64_t pos) const {
  const double d = d_, dh = dh_;
  double macs = 4.0 * d * d + 2.0 * d * static_cast<double>(pos % chunk_ + 1) + (pos >= chunk_ ? d * dh : 0.0);
  if (pos > 0 && pos % chunk_ == 0) macs += boundary_macs() + static_cast<double>(pos / chunk_) * (d + heads_ * static_cast<double>(value_dim_));
  return 2.0 * macs;
}

}  // namespace

std::unique_ptr<Mixer> make_bsbr(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling) {
  return std::make_unique<Bsbr>(cfg, params, prefix, tiling);
}

std::unique_ptr<Mixer> make_bsbr(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return make_bsbr(cfg, params, prefix, chunked::PrefillTiling{});
}

}  // namespace bsbr

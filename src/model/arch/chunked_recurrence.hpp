// The part Linear and DeltaNet share (SPEC §2): both are linear recurrences over a per-head
// state of dh x dh, run as chunkwise-parallel prefill (chunk C = config linear_chunk_size) and
// an O(dh^2)-per-token decode step. This base owns the q/k/v/out projections, the padded
// activation buffers, the causal chunk mask and the chunk states, and walks the work in the three
// phases of flash-linear-attention's chunkwise form; an architecture supplies the per-phase math
// (prefill_slab, with intra/scan/inter parts) and the recurrence step (step_core).
//
// Prefill runs in slabs of whole chunks (chunked::plan_slabs; slab_rows of the tiling, rounded
// down to whole blocks of kChunksPerBlock chunks once it spans a block), so its activations are
// O(slab) whatever n: per slab, the q/k/v projections of the slab's rows, then
//   1. intra: every block of chunks of every (sequence, head) pair in parallel (chunks and heads
//      together, so at batch 1 with 4 heads every thread has work): the chunk-local products and
//      each chunk's contribution to the state, into the pair's chunk-state slots;
//   2. scan: per pair (in parallel over pairs; DeltaNet also over blocks of state columns), a
//      short pass over the slab's chunks turns the contributions into the state before each chunk,
//      starting from the state the previous slab left (the decode state at n after the last slab);
//   3. inter: every block in parallel again, adding each chunk's read of the state before it;
// then the output projection of the slab's rows into the residual. Blocks hold block_chunks()
// chunks: about two work items per thread, at most kChunksPerBlock (the matmuls inside a block are
// batched over its chunks and made for one thread, ops::SingleThreadOps).
//
// Layouts: prefill buffers are [b, slab_rows, d] with slab_rows = slab_chunks chunks of C rows;
// they hold one slab of every sequence. When a slab ends in a partial chunk (the last slab of a
// length that is not a multiple of C), rows slab.rows .. slab.chunks*C-1 of each sequence are
// zeroed before the chunk phase, so it reads zero keys and values (they add nothing to any
// state). Head h of a token occupies columns [h*dh, (h+1)*dh). Within a head, chunk c of the slab
// is rows [c*C, (c+1)*C): read as a batch of [C, dh] matrices with batch stride C*d
// (MatLayout::chunks), so one oneDNN call covers a whole block of chunks.
#pragma once
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "model/arch/chunked.hpp"
#include "model/mixer.hpp"
#include "ops/ops.hpp"

namespace bsbr {

class ChunkedRecurrence : public Mixer {
 public:
  void prepare(ops::Context& ctx, const RunShape& shape) final;
  void release() final;
  void prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) final;
  void step(ops::Context& ctx, const float* x, float* residual, int64_t pos) final;

  // Most chunks per block (a work item of phases 1 and 3): the per-thread chunk workspaces stay
  // a few MB (cache-resident) whatever n is, while each oneDNN call still covers a batch of chunks.
  static constexpr int64_t kChunksPerBlock = 32;

 protected:
  // qk_post_ops: fused into the q and k projections (Linear's feature map), or none. tiling:
  // its slab_rows sets the prefill slab (group_rows is GAU's and unused here).
  ChunkedRecurrence(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, std::vector<ops::PostOp> qk_post_ops,
                    const chunked::PrefillTiling& tiling);

  // Creates the architecture's ops and buffers; called at the end of prepare() (base members set).
  virtual void prepare_core(ops::Context& ctx, const RunShape& shape) = 0;
  virtual void release_core() = 0;
  // One slab of a prefill of n tokens: q_buf_, k_buf_, v_buf_ hold the projections of the slab's
  // rows of every sequence (padding rows zero); x is the mixer input's first slab row of sequence
  // 0 (rows [slab.row0, slab.row0 + slab.rows) of each sequence, batch stride n*d). Writes o_buf_
  // rows [0, slab.rows) of every sequence and carries the running state to the slab's end (the
  // decode state at n after the last slab), in the three phases above.
  virtual void prefill_slab(ops::Context& ctx, const float* x, int64_t n, const chunked::Slab& slab) = 0;
  // q1_, k1_, v1_ hold the projections of one token per sequence; x is the input [b, d].
  // Writes o1_ and advances the decode state.
  virtual void step_core(ops::Context& ctx, const float* x) = 0;

  // One block of chunks of one (sequence, head) pair, inside a slab.
  struct Block {
    int64_t seq = 0, head = 0;
    int64_t first_chunk = 0, chunks = 0;  // the slab's chunks [first_chunk, first_chunk + chunks) (slab-relative)
    int64_t rows = 0;                     // valid (unpadded) token rows in the block
    int64_t offset = 0;  // float offset of (seq, row first_chunk*C, column head*dh) in a [b, slab_rows, d] buffer
    int64_t item = 0;    // seq * heads + head: index of the pair's decode state and chunk states
    int thread = 0;      // worker thread running it (index of its workspace)
  };
  // Calls fn(block) for every block of every pair of the slab, all in parallel over the context's
  // worker threads (oneDNN single-threaded inside), in no particular order: phases 1 and 3.
  template <class Fn>
  void for_each_block(const ops::Context& ctx, const chunked::Slab& slab, Fn&& fn) const;
  // Calls fn(item) for every (sequence, head) pair, in parallel: phase 2.
  template <class Fn>
  void for_each_pair(const ops::Context& ctx, Fn&& fn) const {
    ops::parallel_items(ctx, batch_ * heads_, true, fn);
  }

  // Chunks per slab for the shape: the tiling's, but no more than its longest prefill needs.
  int64_t slab_chunks(const RunShape& shape) const;
  // Chunks per block for the shape on `threads` threads: about two blocks per thread over the
  // pairs and a slab's chunks, between 1 and kChunksPerBlock.
  int64_t block_chunks(const RunShape& shape, int threads) const;
  // The slabs of a prefill of n tokens at slab_chunks_ (prepared) chunks per slab.
  chunked::Slabs slabs(int64_t n) const { return chunked::plan_slabs(n, chunk_, slab_chunks_); }
  // The distinct block sizes (in chunks) the shape's prefills run at block_chunks_ (prepared):
  // full blocks and tails of slabs.
  std::vector<int64_t> block_sizes(const RunShape& shape) const;
  // Rows per sequence of the prefill buffers for the shape: one slab.
  int64_t buffer_rows(const RunShape& shape) const { return slab_chunks(shape) * chunk_; }
  // The distinct slab row counts of every prefill length of the shape, as (n, slab rows).
  std::set<std::pair<int64_t, int64_t>> slab_shapes(const RunShape& shape) const;

  // The block's rows of one head in the projection buffers ([rows, dh] views, row stride d).
  struct HeadRows {
    float *q, *k, *v, *o;
  };
  HeadRows head_rows(const Block& blk) {
    return {q_buf_.data() + blk.offset, k_buf_.data() + blk.offset, v_buf_.data() + blk.offset, o_buf_.data() + blk.offset};
  }
  // The chunk-state slots of pair `item`: [slab_chunks + 1, dh, dh]. Phase 1 writes chunk c's
  // contribution into slot c + 1; phase 2 makes slot c the state before chunk c (slot 0: before
  // the slab) and slot slab.chunks the state after it.
  float* chunk_states(int64_t item) { return chunk_states_.data() + item * (slab_chunks_ + 1) * dh_ * dh_; }
  // Slot 0 of a pair's slots before the scan: zero at the sequence's first slab, else the pair's
  // running state (left by the previous slab).
  static void load_running_state(float* slot0, const float* running, int64_t size, bool first);

  // One head's chunks of a [rows, d] buffer as a batch of `count` [C, dh] matrices, or transposed
  // ([dh, C], e.g. K_c^T).
  ops::MatLayout head_chunks(int64_t count) const { return ops::MatLayout::chunks(count, chunk_, dh_, d_); }
  ops::MatLayout head_chunks_t(int64_t count) const { return head_chunks(count).transposed(); }
  // scores [count, C, C] *= causal mask (1 where key s <= query t, the diagonal included),
  // as a [count, C*C] x [1, C*C] broadcast multiply.
  ops::BinaryOp make_mask_op(ops::Context& ctx, int64_t count) const;
  // Bytes the base allocates in prepare(shape) (projection buffers, chunk states, step buffers, mask).
  std::size_t base_bytes(const RunShape& shape) const;
  // Multiply-adds of the four projections for one token.
  double projection_macs() const { return 4.0 * static_cast<double>(d_) * static_cast<double>(d_); }

  int64_t d_, heads_, dh_, chunk_;
  int64_t tiling_slab_chunks_;  // chunks per slab of the tiling (a point uses up to this many)
  ParamStore::LinearRef q_, k_, v_, o_;
  // Prepared state.
  int64_t batch_ = 1, slab_chunks_ = 1, slab_rows_ = 0;  // slab_rows_ = slab_chunks_ * C
  int64_t block_chunks_ = 1;              // chunks per block (block_chunks(shape, ctx.threads()))
  Tensor q_buf_, k_buf_, v_buf_, o_buf_;  // [b, slab_rows, d]
  Tensor chunk_states_;                   // [b*h, slab_chunks + 1, dh, dh] (chunk_states())
  Tensor q1_, k1_, v1_, o1_;              // [b, d]
  Tensor causal_mask_;                    // [C, C]

 private:
  struct SlabOps {  // projections for the slabs of `rows` rows of a prefill of length n (b*rows rows)
    ops::MatMul q, k, v, out;
  };
  std::vector<ops::PostOp> qk_post_ops_;
  std::map<std::pair<int64_t, int64_t>, SlabOps> by_slab_;  // by (n, slab rows)
  ops::MatMul q1_op_, k1_op_, v1_op_, out1_op_;  // decode projections (rows = b)
};

template <class Fn>
void ChunkedRecurrence::for_each_block(const ops::Context& ctx, const chunked::Slab& slab, Fn&& fn) const {
  const int64_t per_pair = chunked::chunk_count(slab.chunks, block_chunks_);
  ops::parallel_items(ctx, batch_ * heads_ * per_pair, true, [&](int64_t i) {
    Block blk;
    blk.item = i / per_pair;
    blk.seq = blk.item / heads_;
    blk.head = blk.item % heads_;
    blk.thread = ops::Context::thread_id();
    const int64_t c0 = (i % per_pair) * block_chunks_;
    blk.first_chunk = c0;
    blk.chunks = std::min(block_chunks_, slab.chunks - c0);
    blk.rows = std::min(blk.chunks * chunk_, slab.rows - c0 * chunk_);
    blk.offset = (blk.seq * slab_rows_ + c0 * chunk_) * d_ + blk.head * dh_;
    fn(static_cast<const Block&>(blk));
  });
}

// Linear and DeltaNet with an explicit prefill tiling (the registry's make_linear / make_deltanet
// use the default tiling; results do not depend on it).
std::unique_ptr<Mixer> make_linear(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling);
std::unique_ptr<Mixer> make_deltanet(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling);

}  // namespace bsbr

// The part Linear and DeltaNet share (SPEC §2): both are linear recurrences over a per-head
// state of dh x dh, run as chunkwise-parallel prefill (chunk C = config linear_chunk_size) and
// an O(dh^2)-per-token decode step. This base owns the q/k/v/out projections, the padded
// activation buffers and the causal chunk mask, and walks the (sequence, head) pairs in
// parallel, each over its chunks in blocks; an architecture supplies the per-block math
// (prefill_core) and the recurrence step (step_core).
//
// Layouts: prefill buffers are [b, rows_cap, d] with rows_cap = the longest prefill rounded up to
// whole chunks; rows n .. padded(n)-1 of each sequence are zeroed before the chunk phase, so a
// partial last chunk reads zero keys and values (they add nothing to any state). Head h of a
// token occupies columns [h*dh, (h+1)*dh). Within a head, chunk c is rows [c*C, (c+1)*C): read
// as a batch of [C, dh] matrices with batch stride C*d (MatLayout::chunks), so one oneDNN call
// covers a whole block of chunks.
#pragma once
#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "model/mixer.hpp"
#include "ops/ops.hpp"

namespace bsbr {

class ChunkedRecurrence : public Mixer {
 public:
  void prepare(ops::Context& ctx, const RunShape& shape) final;
  void release() final;
  void prefill(ops::Context& ctx, const float* x, float* residual, int64_t n) final;
  void step(ops::Context& ctx, const float* x, float* residual, int64_t pos) final;

  // Chunks per block: a (sequence, head) pair runs its chunks in blocks of this many, so the
  // per-thread chunk workspaces stay a few MB (cache-resident) whatever n is, while each oneDNN
  // call still covers a batch of chunks.
  static constexpr int64_t kChunksPerBlock = 32;

 protected:
  // qk_post_ops: fused into the q and k projections (Linear's feature map), or none.
  ChunkedRecurrence(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, std::vector<ops::PostOp> qk_post_ops);

  // Creates the architecture's ops and buffers; called at the end of prepare() (base members set).
  virtual void prepare_core(ops::Context& ctx, const RunShape& shape) = 0;
  virtual void release_core() = 0;
  // q_buf_, k_buf_, v_buf_ hold the projections of n tokens (padding rows zero); x is the mixer
  // input [b, n, d]. Writes o_buf_ rows [0, n) of every sequence and leaves the decode state at n.
  virtual void prefill_core(ops::Context& ctx, const float* x, int64_t n) = 0;
  // q1_, k1_, v1_ hold the projections of one token per sequence; x is the input [b, d].
  // Writes o1_ and advances the decode state.
  virtual void step_core(ops::Context& ctx, const float* x) = 0;

  // One block of chunks of one (sequence, head) pair.
  struct Block {
    int64_t seq = 0, head = 0;
    int64_t first_chunk = 0, chunks = 0;  // chunks [first_chunk, first_chunk + chunks)
    int64_t rows = 0;                     // valid (unpadded) token rows in the block
    bool first = false, last = false;     // first / last block of the pair
    int64_t offset = 0;  // float offset of (seq, row first_chunk*C, column head*dh) in a [b, rows_cap, d] buffer
    int64_t item = 0;    // seq * heads + head: index of the pair's decode state
    int thread = 0;      // worker thread running it (index of its workspace)
  };
  // Calls fn(block) for every block of n tokens: pairs in parallel over the context's worker
  // threads (oneDNN then runs single-threaded inside), each pair's blocks in order, so a block may
  // carry state from the previous one.
  template <class Fn>
  void for_each_block(const ops::Context& ctx, int64_t n, Fn&& fn) const;

  int64_t chunk_count(int64_t n) const { return (n + chunk_ - 1) / chunk_; }
  // The distinct block sizes (in chunks) the shape's prefills run: full blocks and tails.
  std::vector<int64_t> block_sizes(const RunShape& shape) const;
  // Largest block size over the shape's lengths (sizes per-thread workspaces).
  int64_t max_block(const RunShape& shape) const;
  // Rows per sequence of the prefill buffers for the shape (its longest prefill in whole chunks).
  int64_t buffer_rows(const RunShape& shape) const { return chunk_count(shape.max_prefill()) * chunk_; }

  // The block's rows of one head in the projection buffers ([rows, dh] views, row stride d).
  struct HeadRows {
    float *q, *k, *v, *o;
  };
  HeadRows head_rows(const Block& blk) {
    return {q_buf_.data() + blk.offset, k_buf_.data() + blk.offset, v_buf_.data() + blk.offset, o_buf_.data() + blk.offset};
  }
  // Slot 0 of a block's chunk-state workspace: zero for a pair's first block, else the pair's
  // running state (left by the previous block).
  static void load_running_state(float* slot0, const float* running, int64_t size, bool first);

  // Decode-step views of [b, d] rows as one row per (sequence, head) pair, and of the states.
  struct StepLayouts {
    ops::MatLayout row;     // [b*h, 1, dh]
    ops::MatLayout col;     // [b*h, dh, 1]: the same memory as a column
    ops::MatLayout states;  // [b*h, dh, dh]
  };
  StepLayouts step_layouts() const;
  // One head's chunks of a [rows, d] buffer as a batch of `count` [C, dh] matrices, or transposed
  // ([dh, C], e.g. K_c^T).
  ops::MatLayout head_chunks(int64_t count) const { return ops::MatLayout::chunks(count, chunk_, dh_, d_); }
  ops::MatLayout head_chunks_t(int64_t count) const { return head_chunks(count).transposed(); }
  // scores [count, C, C] *= causal mask (1 where key s <= query t, the diagonal included),
  // as a [count, C*C] x [1, C*C] broadcast multiply.
  ops::BinaryOp make_mask_op(ops::Context& ctx, int64_t count) const;
  // Bytes the base allocates in prepare(shape) (projection buffers, step buffers, mask).
  std::size_t base_bytes(const RunShape& shape) const;
  // Multiply-adds of the four projections for one token.
  double projection_macs() const { return 4.0 * static_cast<double>(d_) * static_cast<double>(d_); }

  int64_t d_, heads_, dh_, chunk_;
  ParamStore::LinearRef q_, k_, v_, o_;
  // Prepared state.
  int64_t batch_ = 1, rows_cap_ = 0;
  Tensor q_buf_, k_buf_, v_buf_, o_buf_;  // [b, rows_cap, d]
  Tensor q1_, k1_, v1_, o1_;              // [b, d]
  Tensor causal_mask_;                    // [C, C]

 private:
  struct LengthOps {  // projections for one prefill length n (rows = b*n)
    ops::MatMul q, k, v, out;
  };
  std::vector<ops::PostOp> qk_post_ops_;
  std::map<int64_t, LengthOps> by_length_;
  ops::MatMul q1_op_, k1_op_, v1_op_, out1_op_;  // decode projections (rows = b)
};

template <class Fn>
void ChunkedRecurrence::for_each_block(const ops::Context& ctx, int64_t n, Fn&& fn) const {
  const int64_t chunks = chunk_count(n), pairs = batch_ * heads_;
#pragma omp parallel for schedule(dynamic, 1) num_threads(ctx.threads()) if (pairs > 1)
  for (int64_t item = 0; item < pairs; ++item) {
    Block blk;
    blk.seq = item / heads_;
    blk.head = item % heads_;
    blk.item = item;
    blk.thread = ops::Context::thread_id();
    for (int64_t c0 = 0; c0 < chunks; c0 += kChunksPerBlock) {
      blk.first_chunk = c0;
      blk.chunks = std::min(kChunksPerBlock, chunks - c0);
      blk.first = c0 == 0;
      blk.last = c0 + blk.chunks == chunks;
      blk.rows = std::min(blk.chunks * chunk_, n - c0 * chunk_);
      blk.offset = (blk.seq * rows_cap_ + c0 * chunk_) * d_ + blk.head * dh_;
      fn(static_cast<const Block&>(blk));
    }
  }
}

}  // namespace bsbr

// Attention ops.
//
// CausalAttention: causal multi-head softmax attention, tiled with an online softmax
// (flash-attention style), so no [n, n] score matrix is ever allocated: each worker thread holds
// one [q_tile, k_tile] (or [q_tile, k_block]) score tile. Used by Standard, Hopfield and SlidingWindow prefill and by
// their decode steps (q_count = 1), by the chunked architectures' decode over the current chunk,
// and by BSBR's chunk retrieval (values wider than the keys: value_dim).
//
// For query position t the visible keys are s in [lo(t), t], lo(t) = 0 (full causal) or
// max(0, t - window) (sliding window: up to window+1 keys). Output o_t = softmax(scale q_t.k_s) v_s.
// Work is split over (batch, head, query tile) items across worker threads, latest (most expensive)
// query tiles first; inside a worker the oneDNN matmuls run single-threaded (made for one thread).
// A call with one query tile per (batch, head) -- decode -- and fewer such pairs than threads also
// splits the visible key tiles into segments (flash-decoding): each (batch, head, segment) item
// keeps its own running max, sum and output, and the segments are merged after the parallel loop,
// so a long KV cache is read by every thread once, not by as many threads as there are heads.
// A single query per sequence (a decode step, q_tile 1) goes further: an item is (sequence, key
// segment) and walks its keys in passes of up to kDecodeSpan rows (whole blocks of kDecodeKeys),
// every head inside each pass, so the cache is read as whole rows in order (all heads of a row are
// adjacent) rather than once per head as a quarter of every row: at n = 8,192 on one thread of the
// 2-core box the per-head order read the cache at 6 GB/s, a third of what a stream of whole rows
// gets from memory there. A pass reads its key rows once, front to back, for every head's scores
// (multihead_scores), then its value rows once (multihead_weighted_sum).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "ops/ops.hpp"

namespace bsbr::ops {

struct AttentionGeometry {
  int64_t batch = 1, heads = 1, head_dim = 64;
  // Width of one value (and output) head; 0 = head_dim. Query/key head h occupies columns
  // [h*head_dim, (h+1)*head_dim) of q and k; value/output head h columns [h*value_dim, (h+1)*value_dim).
  int64_t value_dim = 0;
  // Row strides (floats) of q, k/v (one stride for both) and o.
  int64_t q_row_stride = 0, kv_row_stride = 0, o_row_stride = 0;
  // Batch strides (floats) of q, k/v and o.
  int64_t q_batch_stride = 0, kv_batch_stride = 0, o_batch_stride = 0;
  float scale = 1.0f;
  int64_t window = -1;  // -1: all earlier keys; w >= 0: keys t-w .. t
  int64_t q_tile = 128, k_tile = 128;
  // Keys per product where a query tile sees a whole span of them (no mask): a multiple of k_tile,
  // 0 = k_tile. Larger spans amortise the per-call cost and the running-max rescale of the output
  // over more keys, and give the [k, dv] product a longer inner dimension; the tiles on and near the
  // diagonal (masked) stay k_tile wide. Executed work is the same: the same key tiles, grouped.
  int64_t k_block = 0;

  // Heads side by side in row-major [rows, heads * head_dim] q, k/v and o; the caller sets the
  // batch strides, window and tiles.
  static AttentionGeometry packed_heads(int64_t batch, int64_t heads, int64_t head_dim, float scale) {
    AttentionGeometry g;
    g.batch = batch;
    g.heads = heads;
    g.head_dim = head_dim;
    g.q_row_stride = g.kv_row_stride = g.o_row_stride = heads * head_dim;
    g.scale = scale;
    return g;
  }
};

class CausalAttention {
 public:
  CausalAttention() = default;
  // max_queries: the most query rows one run() processes (sizes the tiles; decode passes 1).
  CausalAttention(Context& ctx, const AttentionGeometry& g, int64_t max_queries);

  // Rows of K/V a caller must provide for keys 0..len-1: whole key tiles are read, so the buffer
  // holds len rounded up to k_tile (padding rows must be finite; Buffers are zero-filled).
  static int64_t padded_kv_rows(int64_t len, int64_t k_tile) { return (len + k_tile - 1) / k_tile * k_tile; }

  // Queries at absolute positions [q_pos, q_pos + q_count): q and o point at the row of q_pos;
  // k and v point at position 0 and cover positions 0 .. q_pos+q_count-1 (padded as above).
  void run(Context& ctx, const float* q, const float* k, const float* v, float* o, int64_t q_pos, int64_t q_count) const;

  const AttentionGeometry& geometry() const { return g_; }
  // Floats of the per-thread workspaces and key-segment partials the op allocates (for memory estimates).
  static int64_t workspace_floats(const AttentionGeometry& g, int64_t max_queries, int threads);
  // Query tiles up to this many rows may split their keys into segments (decode shapes).
  static constexpr int64_t kSplitMaxQueries = 8;
  // Most key segments per (batch, head) pair on `threads` threads: about two items per thread.
  static int64_t max_segments(const AttentionGeometry& g, int64_t max_queries, int threads);
  // The single-query path reads keys in blocks of kDecodeKeys (the cache's padding unit there) and
  // takes up to kDecodeSpan of them (whole blocks) per pass.
  static constexpr int64_t kDecodeKeys = 32, kDecodeSpan = 256;

 private:
  struct Workspace;
  struct Tile {
    int64_t b, h, row0, rows;  // sequence, head, first query row (relative to q_pos), valid rows
  };
  // Attends a query tile over key tiles [tile_begin, tile_end) (absolute tile indices), leaving the
  // running max, sum and unnormalised output in w.m, w.l, w.o.
  void attend(Context& ctx, Workspace& w, const float* q, const float* k, const float* v, int64_t q_pos, int64_t last_pos,
              const Tile& t, int64_t tile_begin, int64_t tile_end) const;
  // The key tiles [first, last] a query tile can see.
  std::pair<int64_t, int64_t> key_tiles(int64_t q_pos, int64_t last_pos, const Tile& t) const;
  // The single-query path (see the header): one query per sequence at position pos.
  void run_single_query(Context& ctx, const float* q, const float* k, const float* v, float* o, int64_t pos) const;
  // Floats of the per-(sequence, head, segment) partials [o (dv), m, l] for `segments` segments.
  static int64_t partial_floats(const AttentionGeometry& g, int64_t q_tile, int64_t segments);

  AttentionGeometry g_;
  int64_t q_tile_ = 0;
  int64_t value_dim_ = 0;  // dv
  int64_t segments_ = 1;   // max_segments()
  mutable Tensor partials_;  // [batch * heads * segments, q_tile, dv + 2]: each segment's o, m, l
  int64_t k_block_ = 0;     // keys per unmasked span (k_tile when no spans)
  MatMul qk_;  // S[q_tile, k_tile] = scale * Q[q_tile, dh] . K^T[dh, k_tile]
  MatMul pv_;  // O[q_tile, dv] += P[q_tile, k_tile] . V[k_tile, dv]
  MatMul qk_block_, pv_block_;  // the same over k_block keys (when k_block > k_tile)
  int64_t single_segments_ = 0; // key segments per sequence of the single-query path (0: not prepared)
  struct Workspace {
    Tensor q, s, o, m, l;  // [q_tile, dh], [q_tile, score_floats] (a key block; a single-query pass's [heads, kDecodeSpan]), [q_tile, dv], [q_tile], [q_tile]
    std::vector<int64_t> lo, hi;  // visible key range per tile row
  };
  mutable std::vector<Workspace> ws_;  // one per worker thread
};

// One query per (sequence, head) attending to the first `len` rows of a fixed-capacity key/value
// buffer: decode over the current chunk (BSBR, GAU). Per sequence, every head at once with the
// single-query kernels of ops/gemv.hpp (CausalAttention's decode path), on the calling thread:
//   S[h, :len] = scale * q_h . K_h^T;  P = softmax(S[h, :len]);  o_h = P[h] . V_h
// Work is O(len). It was three oneDNN calls (batched matmul, softmax, matmul) over the whole
// capacity: 5-10 us of primitive overhead per call set on a decode step whose own work is about a
// microsecond (a chunk of 32 keys; the step profile of the 16-core host, issue 14).
struct DecodeAttentionGeometry {
  int64_t batch = 1, heads = 1, head_dim = 64;
  int64_t value_dim = 0;  // 0 = head_dim; value/output head h at columns [h*value_dim, (h+1)*value_dim)
  int64_t capacity = 1;   // key/value rows in the buffer (len <= capacity)
  int64_t q_batch_stride = 0, o_batch_stride = 0;        // q and o: one row per sequence
  int64_t kv_row_stride = 0, kv_batch_stride = 0;        // k and v (one row stride for both)
  float scale = 1.0f;
};

class DecodeAttention {
 public:
  DecodeAttention() = default;
  DecodeAttention(Context& ctx, const DecodeAttentionGeometry& g);
  // q [batch rows], k and v at key row 0, o [batch rows]; keys 0 .. len-1 are visible.
  void run(Context& ctx, const float* q, const float* k, const float* v, float* o, int64_t len) const;
  bool valid() const { return scores_.size() > 0; }
  // Floats the op allocates (the score rows, a max and a sum per head).
  static int64_t workspace_floats(const DecodeAttentionGeometry& g) { return g.batch * g.heads * g.capacity + 2 * g.heads; }

 private:
  DecodeAttentionGeometry g_;
  mutable Tensor scores_;  // [batch, heads, capacity]: a sequence's [heads, len] scores, then weights
  mutable Tensor stats_;   // [2, heads]: running max, softmax denominator
};

// Causal softmax attention inside chunks (the "local" attention of BSBR and GAU, SPEC §2): rows are
// split into chunks of `chunk` rows, and row t of chunk i attends to the keys s in [i*chunk, t].
// Work items are (head, group of G consecutive chunks), run in parallel over the context's threads
// (chunks and heads together: at batch 1 with 4 heads every thread still has work). Per item, three
// one-thread oneDNN calls batched over the group's chunks, never an [n, n] matrix:
//   S[c] = scale * Q_c . K_c^T + mask   [G, B, B]  (mask: 0 on and below the diagonal, -inf above)
//   P = softmax over each row of S;  O_c = P[c] . V_c   [G, B, head_dim]
// G (group_chunks) leaves about two items per thread and keeps a group's scores within
// kGroupScoreFloats (cache-resident). The mask is a full [G, B, B] tensor, not one [B, B] broadcast
// over chunks: oneDNN 2.6 runs a batch-broadcast binary post-op in its reference implementation
// (measured ~1000x slower).
struct ChunkAttentionGeometry {
  int64_t heads = 1, head_dim = 64;
  int64_t chunk = 32;       // B
  int64_t row_stride = 0;   // of q, k, v and o (floats); head h at columns [h*head_dim, (h+1)*head_dim)
  float scale = 1.0f;
};

class ChunkLocalAttention {
 public:
  ChunkLocalAttention() = default;
  ChunkLocalAttention(Context& ctx, const ChunkAttentionGeometry& g, int64_t chunks);
  // q, k, v, o: chunks * chunk rows each. Rows past the end of a sequence (a partial last chunk) must
  // hold finite values; their outputs are meaningless, and they never reach a valid row (causal).
  void run(Context& ctx, const float* q, const float* k, const float* v, float* o) const;
  // Chunks per work item for `chunks` chunks of `heads` heads on `threads` threads.
  static int64_t group_chunks(int64_t chunk, int64_t chunks, int64_t heads, int threads);
  // Floats this op allocates for `chunks` chunks (mask and per-thread scores of one group).
  static int64_t workspace_floats(int64_t chunk, int64_t chunks, int64_t heads, int threads) {
    return (1 + threads) * group_chunks(chunk, chunks, heads, threads) * chunk * chunk;
  }
  static constexpr int64_t kGroupScoreFloats = int64_t{1} << 14;  // 64 KiB of scores per item

 private:
  struct GroupOps {  // for a group of `count` chunks of one head
    MatMul qk;          // S = scale * Q_c . K_c^T + mask, batched over the group's chunks
    SoftmaxOp softmax;  // over the rows of S
    MatMul pv;          // O_c = P_c . V_c
  };
  GroupOps make_group_ops(Context& ctx, int64_t count) const;

  ChunkAttentionGeometry g_;
  int64_t chunks_ = 0, group_ = 1;
  GroupOps full_, tail_;              // groups of group_ chunks; the last group of chunks % group_ (if any)
  Tensor mask_;                       // [G, B, B]: 0 where s <= r, -inf above the diagonal
  mutable std::vector<Tensor> scores_;  // per worker thread: [G, B, B]
};

}  // namespace bsbr::ops

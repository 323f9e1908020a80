// Shared machinery of the chunked architectures, BSBR and GAU (SPEC §2): chunk geometry, the slab
// plan their prefill runs in, the FLOP count of attention inside chunks, the decode state of the
// current chunk, and their factories with an explicit prefill tiling (tests use small slabs).
//
// Chunk i covers positions [i*B, (i+1)*B). After a prefill of n tokens the chunk holding position
// n-1 is decode's *current* chunk: its K and V rows are kept as they are; every chunk before it is
// complete and has been folded into the architecture's chunk states.
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.hpp"
#include "model/mixer.hpp"
#include "ops/attention.hpp"

namespace bsbr::chunked {

inline int64_t chunk_count(int64_t n, int64_t chunk) { return (n + chunk - 1) / chunk; }
// Index of the chunk holding position n-1 (n >= 1): the current chunk after a prefill of n.
inline int64_t current_chunk(int64_t n, int64_t chunk) { return n > 0 ? (n - 1) / chunk : 0; }
// The chunk size a point runs with: B, or when every position the point touches (prefill lengths and
// decode capacity) lies in chunk 0, just those positions rounded up to 8 (chunk 0 is all there is,
// so results are the same, and chunk_size = 10^9 does not allocate a [B, B] score tile).
int64_t point_chunk(int64_t chunk, const RunShape& shape);
// Σ_{t<n} (t mod B + 1): the (query, key) pairs of causal attention inside chunks.
double local_pairs(int64_t n, int64_t chunk);

// Prefill processes the sequence in slabs of whole chunks, so its activations are O(slab) and stay
// in cache; what is carried from slab to slab is O(n/B) (BSBR's chunk memory) or O(1) (GAU's state).
struct PrefillTiling {
  int64_t slab_rows = 2048;  // rows per slab (rounded to whole chunks / groups)
  int64_t group_rows = 128;  // GAU: rows per step of the running chunk-state recurrence
  // BSBR (compressed): chunks per group of its chunk-state, compression, decompression and q.G
  // products (the [chunks, h, dh²] state tile). 64 chunks (a 2048-row slab of chunk 32): on the
  // 16-core host groups of 16 gave oneDNN 16-64-row products that did not spread over 16 threads
  // (BSBR prefill n = 16,384: 70.8 -> 59.3 ms with 64, interleaved A/B).
  int64_t state_group_chunks = 64;
};

// Chunks per slab for a point whose longest prefill is max_n: the tiling's slab_chunks, but no more
// than the sequence needs (rounded up to whole groups of group_chunks, a divisor of slab_chunks).
int64_t point_slab_chunks(int64_t slab_chunks, int64_t max_n, int64_t chunk, int64_t group_chunks = 1);

struct Slab {
  int64_t row0 = 0, rows = 0;      // positions [row0, row0 + rows)
  int64_t chunk0 = 0, chunks = 0;  // chunks [chunk0, chunk0 + chunks) (the last one may be partial)
};

// Plans are ranges computed on the fly, not containers: prefill walks them inside timed regions,
// where nothing may allocate.

// Pieces [offset, offset + count) of at most `size` covering [0, total), in order.
class Pieces {
 public:
  Pieces(int64_t total, int64_t size) : total_(total), size_(size) {}
  struct iterator {
    int64_t offset, total, size;
    std::pair<int64_t, int64_t> operator*() const { return {offset, std::min(size, total - offset)}; }
    iterator& operator++() {
      offset += size;
      return *this;
    }
    bool operator==(const iterator& o) const { return offset == o.offset; }
  };
  int64_t size() const { return size_ > 0 ? chunk_count(total_, size_) : 0; }
  iterator begin() const { return {0, total_, size_}; }
  iterator end() const { return {size() * size_, total_, size_}; }

 private:
  int64_t total_, size_;
};
inline Pieces split(int64_t total, int64_t size) { return Pieces(total, size); }

// The slabs of `rows` positions starting at (row0, chunk0), slab_chunks chunks each (the last one shorter).
class Slabs {
 public:
  Slabs(int64_t rows, int64_t chunk, int64_t slab_chunks, int64_t row0 = 0, int64_t chunk0 = 0)
      : rows_(rows), chunk_(chunk), slab_chunks_(slab_chunks), row0_(row0), chunk0_(chunk0) {}
  Slab operator[](int64_t i) const {
    const int64_t slab_rows = slab_chunks_ * chunk_, first = i * slab_rows, rows = std::min(slab_rows, rows_ - first);
    return {row0_ + first, rows, chunk0_ + i * slab_chunks_, chunk_count(rows, chunk_)};
  }
  struct iterator {
    const Slabs* slabs;
    int64_t i;
    Slab operator*() const { return (*slabs)[i]; }
    iterator& operator++() {
      ++i;
      return *this;
    }
    bool operator==(const iterator& o) const { return i == o.i; }
  };
  int64_t size() const { return chunk_count(rows_, slab_chunks_ * chunk_); }
  Slab back() const { return (*this)[size() - 1]; }
  iterator begin() const { return {this, 0}; }
  iterator end() const { return {this, size()}; }

 private:
  int64_t rows_, chunk_, slab_chunks_, row0_, chunk0_;
};
// The slabs of a sequence of n tokens, slab_chunks chunks each (the last one shorter).
inline Slabs plan_slabs(int64_t n, int64_t chunk, int64_t slab_chunks) { return Slabs(n, chunk, slab_chunks); }
// The groups of group_chunks chunks inside a slab (absolute rows and chunks; the last one shorter).
inline Slabs plan_groups(const Slab& slab, int64_t chunk, int64_t group_chunks) {
  return Slabs(slab.rows, chunk, group_chunks, slab.row0, slab.chunk0);
}
// The distinct chunk counts of the slabs of every length (one local-attention op each).
std::set<int64_t> slab_chunk_counts(const std::vector<int64_t>& lengths, int64_t chunk, int64_t slab_chunks);

// The op prepared for `key` (a row or chunk count); a miss means prepare() did not plan that shape.
template <class Op>
const Op& prepared(const std::map<int64_t, Op>& ops, int64_t key, const char* what) {
  auto it = ops.find(key);
  BSBR_CHECK(it != ops.end(), std::string(what) + " not prepared for count " + std::to_string(key));
  return it->second;
}

// Decode state of the current chunk: the K and V rows of the chunk being filled ([b, B, width],
// at most B rows per sequence), and causal softmax attention of a new token over them.
class CurrentChunk {
 public:
  void prepare(ops::Context& ctx, int64_t batch, int64_t chunk, int64_t heads, int64_t head_dim, float scale);
  void release();
  // Where the k / v projections of the token at position pos write: one row per sequence, [b, width]
  // with row stride B*width, starting at k_row(pos) / v_row(pos).
  ops::MatLayout row_layout() const { return ops::MatLayout::strided(batch_, width_, chunk_ * width_); }
  float* k_row(int64_t pos) { return k_.data() + (pos % chunk_) * width_; }
  float* v_row(int64_t pos) { return v_.data() + (pos % chunk_) * width_; }
  // [b, B, width]: sequence s's chunk starts at s*B*width.
  const float* k() const { return k_.data(); }
  const float* v() const { return v_.data(); }
  // The buffers themselves (Mixer::overwritten_state).
  Tensor& k_tensor() { return k_; }
  Tensor& v_tensor() { return v_; }
  // o[b, width] = per head, softmax_s(scale q.k_s) v_s over the rows s <= pos mod B of the chunk.
  void attend(ops::Context& ctx, const float* q, float* o, int64_t pos) const;
  // After a prefill: sequence s's current chunk is `rows` rows of k and v (row stride width).
  void load(int64_t s, const float* k, const float* v, int64_t rows);
  // Floats prepare() allocates (buffers and attention workspaces).
  static int64_t allocated_floats(int64_t batch, int64_t chunk, int64_t heads, int64_t head_dim);

 private:
  static ops::DecodeAttentionGeometry geometry(int64_t batch, int64_t chunk, int64_t heads, int64_t head_dim, float scale);
  int64_t batch_ = 1, chunk_ = 1, width_ = 0;
  Tensor k_, v_;  // [b, B, width]
  ops::DecodeAttention attention_;
};

}  // namespace bsbr::chunked

namespace bsbr {

// The architectures with an explicit prefill tiling (the registry's make_bsbr / make_gau /
// make_sliding_window use the default tiling; results do not depend on it).
std::unique_ptr<Mixer> make_bsbr(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling);
std::unique_ptr<Mixer> make_gau(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling);
// SlidingWindow's prefill slabs use slab_rows (rounded to whole attention tiles) of the tiling.
std::unique_ptr<Mixer> make_sliding_window(const ModelConfig& cfg, ParamStore& params, const std::string& prefix, const chunked::PrefillTiling& tiling);

}  // namespace bsbr

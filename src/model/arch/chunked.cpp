// Chunk geometry, slab plans and the current-chunk decode state shared by BSBR and GAU.
#include "model/arch/chunked.hpp"

#include <algorithm>
#include <cstring>

namespace bsbr::chunked {

int64_t point_chunk(int64_t chunk, const RunShape& shape) {
  const int64_t positions = std::max<int64_t>(1, std::max(shape.max_prefill(), shape.capacity));
  return std::min(chunk, (positions + 7) / 8 * 8);
}

double local_pairs(int64_t n, int64_t chunk) {
  // Full chunks contribute B(B+1)/2 pairs each; a partial last chunk of r rows r(r+1)/2.
  const double full = static_cast<double>(n / chunk), B = static_cast<double>(chunk), r = static_cast<double>(n % chunk);
  return full * B * (B + 1) / 2.0 + r * (r + 1) / 2.0;
}

int64_t point_slab_chunks(int64_t slab_chunks, int64_t max_n, int64_t chunk, int64_t group_chunks) {
  const int64_t needed = chunk_count(chunk_count(max_n, chunk), group_chunks) * group_chunks;
  return std::max<int64_t>(group_chunks, std::min(slab_chunks, needed));
}

std::set<int64_t> slab_chunk_counts(const std::vector<int64_t>& lengths, int64_t chunk, int64_t slab_chunks) {
  std::set<int64_t> counts;
  for (int64_t n : lengths)
    for (const Slab& s : plan_slabs(n, chunk, slab_chunks)) counts.insert(s.chunks);
  return counts;
}

ops::DecodeAttentionGeometry CurrentChunk::geometry(int64_t batch, int64_t chunk, int64_t heads, int64_t head_dim, float scale) {
  const int64_t width = heads * head_dim;
  ops::DecodeAttentionGeometry g;
  g.batch = batch;
  g.heads = heads;
  g.head_dim = head_dim;
  g.capacity = chunk;
  g.q_batch_stride = g.o_batch_stride = width;
  g.kv_row_stride = width;
  g.kv_batch_stride = chunk * width;
  g.scale = scale;
  return g;
}

void CurrentChunk::prepare(ops::Context& ctx, int64_t batch, int64_t chunk, int64_t heads, int64_t head_dim, float scale) {
  batch_ = batch;
  chunk_ = chunk;
  width_ = heads * head_dim;
  k_ = ctx.tensor(MemCategory::kState, {batch, chunk, width_});
  v_ = ctx.tensor(MemCategory::kState, {batch, chunk, width_});
  attention_ = ops::DecodeAttention(ctx, geometry(batch, chunk, heads, head_dim, scale));
}

void CurrentChunk::release() {
  k_.reset();
  v_.reset();
  attention_ = ops::DecodeAttention();
}

void CurrentChunk::attend(ops::Context& ctx, const float* q, float* o, int64_t pos) const {
  // Chunk-relative position: keys are rows 0 .. pos mod B of each sequence's chunk.
  attention_.run(ctx, q, k_.data(), v_.data(), o, pos % chunk_ + 1);
}

void CurrentChunk::load(int64_t s, const float* k, const float* v, int64_t rows) {
  BSBR_CHECK(rows >= 1 && rows <= chunk_ && s < batch_, "current chunk: bad hand-over from prefill");
  std::memcpy(k_.data() + s * chunk_ * width_, k, sizeof(float) * rows * width_);
  std::memcpy(v_.data() + s * chunk_ * width_, v, sizeof(float) * rows * width_);
}

int64_t CurrentChunk::allocated_floats(int64_t batch, int64_t chunk, int64_t heads, int64_t head_dim) {
  return 2 * batch * chunk * heads * head_dim + ops::DecodeAttention::workspace_floats(geometry(batch, chunk, heads, head_dim, 1.f));
}

}  // namespace bsbr::chunked

// Training of BSBR (SPEC §2, causal form). Per head, chunk i = positions [iB, (i+1)B), cur = (n-1)/B:
//   local_t = softmax_{u in [iB, t]}(s q_t.k_u) v_u                     (SoftmaxAttentionGrad, chunk B)
//   F_j = K_j^T V_j (j < cur);  state_j = F_j, or f_j = vec(F_j).W_c + b_c (compression, shared by heads)
//   H_j = x_last(j).W_h + b_h,  R_i = x_last(i-1).W_r + b_r   (x = the block's LN1 output)
//   p_ij = softmax_{j<i}(s R_i.H_j);  G_i = sum_j p_ij state_j  (then .W_d + b_d when compressed)
//   out_t = local_t + q_t.G_i (chunk i >= 1), heads concatenated, out_proj.
// Chunk-level Linears (meta keys and queries over the cur last rows, compression and
// decompression over cur * heads states) are LinearTrain matmuls; the chunk states and the q.G
// products are matmuls batched over the chunks; the retrieval softmax is a loop over O(n/B)
// chunks. No n x n buffer: the retrieval weights are
// recomputed in backward (a (n/B)-long row per thread).
#pragma once
#include <memory>
#include <string>

#include "train/trainable.hpp"

namespace bsbr::train {

// What the trainable BSBR mixer's prepare(batch, n) allocates (see MixerFloats).
MixerFloats bsbr_train_floats(const ModelConfig& cfg, int64_t batch, int64_t n, int threads);

std::unique_ptr<TrainableMixer> make_bsbr_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix);

}  // namespace bsbr::train

// The training skeleton (SPEC §1 with a backward pass): embedding + positions, L pre-LN blocks
// (x += Attn(LN1(x)); x += W2.GELU(W1.LN2(x) + b1) + b2), final LN, LM head, mean cross-entropy
// over next tokens. Either the study's skeleton (sinusoidal positions, exact GELU, LM head
// Linear(d, V)) or GPT-2's (SPEC §6: learned positions pos_embed.weight [P, d], tanh GELU, LM head
// tied to the embedding, logits = h.embed^T). Reads the parameters of an inference Model (same
// names, same values); see src/train/README.md for the design.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/model.hpp"
#include "ops/train_ops.hpp"
#include "train/grads.hpp"
#include "train/trainable.hpp"

namespace bsbr::train {

class TrainModel {
 public:
  // The model's SkeletonOptions pick the skeleton (study's or GPT-2's, any mix of the three
  // differences); throws UserError when its architecture has no backward yet or its FFN
  // activation is not a GELU.
  TrainModel(ops::Context& ctx, Model& model);
  TrainModel(const TrainModel&) = delete;
  TrainModel& operator=(const TrainModel&) = delete;

  // Creates every op and buffer for batch b and length n (n >= 2; with learned positions n <= the
  // table's P rows, else UserError). A step then allocates nothing.
  // recompute: activation recomputation per block (src/train/README.md): only each block's input
  // is saved; the block's forward is re-run just before its backward (the last block's is still
  // in place), in buffers the blocks share.
  void prepare(ops::Context& ctx, int64_t batch, int64_t n, bool recompute = false);
  void release();
  bool recompute() const { return recompute_; }

  // Bytes prepare(batch, n, recompute) allocates with `threads` worker threads, from the shapes
  // alone (the memory guard asks before anything exists), by MemCategory: saved activations
  // (kSaved) and the rest of the working buffers (kActivations). oneDNN's scratchpad is not
  // included (known once the primitives exist).
  struct Footprint {
    std::size_t saved = 0, working = 0;
  };
  static Footprint footprint(const ModelConfig& cfg, const std::string& arch, int64_t batch, int64_t n, bool recompute, int threads,
                             const SkeletonOptions& skeleton = {});
  // The arithmetic of one training step by SPEC's formulas (flops_model of the train workload):
  // 3 x the forward's (backward = 2 x forward for every matmul-like term), the LM head on every
  // position; recomputation and the optimiser not included.
  double step_flops_model(int64_t batch, int64_t n) const;

  // tokens [b, n]: position t predicts tokens[t + 1]. Returns the mean cross-entropy over the
  // b (n - 1) predictions; writes every parameter gradient into grads() and dL/d(input embeddings)
  // [b, n, d] into input_grad().
  double forward_backward(ops::Context& ctx, const int32_t* tokens);
  // Forward only (same loss), e.g. for evaluation.
  double forward(ops::Context& ctx, const int32_t* tokens);

  Grads& grads() { return grads_; }
  const Grads& grads() const { return grads_; }
  const float* input_grad() const { return dres_.data(); }
  Model& model() { return *model_; }
  TrainableMixer& mixer(int layer) { return *blocks_[layer].mixer; }

  // Test hook for the mutation tests (like TrainableMixer::inject_fault): breaks a gradient term of
  // the skeleton. Names: faults(). Returns false for an unknown one (or one the skeleton lacks).
  bool inject_fault(std::string_view name);
  std::vector<std::string> faults() const;

 private:
  struct Block {
    ParamStore::LayerNormRef ln1, ln2;
    std::unique_ptr<TrainableMixer> mixer;
    ParamStore::LinearRef ff1, ff2;
    // Saved activations [rows, d] / [rows, ff] / [rows].
    Tensor x_in, h1, x_mid, h2, u, g, mean1, var1, mean2, var2;
  };
  void embed(const int32_t* tokens);
  double loss_and_dlogits(ops::Context& ctx, const int32_t* tokens);
  // Block l's forward from its saved input x_in up to GELU(u) (everything but W2): res holds x_in
  // on entry and x_mid on exit (the mixer adds into it); fills h1, x_mid, h2, u, g, the LN
  // statistics and the mixer's saved buffers.
  void block_forward(ops::Context& ctx, std::size_t l, float* res);

  Model* model_;
  ModelConfig cfg_;
  Grads grads_;
  Tensor* embed_;
  std::vector<Block> blocks_;
  ParamStore::LayerNormRef final_ln_;
  ParamStore::LinearRef head_;      // untied head; null when tied
  Tensor* pos_embed_ = nullptr;     // [P, d] learned positions, or null (sinusoidal)
  bool tied_ = false;
  ops::Eltwise activation_ = ops::Eltwise::kGeluErf;
  enum class Fault { kNone, kDropTiedHeadGrad, kFirstSequencePositionGrad, kErfGeluBackward };
  Fault fault_ = Fault::kNone;

  // Prepared state.
  int64_t batch_ = 0, n_ = 0;
  bool recompute_ = false;
  SharedBuffers shared_saved_{MemCategory::kActivations};  // recompute: one block's activations, shared
  SharedBuffers shared_work_{MemCategory::kActivations};   // the mixers' working buffers, shared
  ops::LayerNormTrainOp ln_;
  ops::LayerNormBackwardOp ln_back_;
  ops::EltwiseOp gelu_;
  ops::EltwiseBackwardOp gelu_back_;
  ops::SoftmaxOp softmax_;
  std::vector<LinearTrain> ff1_, ff2_;  // per block (they hold the block's parameters)
  LinearTrain head_op_;                 // untied head
  ops::MatMul tied_fwd_, tied_dx_, tied_dw_;  // tied head: logits = h.E^T, dh = dlogits.E, dE = dlogits^T.h
  Tensor positions_;                    // [n, d] sinusoidal (empty with learned positions)
  Tensor x_, hf_, meanf_, varf_, probs_;  // residual stream [rows, d], final LN out, stats, probs [rows, V]
  Tensor dres_, dh_, dtmp_, df_;          // gradients: residual [rows, d], LN out [rows, d], branch [rows, d], FFN [rows, ff]
};

}  // namespace bsbr::train

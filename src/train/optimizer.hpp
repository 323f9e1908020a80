// AdamW (Loshchilov & Hutter 2019, PyTorch's update order) with global-norm gradient clipping and a
// linear warm-up + cosine learning-rate schedule; one deterministic training step; checkpoints
// (model weights through io/weights, optimiser moments through io/safetensors).
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "train/train_model.hpp"

namespace bsbr::train {

struct AdamWConfig {
  double lr = 1e-3;            // peak learning rate
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.01;  // decoupled; applied to matrices (2-D tensors), not to biases or LayerNorm
  double clip_norm = 1.0;      // global gradient-norm clip; 0 = off
  int64_t warmup_steps = 0;    // lr rises linearly over these steps: lr (s + 1) / warmup_steps
  int64_t total_steps = 1000;  // then cosine from lr down to min_lr_ratio lr at total_steps (and stays there)
  double min_lr_ratio = 0.1;
};

// Learning rate of step s (0-based).
double learning_rate(const AdamWConfig& c, int64_t step);

struct StepInfo {
  double loss = 0;       // mean next-token cross-entropy before the update
  double grad_norm = 0;  // global gradient norm before clipping
  double lr = 0;         // learning rate used
};

class AdamW {
 public:
  // Moments are allocated here (zero), one pair per parameter of `params`.
  AdamW(ops::Context& ctx, ParamStore& params, AdamWConfig config);

  // Clips `grads` in place to the global norm clip_norm (when larger), then updates every
  // parameter: p -= lr wd p (matrices); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
  // p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), t = steps() + 1. Returns the norm before clipping.
  double step(Grads& grads, double lr);
  int64_t steps() const { return steps_; }
  const AdamWConfig& config() const { return config_; }
  // Arithmetic of one step() (flops_executed, README "train"): per parameter element, the squared
  // norm (a multiply-add, 2), the clip (1), the first moment (3), the second (4) and the update
  // (decay, two bias corrections, square root, epsilon, division, rate, subtraction: 8).
  static constexpr double kFlopsPerElement = 18;
  double step_flops() const { return kFlopsPerElement * static_cast<double>(elements_); }

  // Optimiser state as safetensors: "<param>.exp_avg", "<param>.exp_avg_sq", metadata "step".
  void save(const std::string& path) const;
  // Strict, like load_weights: every moment present with its shape, nothing else; UserError otherwise.
  void load(const std::string& path);

 private:
  ParamStore* params_;
  AdamWConfig config_;
  std::deque<Tensor> m_, v_;  // in the store's order
  int64_t steps_ = 0;
  int64_t elements_ = 0;  // parameter elements
};

// One training step: forward, backward, clip, AdamW update at the schedule's rate for the
// optimiser's step count. tokens [b, n] as TrainModel::forward_backward.
StepInfo train_step(ops::Context& ctx, TrainModel& model, AdamW& opt, const int32_t* tokens);

// A checkpoint directory: <dir>/model.safetensors (io/weights) and <dir>/optimizer.safetensors.
void save_checkpoint(const std::string& dir, const Model& model, const AdamW& opt);
void load_checkpoint(const std::string& dir, Model& model, AdamW& opt);

}  // namespace bsbr::train

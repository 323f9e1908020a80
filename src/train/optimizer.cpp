// AdamW, the schedule, the training step and checkpoints.
#include "train/optimizer.hpp"

#include <cmath>
#include <filesystem>
#include <numbers>

#include "core/errors.hpp"
#include "io/safetensors.hpp"
#include "io/weights.hpp"

namespace bsbr::train {

double learning_rate(const AdamWConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  const double span = static_cast<double>(std::max<int64_t>(1, c.total_steps - c.warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
  const double min_lr = c.lr * c.min_lr_ratio;
  return min_lr + (c.lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

AdamW::AdamW(ops::Context& ctx, ParamStore& params, AdamWConfig config) : params_(&params), config_(config) {
  BSBR_CHECK(config.lr >= 0 && config.beta1 >= 0 && config.beta1 < 1 && config.beta2 >= 0 && config.beta2 < 1 && config.eps > 0 &&
                 config.weight_decay >= 0 && config.clip_norm >= 0 && config.warmup_steps >= 0 && config.total_steps >= 1,
             "AdamW settings out of range");
  for (const Param& p : params.all()) {
    m_.push_back(ctx.tensor(MemCategory::kOptimizer, p.value.shape()));
    v_.push_back(ctx.tensor(MemCategory::kOptimizer, p.value.shape()));
    elements_ += p.value.size();
  }
}

double AdamW::step(Grads& grads, double lr) {
  const double norm = std::sqrt(grads.squared_norm());
  BSBR_CHECK(std::isfinite(norm), "non-finite gradient norm");
  const float clip = config_.clip_norm > 0 && norm > config_.clip_norm ? static_cast<float>(config_.clip_norm / norm) : 1.f;
  ++steps_;
  const double t = static_cast<double>(steps_);
  const float b1 = static_cast<float>(config_.beta1), b2 = static_cast<float>(config_.beta2);
  const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(config_.beta1, t)));
  const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(config_.beta2, t)));
  const float eps = static_cast<float>(config_.eps), rate = static_cast<float>(lr);
  std::size_t i = 0;
  for (Param& p : params_->all()) {
    Tensor& g = grads.of(p.value);
    float *w = p.value.data(), *m = m_[i].data(), *v = v_[i].data(), *gd = g.data();
    const float decay = p.value.shape().size() >= 2 ? static_cast<float>(1.0 - lr * config_.weight_decay) : 1.f;
    for (int64_t e = 0; e < p.value.size(); ++e) {
      const float ge = gd[e] * clip;
      gd[e] = ge;
      m[e] = b1 * m[e] + (1.f - b1) * ge;
      v[e] = b2 * v[e] + (1.f - b2) * ge * ge;
      w[e] = w[e] * decay - rate * (m[e] * c1) / (std::sqrt(v[e] * c2) + eps);
    }
    ++i;
  }
  return norm;
}

void AdamW::save(const std::string& path) const {
  std::vector<TensorToWrite> tensors;
  std::size_t i = 0;
  for (const Param& p : params_->all()) {
    tensors.push_back({p.name + ".exp_avg", p.value.shape(), m_[i].data()});
    tensors.push_back({p.name + ".exp_avg_sq", p.value.shape(), v_[i].data()});
    ++i;
  }
  write_safetensors(path, tensors, DType::kF32, {{"format", "bsbr-adamw"}, {"producer", "bsbr-bench"}, {"step", std::to_string(steps_)}});
}

void AdamW::load(const std::string& path) {
  SafetensorsFile file(path);
  const std::string where = "optimizer state " + path + ": ";
  auto fmt = file.metadata().find("format");
  if (fmt == file.metadata().end() || fmt->second != "bsbr-adamw") throw UserError(where + "not a bsbr-bench AdamW state (metadata format)");
  auto st = file.metadata().find("step");
  int64_t step = -1;
  try {
    if (st != file.metadata().end()) step = std::stoll(st->second);
  } catch (const std::exception&) {
    step = -1;
  }
  if (step < 0) throw UserError(where + "metadata 'step' missing or not a non-negative integer");
  if (file.tensors().size() != 2 * params_->all().size())
    throw UserError(where + "holds " + std::to_string(file.tensors().size()) + " tensors, the model needs " +
                    std::to_string(2 * params_->all().size()));
  std::vector<std::pair<const TensorInfo*, Tensor*>> reads;
  std::size_t i = 0;
  for (const Param& p : params_->all()) {
    for (auto [suffix, dst] : {std::pair<const char*, Tensor*>{".exp_avg", &m_[i]}, {".exp_avg_sq", &v_[i]}}) {
      const TensorInfo* t = file.find(p.name + suffix);
      if (!t) throw UserError(where + "no tensor " + p.name + suffix);
      if (t->shape != p.value.shape()) throw UserError(where + "tensor " + p.name + suffix + " has the wrong shape");
      reads.push_back({t, dst});
    }
    ++i;
  }
  for (auto [t, dst] : reads) file.read_f32(*t, dst->data());  // only after every check passed
  steps_ = step;
}

StepInfo train_step(ops::Context& ctx, TrainModel& model, AdamW& opt, const int32_t* tokens) {
  StepInfo info;
  info.lr = learning_rate(opt.config(), opt.steps());
  info.loss = model.forward_backward(ctx, tokens);
  info.grad_norm = opt.step(model.grads(), info.lr);
  ctx.count_flops(opt.step_flops());  // its loops are not matmuls: counted here (flops_executed)
  return info;
}

void save_checkpoint(const std::string& dir, const Model& model, const AdamW& opt) {
  save_weights(model, (std::filesystem::path(dir) / "model.safetensors").string());
  opt.save((std::filesystem::path(dir) / "optimizer.safetensors").string());
}

void load_checkpoint(const std::string& dir, Model& model, AdamW& opt) {
  const std::string weights = (std::filesystem::path(dir) / "model.safetensors").string();
  check_weights(model, weights);  // reject a bad file before changing anything
  opt.load((std::filesystem::path(dir) / "optimizer.safetensors").string());
  load_weights(model, weights);
}

}  // namespace bsbr::train

// DeltaNet forward with chunk-start checkpoints and the reverse of the delta-rule recurrence (see
// the header); the trainable mixer (q/k/v/out projections, optional beta_proj).
#include "train/deltanet_grad.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"

namespace bsbr::train {

using Fault = DeltaRuleGrad::Fault;

namespace {

// out = x / ||x|| (dh floats); returns ||x||. No epsilon (SPEC §2: no clamping).
float unit(const float* x, int64_t dh, float* out) {
  float s = 0.f;
  for (int64_t i = 0; i < dh; ++i) s += x[i] * x[i];
  const float norm = std::sqrt(s);
  for (int64_t i = 0; i < dh; ++i) out[i] = x[i] / norm;
  return norm;
}

// S [dv, dk] <- S + beta (v - S k) k^T; e (dv) receives v - S k.
void delta_update(float* S, const float* k, const float* v, float beta, int64_t dh, float* e) {
  for (int64_t i = 0; i < dh; ++i) {
    float u = 0.f;
    for (int64_t j = 0; j < dh; ++j) u += S[i * dh + j] * k[j];
    e[i] = v[i] - u;
  }
  for (int64_t i = 0; i < dh; ++i)
    for (int64_t j = 0; j < dh; ++j) S[i * dh + j] += beta * e[i] * k[j];
}

}  // namespace

DeltaRuleGrad::DeltaRuleGrad(ops::Context& ctx, const DeltaRuleGradGeometry& g) : g_(g) {
  BSBR_CHECK(g.chunk > 0 && g.n > 0, "DeltaNet chunk and length must be positive");
  const int64_t dh = g.head_dim;
  checkpoints_ = ctx.tensor(MemCategory::kActivations, {g.batch, g.heads, chunks(), dh, dh});
  ws_.resize(ctx.threads());
  for (Workspace& w : ws_) {
    w.s = ctx.tensor(MemCategory::kActivations, {g.chunk + 1, dh, dh});
    w.a = ctx.tensor(MemCategory::kActivations, {dh, dh});
    w.vec = ctx.tensor(MemCategory::kActivations, {4, dh});
  }
}

void DeltaRuleGrad::forward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, float* o) const {
  const int64_t dh = g_.head_dim, H = g_.heads, d = H * dh, n = g_.n, C = g_.chunk, dd = dh * dh;
  const int64_t items = g_.batch * H;
  parallel_items(ctx, items, items > 1, [&](int64_t item) {
    Workspace& w = ws_[ops::Context::thread_id()];
    const int64_t b = item / H, h = item % H;
    float* S = w.a.data();
    float *qn = w.vec.data(), *kn = qn + dh, *e = kn + dh;
    std::fill(S, S + dd, 0.f);
    for (int64_t t = 0; t < n; ++t) {
      if (t % C == 0) std::copy(S, S + dd, checkpoints_.data() + (item * chunks() + t / C) * dd);
      const int64_t off = (b * n + t) * d + h * dh;
      unit(q + off, dh, qn);
      unit(k + off, dh, kn);
      delta_update(S, kn, v + off, beta[(b * n + t) * H + h], dh, e);
      for (int64_t i = 0; i < dh; ++i) {
        float acc = 0.f;
        for (int64_t j = 0; j < dh; ++j) acc += S[i * dh + j] * qn[j];
        o[off + i] = acc;
      }
    }
  });
}

void DeltaRuleGrad::backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* beta, const float* dout,
                             float* dq, float* dk, float* dv, float* dbeta, Fault fault) const {
  const int64_t dh = g_.head_dim, H = g_.heads, d = H * dh, n = g_.n, C = g_.chunk, dd = dh * dh;
  const int64_t items = g_.batch * H;
  parallel_items(ctx, items, items > 1, [&](int64_t item) {
    Workspace& w = ws_[ops::Context::thread_id()];
    const int64_t b = item / H, h = item % H;
    float* A = w.a.data();
    float *qn = w.vec.data(), *kn = qn + dh, *e = kn + dh, *ak = e + dh;
    std::fill(A, A + dd, 0.f);
    for (int64_t c = chunks() - 1; c >= 0; --c) {
      const int64_t r0 = c * C, r1 = std::min(n, r0 + C);
      // Recompute S before each token of the chunk: s[t - r0] = S_{t-1}, s[r1 - r0] = S_{r1 - 1}.
      float* s = w.s.data();
      std::copy_n(checkpoints_.data() + (item * chunks() + c) * dd, dd, s);
      for (int64_t t = r0; t < r1; ++t) {
        const int64_t off = (b * n + t) * d + h * dh;
        std::copy_n(s + (t - r0) * dd, dd, s + (t - r0 + 1) * dd);
        unit(k + off, dh, kn);
        delta_update(s + (t - r0 + 1) * dd, kn, v + off, beta[(b * n + t) * H + h], dh, e);
      }
      for (int64_t t = r1 - 1; t >= r0; --t) {
        const int64_t off = (b * n + t) * d + h * dh;
        const float* S_prev = s + (t - r0) * dd;
        const float* S_t = S_prev + dd;
        const float bt = beta[(b * n + t) * H + h];
        const float qnorm = unit(q + off, dh, qn), knorm = unit(k + off, dh, kn);
        const float* g = dout + off;
        // o_t = S_t q_t: A += do q^T, dq = S_t^T do (through the normalisation below).
        for (int64_t i = 0; i < dh; ++i)
          for (int64_t j = 0; j < dh; ++j) A[i * dh + j] += g[i] * qn[j];
        for (int64_t j = 0; j < dh; ++j) {
          float acc = 0.f;
          for (int64_t i = 0; i < dh; ++i) acc += S_t[i * dh + j] * g[i];
          dq[off + j] = acc;
        }
        // S_t = S_{t-1} + beta e k^T, e = v - S_{t-1} k.
        float db = 0.f;
        for (int64_t i = 0; i < dh; ++i) {
          float u = 0.f, a = 0.f;
          for (int64_t j = 0; j < dh; ++j) {
            u += S_prev[i * dh + j] * kn[j];
            a += A[i * dh + j] * kn[j];
          }
          e[i] = v[off + i] - u;
          ak[i] = a;
          db += e[i] * a;
          dv[off + i] = bt * a;
        }
        dbeta[(b * n + t) * H + h] = db;
        for (int64_t j = 0; j < dh; ++j) {
          float ae = 0.f, sak = 0.f;
          for (int64_t i = 0; i < dh; ++i) {
            ae += A[i * dh + j] * e[i];
            sak += S_prev[i * dh + j] * ak[i];
          }
          dk[off + j] = bt * (ae - (fault == Fault::kDropStateKeyTerm ? 0.f : sak));
        }
        if (fault != Fault::kDropStateDecay)
          for (int64_t i = 0; i < dh; ++i)
            for (int64_t j = 0; j < dh; ++j) A[i * dh + j] -= bt * ak[i] * kn[j];
        // Through x / ||x||: dx = (dxn - xn (xn.dxn)) / ||x||.
        for (auto [xn, dx, norm] : {std::tuple<const float*, float*, float>{qn, dq + off, qnorm}, {kn, dk + off, knorm}}) {
          float dot = 0.f;
          for (int64_t j = 0; j < dh; ++j) dot += xn[j] * dx[j];
          for (int64_t j = 0; j < dh; ++j) dx[j] = (dx[j] - xn[j] * dot) / norm;
        }
      }
    }
  });
}

namespace {

class DeltaNetTrain final : public TrainableMixer {
 public:
  DeltaNetTrain(const ModelConfig& cfg, ParamStore& params, const std::string& prefix)
      : cfg_(cfg),
        learned_(cfg.beta_mode == BetaMode::kLearned),
        q_(find_linear(params, prefix + ".q_proj")),
        k_(find_linear(params, prefix + ".k_proj")),
        v_(find_linear(params, prefix + ".v_proj")),
        out_(find_linear(params, prefix + ".out_proj")) {
    if (learned_) beta_proj_ = find_linear(params, prefix + ".beta_proj");
  }

  void prepare(ops::Context& ctx, int64_t batch, int64_t n) override {
    release();
    const int64_t rows = batch * n, d = cfg_.hidden_dim, H = cfg_.num_heads;
    ops_.q = LinearTrain(ctx, q_, rows, d, d);
    ops_.k = LinearTrain(ctx, k_, rows, d, d);
    ops_.v = LinearTrain(ctx, v_, rows, d, d);
    ops_.out = LinearTrain(ctx, out_, rows, d, d, /*accumulate=*/true);
    if (learned_) {
      ops_.beta = LinearTrain(ctx, beta_proj_, rows, d, H);
      const ops::MatLayout bl = ops::MatLayout::dense(rows, H);
      sigmoid_ = ops::EltwiseOp(ctx, bl, bl, {ops::Eltwise::kSigmoid});
      sigmoid_back_ = ops::EltwiseBackwardOp(ctx, rows, H, {ops::Eltwise::kSigmoid});
    }
    kernel_ = DeltaRuleGrad(ctx, {batch, H, cfg_.head_dim(), n, cfg_.linear_chunk_size});
    for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_, &dq_, &dk_, &dv_, &do_}) *t = ctx.tensor(MemCategory::kActivations, {rows, d});
    for (Tensor* t : {&beta_logit_, &beta_, &dbeta_}) *t = ctx.tensor(MemCategory::kActivations, {rows, H});
    if (!learned_) std::fill(beta_.data(), beta_.data() + beta_.size(), static_cast<float>(cfg_.beta));
    saved_ = 4 * rows * d + 2 * rows * H + kernel_.saved_floats();
  }

  void release() override {
    ops_ = Ops{};
    kernel_ = DeltaRuleGrad();
    sigmoid_ = {};
    sigmoid_back_ = {};
    for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &o_buf_, &dq_, &dk_, &dv_, &do_, &beta_logit_, &beta_, &dbeta_}) t->reset();
    saved_ = 0;
  }

  void forward(ops::Context& ctx, const float* x, float* out) override {
    ops_.q.forward(ctx, x, q_buf_.data());
    ops_.k.forward(ctx, x, k_buf_.data());
    ops_.v.forward(ctx, x, v_buf_.data());
    if (learned_) {
      ops_.beta.forward(ctx, x, beta_logit_.data());
      sigmoid_.run(ctx, beta_logit_.data(), beta_.data());
    }
    kernel_.forward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), beta_.data(), o_buf_.data());
    ops_.out.forward(ctx, o_buf_.data(), out);
  }

  void backward(ops::Context& ctx, const float* x, const float* dout, float* dx, Grads& grads) override {
    ops_.out.backward(ctx, o_buf_.data(), dout, grads, do_.data());
    kernel_.backward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), beta_.data(), do_.data(), dq_.data(), dk_.data(), dv_.data(),
                     dbeta_.data(), fault_);
    ops_.q.backward(ctx, x, dq_.data(), grads, dx);
    ops_.k.backward(ctx, x, dk_.data(), grads, dx, /*accumulate_dx=*/true);
    ops_.v.backward(ctx, x, dv_.data(), grads, dx, /*accumulate_dx=*/true);
    if (learned_) {  // beta = sigmoid(x W + b): the constant beta has no parameter
      sigmoid_back_.run(ctx, beta_logit_.data(), dbeta_.data(), dbeta_.data());
      ops_.beta.backward(ctx, x, dbeta_.data(), grads, dx, /*accumulate_dx=*/true);
    }
  }

  int64_t saved_floats() const override { return saved_; }

  bool inject_fault(std::string_view name) override {
    if (name == "deltanet.drop_state_key_term")
      fault_ = Fault::kDropStateKeyTerm;
    else if (name == "deltanet.drop_state_decay")
      fault_ = Fault::kDropStateDecay;
    else
      return false;
    return true;
  }
  std::vector<std::string> faults() const override { return {"deltanet.drop_state_key_term", "deltanet.drop_state_decay"}; }

 private:
  struct Ops {
    LinearTrain q, k, v, out, beta;
  };
  ModelConfig cfg_;
  bool learned_;
  ParamStore::LinearRef q_, k_, v_, out_, beta_proj_{};
  Ops ops_;
  DeltaRuleGrad kernel_;
  ops::EltwiseOp sigmoid_;
  ops::EltwiseBackwardOp sigmoid_back_;
  Tensor q_buf_, k_buf_, v_buf_, o_buf_, beta_logit_, beta_;  // saved [b*n, d] / [b*n, h]
  Tensor dq_, dk_, dv_, do_, dbeta_;
  int64_t saved_ = 0;
  Fault fault_ = Fault::kNone;
};

}  // namespace

std::unique_ptr<TrainableMixer> make_deltanet_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return std::make_unique<DeltaNetTrain>(cfg, params, prefix);
}

}  // namespace bsbr::train

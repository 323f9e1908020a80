// GAU forward with saved activations and backward (see the header).
#include "train/gau_grad.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"
#include "train/softmax_attention_grad.hpp"

namespace bsbr::train {

ChunkStateCross::ChunkStateCross(ops::Context& ctx, int64_t batch, int64_t n, int64_t width, int64_t chunk, MixerBuffers* buffers)
    : batch_(batch), n_(n), width_(width), chunk_(chunk) {
  BSBR_CHECK(chunk > 0, "chunk size must be positive");
  tail_ = n % chunk;
  MixerBuffers own(ctx);
  MixerBuffers& buf = buffers ? *buffers : own;
  for (int i = 0; i < ctx.threads(); ++i) state_.push_back(buf.work({width, width}));
  using ops::MatLayout;
  using ops::PostOp;
  const MatLayout ee = MatLayout::dense(width, width);
  const std::vector<PostOp> acc{PostOp::accumulate()};
  ops::SingleThreadOps single(ctx);  // the products run per sequence inside parallel_items
  auto make = [&](int64_t rows, ops::MatMul& qs, ops::MatMul& gs, ops::MatMul& qg) {
    const MatLayout re = MatLayout::dense(rows, width);  // [rows, E]
    qs = ops::MatMul(ctx, {re, ee, re, false, 1.f, acc});
    gs = ops::MatMul(ctx, {re, ee.transposed(), re, false, 1.f, acc});
    qg = ops::MatMul(ctx, {re.transposed(), re, ee, false, 1.f, acc});
  };
  if (n >= chunk) {
    make(chunk, qs_, gs_, qg_);
    const MatLayout ce = MatLayout::dense(chunk, width);
    kv_ = ops::MatMul(ctx, {ce.transposed(), ce, ee, false, 1.f, acc});
    vd_ = ops::MatMul(ctx, {ce, ee.transposed(), ce, false, 1.f, acc});
    kd_ = ops::MatMul(ctx, {ce, ee, ce, false, 1.f, acc});
  }
  if (tail_ > 0 && n > chunk) make(tail_, qs_tail_, gs_tail_, qg_tail_);  // a partial chunk after a complete one
}

void ChunkStateCross::forward(ops::Context& ctx, const float* q, const float* k, const float* v, float* a) const {
  const int64_t E = width_, n = n_, C = chunk_;
  ops::parallel_items(ctx, batch_, batch_ > 1, [&](int64_t b) {
    float* S = state_[ops::Context::thread_id()].data();  // [E, E]
    std::fill(S, S + E * E, 0.f);
    const float *qb = q + b * n * E, *kb = k + b * n * E, *vb = v + b * n * E;
    float* ab = a + b * n * E;
    for (int64_t r0 = 0; r0 < n; r0 += C) {
      const bool complete = r0 + C <= n;
      if (r0 > 0) (complete ? qs_ : qs_tail_).run(ctx, qb + r0 * E, S, ab + r0 * E);  // A_c += Q_c S
      if (complete) kv_.run(ctx, kb + r0 * E, vb + r0 * E, S);  // a complete chunk joins the state of the chunks after it
    }
  });
}

void ChunkStateCross::backward(ops::Context& ctx, const float* q, const float* k, const float* v, const float* da, float* dq, float* dk,
                               float* dv, Fault fault) const {
  const int64_t E = width_, n = n_, C = chunk_;
  const int64_t last_r0 = (n - 1) / C * C;
  ops::parallel_items(ctx, batch_, batch_ > 1, [&](int64_t b) {
    float* S = state_[ops::Context::thread_id()].data();
    const int64_t off = b * n * E;
    const float *qb = q + off, *kb = k + off, *vb = v + off, *gb = da + off;
    float *dqb = dq + off, *dkb = dk + off, *dvb = dv + off;
    // Forward sweep: S = state before the chunk; dQ_c += dA_c S^T.
    std::fill(S, S + E * E, 0.f);
    for (int64_t r0 = 0; r0 < n; r0 += C) {
      const bool complete = r0 + C <= n;
      if (r0 > 0) (complete ? gs_ : gs_tail_).run(ctx, gb + r0 * E, S, dqb + r0 * E);
      if (complete) kv_.run(ctx, kb + r0 * E, vb + r0 * E, S);
    }
    if (fault == Fault::kDropStateGrad) return;
    // Reverse sweep: S = dS = sum over later chunks of Q^T dA; a complete chunk's K, V receive it.
    std::fill(S, S + E * E, 0.f);
    for (int64_t r0 = last_r0; r0 >= 0; r0 -= C) {
      const bool complete = r0 + C <= n;
      if (complete) {
        vd_.run(ctx, vb + r0 * E, S, dkb + r0 * E);  // dK_c += V_c dS^T
        kd_.run(ctx, kb + r0 * E, S, dvb + r0 * E);  // dV_c += K_c dS
      }
      if (r0 > 0) (complete ? qg_ : qg_tail_).run(ctx, qb + r0 * E, gb + r0 * E, S);  // dS += Q_c^T dA_c
    }
  });
}

namespace {

class GauTrain final : public TrainableMixer {
 public:
  GauTrain(const ModelConfig& cfg, ParamStore& params, const std::string& prefix)
      : d_(cfg.hidden_dim),
        E_(cfg.expansion_factor * cfg.hidden_dim),
        chunk_(cfg.chunk_size),
        q_(find_linear(params, prefix + ".q_proj")),
        k_(find_linear(params, prefix + ".k_proj")),
        v_(find_linear(params, prefix + ".v_proj")),
        gate_(find_linear(params, prefix + ".gate_proj")),
        out_(find_linear(params, prefix + ".out_proj")) {}

  void prepare(ops::Context& ctx, MixerBuffers& buffers, int64_t batch, int64_t n) override {
    release();
    const int64_t rows = batch * n;
    ops_ = {LinearTrain(ctx, q_, rows, d_, E_), LinearTrain(ctx, k_, rows, d_, E_), LinearTrain(ctx, v_, rows, d_, E_),
            LinearTrain(ctx, gate_, rows, d_, E_), LinearTrain(ctx, out_, rows, E_, d_, /*accumulate=*/true)};
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(E_)));
    local_ = SoftmaxAttentionGrad(ctx, {batch, 1, E_, n, scale, -1, kTrainAttentionTile, kTrainAttentionTile, chunk_}, &buffers);
    cross_ = ChunkStateCross(ctx, batch, n, E_, chunk_, &buffers);
    const ops::MatLayout el = ops::MatLayout::dense(rows, E_);
    sigmoid_ = ops::EltwiseOp(ctx, el, el, {ops::Eltwise::kSigmoid});
    sigmoid_back_ = ops::EltwiseBackwardOp(ctx, rows, E_, {ops::Eltwise::kSigmoid});
    for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &gpre_, &gate_buf_, &local_buf_, &a_buf_, &o_buf_}) *t = buffers.saved({rows, E_});
    lse_ = buffers.saved({batch, 1, n});
    for (Tensor* t : {&dq_, &dk_, &dv_, &do_, &dtmp_}) *t = buffers.work({rows, E_});
    saved_ = 8 * rows * E_ + batch * n;
  }

  void release() override {
    ops_ = Ops{};
    local_ = SoftmaxAttentionGrad();
    cross_ = ChunkStateCross();
    sigmoid_ = {};
    sigmoid_back_ = {};
    for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &gpre_, &gate_buf_, &local_buf_, &a_buf_, &o_buf_, &dq_, &dk_, &dv_, &do_, &dtmp_, &lse_})
      t->reset();
    saved_ = 0;
  }

  void forward(ops::Context& ctx, const float* x, float* out) override {
    const int64_t count = q_buf_.size();
    ops_.q.forward(ctx, x, q_buf_.data());
    ops_.k.forward(ctx, x, k_buf_.data());
    ops_.v.forward(ctx, x, v_buf_.data());
    ops_.gate.forward(ctx, x, gpre_.data());
    sigmoid_.run(ctx, gpre_.data(), gate_buf_.data());
    local_.forward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), local_buf_.data(), lse_.data());
    std::copy(local_buf_.data(), local_buf_.data() + count, a_buf_.data());
    cross_.forward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), a_buf_.data());
    for (int64_t i = 0; i < count; ++i) o_buf_[i] = a_buf_[i] * gate_buf_[i];
    ops_.out.forward(ctx, o_buf_.data(), out);
  }

  void backward(ops::Context& ctx, const float* x, const float* dout, float* dx, Grads& grads) override {
    const int64_t count = q_buf_.size();
    ops_.out.backward(ctx, o_buf_.data(), dout, grads, do_.data());
    // o = a ⊙ sigmoid(gpre): dgpre = sigmoid'(gpre) (do ⊙ a) into dtmp; da = do ⊙ gate, in do.
    for (int64_t i = 0; i < count; ++i) {
      dtmp_[i] = do_[i] * a_buf_[i];
      do_[i] = fault_ == Fault::kDropGateValue ? 0.f : do_[i] * gate_buf_[i];
    }
    sigmoid_back_.run(ctx, gpre_.data(), dtmp_.data(), dtmp_.data());
    local_.backward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), local_buf_.data(), lse_.data(), do_.data(), dq_.data(), dk_.data(),
                    dv_.data());
    cross_.backward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), do_.data(), dq_.data(), dk_.data(), dv_.data(),
                    fault_ == Fault::kDropStateGrad ? ChunkStateCross::Fault::kDropStateGrad : ChunkStateCross::Fault::kNone);
    ops_.q.backward(ctx, x, dq_.data(), grads, dx);
    ops_.k.backward(ctx, x, dk_.data(), grads, dx, /*accumulate_dx=*/true);
    ops_.v.backward(ctx, x, dv_.data(), grads, dx, /*accumulate_dx=*/true);
    ops_.gate.backward(ctx, x, dtmp_.data(), grads, dx, /*accumulate_dx=*/true);
  }

  int64_t saved_floats() const override { return saved_; }

  bool inject_fault(std::string_view name) override {
    if (name == "gau.drop_state_grad")
      fault_ = Fault::kDropStateGrad;
    else if (name == "gau.drop_gate_value")
      fault_ = Fault::kDropGateValue;
    else
      return false;
    return true;
  }
  std::vector<std::string> faults() const override { return {"gau.drop_state_grad", "gau.drop_gate_value"}; }

 private:
  enum class Fault { kNone, kDropStateGrad, kDropGateValue };
  struct Ops {
    LinearTrain q, k, v, gate, out;
  };
  int64_t d_, E_, chunk_;
  ParamStore::LinearRef q_, k_, v_, gate_, out_;
  Ops ops_;
  SoftmaxAttentionGrad local_;
  ChunkStateCross cross_;
  ops::EltwiseOp sigmoid_;
  ops::EltwiseBackwardOp sigmoid_back_;
  // Saved [b*n, E]: projections, gate pre-activation and value, local output, a = local + cross,
  // gated output; lse [b, 1, n].
  Tensor q_buf_, k_buf_, v_buf_, gpre_, gate_buf_, local_buf_, a_buf_, o_buf_, lse_;
  Tensor dq_, dk_, dv_, do_, dtmp_;  // working gradients [b*n, E]
  int64_t saved_ = 0;
  Fault fault_ = Fault::kNone;
};

}  // namespace

MixerFloats gau_train_floats(const ModelConfig& cfg, int64_t batch, int64_t n, int threads) {
  const int64_t width = cfg.expansion_factor * cfg.hidden_dim;  // <= 2^20 by the ranges
  const double rows = static_cast<double>(batch) * static_cast<double>(n), E = static_cast<double>(width);
  return {8 * rows * E + rows, 5 * rows * E + softmax_attention_workspace_floats(width, threads) + threads * E * E, 5 * rows};
}

std::unique_ptr<TrainableMixer> make_gau_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return std::make_unique<GauTrain>(cfg, params, prefix);
}

}  // namespace bsbr::train

// BSBR forward with saved activations and backward (see the header for the formulas).
#include "train/bsbr_grad.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"
#include "ops/kernels.hpp"
#include "train/softmax_attention_grad.hpp"

namespace bsbr::train {
namespace {

class BsbrTrain final : public TrainableMixer {
 public:
  BsbrTrain(const ModelConfig& cfg, ParamStore& params, const std::string& prefix)
      : d_(cfg.hidden_dim),
        heads_(cfg.num_heads),
        dh_(cfg.head_dim()),
        dd_(cfg.head_dim() * cfg.head_dim()),
        chunk_(cfg.chunk_size),
        coded_(cfg.compression_factor > 0 ? cfg.hidden_dim / cfg.compression_factor : 0),
        scale_(static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg.head_dim())))),
        q_(find_linear(params, prefix + ".q_proj")),
        k_(find_linear(params, prefix + ".k_proj")),
        v_(find_linear(params, prefix + ".v_proj")),
        out_(find_linear(params, prefix + ".out_proj")),
        meta_r_(find_linear(params, prefix + ".meta_r_proj")),
        meta_h_(find_linear(params, prefix + ".meta_h_proj")) {
    if (coded_ > 0) {
      compress_ = find_linear(params, prefix + ".compress_proj");
      decompress_ = find_linear(params, prefix + ".decompress_proj");
    }
  }

  void prepare(ops::Context& ctx, MixerBuffers& buffers, int64_t batch, int64_t n) override {
    release();
    batch_ = batch;
    n_ = n;
    cur_ = (n - 1) / chunk_;
    const int64_t rows = batch * n, W = width();
    ops_.q = LinearTrain(ctx, q_, rows, d_, d_);
    ops_.k = LinearTrain(ctx, k_, rows, d_, d_);
    ops_.v = LinearTrain(ctx, v_, rows, d_, d_);
    ops_.out = LinearTrain(ctx, out_, rows, d_, d_, /*accumulate=*/true);
    local_ = SoftmaxAttentionGrad(ctx, {batch, heads_, dh_, n, scale_, -1, kTrainAttentionTile, kTrainAttentionTile, chunk_}, &buffers);
    for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &local_buf_, &o_buf_}) *t = buffers.saved({rows, d_});
    lse_ = buffers.saved({batch, heads_, n});
    for (Tensor* t : {&dq_, &dk_, &dv_, &do_}) *t = buffers.work({rows, d_});
    saved_ = 5 * rows * d_ + batch * heads_ * n;
    if (cur_ > 0) {
      const int64_t crow = batch * cur_;  // chunk-level rows
      ops_.meta_h = LinearTrain(ctx, meta_h_, crow, d_, d_);
      ops_.meta_r = LinearTrain(ctx, meta_r_, crow, d_, d_);
      if (coded_ > 0) {
        ops_.compress = LinearTrain(ctx, compress_, crow * heads_, dd_, coded_);
        ops_.decompress = LinearTrain(ctx, decompress_, crow * heads_, coded_, dd_);
      }
      for (Tensor* t : {&xl_, &h_buf_, &r_buf_}) *t = buffers.saved({crow, d_});
      for (Tensor* t : {&f_buf_, &g_buf_}) *t = buffers.saved({crow, heads_, dd_});
      mixed_ = buffers.saved({crow, heads_, W});
      if (coded_ > 0) code_ = buffers.saved({crow, heads_, coded_});
      for (Tensor* t : {&dxl_, &dh_buf_, &dr_buf_}) *t = buffers.work({crow, d_});
      for (Tensor* t : {&df_, &dg_}) *t = buffers.work({crow, heads_, dd_});
      for (Tensor* t : {&dmixed_, &dstate_}) *t = buffers.work({crow, heads_, W});
      for (int i = 0; i < ctx.threads(); ++i) rows_ws_.push_back(buffers.work({2, cur_}));
      prepare_chunk_ops(ctx);
      saved_ += 3 * crow * d_ + 2 * crow * heads_ * dd_ + crow * heads_ * W + (coded_ > 0 ? crow * heads_ * coded_ : 0);
    }
  }

  static MixerFloats floats(const ModelConfig& cfg, int64_t batch, int64_t n, int threads) {
    const double rows = static_cast<double>(batch) * static_cast<double>(n), d = static_cast<double>(cfg.hidden_dim);
    const double h = static_cast<double>(cfg.num_heads), dd = static_cast<double>(cfg.head_dim()) * static_cast<double>(cfg.head_dim());
    const double coded = cfg.compression_factor > 0 ? static_cast<double>(cfg.hidden_dim / cfg.compression_factor) : 0, W = coded > 0 ? coded : dd;
    MixerFloats f{5 * rows * d + rows * h, 4 * rows * d + softmax_attention_workspace_floats(cfg.head_dim(), threads), 4 * rows};
    const double cur = static_cast<double>((n - 1) / cfg.chunk_size), crow = static_cast<double>(batch) * cur;
    if (cur > 0) {
      f.saved += 3 * crow * d + 2 * crow * h * dd + crow * h * W + crow * h * coded;
      f.work += 3 * crow * d + 2 * crow * h * dd + 2 * crow * h * W + threads * 2 * cur;
      f.owned += 2 * crow + (coded > 0 ? 2 * crow * h : 0);
    }
    return f;
  }

  void release() override {
    ops_ = Ops{};
    local_ = SoftmaxAttentionGrad();
    for (Tensor* t : {&q_buf_, &k_buf_, &v_buf_, &local_buf_, &o_buf_, &dq_, &dk_, &dv_, &do_, &lse_, &xl_, &h_buf_, &r_buf_, &dxl_, &dh_buf_,
                      &dr_buf_, &f_buf_, &g_buf_, &df_, &dg_, &mixed_, &dmixed_, &dstate_, &code_})
      t->reset();
    rows_ws_.clear();
    saved_ = 0;
    cur_ = cross_full_ = 0;
  }

  void forward(ops::Context& ctx, const float* x, float* out) override {
    const int64_t rows = batch_ * n_;
    ops_.q.forward(ctx, x, q_buf_.data());
    ops_.k.forward(ctx, x, k_buf_.data());
    ops_.v.forward(ctx, x, v_buf_.data());
    local_.forward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), local_buf_.data(), lse_.data());
    std::copy(local_buf_.data(), local_buf_.data() + rows * d_, o_buf_.data());
    if (cur_ > 0) {
      gather_last_rows(x);
      ops_.meta_h.forward(ctx, xl_.data(), h_buf_.data());
      ops_.meta_r.forward(ctx, xl_.data(), r_buf_.data());  // row i-1 holds R_i
      chunk_states(ctx);
      if (coded_ > 0) ops_.compress.forward(ctx, f_buf_.data(), code_.data());
      retrieve(ctx);
      if (coded_ > 0) ops_.decompress.forward(ctx, mixed_.data(), g_buf_.data());
      add_cross(ctx);
      if (ctx.counting_flops()) ctx.count_flops(2 * chunk_macs(false));
    }
    ops_.out.forward(ctx, o_buf_.data(), out);
  }

  void backward(ops::Context& ctx, const float* x, const float* dout, float* dx, Grads& grads) override {
    ops_.out.backward(ctx, o_buf_.data(), dout, grads, do_.data());
    local_.backward(ctx, q_buf_.data(), k_buf_.data(), v_buf_.data(), local_buf_.data(), lse_.data(), do_.data(), dq_.data(), dk_.data(),
                    dv_.data());
    if (cur_ > 0) {
      cross_backward(ctx);  // dq += do.G^T, dG
      if (coded_ > 0) ops_.decompress.backward(ctx, mixed_.data(), dg_.data(), grads, dmixed_.data());
      retrieve_backward(ctx, coded_ > 0 ? dmixed_.data() : dg_.data());  // dstate, dH, dR
      if (coded_ > 0) ops_.compress.backward(ctx, f_buf_.data(), dstate_.data(), grads, df_.data());
      if (fault_ != Fault::kDropStateGrad) states_backward(ctx, coded_ > 0 ? df_.data() : dstate_.data());  // dk, dv
      ops_.meta_h.backward(ctx, xl_.data(), dh_buf_.data(), grads, dxl_.data());
      ops_.meta_r.backward(ctx, xl_.data(), dr_buf_.data(), grads, dxl_.data(), /*accumulate_dx=*/true);
      if (ctx.counting_flops()) ctx.count_flops(2 * chunk_macs(true));
    } else {
      zero_chunk_grads(grads);
    }
    ops_.q.backward(ctx, x, dq_.data(), grads, dx);
    ops_.k.backward(ctx, x, dk_.data(), grads, dx, /*accumulate_dx=*/true);
    ops_.v.backward(ctx, x, dv_.data(), grads, dx, /*accumulate_dx=*/true);
    if (cur_ > 0)
      for (int64_t b = 0; b < batch_; ++b)
        for (int64_t j = 0; j < cur_; ++j) add_into(dx + (b * n_ + last(j)) * d_, dxl_.data() + (b * cur_ + j) * d_, d_);
  }

  int64_t saved_floats() const override { return saved_; }

  bool inject_fault(std::string_view name) override {
    if (name == "bsbr.drop_state_grad")
      fault_ = Fault::kDropStateGrad;
    else if (name == "bsbr.drop_retrieval_row_term")
      fault_ = Fault::kDropRetrievalRowTerm;
    else
      return false;
    return true;
  }
  std::vector<std::string> faults() const override { return {"bsbr.drop_state_grad", "bsbr.drop_retrieval_row_term"}; }

 private:
  enum class Fault { kNone, kDropStateGrad, kDropRetrievalRowTerm };
  struct Ops {
    LinearTrain q, k, v, out, meta_h, meta_r, compress, decompress;
    // Chunk-level products per (sequence, head), batched over chunks (prepare_chunk_ops):
    ops::MatMul states;                   // F_j = K_j^T V_j, j < cur
    ops::MatMul cross, cross_tail;        // O_i += Q_i G_i
    ops::MatMul cross_dq, cross_dq_tail;  // dQ_i += dO_i G_i^T
    ops::MatMul cross_dg, cross_dg_tail;  // dG_i = Q_i^T dO_i
    ops::MatMul states_dk, states_dv;     // dK_j += V_j dF_j^T, dV_j += K_j dF_j
  };

  int64_t width() const { return coded_ > 0 ? coded_ : dd_; }

  // Multiply-adds of the retrieval loops (flops_executed; every other chunk-level product is a
  // matmul, counted by the op layer), with r = cur (cur + 1) / 2 (chunk, earlier chunk) pairs:
  // forward the scores and the mix (dh + W per pair), backward the scores again, dp, dstate, dR and
  // dH (3 dh + 2 W per pair). Per sequence and head.
  double chunk_macs(bool backward) const {
    const double k = static_cast<double>(cur_), r = k * (k + 1) / 2, dh = static_cast<double>(dh_), W = static_cast<double>(width());
    return (backward ? r * (3 * dh + 2 * W) : r * (dh + W)) * static_cast<double>(batch_ * heads_);
  }

  // The chunk-level matmuls: one head's chunks of a [b*n, d] buffer are chunks(count, B, dh, d)
  // (row stride d); one head's states of a [b*cur, heads, dd] buffer are [dh, dh] blocks
  // heads*dd apart. cross_full_ = the complete chunks among 1 .. cur; a partial chunk cur (n not a
  // multiple of B) has its own ops.
  void prepare_chunk_ops(ops::Context& ctx) {
    ops::SingleThreadOps single(ctx);  // run per (sequence, head) inside for_each_head's parallel loop
    using ops::MatLayout;
    using ops::PostOp;
    const std::vector<PostOp> acc{PostOp::accumulate()};
    auto rows_of = [&](int64_t count) { return MatLayout::chunks(count, chunk_, dh_, d_); };
    auto blocks_of = [&](int64_t count) { return MatLayout{count, dh_, dh_, heads_ * dd_, dh_, 1}; };
    ops_.states = ops::MatMul(ctx, {rows_of(cur_).transposed(), rows_of(cur_), blocks_of(cur_), false, 1.f, {}});
    ops_.states_dk = ops::MatMul(ctx, {rows_of(cur_), blocks_of(cur_).transposed(), rows_of(cur_), false, 1.f, acc});
    ops_.states_dv = ops::MatMul(ctx, {rows_of(cur_), blocks_of(cur_), rows_of(cur_), false, 1.f, acc});
    cross_full_ = n_ / chunk_ - 1;  // chunk i >= 1 is complete when (i + 1) B <= n
    if (cross_full_ > 0) {
      const MatLayout t = rows_of(cross_full_), g = blocks_of(cross_full_);
      ops_.cross = ops::MatMul(ctx, {t, g, t, false, 1.f, acc});
      ops_.cross_dq = ops::MatMul(ctx, {t, g.transposed(), t, false, 1.f, acc});
      ops_.cross_dg = ops::MatMul(ctx, {t.transposed(), t, g, false, 1.f, {}});
    }
    if (cross_full_ < cur_) {
      const MatLayout t = MatLayout::strided(n_ - cur_ * chunk_, dh_, d_), g = MatLayout::dense(dh_, dh_);
      ops_.cross_tail = ops::MatMul(ctx, {t, g, t, false, 1.f, acc});
      ops_.cross_dq_tail = ops::MatMul(ctx, {t, g.transposed(), t, false, 1.f, acc});
      ops_.cross_dg_tail = ops::MatMul(ctx, {t.transposed(), t, g, false, 1.f, {}});
    }
  }

  // fn(b, h) for every (sequence, head), in parallel (each owns its rows and states).
  template <class Fn>
  void for_each_head(ops::Context& ctx, Fn fn) const {
    ops::parallel_items(ctx, batch_ * heads_, batch_ * heads_ > 1, [&](int64_t it) { fn(it / heads_, it % heads_); });
  }

  // Offset of chunk-level [b * cur + j, heads, dd] row (b, j, h).
  int64_t state_offset(int64_t b, int64_t j, int64_t h) const { return ((b * cur_ + j) * heads_ + h) * dd_; }

  int64_t last(int64_t j) const { return (j + 1) * chunk_ - 1; }
  // The retrieved states (compressed codes or raw F) of chunk-level row c: [heads, W].
  const float* states() const { return coded_ > 0 ? code_.data() : f_buf_.data(); }
  float* retrieved() { return coded_ > 0 ? g_buf_.data() : mixed_.data(); }  // G [crow, heads, dd]

  void gather_last_rows(const float* x) {
    for (int64_t b = 0; b < batch_; ++b)
      for (int64_t j = 0; j < cur_; ++j) std::copy_n(x + (b * n_ + last(j)) * d_, d_, xl_.data() + (b * cur_ + j) * d_);
  }

  // F_j [dh, dh] = K_j^T V_j per (sequence, complete chunk j < cur, head): one batched matmul over
  // the chunks per (sequence, head).
  void chunk_states(ops::Context& ctx) {
    for_each_head(ctx, [&](int64_t b, int64_t h) {
      const int64_t tok = (b * n_) * d_ + h * dh_;
      ops_.states.run(ctx, k_buf_.data() + tok, v_buf_.data() + tok, f_buf_.data() + state_offset(b, 0, h));
    });
  }

  // p_ij = softmax_{j<i}(s R_i.H_j) for one (sequence b, head h, chunk i >= 1) into p[0..i).
  void retrieval_weights(int64_t b, int64_t h, int64_t i, float* p) const {
    const float* R = r_buf_.data() + (b * cur_ + i - 1) * d_ + h * dh_;
    float mx = ops::kNegInf;
    for (int64_t j = 0; j < i; ++j) {
      const float* H = h_buf_.data() + (b * cur_ + j) * d_ + h * dh_;
      float a = 0.f;
      for (int64_t c = 0; c < dh_; ++c) a += R[c] * H[c];
      p[j] = scale_ * a;
      mx = std::max(mx, p[j]);
    }
    float sum = 0.f;
    for (int64_t j = 0; j < i; ++j) sum += (p[j] = std::exp(p[j] - mx));
    for (int64_t j = 0; j < i; ++j) p[j] /= sum;
  }

  // mixed_i = sum_{j<i} p_ij state_j, stored at chunk-level row i - 1 (i = 1 .. cur).
  void retrieve(ops::Context& ctx) {
    const int64_t W = width(), items = batch_ * heads_;
    ops::parallel_items(ctx, items, items > 1 && cur_ > 8, [&](int64_t it) {
      const int64_t b = it / heads_, h = it % heads_;
      float* p = rows_ws_[ops::Context::thread_id()].data();
      for (int64_t i = 1; i <= cur_; ++i) {
        retrieval_weights(b, h, i, p);
        float* m = mixed_.data() + ((b * cur_ + i - 1) * heads_ + h) * W;
        std::fill(m, m + W, 0.f);
        for (int64_t j = 0; j < i; ++j) {
          const float* s = states() + ((b * cur_ + j) * heads_ + h) * W;
          for (int64_t e = 0; e < W; ++e) m[e] += p[j] * s[e];
        }
      }
    });
  }

  // The chunks i >= 1 that read a G_i, as matmuls per (sequence, head): the complete ones batched
  // (chunk i's rows [iB, (i+1)B), G_i at chunk-level row i - 1), a partial last one alone.
  // full(token offset of chunk 1, G offset of chunk 1); tail(token offset of chunk cur, G offset of chunk cur).
  template <class Full, class Tail>
  void for_each_cross(ops::Context& ctx, Full full, Tail tail) const {
    for_each_head(ctx, [&](int64_t b, int64_t h) {
      if (cross_full_ > 0) full((b * n_ + chunk_) * d_ + h * dh_, state_offset(b, 0, h));
      if (cross_full_ < cur_) tail((b * n_ + cur_ * chunk_) * d_ + h * dh_, state_offset(b, cur_ - 1, h));
    });
  }

  // o_t += q_t.G_i for t in chunk i >= 1 (per head).
  void add_cross(ops::Context& ctx) {
    const float* G = retrieved();
    for_each_cross(
        ctx, [&](int64_t tok, int64_t g) { ops_.cross.run(ctx, q_buf_.data() + tok, G + g, o_buf_.data() + tok); },
        [&](int64_t tok, int64_t g) { ops_.cross_tail.run(ctx, q_buf_.data() + tok, G + g, o_buf_.data() + tok); });
  }

  // dq_t += do_t.G_i^T; dG_i = sum_{t in chunk i} q_t^T do_t.
  void cross_backward(ops::Context& ctx) {
    const float* G = retrieved();
    for_each_cross(
        ctx,
        [&](int64_t tok, int64_t g) {
          ops_.cross_dq.run(ctx, do_.data() + tok, G + g, dq_.data() + tok);
          ops_.cross_dg.run(ctx, q_buf_.data() + tok, do_.data() + tok, dg_.data() + g);
        },
        [&](int64_t tok, int64_t g) {
          ops_.cross_dq_tail.run(ctx, do_.data() + tok, G + g, dq_.data() + tok);
          ops_.cross_dg_tail.run(ctx, q_buf_.data() + tok, do_.data() + tok, dg_.data() + g);
        });
  }

  // From dmixed (chunk-level row i-1 for chunk i): dstate_j = sum_{i>j} p_ij dmixed_i,
  // dp_ij = dmixed_i.state_j, dscore = p (dp - sum_j p dp), dR_i = s sum_j dscore_ij H_j,
  // dH_j = s sum_i dscore_ij R_i.
  void retrieve_backward(ops::Context& ctx, const float* dmixed) {
    const int64_t W = width(), items = batch_ * heads_;
    ops::parallel_items(ctx, items, items > 1 && cur_ > 8, [&](int64_t it) {
      const int64_t b = it / heads_, h = it % heads_;
      float* p = rows_ws_[ops::Context::thread_id()].data();
      float* dp = p + cur_;
      for (int64_t j = 0; j < cur_; ++j) {
        std::fill_n(dstate_.data() + ((b * cur_ + j) * heads_ + h) * W, W, 0.f);
        std::fill_n(dh_buf_.data() + (b * cur_ + j) * d_ + h * dh_, dh_, 0.f);
        std::fill_n(dr_buf_.data() + (b * cur_ + j) * d_ + h * dh_, dh_, 0.f);
      }
      for (int64_t i = 1; i <= cur_; ++i) {
        retrieval_weights(b, h, i, p);
        const float* dm = dmixed + ((b * cur_ + i - 1) * heads_ + h) * W;
        float row = 0.f;
        for (int64_t j = 0; j < i; ++j) {
          const float* s = states() + ((b * cur_ + j) * heads_ + h) * W;
          float* ds = dstate_.data() + ((b * cur_ + j) * heads_ + h) * W;
          float a = 0.f;
          for (int64_t e = 0; e < W; ++e) {
            a += dm[e] * s[e];
            ds[e] += p[j] * dm[e];
          }
          dp[j] = a;
          row += p[j] * a;
        }
        if (fault_ == Fault::kDropRetrievalRowTerm) row = 0.f;
        const float* R = r_buf_.data() + (b * cur_ + i - 1) * d_ + h * dh_;
        float* dR = dr_buf_.data() + (b * cur_ + i - 1) * d_ + h * dh_;
        for (int64_t j = 0; j < i; ++j) {
          const float dscore = scale_ * p[j] * (dp[j] - row);
          const float* H = h_buf_.data() + (b * cur_ + j) * d_ + h * dh_;
          float* dH = dh_buf_.data() + (b * cur_ + j) * d_ + h * dh_;
          for (int64_t c = 0; c < dh_; ++c) {
            dR[c] += dscore * H[c];
            dH[c] += dscore * R[c];
          }
        }
      }
    });
  }

  // From dF_j: dK_j += V_j dF_j^T, dV_j += K_j dF_j for every complete chunk j (batched per (sequence, head)).
  void states_backward(ops::Context& ctx, const float* dF) {
    for_each_head(ctx, [&](int64_t b, int64_t h) {
      const int64_t tok = (b * n_) * d_ + h * dh_, st = state_offset(b, 0, h);
      ops_.states_dk.run(ctx, v_buf_.data() + tok, dF + st, dk_.data() + tok);
      ops_.states_dv.run(ctx, k_buf_.data() + tok, dF + st, dv_.data() + tok);
    });
  }

  // A sequence of one chunk retrieves nothing: the chunk-level parameters get zero gradients.
  void zero_chunk_grads(Grads& grads) const {
    for (const ParamStore::LinearRef* l : {&meta_r_, &meta_h_, &compress_, &decompress_})
      if (l->weight)
        for (Tensor* t : {l->weight, l->bias}) {
          Tensor& g = grads.of(*t);
          std::fill(g.data(), g.data() + g.size(), 0.f);
        }
  }

  int64_t d_, heads_, dh_, dd_, chunk_, coded_;
  float scale_;
  ParamStore::LinearRef q_, k_, v_, out_, meta_r_, meta_h_, compress_{}, decompress_{};
  // Prepared state.
  int64_t batch_ = 0, n_ = 0, cur_ = 0, cross_full_ = 0;
  Ops ops_;
  SoftmaxAttentionGrad local_;
  Tensor q_buf_, k_buf_, v_buf_, local_buf_, o_buf_, lse_;  // saved, token level [b*n, d] / [b, h, n]
  Tensor xl_, h_buf_, r_buf_;                               // saved, chunk level [b*cur, d]: last LN1 rows, H_j, R_{j+1}
  Tensor f_buf_, code_, mixed_, g_buf_;                     // saved, [b*cur, h, dd | coded | W | dd]
  Tensor dq_, dk_, dv_, do_, dxl_, dh_buf_, dr_buf_, df_, dg_, dmixed_, dstate_;  // working gradients
  std::vector<Tensor> rows_ws_;                             // per thread [2, cur]: p and dp of one retrieval row
  int64_t saved_ = 0;
  Fault fault_ = Fault::kNone;
};

}  // namespace

MixerFloats bsbr_train_floats(const ModelConfig& cfg, int64_t batch, int64_t n, int threads) { return BsbrTrain::floats(cfg, batch, n, threads); }

std::unique_ptr<TrainableMixer> make_bsbr_train(const ModelConfig& cfg, ParamStore& params, const std::string& prefix) {
  return std::make_unique<BsbrTrain>(cfg, params, prefix);
}

}  // namespace bsbr::train

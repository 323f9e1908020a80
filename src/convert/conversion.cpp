// GPT-2 -> BSBR: build the converted model and map/initialise its parameters.
#include "convert/conversion.hpp"

#include <cmath>
#include <map>

#include "core/errors.hpp"
#include "core/rng.hpp"

namespace bsbr {

const char* to_string(MetaInit m) { return m == MetaInit::kMean ? "mean" : "qk"; }

MetaInit parse_meta_init(const std::string& s) {
  if (s == "mean") return MetaInit::kMean;
  if (s == "qk") return MetaInit::kQk;
  throw UserError("--meta-init must be mean or qk, got '" + s + "'");
}

std::string ConversionOptions::label() const {
  return "B=" + std::to_string(chunk_size) + ", c=" + (compression_factor > 0 ? std::to_string(compression_factor) : std::string("none"));
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Q [rows, cols] (row-major) with orthonormal columns when rows >= cols, else orthonormal rows:
// modified Gram-Schmidt on Gaussian vectors, in double. One-time initialisation, not a model op.
std::vector<float> random_orthonormal(int64_t rows, int64_t cols, uint64_t seed) {
  const bool by_columns = rows >= cols;
  const int64_t count = by_columns ? cols : rows, len = by_columns ? rows : cols;
  CounterRng rng(seed, hash_name("compress_proj.orthonormal"));
  std::vector<std::vector<double>> v(count, std::vector<double>(len));
  for (int64_t k = 0; k < count; ++k) {
    for (int64_t i = 0; i < len; ++i) v[k][i] = rng.normal(static_cast<uint64_t>(k * len + i));
    for (int pass = 0; pass < 2; ++pass)  // twice is enough (Giraud et al. 2005)
      for (int64_t j = 0; j < k; ++j) {
        double dot = 0;
        for (int64_t i = 0; i < len; ++i) dot += v[k][i] * v[j][i];
        for (int64_t i = 0; i < len; ++i) v[k][i] -= dot * v[j][i];
      }
    double norm = 0;
    for (double x : v[k]) norm += x * x;
    norm = std::sqrt(norm);
    for (double& x : v[k]) x /= norm;
  }
  std::vector<float> q(static_cast<std::size_t>(rows * cols));
  for (int64_t k = 0; k < count; ++k)
    for (int64_t i = 0; i < len; ++i) (by_columns ? q[i * cols + k] : q[k * cols + i]) = static_cast<float>(v[k][i]);
  return q;
}

}  // namespace

void init_converted_params(const ParamStore& original, ParamStore& converted, const ConversionOptions& opts) {
  std::map<std::string, const Tensor*> orig;
  for (const Param& p : original.all()) orig.emplace(p.name, &p.value);
  auto source = [&](const std::string& name, const Shape& shape) -> const float* {
    auto it = orig.find(name);
    BSBR_CHECK(it != orig.end() && it->second->shape() == shape, "conversion: original model has no parameter " + name + " " + shape_str(shape));
    return it->second->data();
  };
  std::map<Shape, std::vector<float>> projections;  // one orthonormal Q per shape
  for (Param& p : converted.all()) {
    float* out = p.value.data();
    const int64_t count = p.value.size();
    const Shape& shape = p.value.shape();
    auto it = orig.find(p.name);
    if (it != orig.end()) {
      BSBR_CHECK(it->second->shape() == shape, "conversion: " + p.name + " has shape " + shape_str(shape) + " but the original's is " +
                                                   shape_str(it->second->shape()));
      std::copy(it->second->data(), it->second->data() + count, out);
      continue;
    }
    const std::string kind = ends_with(p.name, ".weight") ? ".weight" : ".bias";
    const std::string module = p.name.substr(0, p.name.size() - kind.size());
    const std::string prefix = module.substr(0, module.rfind('.') + 1);  // "layers.i.attn."
    auto blend = [&](const char* a, const char* b) {  // out = (a + b) / 2, or a alone (qk)
      const float* pa = source(prefix + a + kind, shape);
      if (opts.meta_init == MetaInit::kQk) {
        std::copy(pa, pa + count, out);
        return;
      }
      const float* pb = source(prefix + b + kind, shape);
      for (int64_t i = 0; i < count; ++i) out[i] = 0.5f * (pa[i] + pb[i]);
    };
    if (ends_with(module, ".meta_r_proj")) {
      blend("q_proj", "k_proj");  // qk: W_q
    } else if (ends_with(module, ".meta_h_proj")) {
      blend("k_proj", "v_proj");  // qk: W_k
    } else if (ends_with(module, ".compress_proj") || ends_with(module, ".decompress_proj")) {
      if (kind == ".bias") {
        std::fill(out, out + count, 0.f);
        continue;
      }
      const bool compress = ends_with(module, ".compress_proj");
      const Shape q_shape = compress ? shape : Shape{shape[1], shape[0]};  // Q: [dh², d/c]
      auto q = projections.find(q_shape);
      if (q == projections.end()) q = projections.emplace(q_shape, random_orthonormal(q_shape[0], q_shape[1], opts.seed)).first;
      if (compress) {
        std::copy(q->second.begin(), q->second.end(), out);
      } else {  // W_d = Qᵀ
        for (int64_t r = 0; r < q_shape[0]; ++r)
          for (int64_t c = 0; c < q_shape[1]; ++c) out[c * q_shape[0] + r] = q->second[r * q_shape[1] + c];
      }
    } else {
      BSBR_CHECK(false, "conversion: no rule initialises converted parameter " + p.name);
    }
  }
}

std::unique_ptr<Model> convert_model(ops::Context& ctx, const Model& original, const ConversionOptions& opts) {
  ModelConfig cfg = original.config();
  cfg.chunk_size = opts.chunk_size;
  cfg.compression_factor = opts.compression_factor;
  cfg.validate("conversion (" + opts.label() + ")");
  auto converted = std::make_unique<Model>(ctx, cfg, find_architecture(opts.architecture), original.options());
  init_converted_params(original.params(), converted->params(), opts);
  return converted;
}

}  // namespace bsbr

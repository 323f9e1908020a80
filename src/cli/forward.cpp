// `bsbr-bench forward`: runs one token sequence through one model and dumps, per position, the
// final hidden state (after the final LayerNorm) and the logits, with the tokens, model, mode and
// config, so the numbers can be checked against another implementation.
//   --mode prefill: one forward over all tokens (logits at every position);
//   --mode decode:  prefill the first token, then one step per further token (logits per step).
#include <spdlog/spdlog.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "core/config.hpp"
#include "core/errors.hpp"
#include "core/tokens.hpp"
#include "core/io.hpp"
#include "core/limits.hpp"
#include "bench/runner.hpp"
#include "io/weights.hpp"
#include "model/model.hpp"

namespace bsbr::cli {

namespace {

struct ForwardOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set section.key=value
  std::string model;
  std::string weights_path;
  std::string tokens;
  std::string mode = "prefill";
  std::string dump_path;
  std::string threads = "0";  // parsed and range-checked in run_forward
};

// One position's values as a JSON array; counts non-finite values (JSON has no NaN/inf: they become null).
nlohmann::json row(const float* x, int64_t n, int64_t& non_finite) {
  for (int64_t i = 0; i < n; ++i) non_finite += !std::isfinite(x[i]);
  return nlohmann::json(std::vector<float>(x, x + n));
}

int run_forward(const ForwardOptions& o) {
  Config cfg = o.config_path.empty() ? Config{} : load_config(o.config_path);
  for (const std::string& kv : o.overrides) apply_override(cfg, kv);
  validate_overridden(cfg, o.overrides);
  const int64_t threads = parse_int_in("--threads", o.threads, threads_limit());
  check_output_path(o.dump_path, "--dump");  // before any work: a dump that cannot be written is found now
  const ModelConfig& mc = cfg.model;
  const Architecture& arch = find_architecture(o.model);
  const std::vector<int32_t> tokens = parse_token_ids(o.tokens, mc.vocab_size, "--tokens");
  if (tokens.empty()) throw UserError("--tokens is empty: give at least one token id");
  const int64_t n = static_cast<int64_t>(tokens.size()), d = mc.hidden_dim, V = mc.vocab_size;
  const bool decode = o.mode == "decode";

  ops::Context ctx(static_cast<int>(threads));
  // Out of memory here is exit 2 naming what was too large: the weights are guarded before they
  // are allocated, and a failed allocation names the step and its settings.
  if (std::string too_big = weights_guard(ctx, mc, arch); !too_big.empty()) throw UserError(too_big);
  const std::string sizes = "(model.vocab_size=" + std::to_string(V) + ", hidden_dim=" + std::to_string(d) + ", " + std::to_string(n) + " tokens)";
  auto owned = out_of_memory_as_error("allocating the weights of " + std::string(arch.name) + " " + sizes, [&] { return std::make_unique<Model>(ctx, mc, arch); });
  Model& model = *owned;
  if (!o.weights_path.empty()) load_weights(model, o.weights_path);

  // One sequence (batch 1, whatever the config's batch_size).
  RunShape shape;
  shape.batch = 1;
  nlohmann::json hidden = nlohmann::json::array(), logits = nlohmann::json::array();
  int64_t non_finite = 0;
  if (!decode) {
    shape.prefill_lengths = {n};
    out_of_memory_as_error("preparing the prefill, logits [" + std::to_string(n) + ", " + std::to_string(V) + "] " + sizes,
                           [&] { model.prepare(ctx, shape, LogitsMode::kAll); });
    model.prefill(ctx, tokens.data(), n);
    for (int64_t t = 0; t < n; ++t) {
      hidden.push_back(row(model.hidden() + t * d, d, non_finite));
      logits.push_back(row(model.logits() + t * V, V, non_finite));
    }
  } else {
    shape.prefill_lengths = {1};
    shape.capacity = n;
    out_of_memory_as_error("preparing the decode " + sizes, [&] { model.prepare(ctx, shape, LogitsMode::kLast); });
    model.prefill(ctx, tokens.data(), 1);
    hidden.push_back(row(model.hidden(), d, non_finite));
    logits.push_back(row(model.logits(), V, non_finite));
    for (int64_t t = 1; t < n; ++t) {
      model.step(ctx, &tokens[t], t);
      hidden.push_back(row(model.step_hidden(), d, non_finite));
      logits.push_back(row(model.logits(), V, non_finite));
    }
  }
  model.release(ctx);

  nlohmann::json dump = {
      {"format", "bsbr-bench forward dump"},
      {"version", 1},
      {"model", model.name()},
      {"mode", o.mode},
      {"tokens", tokens},
      {"config", model_config_json(mc)},
      {"config_source", cfg.source},
      {"weights", o.weights_path.empty() ? nlohmann::json() : nlohmann::json(o.weights_path)},
      {"hidden_dim", d},
      {"vocab_size", V},
      {"hidden", std::move(hidden)},  // [n][d]: final LayerNorm output per position
      {"logits", std::move(logits)},  // [n][V]
  };
  write_file_atomic(o.dump_path, dump.dump());
  if (non_finite > 0) spdlog::warn("{} non-finite values (NaN or inf) were written as null", non_finite);
  std::printf("%s, %s over %lld tokens: hidden [%lld, %lld] and logits [%lld, %lld] written to %s\n", model.name().c_str(), o.mode.c_str(),
              static_cast<long long>(n), static_cast<long long>(n), static_cast<long long>(d), static_cast<long long>(n),
              static_cast<long long>(V), o.dump_path.c_str());
  return 0;
}

}  // namespace

void add_forward(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ForwardOptions>();
  CLI::App* sub = app.add_subcommand("forward", "Run one token sequence through one model and dump its hidden states and logits as JSON");
  sub->add_option("--config", o->config_path, "YAML or JSON config (SPEC §1); default: the built-in SPEC defaults");
  sub->add_option("--set", o->overrides, "Override one config key, e.g. --set model.window_size=16 (repeatable)");
  std::string known;
  for (const Architecture& a : architectures()) known += (known.empty() ? "" : ", ") + std::string(a.name);
  sub->add_option("--model", o->model, "Model to run: " + known)->required();
  sub->add_option("--weights", o->weights_path, "safetensors weights file (e.g. written by compare --save-weights); default: seeded initialisation");
  sub->add_option("--tokens", o->tokens, "Whitespace-separated token ids, e.g. \"3 14 15 92\"")->required();
  sub->add_option("--mode", o->mode, "prefill: one forward over all tokens; decode: prefill the first token, then step through the rest")
      ->check(CLI::IsMember({"prefill", "decode"}))
      ->capture_default_str();
  sub->add_option("--dump", o->dump_path, "Output JSON: tokens, model, mode, config, and per position the final hidden state and the logits")
      ->required();
  sub->add_option("--threads", o->threads, "Worker threads (0 = all cores)")->capture_default_str();
  sub->callback([o, &exit_code]() { exit_code = run_forward(*o); });
}

}  // namespace bsbr::cli

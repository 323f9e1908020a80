// The conversion study: inputs, quality runs with per-layer capture, density, heat maps, speed.
#include "convert/study.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <set>

#include "bench/calibration.hpp"
#include "bench/environment.hpp"
#include "core/errors.hpp"
#include "core/interrupt.hpp"
#include "core/io.hpp"
#include "core/tokens.hpp"
#include "data/lm_vocab.hpp"
#include "io/gpt2_tokenizer.hpp"

namespace bsbr {

void StudyOptions::validate() const {
  if (!text_path.empty() && !tokens_path.empty()) throw UserError("give exactly one of --text FILE and --tokens FILE, not both");
  if (text_path.empty() && tokens_path.empty() && finetune.steps == 0)
    throw UserError("give exactly one of --text FILE and --tokens FILE (or neither with --finetune STEPS: the Brown test split)");
  finetune.validate();
  if (chunk_sizes.empty()) throw UserError("--chunk_sizes is empty");
  if (compressions.empty()) throw UserError("--compression is empty");
  for (int64_t b : chunk_sizes)
    if (b <= 0) throw UserError("--chunk_sizes must be positive, got " + std::to_string(b));
  for (int64_t c : compressions)
    if (c < 0) throw UserError("--compression must be none or a positive factor, got " + std::to_string(c));
  if (speed && seq_lengths.empty()) throw UserError("--seq_lengths is empty");
  for (int64_t n : seq_lengths)
    if (n <= 0) throw UserError("--seq_lengths must be positive, got " + std::to_string(n));
  if (eval_length < 0 || eval_length == 1) throw UserError("--eval_length must be at least 2 (perplexity needs a next token)");
  if (repeats <= 0 || warmup < 0 || threads < 0) throw UserError("--repeats must be positive, --warmup and --threads non-negative");
  if (!(density_threshold > 0 && density_threshold < 1)) throw UserError("--density_threshold must be in (0, 1)");
  if (heatmap_layer < 0 || heatmap_head < 0 || heatmap_length < 2) throw UserError("--heatmap_layer/--heatmap_head must be >= 0 and --heatmap_length >= 2");
}

const QualityRow* StudyResults::find_quality(int64_t chunk, int64_t compression) const {
  for (const QualityRow& q : quality)
    if (q.conversion.chunk_size == chunk && q.conversion.compression_factor == compression) return &q;
  return nullptr;
}

const SpeedRow* StudyResults::find_speed(const std::string& model, int64_t n) const {
  for (const SpeedRow& s : speed)
    if (s.model == model && s.run.problem.n == n) return &s;
  return nullptr;
}

ConversionOptions StudyResults::reference() const {
  ConversionOptions c;
  c.chunk_size = options.chunk_sizes.front();
  c.compression_factor = options.compressions.front();
  c.meta_init = options.meta_init;
  c.seed = options.seed;
  c.architecture = options.architecture;
  return c;
}

std::vector<int32_t> read_token_file(const std::string& path, int64_t vocab_size) {
  return parse_token_ids(read_file(path, "token file"), vocab_size, "token file " + path);
}

namespace {

// One model's prefill over the eval tokens, with per-layer capture.
struct Activations {
  std::vector<float> mixer_inputs, residuals;  // [L, n, d]
  std::vector<float> hidden;                   // [n, d]
  std::vector<float> logits;                   // [n, V]
};

Activations run_captured(ops::Context& ctx, Model& model, const std::vector<int32_t>& tokens) {
  const ModelConfig& c = model.config();
  const int64_t n = static_cast<int64_t>(tokens.size()), d = c.hidden_dim, L = c.num_layers, V = c.vocab_size;
  Activations a;
  a.mixer_inputs.resize(static_cast<std::size_t>(L * n * d));
  a.residuals.resize(a.mixer_inputs.size());
  model.set_capture({a.mixer_inputs.data(), a.residuals.data(), n});
  RunShape shape;
  shape.prefill_lengths = {n};
  model.prepare(ctx, shape, LogitsMode::kAll);
  model.prefill(ctx, tokens.data(), n);
  a.hidden.assign(model.hidden(), model.hidden() + n * d);
  a.logits.assign(model.logits(), model.logits() + n * V);
  model.release(ctx);
  model.set_capture({});
  return a;  // the scratchpad stays: the attention probes created before still use it
}

std::vector<int32_t> read_input(const StudyOptions& o, const Gpt2Checkpoint& ckpt, const LmData* brown, std::string& description) {
  const int64_t V = ckpt.config().model.vocab_size;
  std::vector<int32_t> ids;
  if (o.tokens_path.empty() && o.text_path.empty()) {  // --finetune without --text / --tokens
    BSBR_CHECK(brown != nullptr, "no quality input");
    ids = brown->tokens.test.tokens;
    description = "Brown test split in the checkpoint's lm_vocab.json ids";
  } else if (!o.tokens_path.empty()) {
    ids = read_token_file(o.tokens_path, V);
    description = "token ids " + o.tokens_path;
  } else {
    std::string vocab = o.vocab_path, merges = o.merges_path;
    if (vocab.empty() != merges.empty()) throw UserError("give both --vocab and --merges, or neither (then the checkpoint's are used)");
    if (vocab.empty()) {
      auto files = ckpt.tokenizer_files();
      if (!files) throw UserError("--text needs GPT-2's tokenizer: " + ckpt.dir() + " has no vocab.json + merges.txt (pass --vocab and --merges, or use --tokens)");
      vocab = files->first;
      merges = files->second;
    }
    Gpt2Tokenizer tok(vocab, merges);
    if (tok.vocab_size() != V)
      throw UserError("tokenizer " + vocab + " has " + std::to_string(tok.vocab_size()) + " tokens, the checkpoint's vocab_size is " + std::to_string(V));
    ids = tok.encode(read_file(o.text_path, "text file"));
    description = "text " + o.text_path;
  }
  description += " (" + std::to_string(ids.size()) + " tokens)";
  return ids;
}

}  // namespace

StudyResults run_conversion_study(const StudyOptions& o, const Progress& progress) {
  StudyResults r;
  run_conversion_study(o, r, progress);
  return r;
}

void run_conversion_study(const StudyOptions& o, StudyResults& r, const Progress& progress) {
  o.validate();
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  r = StudyResults{};
  r.options = o;
  Gpt2Checkpoint ckpt(o.checkpoint_dir);
  r.gpt2 = ckpt.config();
  const ModelConfig& mc = r.gpt2.model;
  const int64_t P = r.gpt2.n_positions, d = mc.hidden_dim, L = mc.num_layers, H = mc.num_heads;
  for (int64_t c : o.compressions)
    if (c > 0 && d % c != 0) throw UserError("--compression " + std::to_string(c) + " does not divide the model width " + std::to_string(d));
  if (o.heatmap_layer >= L || o.heatmap_head >= H)
    throw UserError("--heatmap_layer must be < " + std::to_string(L) + " and --heatmap_head < " + std::to_string(H));

  // Fine-tuning's inputs, checked and loaded before any model exists: the checkpoint's compact
  // vocabulary and the Brown corpus in it.
  std::unique_ptr<LmData> brown;
  int64_t ft_length = 0;
  if (o.finetune.steps > 0) {
    const FinetuneOptions& f = o.finetune;
    r.finetune.vocab_path = ckpt.dir() + "/lm_vocab.json";
    if (!std::filesystem::is_regular_file(r.finetune.vocab_path))
      throw UserError("--finetune needs the checkpoint's vocabulary " + r.finetune.vocab_path +
                      " (not found): the compact Brown vocabulary the model was trained in, which `lm --export-gpt2` writes");
    ft_length = f.length > 0 ? f.length : std::min<int64_t>(512, P);
    if (ft_length > P)
      throw UserError("--finetune-length " + std::to_string(ft_length) + " exceeds GPT-2's n_positions (" + std::to_string(P) + ")");
    r.finetune.eval_context = f.eval_context > 0 ? f.eval_context : ft_length;
    if (r.finetune.eval_context > P)
      throw UserError("--finetune-eval-context " + std::to_string(r.finetune.eval_context) + " exceeds GPT-2's n_positions (" + std::to_string(P) + ")");
    const LmVocab vocab = LmVocab::load(r.finetune.vocab_path);
    if (vocab.size() != mc.vocab_size)
      throw UserError(r.finetune.vocab_path + " has " + std::to_string(vocab.size()) + " ids, the checkpoint's vocab_size is " +
                      std::to_string(mc.vocab_size));
    say("loading the Brown corpus (" + f.corpus_dir + ") in " + r.finetune.vocab_path + "'s vocabulary");
    brown = std::make_unique<LmData>(load_lm_data(f.corpus_dir, f.gpt2_vocab_dir, vocab));
    r.finetune.vocab_size = vocab.size();
    r.finetune.length = ft_length;
    r.finetune.batch = f.batch;
    r.finetune.unk_test = brown->unk_test;
  }

  const std::vector<int32_t> input = read_input(o, ckpt, brown.get(), r.input_description);
  r.input_tokens = static_cast<int64_t>(input.size());
  if (r.input_tokens < 2) throw UserError("the input has " + std::to_string(r.input_tokens) + " tokens; quality metrics need at least 2");
  r.eval_length = o.eval_length > 0 ? o.eval_length : std::min(P, r.input_tokens);
  if (r.eval_length > P)
    throw UserError("--eval_length " + std::to_string(r.eval_length) + " exceeds GPT-2's n_positions (" + std::to_string(P) +
                    "): quality metrics are only meaningful at lengths the model was trained for");
  if (r.eval_length > r.input_tokens)
    throw UserError("--eval_length " + std::to_string(r.eval_length) + " exceeds the input's " + std::to_string(r.input_tokens) + " tokens");
  const int64_t n = r.eval_length;
  const std::vector<int32_t> tokens(input.begin(), input.begin() + n);

  find_architecture(o.architecture);  // after the input checks, before any heavy work
  ops::Context ctx(static_cast<int>(o.threads));
  say("loading " + ckpt.dir() + " (" + std::to_string(L) + " layers, d=" + std::to_string(d) + ", vocab " + std::to_string(mc.vocab_size) + ")");
  std::unique_ptr<Model> original = ckpt.make_model(ctx);
  r.params = original->param_count(false);
  r.params_with_head = original->param_count(true);

  say("quality: GPT-2 on " + std::to_string(n) + " tokens");
  const Activations ref = run_captured(ctx, *original, tokens);
  r.density = attention_density(ctx, *original, ref.mixer_inputs.data(), n, o.density_threshold, o.chunk_sizes);
  r.heatmap_length = std::min(o.heatmap_length, n);
  const int64_t m = r.heatmap_length;
  AttentionProbe probe(ctx, d, H, m);
  const std::string heat_prefix = "layers." + std::to_string(o.heatmap_layer) + ".attn";
  r.heatmap_original.resize(static_cast<std::size_t>(m * m));
  probe.softmax_map(ctx, original->params(), heat_prefix, o.heatmap_head, ref.mixer_inputs.data() + o.heatmap_layer * n * d, r.heatmap_original.data());
  r.heatmap_conversion = r.reference();

  for (int64_t B : o.chunk_sizes)
    for (int64_t c : o.compressions) {
      throw_if_interrupted();  // SIGINT / SIGTERM: stop between rows; the caller saves what was measured
      QualityRow row;
      row.conversion = r.reference();
      row.conversion.chunk_size = B;
      row.conversion.compression_factor = c;
      say("quality: " + row.conversion.label());
      std::unique_ptr<Model> conv = convert_model(ctx, *original, row.conversion);
      const Activations got = run_captured(ctx, *conv, tokens);
      row.fidelity = compare_models(ref.residuals.data(), got.residuals.data(), L, ref.hidden.data(), got.hidden.data(), ref.logits.data(),
                                    got.logits.data(), tokens.data(), n, d, mc.vocab_size);
      row.exact_pair_share = exact_pair_share(n, B);
      row.local_mass = r.density.local_mass.at(B);
      if (B == r.heatmap_conversion.chunk_size && c == r.heatmap_conversion.compression_factor) {
        r.heatmap_converted.resize(static_cast<std::size_t>(m * m));
        const float* x = got.mixer_inputs.data() + o.heatmap_layer * n * d;
        if (o.architecture == "BSBR")
          probe.bsbr_map(ctx, conv->params(), heat_prefix, o.heatmap_head, B, x, r.heatmap_converted.data());
        else  // a softmax-attention target (tests): its map is the softmax map
          probe.softmax_map(ctx, conv->params(), heat_prefix, o.heatmap_head, x, r.heatmap_converted.data());
      }
      r.quality.push_back(std::move(row));
    }

  if (brown) {  // fine-tuning: per chunk size with the reference compression
    const PerplexitySet set = perplexity_set(brown->tokens.test, r.finetune.eval_context, o.finetune.eval_tokens);
    r.finetune.eval_windows = static_cast<int64_t>(set.windows.size());
    r.finetune.eval_targets = set.targets;
    say("test perplexity: GPT-2 on " + std::to_string(set.targets) + " Brown test targets (" + std::to_string(set.windows.size()) +
        " windows of at most " + std::to_string(set.context) + " tokens)");
    r.finetune.nll_original = mean_nll(ctx, *original, set);
    r.finetune.has_original = true;
    for (int64_t B : o.chunk_sizes) {
      throw_if_interrupted();
      FinetuneRow row;
      row.conversion = r.reference();
      row.conversion.chunk_size = B;
      row.fidelity_converted = r.find_quality(B, row.conversion.compression_factor)->fidelity;
      std::unique_ptr<Model> conv = convert_model(ctx, *original, row.conversion);
      say("test perplexity: " + row.conversion.label() + " after conversion");
      row.nll_converted = mean_nll(ctx, *conv, set);
      r.finetune.rows.push_back(std::move(row));
      FinetuneRow& cur = r.finetune.rows.back();  // filled step by step: an interrupt keeps the losses so far
      say("fine-tuning " + cur.conversion.label() + ": " + std::to_string(o.finetune.steps) + " steps of " + std::to_string(o.finetune.batch) + " x " +
          std::to_string(ft_length) + " Brown train tokens");
      finetune_model(ctx, *conv, brown->tokens.train, o.finetune, ft_length, cur, say);
      say("test perplexity: " + cur.conversion.label() + " after fine-tuning");
      cur.nll_finetuned = mean_nll(ctx, *conv, set);
      cur.has_finetuned = true;
      const Activations got = run_captured(ctx, *conv, tokens);
      cur.fidelity_finetuned = compare_models(ref.residuals.data(), got.residuals.data(), L, ref.hidden.data(), got.hidden.data(),
                                              ref.logits.data(), got.logits.data(), tokens.data(), n, d, mc.vocab_size);
      cur.has_fidelity_finetuned = true;
    }
  }
  if (!o.speed) return;

  // Speed and memory: GPT-2 and the reference conversion at every length; every chunk-table and
  // compression-table configuration at the largest length.
  throw_if_interrupted();
  r.environment = to_json(collect_environment(ctx.threads()));
  say("calibrating (2048^3 f32 matmul)");
  r.calibration = to_json(calibrate(ctx));
  // The probes and the calibration are done: each speed point then counts only its own scratchpad.
  ctx.release_scratchpad();
  Config bench_cfg;
  bench_cfg.model = mc;
  bench_cfg.bench.repeats = o.repeats;
  bench_cfg.bench.warmup = o.warmup;
  bench_cfg.bench.n_tokens = 0;
  bench_cfg.bench.memory_guard = o.memory_guard;
  bench_cfg.bench.threads = o.threads;
  Runner runner(ctx, bench_cfg);
  const int64_t largest = *std::max_element(o.seq_lengths.begin(), o.seq_lengths.end());
  auto time_model = [&](Model& model, const std::string& label, int64_t chunk, int64_t comp, int64_t len) {
    throw_if_interrupted();  // and the runner polls between samples
    say("speed: " + label + " n=" + std::to_string(len) + (len > P ? " (positions wrap past n_positions)" : ""));
    SpeedRow row;
    row.model = label;
    row.chunk_size = chunk;
    row.compression_factor = comp;
    row.run = runner.run(model, {label, Workload::kPrefill, len});
    row.state_bytes = model.state_bytes(len);
    row.positions_wrapped = len > P;
    const RunRecord& rec = row.run;
    char line[160];
    std::snprintf(line, sizeof line, "  median %.3f ms, peak working memory %.1f MiB", rec.stats.median * 1e3,
                  static_cast<double>(rec.memory.peak_working_bytes) / 1048576.0);
    say(rec.status == "ok" ? std::string(line) : "  " + rec.status + ": " + rec.reason);
    r.speed.push_back(std::move(row));
  };
  for (int64_t len : o.seq_lengths) time_model(*original, "GPT-2", 0, 0, len);
  std::vector<ConversionOptions> timed;
  for (int64_t B : o.chunk_sizes) {
    ConversionOptions c = r.reference();
    c.chunk_size = B;
    timed.push_back(c);
  }
  for (int64_t comp : o.compressions) {
    ConversionOptions c = r.reference();
    c.compression_factor = comp;
    if (comp != r.reference().compression_factor) timed.push_back(c);
  }
  for (const ConversionOptions& c : timed) {
    std::unique_ptr<Model> conv = convert_model(ctx, *original, c);
    const bool is_reference = c.chunk_size == r.reference().chunk_size && c.compression_factor == r.reference().compression_factor;
    if (is_reference)
      for (int64_t len : o.seq_lengths) time_model(*conv, c.label(), c.chunk_size, c.compression_factor, len);
    else
      time_model(*conv, c.label(), c.chunk_size, c.compression_factor, largest);
  }
}

}  // namespace bsbr

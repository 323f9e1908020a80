// Conversion report: JSON, Markdown, terminal tables and gnuplot plots from StudyResults.
#include "report/conversion_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "core/interrupt.hpp"
#include "core/io.hpp"
#include "report/console.hpp"
#include "report/gnuplot.hpp"
#include "report/results.hpp"

namespace bsbr {

using nlohmann::json;

namespace {

std::string fixed(double v, int digits = 4) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
std::string sci(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}
std::string pct(double v) { return fixed(100.0 * v, 1) + "%"; }
std::string ratio(double v) { return fixed(v, 2) + "x"; }
std::string compression_name(int64_t c) { return c > 0 ? std::to_string(c) : std::string("none"); }

json fidelity_json(const Fidelity& f) {
  json layers = json::array();
  for (std::size_t l = 0; l < f.layers.size(); ++l) layers.push_back({{"layer", l}, {"cosine", f.layers[l].cosine}, {"mse", f.layers[l].mse}});
  return {{"layers", layers},
          {"final_hidden", {{"cosine", f.final_hidden.cosine}, {"mse", f.final_hidden.mse}}},
          {"kl_divergence", f.kl},
          {"top1_agreement", f.top1},
          {"top5_agreement", f.top5},
          {"top10_agreement", f.top10},
          {"perplexity_original", f.perplexity_original},
          {"perplexity_converted", f.perplexity_converted},
          {"positions", f.positions}};
}

// Median seconds and peak working bytes of an ok run, or nothing.
struct Cost {
  bool ok = false;
  double seconds = 0, bytes = 0;
  std::string status;
};
Cost cost_of(const SpeedRow* s) {
  Cost c;
  if (!s) return c;
  c.ok = s->run.status == "ok";
  c.status = s->run.status;
  c.seconds = s->run.stats.median;
  c.bytes = static_cast<double>(s->run.memory.peak_working_bytes);
  return c;
}

// Mean of the first / last k training losses (k = max(1, min(10, steps / 5))): the fine-tuning
// runs' start and end, smoothed over batches.
int64_t loss_window(const FinetuneRow& f) { return std::max<int64_t>(1, std::min<int64_t>(10, static_cast<int64_t>(f.losses.size()) / 5)); }
double mean_of(const std::vector<double>& v, std::size_t begin, std::size_t end) {
  double s = 0;
  for (std::size_t i = begin; i < end; ++i) s += v[i];
  return s / static_cast<double>(end - begin);
}
double first_losses(const FinetuneRow& f) { return mean_of(f.losses, 0, static_cast<std::size_t>(loss_window(f))); }
double last_losses(const FinetuneRow& f) { return mean_of(f.losses, f.losses.size() - static_cast<std::size_t>(loss_window(f)), f.losses.size()); }

json finetune_json(const StudyResults& r) {
  const FinetuneOptions& o = r.options.finetune;
  const FinetuneResults& f = r.finetune;
  json rows = json::array();
  for (const FinetuneRow& row : f.rows) {
    json j = {{"chunk_size", row.conversion.chunk_size},
              {"compression_factor", row.conversion.compression_factor > 0 ? json(row.conversion.compression_factor) : json("none")},
              {"nll_after_conversion", row.nll_converted},
              {"perplexity_after_conversion", std::exp(row.nll_converted)},
              {"nll_after_finetuning", row.has_finetuned ? json(row.nll_finetuned) : json(nullptr)},
              {"perplexity_after_finetuning", row.has_finetuned ? json(std::exp(row.nll_finetuned)) : json(nullptr)},
              {"steps_done", row.steps_done},
              {"seconds", row.seconds},
              {"train_loss", row.losses},
              {"fidelity_after_conversion", fidelity_json(row.fidelity_converted)},
              {"fidelity_after_finetuning", row.has_fidelity_finetuned ? fidelity_json(row.fidelity_finetuned) : json(nullptr)}};
    if (!row.losses.empty()) {
      j["loss_window"] = loss_window(row);
      j["train_loss_first"] = first_losses(row);
      j["train_loss_last"] = last_losses(row);
    }
    rows.push_back(j);
  }
  return {{"steps", o.steps},
          {"lr", o.lr},
          {"schedule", "AdamW (betas 0.9, 0.999, weight decay 0.01 on matrices, clip 1.0), linear warm-up over steps/10, cosine to lr/10"},
          {"batch", f.batch},
          {"length", f.length},
          {"seed", o.seed},
          {"corpus", o.corpus_dir},
          {"vocab", f.vocab_path},
          {"vocab_size", f.vocab_size},
          {"eval",
           {{"split", "Brown test"}, {"context", f.eval_context}, {"windows", f.eval_windows}, {"targets", f.eval_targets},
            {"max_targets", o.eval_tokens}, {"unk_share", f.unk_test}}},
          {"nll_before_conversion", f.has_original ? json(f.nll_original) : json(nullptr)},
          {"perplexity_before_conversion", f.has_original ? json(std::exp(f.nll_original)) : json(nullptr)},
          {"rows", rows}};
}

int64_t largest_length(const StudyResults& r) { return *std::max_element(r.options.seq_lengths.begin(), r.options.seq_lengths.end()); }

}  // namespace

json to_json(const StudyResults& r) {
  const StudyOptions& o = r.options;
  json quality = json::array();
  for (const QualityRow& q : r.quality)
    quality.push_back({{"chunk_size", q.conversion.chunk_size},
                       {"compression_factor", q.conversion.compression_factor > 0 ? json(q.conversion.compression_factor) : json("none")},
                       {"exact_pair_share", q.exact_pair_share},
                       {"original_local_attention_mass", q.local_mass},
                       {"fidelity", fidelity_json(q.fidelity)}});
  json speed = json::array();
  for (const SpeedRow& s : r.speed) {
    json run = to_json(s.run);
    run["model"] = s.model;
    run["chunk_size"] = s.chunk_size;
    run["compression_factor"] = s.compression_factor;
    run["state_bytes"] = s.state_bytes;
    run["positions_wrapped"] = s.positions_wrapped;
    speed.push_back(run);
  }
  json local = json::object();
  for (const auto& [B, m] : r.density.local_mass) local[std::to_string(B)] = m;
  json exact = json::object();
  for (int64_t B : o.chunk_sizes) exact[std::to_string(B)] = exact_pair_share(r.eval_length, B);
  std::vector<std::string> comps;
  for (int64_t c : o.compressions) comps.push_back(compression_name(c));
  const ModelConfig& m = r.gpt2.model;
  json out = {{"schema_version", 1},
              {"kind", "conversion_study"},
              {"checkpoint",
               {{"dir", o.checkpoint_dir},
                {"vocab_size", m.vocab_size}, {"n_embd", m.hidden_dim}, {"n_layer", m.num_layers}, {"n_head", m.num_heads},
                {"n_inner", m.ff_dim}, {"n_positions", r.gpt2.n_positions}, {"layer_norm_epsilon", m.layer_norm_eps},
                {"gelu", r.gpt2.skeleton.ffn_activation == ops::Eltwise::kGeluTanh ? "tanh approximation" : "erf"},
                {"defaults_used", r.gpt2.defaults_used}, {"params", r.params}, {"params_with_head", r.params_with_head}}},
              {"input", {{"description", r.input_description}, {"tokens", r.input_tokens}, {"eval_length", r.eval_length}}},
              {"options",
               {{"architecture", o.architecture}, {"chunk_sizes", o.chunk_sizes}, {"compression", comps}, {"meta_init", to_string(o.meta_init)},
                {"seq_lengths", o.seq_lengths}, {"speed", o.speed}, {"repeats", o.repeats}, {"warmup", o.warmup}, {"threads", o.threads},
                {"density_threshold", o.density_threshold}, {"seed", o.seed},
                {"heatmap", {{"layer", o.heatmap_layer}, {"head", o.heatmap_head}, {"length", r.heatmap_length},
                             {"converted", r.heatmap_conversion.label()}}}}},
              {"quality", quality},
              {"attention_density",
               {{"threshold", r.density.threshold}, {"original_above_threshold", r.density.above_threshold},
                {"original_above_threshold_by_layer", r.density.above_threshold_by_layer}, {"original_local_attention_mass", local},
                {"exact_pair_share", exact}, {"length", r.eval_length}}},
              {"speed", speed},
              {"environment", r.environment},
              {"calibration", r.calibration}};
  if (o.finetune.steps > 0) out["finetune"] = finetune_json(r);
  if (!r.partial_reason.empty()) {
    out["partial"] = true;
    out["partial_reason"] = r.partial_reason;
  }
  return out;
}

std::vector<ReportTable> conversion_tables(const StudyResults& r) {
  const StudyOptions& o = r.options;
  std::vector<ReportTable> out;
  const int64_t c0 = o.compressions.front(), B0 = o.chunk_sizes.front();
  const std::string n = std::to_string(r.eval_length);

  ReportTable fid{"Fidelity of the converted model on the first " + n + " input tokens",
                  {"conversion", "cos (last block)", "MSE (last block)", "cos (final LN)", "KL (nats)", "top-1", "top-5", "top-10",
                   "ppl GPT-2", "ppl converted"},
                  {}};
  for (const QualityRow& q : r.quality) {
    const Fidelity& f = q.fidelity;
    fid.rows.push_back({q.conversion.label(), fixed(f.layers.back().cosine), sci(f.layers.back().mse), fixed(f.final_hidden.cosine), sci(f.kl),
                        pct(f.top1), pct(f.top5), pct(f.top10), fixed(f.perplexity_original, 2), fixed(f.perplexity_converted, 2)});
  }
  out.push_back(fid);

  ReportTable layers{"Per-layer hidden states (residual stream after each block), compression " + compression_name(c0), {"layer"}, {}};
  for (int64_t B : o.chunk_sizes) layers.header.push_back("cos B=" + std::to_string(B));
  for (int64_t B : o.chunk_sizes) layers.header.push_back("MSE B=" + std::to_string(B));
  for (int64_t l = 0; l < r.gpt2.model.num_layers; ++l) {
    std::vector<std::string> row{std::to_string(l)};
    for (int64_t B : o.chunk_sizes) row.push_back(fixed(r.find_quality(B, c0)->fidelity.layers[l].cosine));
    for (int64_t B : o.chunk_sizes) row.push_back(sci(r.find_quality(B, c0)->fidelity.layers[l].mse));
    layers.rows.push_back(row);
  }
  out.push_back(layers);

  const bool timed = !r.speed.empty();
  const int64_t big = largest_length(r);
  const Cost base = cost_of(r.find_speed("GPT-2", big));
  auto cost_cells = [&](const ConversionOptions& c) -> std::vector<std::string> {
    if (!timed) return {"-", "-", "-"};
    const SpeedRow* s = r.find_speed(c.label(), big);
    Cost k = cost_of(s);
    if (!k.ok || !base.ok) return {k.ok ? format_seconds(k.seconds) : (s ? s->run.status : "-"), "-", s ? format_bytes(static_cast<double>(s->state_bytes)) : "-"};
    return {format_seconds(k.seconds) + " (" + ratio(base.seconds / k.seconds) + ")", format_bytes(k.bytes) + " (" + ratio(k.bytes / base.bytes) + ")",
            format_bytes(static_cast<double>(s->state_bytes))};
  };
  const std::string at = timed ? " @ n=" + std::to_string(big) : "";
  ReportTable chunk{"Chunk size (compression " + compression_name(c0) + "): quality at n=" + n + ", cost" + at + " (speedup and memory vs GPT-2)",
                    {"chunk", "exact pairs", "GPT-2 attn mass in chunk", "cos (last block)", "KL", "top-1", "ppl", "prefill time" + at,
                     "peak memory" + at, "decode state" + at},
                    {}};
  for (int64_t B : o.chunk_sizes) {
    const QualityRow& q = *r.find_quality(B, c0);
    std::vector<std::string> row{std::to_string(B), pct(q.exact_pair_share), pct(q.local_mass), fixed(q.fidelity.layers.back().cosine),
                                 sci(q.fidelity.kl), pct(q.fidelity.top1), fixed(q.fidelity.perplexity_converted, 2)};
    for (auto& cell : cost_cells(q.conversion)) row.push_back(cell);
    chunk.rows.push_back(row);
  }
  out.push_back(chunk);

  ReportTable comp{"Compression factor (chunk " + std::to_string(B0) + "): quality at n=" + n + ", cost" + at,
                   {"compression", "cos (last block)", "KL", "top-1", "top-5", "ppl", "prefill time" + at, "peak memory" + at, "decode state" + at},
                   {}};
  for (int64_t c : o.compressions) {
    const QualityRow& q = *r.find_quality(B0, c);
    std::vector<std::string> row{compression_name(c), fixed(q.fidelity.layers.back().cosine), sci(q.fidelity.kl), pct(q.fidelity.top1),
                                 pct(q.fidelity.top5), fixed(q.fidelity.perplexity_converted, 2)};
    for (auto& cell : cost_cells(q.conversion)) row.push_back(cell);
    comp.rows.push_back(row);
  }
  out.push_back(comp);

  if (timed) {
    const std::string label = r.reference().label();
    ReportTable speed{"Prefill time and peak working memory vs length: GPT-2 vs converted (" + label + ")",
                      {"n", "GPT-2 time", "converted time", "speedup", "GPT-2 peak memory", "converted peak memory", "memory ratio",
                       "GPT-2 KV cache", "converted decode state", "note"},
                      {}};
    auto state = [](const SpeedRow* s) { return s ? format_bytes(static_cast<double>(s->state_bytes)) : std::string("-"); };
    for (int64_t len : o.seq_lengths) {
      Cost a = cost_of(r.find_speed("GPT-2", len)), b = cost_of(r.find_speed(label, len));
      std::string note = len > r.gpt2.n_positions ? "positions wrap (n > n_positions " + std::to_string(r.gpt2.n_positions) + ")" : "";
      for (const SpeedRow* s : {r.find_speed("GPT-2", len), r.find_speed(label, len)})
        if (s && s->run.status != "ok") note += (note.empty() ? "" : "; ") + s->model + " " + s->run.status + ": " + s->run.reason;
      speed.rows.push_back({std::to_string(len), a.ok ? format_seconds(a.seconds) : "-", b.ok ? format_seconds(b.seconds) : "-",
                            a.ok && b.ok ? ratio(a.seconds / b.seconds) : "-", a.ok ? format_bytes(a.bytes) : "-", b.ok ? format_bytes(b.bytes) : "-",
                            a.ok && b.ok ? ratio(b.bytes / a.bytes) : "-", state(r.find_speed("GPT-2", len)), state(r.find_speed(label, len)), note});
    }
    out.push_back(speed);
  }

  if (o.finetune.steps > 0 && !r.finetune.rows.empty()) {
    const FinetuneResults& f = r.finetune;
    const std::string before = f.has_original ? fixed(std::exp(f.nll_original), 2) : "-";
    ReportTable ft{"Fine-tuning (" + std::to_string(o.finetune.steps) + " steps of " + std::to_string(f.batch) + " x " + std::to_string(f.length) +
                       " Brown train tokens): test perplexity on " + std::to_string(f.eval_targets) + " Brown test targets (" +
                       std::to_string(f.eval_windows) + " windows of at most " + std::to_string(f.eval_context) + " tokens)",
                   {"conversion", "ppl before conversion", "ppl after conversion", "ppl after fine-tuning", "top-1 after conv.", "top-1 after FT",
                    "KL after conv.", "KL after FT", "train loss first", "train loss last", "time"},
                   {}};
    for (const FinetuneRow& row : f.rows) {
      const bool done = row.has_finetuned, fid = row.has_fidelity_finetuned, any = !row.losses.empty();
      ft.rows.push_back({row.conversion.label(), before, fixed(std::exp(row.nll_converted), 2),
                         done ? fixed(std::exp(row.nll_finetuned), 2) : "- (" + std::to_string(row.steps_done) + " steps)",
                         pct(row.fidelity_converted.top1), fid ? pct(row.fidelity_finetuned.top1) : "-", sci(row.fidelity_converted.kl),
                         fid ? sci(row.fidelity_finetuned.kl) : "-", any ? fixed(first_losses(row)) : "-", any ? fixed(last_losses(row)) : "-",
                         format_seconds(row.seconds)});
    }
    ft.notes.push_back("perplexity = exp(mean next-token NLL over the evaluated targets), the same Brown test windows for all three columns; "
                       "vocabulary: " + f.vocab_path + " (" + std::to_string(f.vocab_size) + " ids, <unk> share of the test split " + pct(f.unk_test) + ")");
    ft.notes.push_back("top-1 / KL: agreement with GPT-2 on the quality tokens (first " + n + " input tokens) after conversion and after fine-tuning");
    ft.notes.push_back("train loss first / last: mean over the first / last max(1, min(10, steps/5)) steps' batches");
    out.push_back(ft);
  }

  ReportTable dens{"Attention density: share of causal query-key pairs BSBR computes exactly (within a chunk); the rest go through chunk retrieval",
                   {"n"}, {}};
  for (int64_t B : o.chunk_sizes) dens.header.push_back("B=" + std::to_string(B));
  std::set<int64_t> lengths(o.seq_lengths.begin(), o.seq_lengths.end());
  lengths.insert(r.eval_length);
  for (int64_t len : lengths) {
    std::vector<std::string> row{std::to_string(len)};
    for (int64_t B : o.chunk_sizes) row.push_back(pct(exact_pair_share(len, B)));
    dens.rows.push_back(row);
  }
  out.push_back(dens);

  ReportTable above{"GPT-2's own attention at n=" + n + ": share of causal attention weights above " + sci(r.density.threshold) +
                        " (mean over heads), and the attention mass within BSBR's chunks",
                    {"layer", "weights > " + sci(r.density.threshold)},
                    {}};
  for (std::size_t l = 0; l < r.density.above_threshold_by_layer.size(); ++l)
    above.rows.push_back({std::to_string(l), pct(r.density.above_threshold_by_layer[l])});
  above.rows.push_back({"all", pct(r.density.above_threshold)});
  for (const auto& [B, mass] : r.density.local_mass) above.rows.push_back({"mass in chunk, B=" + std::to_string(B), pct(mass)});
  out.push_back(above);
  return out;
}

std::string conversion_markdown(const StudyResults& r, const std::vector<std::string>& plots) {
  const StudyOptions& o = r.options;
  const ModelConfig& m = r.gpt2.model;
  std::string s = "# GPT-2 → BSBR conversion report\n\n";
  s += "- checkpoint: `" + o.checkpoint_dir + "`: " + std::to_string(m.num_layers) + " layers, d=" + std::to_string(m.hidden_dim) + ", " +
       std::to_string(m.num_heads) + " heads, vocabulary " + std::to_string(m.vocab_size) + ", n_positions " + std::to_string(r.gpt2.n_positions) +
       ", " + std::to_string(r.params) + " parameters (the LM head is tied to the token embedding)\n";
  for (const std::string& d : r.gpt2.defaults_used) s += "- config.json lacks a key; Hugging Face's default used: " + d + "\n";
  s += "- input: " + r.input_description + "; quality metrics on the first " + std::to_string(r.eval_length) + " tokens\n";
  s += "- conversion: attention → " + o.architecture + " with the same weights, learned positions kept, meta projections initialised `" +
       to_string(o.meta_init) + "` (" +
       (o.meta_init == MetaInit::kMean ? "W_r = (W_q + W_k)/2, W_h = (W_k + W_v)/2" : "W_r = W_q, W_h = W_k") +
       "); compression uses a random orthonormal projection and its transpose\n";
  if (!r.speed.empty()) s += "- timing: prefill (one forward over n tokens), median of " + std::to_string(o.repeats) + " repeats after " +
                             std::to_string(o.warmup) + " warm-up; memory = peak working bytes (activations + state + scratchpad) counted by the tool's allocator\n";
  s += "\n";
  for (const ReportTable& t : conversion_tables(r)) s += render_markdown(t) + "\n";
  if (!plots.empty()) {
    s += "### Plots\n\n";
    for (const std::string& p : plots) s += "![" + p + "](" + p + ")\n\n";
  }
  s += "### What the metrics mean\n\n"
       "- **cos / MSE (per layer)**: cosine similarity (mean over positions) and mean squared difference of the residual stream after each "
       "block, original vs converted; ideal 1 and 0. *final LN* is what the LM head reads.\n"
       "- **KL**: mean over positions of KL(P_GPT-2 ‖ P_converted) of the next-token distributions, in nats; ideal 0.\n"
       "- **top-k**: mean over positions of |top-k(GPT-2) ∩ top-k(converted)| / k; top-1 is argmax agreement; ideal 100%.\n"
       "- **ppl**: perplexity of each model on the input itself (next-token prediction over the quality tokens).\n"
       "- **fine-tuning**: test perplexity = exp(mean next-token NLL over the evaluated Brown test targets) of GPT-2 before conversion, "
       "the converted model before any training, and after `--finetune` steps of AdamW on the Brown train split.\n"
       "- **exact pairs**: share of the n(n+1)/2 causal query-key pairs inside a query's own chunk, which BSBR attends to exactly; every "
       "other pair reaches the query only through chunk retrieval q_t·Σ_j p_ij K_jᵀV_j.\n"
       "- **GPT-2 attn mass in chunk**: share of the original model's softmax attention weight (mean over layers, heads, positions) that "
       "falls on those within-chunk pairs: how much of what GPT-2 attends to BSBR keeps exact.\n"
       "- **weights > threshold**: share of the original's causal attention weights above the threshold: how dense GPT-2's attention is.\n"
       "- **heat maps**: layer " + std::to_string(o.heatmap_layer) + ", head " + std::to_string(o.heatmap_head) + ", first " +
       std::to_string(r.heatmap_length) + " positions; GPT-2's softmax weights, and the weight BSBR (" + r.heatmap_conversion.label() +
       ") gives each value v_s: the local softmax inside the chunk, |p_ij q_t·k_s| for earlier chunks (drawn without compression).\n";
  return s;
}

std::vector<std::string> draw_conversion_plots(const StudyResults& r, const std::string& out_dir) {
  const Gnuplot gnuplot = Gnuplot::require();
  std::vector<std::string> files;
  const StudyOptions& o = r.options;
  const std::string label = r.reference().label();
  auto draw = [&](const std::string& file, const std::string& script, PngSize size = {}) {
    gnuplot.render_png(script, out_dir + "/" + file, size);
    files.push_back(file);
  };
  if (!r.speed.empty()) {
    std::string rows;
    for (int64_t len : o.seq_lengths) {
      Cost a = cost_of(r.find_speed("GPT-2", len)), b = cost_of(r.find_speed(label, len));
      auto cell = [](bool ok, double v) { return ok ? sci(v) : std::string("NaN"); };
      rows += std::to_string(len) + " " + cell(a.ok, a.seconds * 1e3) + " " + cell(b.ok, b.seconds * 1e3) + " " + cell(a.ok, a.bytes / 1048576.0) +
              " " + cell(b.ok, b.bytes / 1048576.0) + "\n";
    }
    const std::string common = gnuplot_datablock("speed", rows) + "set logscale xy 2\nset grid\nset key top left\nset xlabel \"sequence length n (tokens)\"\n";
    const std::string wrap = " (positions wrap past n = " + std::to_string(r.gpt2.n_positions) + ")";
    draw("speed_vs_length.png", common + "set ylabel \"prefill time (ms, median)\"\nset title " +
                                    gnuplot_quote("Prefill time: GPT-2 vs converted (" + label + ")" + wrap) +
                                    "\nplot $speed using 1:2 with linespoints title \"GPT-2\", $speed using 1:3 with linespoints title \"converted\"\n");
    draw("memory_vs_length.png", common + "set ylabel \"peak working memory (MiB)\"\nset title " +
                                     gnuplot_quote("Peak working memory: GPT-2 vs converted (" + label + ")") +
                                     "\nplot $speed using 1:4 with linespoints title \"GPT-2\", $speed using 1:5 with linespoints title \"converted\"\n");
  }
  {
    std::string rows, plot = "plot ";
    const int64_t c0 = o.compressions.front();
    for (int64_t l = 0; l < r.gpt2.model.num_layers; ++l) {
      rows += std::to_string(l);
      for (int64_t B : o.chunk_sizes) rows += " " + sci(r.find_quality(B, c0)->fidelity.layers[l].cosine);
      rows += "\n";
    }
    for (std::size_t i = 0; i < o.chunk_sizes.size(); ++i)
      plot += std::string(i ? ", " : "") + "$layers using 1:" + std::to_string(i + 2) + " with linespoints title " +
              gnuplot_quote("B=" + std::to_string(o.chunk_sizes[i]));
    draw("layer_cosine.png", gnuplot_datablock("layers", rows) +
                                 "set grid\nset key bottom left\nset xlabel \"block\"\nset ylabel \"cosine similarity to GPT-2 (mean over positions)\"\n"
                                 "set title " + gnuplot_quote("Hidden states after each block, compression " + compression_name(c0)) + "\n" + plot + "\n");
  }
  if (!r.finetune.rows.empty() && !r.finetune.rows.front().losses.empty()) {  // fine-tuning loss per step, one line per chunk size
    std::string rows, plot = "plot ";
    std::size_t steps = 0;
    for (const FinetuneRow& f : r.finetune.rows) steps = std::max(steps, f.losses.size());
    for (std::size_t s = 0; s < steps; ++s) {
      rows += std::to_string(s + 1);
      for (const FinetuneRow& f : r.finetune.rows) rows += " " + (s < f.losses.size() ? sci(f.losses[s]) : std::string("NaN"));
      rows += "\n";
    }
    for (std::size_t i = 0; i < r.finetune.rows.size(); ++i)
      plot += std::string(i ? ", " : "") + "$loss using 1:" + std::to_string(i + 2) + " with lines title " +
              gnuplot_quote(r.finetune.rows[i].conversion.label());
    draw("finetune_loss.png", gnuplot_datablock("loss", rows) +
                                  "set grid\nset key top right\nset xlabel \"fine-tuning step\"\nset ylabel \"training loss (nats per token)\"\n"
                                  "set title " + gnuplot_quote("Fine-tuning the converted model on Brown") + "\n" + plot + "\n");
  }
  auto heat = [&](const std::string& file, const std::vector<float>& map, const std::string& title) {
    const int64_t m = r.heatmap_length;
    std::string rows;
    rows.reserve(static_cast<std::size_t>(m * m * 10));
    for (int64_t t = 0; t < m; ++t) {
      for (int64_t s = 0; s < m; ++s) rows += (s ? " " : "") + (s <= t ? sci(std::max(1e-6, static_cast<double>(std::fabs(map[t * m + s])))) : std::string("NaN"));
      rows += "\n";
    }
    // Log colour scale from 1e-4 up (BSBR retrieval weights are not probabilities and may exceed 1),
    // viridis palette; the masked future (NaN) stays white.
    const std::string range = std::to_string(m) + "-0.5";
    draw(file,
         gnuplot_datablock("map", rows) + "set size ratio -1\nset xlabel \"key position s\"\nset ylabel \"query position t\"\nset yrange [" + range +
             ":-0.5]\nset xrange [-0.5:" + range + "]\nset logscale cb\nset cbrange [1e-4:*]\n"
             "set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')\n"
             "set title " + gnuplot_quote(title) + "\nplot $map matrix with image notitle\n",
         PngSize{760, 700});
  };
  const std::string where = "layer " + std::to_string(o.heatmap_layer) + ", head " + std::to_string(o.heatmap_head);
  heat("attention_gpt2.png", r.heatmap_original, "GPT-2 attention weights, " + where);
  if (!r.heatmap_converted.empty()) heat("attention_converted.png", r.heatmap_converted, "Converted (" + r.heatmap_conversion.label() + "): |weight on v_s|, " + where);
  return files;
}

ReportFiles write_conversion_report(const StudyResults& r, const std::string& out_dir, bool plots) {
  ReportFiles f;
  f.json = out_dir + "/conversion_results.json";
  write_file_atomic(f.json, to_json(r).dump(2) + "\n");  // first: the results stay if a plot fails
  if (plots) f.plots = draw_conversion_plots(r, out_dir);
  f.markdown = out_dir + "/conversion_report.md";
  write_file_atomic(f.markdown, conversion_markdown(r, f.plots));
  return f;
}

void keep_partial_study(StudyResults& r, const std::string& out_dir, const std::function<void()>& study) {
  auto save = [&](const std::string& reason) {
    const std::size_t quality = r.quality.size(), speed = r.speed.size();
    if (quality == 0 && speed == 0) return;  // nothing measured: nothing to keep (and no file for a refused input)
    r.partial_reason = reason + " after " + std::to_string(quality) + " of " +
                       std::to_string(r.options.chunk_sizes.size() * r.options.compressions.size()) + " quality rows" +
                       (r.options.finetune.steps > 0 ? ", " + std::to_string(r.finetune.rows.size()) + " fine-tuning rows (the last one maybe unfinished)" : "") +
                       " and " + std::to_string(speed) + " speed points";
    const std::string path = out_dir + "/conversion_results.json";
    write_file_atomic(path, to_json(r).dump(2) + "\n");
    std::fprintf(stderr, "%zu quality rows and %zu speed points measured so far written to %s, marked partial\n", quality, speed, path.c_str());
  };
  run_saving_partial(study, save);
}

}  // namespace bsbr

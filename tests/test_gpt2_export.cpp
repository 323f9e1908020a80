// GPT-2 export (io/gpt2_export.hpp): a GPT-2-shaped model trained for a few steps, written as a
// Hugging Face checkpoint and read back by Gpt2Checkpoint, gives bit-identical parameters and the
// same logits; hostile output directories and models that are not GPT-2-shaped are refused.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/io.hpp"
#include "core/rng.hpp"
#include "io/gpt2_export.hpp"
#include "io/safetensors.hpp"
#include "test_util.hpp"
#include "train/optimizer.hpp"

namespace bsbr {
namespace {

namespace fs = std::filesystem;
using test::logits_all;

ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 37;
  c.hidden_dim = 16;
  c.num_heads = 2;
  c.num_layers = 2;
  c.ff_dim = 40;  // not 4 d: n_inner must travel
  c.layer_norm_eps = 1e-5;
  c.init_std = 0.1;
  c.seed = 5;
  return c;
}

std::vector<int32_t> tokens_for(int64_t count, int64_t V, uint64_t salt) {
  std::vector<int32_t> t(static_cast<std::size_t>(count));
  CounterRng rng(salt, 3);
  for (int64_t i = 0; i < count; ++i) t[i] = static_cast<int32_t>(rng.bits(static_cast<uint64_t>(i)) % V);
  return t;
}

// A GPT-2-shaped model after a few AdamW steps (so no parameter keeps its initial value).
std::unique_ptr<Model> trained_tiny_gpt2(ops::Context& ctx, int64_t positions) {
  auto model = std::make_unique<Model>(ctx, tiny_config(), find_architecture("Standard"), gpt2_skeleton(positions));
  train::TrainModel tm(ctx, *model);
  train::AdamWConfig ac;
  ac.lr = 1e-2;
  ac.total_steps = 3;
  train::AdamW opt(ctx, model->params(), ac);
  tm.prepare(ctx, 2, 17);
  for (int64_t s = 0; s < 3; ++s) {
    const std::vector<int32_t> batch = tokens_for(2 * 17, tiny_config().vocab_size, 10 + s);
    train::train_step(ctx, tm, opt, batch.data());
  }
  return model;
}

TEST(Gpt2Export, RoundTripIsBitIdentical) {
  ops::Context ctx(2);
  std::unique_ptr<Model> model = trained_tiny_gpt2(ctx, 24);
  const std::string dir = test::temp_dir("gpt2_export") + "/ckpt";  // created by the export
  save_gpt2_checkpoint(dir, *model, nullptr);
  EXPECT_FALSE(fs::exists(dir + "/lm_vocab.json"));

  Gpt2Checkpoint ckpt(dir);
  const Gpt2Config& g = ckpt.config();
  EXPECT_TRUE(g.defaults_used.empty()) << g.defaults_used.front();
  EXPECT_EQ(g.n_positions, 24);
  EXPECT_EQ(g.model.vocab_size, 37);
  EXPECT_EQ(g.model.hidden_dim, 16);
  EXPECT_EQ(g.model.num_layers, 2);
  EXPECT_EQ(g.model.num_heads, 2);
  EXPECT_EQ(g.model.ff_dim, 40);
  EXPECT_EQ(g.model.layer_norm_eps, 1e-5);
  EXPECT_EQ(g.skeleton.ffn_activation, ops::Eltwise::kGeluTanh);
  EXPECT_TRUE(g.skeleton.tied_lm_head);
  // Hugging Face's names, as openai-community/gpt2 stores them (no "transformer." prefix, no lm_head).
  EXPECT_NE(ckpt.file().find("h.1.attn.c_attn.weight"), nullptr);
  EXPECT_EQ(ckpt.file().find("lm_head.weight"), nullptr);
  EXPECT_EQ(ckpt.file().metadata().at("format"), "pt");
  const nlohmann::json cfg = nlohmann::json::parse(read_file(dir + "/config.json", "config"));
  EXPECT_EQ(cfg.at("architectures"), nlohmann::json::array({"GPT2LMHeadModel"}));
  EXPECT_EQ(cfg.at("activation_function"), "gelu_new");
  EXPECT_EQ(cfg.at("n_ctx"), 24);
  EXPECT_EQ(cfg.at("tie_word_embeddings"), true);

  std::unique_ptr<Model> loaded = ckpt.make_model(ctx);
  ASSERT_EQ(loaded->params().all().size(), model->params().all().size());
  for (const Param& p : model->params().all()) {
    const Param* q = loaded->params().find(p.name);
    ASSERT_NE(q, nullptr) << p.name;
    ASSERT_EQ(q->value.shape(), p.value.shape()) << p.name;
    EXPECT_EQ(std::memcmp(q->value.data(), p.value.data(), static_cast<std::size_t>(p.value.size()) * sizeof(float)), 0) << p.name;
  }
  const std::vector<int32_t> t = tokens_for(24, 37, 99);
  EXPECT_EQ(logits_all(ctx, *loaded, t), logits_all(ctx, *model, t));

  // Overwriting an earlier export (regular files) is fine.
  EXPECT_NO_THROW(save_gpt2_checkpoint(dir, *loaded, nullptr));
}

TEST(Gpt2Export, VocabularyTravelsAndMustFit) {
  ops::Context ctx(1);
  Model model(ctx, tiny_config(), find_architecture("Standard"), gpt2_skeleton(8));
  // A vocabulary of 37 compact ids over a 100-id source vocabulary.
  TokenSplit train;
  for (int32_t i = 0; i < 99; ++i) train.tokens.push_back(i % 60);
  const LmVocab vocab = LmVocab::build(train, 100, 99, 37);
  const std::string dir = test::temp_dir("gpt2_export_vocab");
  save_gpt2_checkpoint(dir, model, &vocab);
  EXPECT_EQ(LmVocab::load(dir + "/lm_vocab.json").to_json(), vocab.to_json());
  const nlohmann::json cfg = nlohmann::json::parse(read_file(dir + "/config.json", "config"));
  EXPECT_EQ(cfg.at("eos_token_id"), LmVocab::kEot);
  const LmVocab small = LmVocab::build(train, 100, 99, 20);
  EXPECT_THROW(save_gpt2_checkpoint(test::temp_dir("gpt2_export_vocab2"), model, &small), UserError);
}

TEST(Gpt2Export, HostileOutputIsRefusedBeforeWriting) {
  ops::Context ctx(1);
  Model model(ctx, tiny_config(), find_architecture("Standard"), gpt2_skeleton(8));
  {  // a symlink where model.safetensors goes: nothing written, the link's target untouched
    const std::string dir = test::temp_dir("gpt2_export_link"), target = dir + "/elsewhere";
    write_file_atomic(target, "keep");
    fs::create_symlink(target, dir + "/model.safetensors");
    EXPECT_THROW(save_gpt2_checkpoint(dir, model, nullptr), UserError);
    EXPECT_EQ(read_file(target, "target"), "keep");
    EXPECT_FALSE(fs::exists(dir + "/config.json"));
  }
  {  // a FIFO where config.json goes (opening it would block): refused before the weights are written
    const std::string dir = test::temp_dir("gpt2_export_fifo");
    ASSERT_EQ(::mkfifo((dir + "/config.json").c_str(), 0600), 0);
    EXPECT_THROW(save_gpt2_checkpoint(dir, model, nullptr), UserError);
    EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  }
  {  // the directory itself a regular file
    const std::string file = test::temp_dir("gpt2_export_file") + "/plain";
    write_file_atomic(file, "x");
    EXPECT_THROW(save_gpt2_checkpoint(file, model, nullptr), UserError);
  }
}

TEST(Gpt2Export, ModelsThatAreNotGpt2ShapedAreRefused) {
  ops::Context ctx(1);
  const std::string dir = test::temp_dir("gpt2_export_shape");
  Model study(ctx, tiny_config(), find_architecture("Standard"));  // sinusoidal, erf, untied
  EXPECT_THROW(save_gpt2_checkpoint(dir, study, nullptr), UserError);
  Model bsbr(ctx, tiny_config(), find_architecture("BSBR"), gpt2_skeleton(8));  // GPT-2's skeleton, not its attention
  EXPECT_THROW(save_gpt2_checkpoint(dir, bsbr, nullptr), UserError);
  SkeletonOptions untied = gpt2_skeleton(8);
  untied.tied_lm_head = false;
  Model head(ctx, tiny_config(), find_architecture("Standard"), untied);
  EXPECT_THROW(save_gpt2_checkpoint(dir, head, nullptr), UserError);
  EXPECT_FALSE(fs::exists(dir + "/config.json"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
}

}  // namespace
}  // namespace bsbr

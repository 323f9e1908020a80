// Weights in and out (io/weights.hpp): save -> load gives bitwise-identical outputs for every
// architecture; every kind of bad file is one clear UserError that leaves the model untouched; and
// through the CLI (compare --save-weights / --weights, forward --weights) bad files exit with 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "bench/runner.hpp"
#include "core/errors.hpp"
#include "io/safetensors.hpp"
#include "io/weights.hpp"
#include "model/model.hpp"
#include "model_checks.hpp"
#include "test_util.hpp"

namespace bsbr {
namespace {

std::string dir() {
  static std::string d = test::temp_dir("weights");
  return d;
}

// Tiny widths (d=32, V=61, ff=48); chunks and window small so every structure is exercised.
ModelConfig small_config(uint64_t seed) {
  ModelConfig c = test::tiny_config(/*linear_chunk_size=*/8, seed);
  c.chunk_size = 8;
  c.window_size = 4;
  c.compression_factor = 2;
  return c;
}

// Hidden states and logits of one prefill over n tokens.
std::vector<float> outputs(ops::Context& ctx, Model& m, int64_t n) {
  const ModelConfig& c = m.config();
  RunShape s;
  s.prefill_lengths = {n};
  m.prepare(ctx, s, LogitsMode::kAll);
  auto tokens = Runner::input_tokens(small_config(0), 1, n);  // the same tokens whatever the model's seed
  m.prefill(ctx, tokens.data(), n);
  std::vector<float> out(m.hidden(), m.hidden() + n * c.hidden_dim);
  out.insert(out.end(), m.logits(), m.logits() + n * c.vocab_size);
  m.release(ctx);
  return out;
}

std::vector<float> all_params(const Model& m) {
  std::vector<float> v;
  for (const Param& p : m.params().all()) v.insert(v.end(), p.value.data(), p.value.data() + p.value.size());
  return v;
}

class WeightsRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(WeightsRoundTrip, SaveLoadGivesBitwiseIdenticalOutputs) {
  ops::Context ctx(2);
  const Architecture& arch = find_architecture(GetParam());
  Model saved(ctx, small_config(1), arch), loaded(ctx, small_config(2), arch);
  const std::string path = dir() + "/" + GetParam() + ".safetensors";
  save_weights(saved, path);
  ASSERT_NE(all_params(saved), all_params(loaded)) << "different seeds should give different weights";
  load_weights(loaded, path);
  EXPECT_EQ(all_params(saved), all_params(loaded));
  EXPECT_EQ(outputs(ctx, saved, 21), outputs(ctx, loaded, 21));
  // The file names every parameter with its shape, and says what it holds.
  SafetensorsFile file(path);
  EXPECT_EQ(file.tensors().size(), saved.params().all().size());
  for (const Param& p : saved.params().all()) {
    const TensorInfo* t = file.find(p.name);
    ASSERT_NE(t, nullptr) << p.name;
    EXPECT_EQ(t->shape, p.value.shape()) << p.name;
    EXPECT_EQ(t->dtype, DType::kF32);
  }
  EXPECT_EQ(file.metadata().at("architecture"), GetParam());
  EXPECT_EQ(nlohmann::json::parse(file.metadata().at("model_config")).at("hidden_dim"), "32");
}

INSTANTIATE_TEST_SUITE_P(All, WeightsRoundTrip, ::testing::ValuesIn(architecture_names()), [](const auto& info) { return info.param; });

TEST(Weights, SkeletonTensorNames) {
  ops::Context ctx(1);
  Model m(ctx, small_config(0), find_architecture("Standard"));
  std::vector<std::string> names;
  for (const Param& p : m.params().all()) names.push_back(p.name);
  for (const char* name : {"embed.weight", "layers.0.ln1.weight", "layers.0.ln1.bias", "layers.0.attn.q_proj.weight", "layers.0.attn.out_proj.bias",
                           "layers.1.ln2.weight", "layers.1.ff1.weight", "layers.1.ff2.bias", "final_ln.weight", "lm_head.weight", "lm_head.bias"})
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name << " (the README documents it)";
  EXPECT_EQ(m.params().find("layers.0.ff1.weight")->value.shape(), (Shape{32, 48})) << "Linear weights are [in, out]";
  EXPECT_EQ(m.params().find("lm_head.weight")->value.shape(), (Shape{32, 61}));
}

// A file with the Standard model's tensors, edited by `edit`, and the given metadata.
std::string edited_file(const std::string& name, const std::function<void(std::vector<TensorToWrite>&)>& edit,
                        std::map<std::string, std::string> metadata = {{"architecture", "Standard"}}) {
  ops::Context ctx(1);
  static const std::vector<float> extra(1000, 0.5f);
  Model m(ctx, small_config(0), find_architecture("Standard"));
  std::vector<TensorToWrite> ts;
  for (const Param& p : m.params().all()) ts.push_back({p.name, p.value.shape(), p.value.data()});
  edit(ts);
  for (TensorToWrite& t : ts)
    if (t.data == nullptr) t.data = extra.data();
  std::string path = dir() + "/" + name + ".safetensors";
  write_safetensors(path, ts, DType::kF32, metadata);
  return path;
}

struct BadWeights {
  const char* name;
  std::string path;
  std::vector<std::string> expect;  // substrings of the one-line message
};

std::vector<BadWeights> bad_weight_files() {
  std::vector<BadWeights> cases;
  cases.push_back({"wrong_shape",
                   edited_file("wrong_shape",
                               [](auto& ts) {
                                 for (auto& t : ts)
                                   if (t.name == "layers.1.attn.k_proj.weight") t.shape = {32, 16};
                               }),
                   {"tensor 'layers.1.attn.k_proj.weight'", "has shape [32, 16]", "expects [32, 32]"}});
  cases.push_back({"missing",
                   edited_file("missing", [](auto& ts) { std::erase_if(ts, [](auto& t) { return t.name == "final_ln.bias"; }); }),
                   {"missing tensor 'final_ln.bias' [32]"}});
  cases.push_back({"extra", edited_file("extra", [](auto& ts) { ts.push_back({"layers.0.attn.gate_proj.weight", {32, 8}, nullptr}); }),
                   {"unexpected tensor 'layers.0.attn.gate_proj.weight' [32, 8]", "not a parameter of Standard"}});
  cases.push_back({"other_arch", edited_file("other_arch", [](auto&) {}, {{"architecture", "SlidingWindow"}}),
                   {"saved for architecture SlidingWindow", "the model is Standard"}});
  cases.push_back({"no_arch", edited_file("no_arch", [](auto&) {}, {{"format", "pt"}}), {"no 'architecture' in the metadata"}});
  // Truncated: a whole file cut short.
  std::string whole = edited_file("whole", [](auto&) {});
  std::string truncated = dir() + "/truncated.safetensors";
  std::filesystem::copy_file(whole, truncated, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(whole) - 100);
  cases.push_back({"truncated", truncated, {"truncated"}});
  std::string text = dir() + "/notes.safetensors";
  std::ofstream(text) << "these are not weights, just a text file long enough to have a header length\n";
  cases.push_back({"not_safetensors", text, {"notes.safetensors"}});
  cases.push_back({"absent", dir() + "/absent.safetensors", {"not found", "absent.safetensors"}});
  return cases;
}

TEST(Weights, BadFilesAreOneLineUserErrorsAndChangeNothing) {
  ops::Context ctx(1);
  Model model(ctx, small_config(0), find_architecture("Standard"));
  const std::vector<float> before = all_params(model);
  for (const BadWeights& c : bad_weight_files()) {
    try {
      load_weights(model, c.path);
      ADD_FAILURE() << c.name << ": loaded without error";
    } catch (const UserError& e) {
      std::string msg = e.what();
      for (const std::string& want : c.expect) EXPECT_NE(msg.find(want), std::string::npos) << c.name << ": " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << c.name << ": not one line: " << msg;
    }
    EXPECT_EQ(all_params(model), before) << c.name << ": a failed load changed the weights";
  }
}

// Through the CLI. The small_config() model as --set flags, shared by the commands below.
const std::string kSmall = " --set model.vocab_size=61 --set model.hidden_dim=32 --set model.num_heads=2 --set model.ff_dim=48";
// No calibration: these tests read the weights files and the runs, not the machine's figures (and
// the calibration costs ~6 s a run under the sanitizers).
const std::string kQuickCompare = " --models Standard --seq_lengths 8 --workloads prefill --repeats 1 --warmup 0 --threads 1 --no-calibration";

TEST(WeightsCli, BadFilesExitTwoWithOneLine) {
  for (const BadWeights& c : bad_weight_files()) {
    auto r = test::run_cli("forward --model Standard --tokens '1 2 3' --weights '" + c.path + "' --dump '" + dir() + "/x.json'" + kSmall);
    EXPECT_EQ(r.exit_code, 2) << c.name << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect.front()), std::string::npos) << c.name << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir() + "/x.json")) << c.name;
  }
  // compare --weights DIR reads DIR/<Model>.safetensors, and rejects a bad one before measuring.
  std::string wdir = dir() + "/compare_bad";
  std::filesystem::create_directories(wdir);
  std::filesystem::copy_file(bad_weight_files()[0].path, wdir + "/Standard.safetensors", std::filesystem::copy_options::overwrite_existing);
  auto r = test::run_cli("compare --weights '" + wdir + "' --out '" + wdir + "'" + kQuickCompare + kSmall);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("layers.1.attn.k_proj.weight"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("calibrating"), std::string::npos) << "the bad file should stop the run before it starts";
  r = test::run_cli("compare --weights '" + dir() + "/no_such_dir' --out '" + wdir + "'" + kQuickCompare + kSmall);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("no_such_dir/Standard.safetensors"), std::string::npos) << r.err;
}

TEST(WeightsCli, CompareSavesWeightsThatForwardLoads) {
  // compare --save-weights writes the seed-5 model; forward with those weights (and the default
  // seed) must produce exactly what forward of the seed-5 model produces.
  const std::string wdir = dir() + "/saved";
  auto r = test::run_cli("compare --save-weights '" + wdir + "' --out '" + wdir + "' --set model.seed=5" + kQuickCompare + kSmall);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(std::filesystem::exists(wdir + "/Standard.safetensors"));
  const std::string common = "forward --model Standard --tokens '4 8 15 16 23 42' --threads 2" + kSmall;
  r = test::run_cli(common + " --set model.seed=5 --dump '" + wdir + "/seeded.json'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_cli(common + " --weights '" + wdir + "/Standard.safetensors' --dump '" + wdir + "/loaded.json'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto read = [](const std::string& p) { return nlohmann::json::parse(std::ifstream(p)); };
  nlohmann::json seeded = read(wdir + "/seeded.json"), loaded = read(wdir + "/loaded.json");
  EXPECT_EQ(seeded["logits"], loaded["logits"]);
  EXPECT_EQ(seeded["hidden"], loaded["hidden"]);
  EXPECT_EQ(loaded["weights"], wdir + "/Standard.safetensors");
  // The results file records where the weights came from (null: the seeded initialisation).
  EXPECT_TRUE(read(wdir + "/comparison_results.json")["config"]["weights"].is_null());
}

}  // namespace
}  // namespace bsbr

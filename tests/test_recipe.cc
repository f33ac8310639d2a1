// YAML recipes: every shipped recipe loads and validates, the AC/DC recipes
// hold the paper's schedule, wrong recipes are refused with the key and the
// line, recipe_to_yaml reads back to the same options, flags override a
// recipe, and a run folder and its checkpoint keep the resolved recipe.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sparsetrain/checkpoint.h"
#include "sparsetrain/error.h"
#include "sparsetrain/models.h"
#include "sparsetrain/recipe.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/trainer.h"
#include "tests/cli_runner.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;

fs::path recipes_dir() { return fs::path(__FILE__).parent_path().parent_path() / "recipes"; }

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TrainOptions resolved(const Recipe& r) {
  TrainOptions o = recommended_options(r.model().empty() ? "lenet5" : r.model());
  r.apply(o);
  return o;
}

// Steps per epoch of the full dataset (CIFAR-10 trains on 40,000 images here).
int64_t steps_per_epoch(const TrainOptions& o) {
  const int64_t images = o.dataset == "cifar10" ? 40000 : 60000;
  return (images + o.batch_size - 1) / o.batch_size;
}

TEST(Recipe, ShippedRecipesAreValid) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(recipes_dir())) {
    if (entry.path().extension() != ".yaml") continue;
    names.insert(entry.path().filename().string());
    SCOPED_TRACE(entry.path().string());
    const Recipe r = Recipe::load(entry.path().string());
    ASSERT_FALSE(r.model().empty());
    const std::vector<std::string> models = model_names();
    EXPECT_NE(std::find(models.begin(), models.end(), r.model()), models.end());
    const TrainOptions o = resolved(r);
    EXPECT_NO_THROW(validate(o));
    EXPECT_NO_THROW(make_sparsity_schedule(o, steps_per_epoch(o)));
  }
  for (const char* expected : {"resnet20_cifar10_dense.yaml", "resnet20_cifar10_dense_30ep.yaml",
                               "resnet20_cifar10_acdc90.yaml", "resnet20_cifar10_acdc90_30ep.yaml",
                               "resnet20_cifar10_gmp90.yaml", "resnet20_cifar10_rigl90.yaml",
                               "lenet5_mnist_acdc95.yaml"}) {
    EXPECT_EQ(names.count(expected), 1u) << expected;
  }
}

TEST(Recipe, AcdcRecipesHoldThePaperSchedule) {
  const TrainOptions o =
      resolved(Recipe::load((recipes_dir() / "resnet20_cifar10_acdc90.yaml").string()));
  EXPECT_EQ(o.model, "resnet20");
  EXPECT_EQ(o.dataset, "cifar10");
  EXPECT_EQ(o.epochs, 200);
  EXPECT_EQ(o.sparsity_method, "acdc");
  EXPECT_EQ(o.sparsity, 0.9f);
  EXPECT_EQ(o.compress_epochs, std::vector<double>({10, 50, 90, 130, 170}));
  EXPECT_EQ(o.decompress_epochs, std::vector<double>({30, 70, 110, 150}));
  EXPECT_EQ(o.optimizer, "sgd");
  EXPECT_EQ(o.lr, 0.1f);
  EXPECT_EQ(o.momentum, 0.9f);
  EXPECT_EQ(o.weight_decay, 5e-4f);
  EXPECT_EQ(o.lr_schedule, "multistep");
  EXPECT_EQ(o.milestones, std::vector<int64_t>({100, 150}));
  EXPECT_EQ(o.lr_gamma, 0.1f);

  const TrainOptions s =
      resolved(Recipe::load((recipes_dir() / "resnet20_cifar10_acdc90_30ep.yaml").string()));
  EXPECT_EQ(s.epochs, 30);
  EXPECT_EQ(s.compress_epochs, std::vector<double>({1.5, 7.5, 13.5, 19.5, 25.5}));
  EXPECT_EQ(s.decompress_epochs, std::vector<double>({4.5, 10.5, 16.5, 22.5}));
  // The same proportions as the method's defaults for 30 epochs.
  const std::vector<double> c = acdc_default_compress_epochs(30);
  const std::vector<double> d = acdc_default_decompress_epochs(30);
  ASSERT_EQ(c.size(), s.compress_epochs.size());
  ASSERT_EQ(d.size(), s.decompress_epochs.size());
  for (std::size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(c[i], s.compress_epochs[i], 1e-9);
  for (std::size_t i = 0; i < d.size(); ++i) EXPECT_NEAR(d[i], s.decompress_epochs[i], 1e-9);
}

// The error of parsing `text`, "" when it parses.
std::string error_of(const std::string& text) {
  try {
    Recipe::parse(text, "r.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_refused(const std::string& text, const std::string& needle) {
  const std::string msg = error_of(text);
  EXPECT_NE(msg.find(needle), std::string::npos)
      << "expected '" << needle << "', got '" << msg << "' for:\n"
      << text;
}

TEST(Recipe, MissingFilesAndFoldersAreRefused) {
  for (const std::string& path : {recipes_dir().string(), (recipes_dir() / "none.yaml").string()}) {
    try {
      Recipe::load(path);
      ADD_FAILURE() << "loaded " << path;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("recipe '" + path + "': "), std::string::npos)
          << e.what();
    }
  }
}

TEST(Recipe, UnknownKeysAreRefusedWithTheirLine) {
  expect_refused("model: mlp\nsparsity:\n  method: acdc\n  targte: 0.9\n",
                 "recipe 'r.yaml', line 4: sparsity.targte: unknown key (expected one of: method, "
                 "target,");
  expect_refused("model: mlp\nlearning_rate: 0.1\n", "line 2: learning_rate: unknown key");
  expect_refused("model: mlp\nmodel: lenet5\n", "line 2: model: given twice");
  expect_refused("optimizer:\n  name: sgd\n  lr: 0.1\n  lr: 0.2\n",
                 "line 4: optimizer.lr: given twice");
}

TEST(Recipe, BadValuesAreRefusedWithTheirLine) {
  expect_refused("model: mlp\noptimizer:\n  lr: fast\n",
                 "line 3: optimizer.lr: expected a number in (0, inf), got 'fast'");
  expect_refused("optimizer:\n  momentum: 1.5\n",
                 "line 2: optimizer.momentum: expected a number in [0, 1)");
  expect_refused("optimizer:\n  name: rmsprop\n",
                 "line 2: optimizer.name: unknown value 'rmsprop' (expected one of: sgd, adamw)");
  expect_refused("epochs: [1, 2]\n", "line 1: epochs: expected an integer >= 1, got a list");
  expect_refused("epochs: 2.5\n", "line 1: epochs: expected an integer >= 1, got '2.5'");
  expect_refused("batch_size: 0\n", "line 1: batch_size: expected an integer >= 1, got '0'");
  expect_refused("optimizer: sgd\n", "line 1: optimizer: expected a mapping of optimizer keys");
  expect_refused("optimizer:\n  nesterov: maybe\n",
                 "line 2: optimizer.nesterov: expected true or false");
  expect_refused("sparsity:\n  target: 1\n",
                 "line 2: sparsity.target: expected a number in [0, 1)");
  expect_refused("lr_schedule:\n  milestones: [100, 50]\n",
                 "line 2: lr_schedule.milestones: must increase");
  expect_refused("dataset: imagenet\n", "line 1: dataset: unknown value 'imagenet'");
  expect_refused("epochs:\n", "line 1: epochs: has no value");
  expect_refused("model: mlp\n  epochs: 3\n bad: [\n", "line 2: not valid YAML");
  expect_refused("- model: mlp\n", "line 1: a recipe is a mapping");
  // yaml-cpp 0.7's LoadAll allocated without end on "," (found by fuzzing).
  expect_refused(",", "line 1: not valid YAML: ',' where a key or a value should start");
  expect_refused("\n\n ,\n", "line 3: not valid YAML: ','");
  // Issue 16, finding 6: yaml-cpp's own message for deep nesting is "bad file".
  std::string deep = "model: mlp\nsparsity: ";
  for (int i = 0; i < 3000; ++i) deep += "[";
  expect_refused(deep + "\n", "not valid YAML: nested too deeply for the YAML parser");
  std::string indented = "model: mlp\n";
  for (int i = 0; i < 3000; ++i) indented += std::string(static_cast<size_t>(i), ' ') + "a:\n";
  expect_refused(indented, "line 500: not valid YAML: nested too deeply");
  expect_refused("sparsity:\n  method: gmp\n  target: 0.9\n  drop_fraction: 0.3\n",
                 "line 4: sparsity.drop_fraction: applies to method rigl only, but sparsity.method "
                 "is gmp (line 2)");
  expect_refused(
      "sparsity:\n  method: static\n  phases:\n    - {state: compressed, start: 1, end: 2}\n",
      "line 3: sparsity.phases: applies to method acdc only");
}

constexpr const char* kAcdcHead =
    "epochs: 10\nsparsity:\n  method: acdc\n  target: 0.9\n  phases:\n";

TEST(Recipe, PhasesMustBeInOrderContiguousAndAlternating) {
  const std::string head = kAcdcHead;
  EXPECT_EQ(error_of(head + "    - {state: compressed, start: 1, end: 3}\n"
                            "    - {state: decompressed, start: 3, end: 6}\n"
                            "    - {state: compressed, start: 6, end: 10}\n"),
            "");
  expect_refused(head +
                     "    - {state: compressed, start: 1, end: 4}\n"
                     "    - {state: decompressed, start: 3, end: 6}\n"
                     "    - {state: compressed, start: 6, end: 10}\n",
                 "line 7: sparsity.phases[2]: overlaps phase 1 [1, 4)");
  expect_refused(head +
                     "    - {state: compressed, start: 5, end: 7}\n"
                     "    - {state: decompressed, start: 1, end: 3}\n",
                 "line 7: sparsity.phases[2]: phases are out of order: [1, 3) starts before "
                 "phase 1 [5, 7)");
  expect_refused(head +
                     "    - {state: compressed, start: 1, end: 3}\n"
                     "    - {state: decompressed, start: 4, end: 6}\n"
                     "    - {state: compressed, start: 6, end: 10}\n",
                 "line 7: sparsity.phases[2]: leaves epochs [3, 4) without a phase");
  expect_refused(head +
                     "    - {state: compressed, start: 1, end: 3}\n"
                     "    - {state: compressed, start: 3, end: 10}\n",
                 "line 7: sparsity.phases[2]: two compressed phases in a row");
  expect_refused(head +
                     "    - {state: compressed, start: 1, end: 3}\n"
                     "    - {state: decompressed, start: 3, end: 6}\n"
                     "    - {state: compressed, start: 6, end: 9}\n",
                 "line 8: sparsity.phases[3]: the last phase ends at epoch 9 but the run has 10 "
                 "epochs (line 1)");
  expect_refused(head + "    - {state: decompressed, start: 1, end: 10}\n",
                 "line 6: sparsity.phases[1]: AC/DC begins with a compressed phase");
  expect_refused(head + "    - {state: compressed, start: 4, end: 2}\n",
                 "line 6: sparsity.phases[1]: ends at epoch 2, not after its start 4");
  expect_refused(head + "    - {state: compressed, start: 1}\n",
                 "line 6: sparsity.phases[1]: needs 'end'");
  expect_refused(head + "    - {state: compressed, start: 1, end: 10, length: 9}\n",
                 "sparsity.phases[1].length: unknown key");
}

// Options as varied as a recipe can hold: recipe_to_yaml reads back to them.
TEST(Recipe, ResolvedRecipeReadsBackToTheSameOptions) {
  TrainOptions acdc = recommended_options("resnet20");
  acdc.dataset = "cifar10";
  acdc.epochs = 30;
  acdc.lr = 0.123f;
  acdc.weight_decay = 1e-5f;
  acdc.lr_schedule = "multistep";
  acdc.milestones = {15, 23};
  acdc.augment = 0;
  acdc.seed = 17;
  acdc.save_epochs = {0, 5};
  acdc.sparsity = 0.9f;
  acdc.sparsity_method = "acdc";
  acdc.distribution = "global";
  acdc.dense_first_last = 1;
  acdc.compress_epochs = {1.5, 7.5, 13.5};
  acdc.decompress_epochs = {4.5, 10.5};

  TrainOptions gmp = recommended_options("mlp");
  gmp.optimizer = "adamw";
  gmp.beta2 = 0.98f;
  gmp.sparsity = 0.8f;
  gmp.sparsity_method = "gmp";
  gmp.initial_sparsity = 0.1f;
  gmp.prune_start_epoch = 0.5;
  gmp.prune_end_epoch = 0.75;
  gmp.prune_every_steps = 7;
  gmp.sparse_storage = "masked";
  gmp.train_limit = 1000;

  TrainOptions rigl = recommended_options("lenet5");
  rigl.sparsity = 0.95f;
  rigl.sparsity_method = "rigl";
  rigl.drop_fraction = 0.25f;
  rigl.prune_end_epoch = 0.9;
  rigl.init_from = "runs/x y";
  rigl.retrain = "lr-rewind";
  rigl.rewind_epoch = 2;
  rigl.lr_schedule_epochs = 5;
  rigl.lr_schedule_offset_epochs = 2;

  for (const TrainOptions& o : {acdc, gmp, rigl}) {
    const std::string yaml = recipe_to_yaml(o);
    SCOPED_TRACE(yaml);
    TrainOptions back;
    Recipe::parse(yaml, "resolved").apply(back);
    EXPECT_EQ(options_to_json(back), options_to_json(o));
  }
}

std::string write_file(const fs::path& dir, const std::string& name, const std::string& text) {
  const fs::path p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

TEST(Recipe, FlagsOverrideTheRecipe) {
  const fs::path dir = testing::fresh_temp_dir("sparsetrain_recipe_", "flags");
  const std::string recipe = write_file(dir, "r.yaml",
                                        "model: resnet20\n"
                                        "epochs: 7\n"
                                        "optimizer:\n"
                                        "  lr: 0.2\n"
                                        "  momentum: 0.8\n"
                                        "  eps: 1.0e-6\n"
                                        "sparsity:\n"
                                        "  method: gmp\n"
                                        "  target: 0.9\n");
  const testing::RunResult r =
      testing::run_cli("train --recipe " + recipe + " --lr 0.02 --epochs 3 --print-recipe", false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const TrainOptions o = resolved(Recipe::parse(r.out, "printed"));
  EXPECT_EQ(o.lr, 0.02f);        // flag
  EXPECT_EQ(o.epochs, 3);        // flag
  EXPECT_EQ(o.momentum, 0.8f);   // recipe
  EXPECT_EQ(o.adam_eps, 1e-6f);  // recipe, a field without a flag
  EXPECT_EQ(o.sparsity_method, "gmp");
  EXPECT_EQ(o.model, "resnet20");
  EXPECT_EQ(o.batch_size, 128);  // resnet20's recommended options under the recipe

  // A --model flag picks that model's recommended options under the recipe.
  const testing::RunResult m =
      testing::run_cli("train --recipe " + recipe + " --model mlp --print-recipe", false);
  ASSERT_EQ(m.exit_code, 0) << m.out;
  const TrainOptions mo = resolved(Recipe::parse(m.out, "printed"));
  EXPECT_EQ(mo.model, "mlp");
  EXPECT_EQ(mo.batch_size, 50);
  EXPECT_EQ(mo.epochs, 7);

  const std::string bad = write_file(dir, "bad.yaml", "model: mlp\noptimizer:\n  lr: -1\n");
  const testing::RunResult e = testing::run_cli("train --recipe " + bad, true);
  EXPECT_EQ(e.exit_code, 1) << e.out;
  EXPECT_NE(e.out.find("recipe '" + bad + "', line 3: optimizer.lr"), std::string::npos) << e.out;
  const std::string unknown = write_file(dir, "model.yaml", "model: vgg16\n");
  const testing::RunResult u = testing::run_cli("train --recipe " + unknown, true);
  EXPECT_NE(u.out.find("line 1 (model): unknown model 'vgg16'"), std::string::npos) << u.out;
  fs::remove_all(dir);
}

TEST(Recipe, RunFolderAndCheckpointKeepTheResolvedRecipe) {
  const fs::path dir = testing::fresh_temp_dir("sparsetrain_recipe_", "run");
  TrainOptions o = recommended_options("mlp");
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.train_limit = 200;
  o.test_limit = 100;
  o.threads = 2;
  o.progress = false;
  o.out_dir = dir.string();
  o.sparsity = 0.5f;
  Trainer t(o, [](const std::string& model, int64_t c, int64_t h, int64_t w, int64_t k) {
    return build_model(model, ModelOptions{c, h, w, k});
  });
  std::ostringstream log;
  t.run(log);
  const std::string saved = read_all(dir / "recipe.yaml");
  EXPECT_EQ(saved, recipe_to_yaml(t.options()));
  const Checkpoint ck = Checkpoint::load((dir / "checkpoint.safetensors").string());
  EXPECT_EQ(ck.meta("recipe"), saved);
  const TrainOptions back = resolved(Recipe::parse(saved, "saved"));
  EXPECT_EQ(back.sparsity, 0.5f);
  EXPECT_EQ(back.train_limit, 200);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sparsetrain

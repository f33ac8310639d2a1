// One-shot pruning (`sparsetrain prune`) and retraining after it (Renda et
// al., ICLR 2020): the binary prunes a small trained run into a compressed
// checkpoint; fine-tuning starts at the original run's final learning rate,
// learning-rate rewinding replays the original schedule from the rewind
// epoch, weight rewinding also restores that epoch's weights under the
// pruned masks, and the masks stay fixed while retraining.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sparsetrain/checkpoint.h"
#include "sparsetrain/error.h"
#include "sparsetrain/models.h"
#include "sparsetrain/trainer.h"
#include "tests/cli_runner.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::RunResult;

constexpr int64_t kOriginalEpochs = 3;
constexpr int64_t kStepsPerEpoch = 10;  // 500 images, batch 50
constexpr int64_t kPrunableWeights = 300 * 784 + 100 * 300 + 10 * 100;

RunResult run(const std::string& args) { return testing::run_cli(args, true); }
std::string data_dir() { return SPARSETRAIN_TEST_DATA_DIR; }

GraphFactory zoo() {
  return [](const std::string& model, int64_t c, int64_t h, int64_t w, int64_t k) {
    return build_model(model, ModelOptions{c, h, w, k});
  };
}

void expect_error(const RunResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << "missing '" << needle << "' in: " << r.out;
}

// A dense MLP trained for 3 epochs with snapshots after epochs 0 and 1 and
// the lr of every step in its metrics, and that run pruned to 90%.
class Prune : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::fresh_temp_dir("sparsetrain_prune_", "suite");
    const RunResult train = run(
        "train --model mlp --epochs 3 --train-limit 500 --test-limit 200 --batch-size 50"
        " --threads 2 --kernels sparse --no-progress --save-epochs 0,1 --log-every 1 --data-dir " +
        data_dir() + " --out " + original() + " --metrics " + original() + "/metrics.jsonl");
    ASSERT_EQ(train.exit_code, 0) << train.out;
    std::ifstream metrics(original() + "/metrics.jsonl");
    std::string line;
    while (std::getline(metrics, line)) {
      const json j = json::parse(line);
      if (j.at("event") == "step") original_lr_.push_back(j.at("lr").get<float>());
    }
    ASSERT_EQ(static_cast<int64_t>(original_lr_.size()), kOriginalEpochs * kStepsPerEpoch);

    // stderr (the kernel choices) dropped: stdout is one JSON object.
    const RunResult prune = testing::run_cli(
        "prune --checkpoint " + original() + " --sparsity 0.9 --distribution global --out " +
            pruned() + " --test-limit 200 --threads 2 --json --data-dir " + data_dir(),
        false);
    ASSERT_EQ(prune.exit_code, 0) << prune.out;
    report_ = json::parse(prune.out);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string original() { return (dir_ / "original").string(); }
  static std::string pruned() { return (dir_ / "pruned").string(); }

  static TrainOptions retrain_options(const std::string& mode, int64_t epochs) {
    TrainOptions o = recommended_options("mlp");
    o.data_dir = data_dir();
    o.train_limit = 500;
    o.test_limit = 200;
    o.threads = 2;
    o.kernels = "sparse";
    o.progress = false;
    o.epochs = epochs;
    o.init_from = pruned();
    o.retrain = mode;
    return o;
  }

  // The pruned checkpoint's weights, by parameter: flat position -> value
  // for compressed ones, all values for the others.
  static std::map<std::string, std::map<int64_t, float>> pruned_weights() {
    Graph g;
    load_model_checkpoint(checkpoint_file(pruned()), zoo(), g);
    return weights(g);
  }
  static std::map<std::string, std::map<int64_t, float>> weights(Graph& g) {
    std::map<std::string, std::map<int64_t, float>> out;
    for (const Parameter* p : g.parameters()) {
      auto& w = out[p->name];
      if (p->compressed()) {
        for (std::size_t k = 0; k < p->dense_index.size(); ++k)
          w[p->dense_index[k]] = p->value[static_cast<int64_t>(k)];
      } else {
        for (int64_t i = 0; i < p->value.numel(); ++i) w[i] = p->value[i];
      }
    }
    return out;
  }

  static fs::path dir_;
  static std::vector<float> original_lr_;  // lr of each step of the original run
  static json report_;
};
fs::path Prune::dir_;
std::vector<float> Prune::original_lr_;
json Prune::report_;

TEST_F(Prune, BinaryPrunesToTheTargetAndCompresses) {
  EXPECT_EQ(report_.at("model"), "mlp");
  EXPECT_EQ(report_.at("distribution"), "global");
  EXPECT_FALSE(report_.at("dense_first_last").get<bool>());  // no convolutions
  int64_t kept = 0;
  ASSERT_EQ(report_.at("layers").size(), 3u);
  for (const json& l : report_.at("layers")) kept += l.at("kept").get<int64_t>();
  EXPECT_EQ(kept, kPrunableWeights / 10);
  EXPECT_NEAR(report_.at("prunable_sparsity").get<double>(), 0.9, 1e-9);
  EXPECT_EQ(report_.at("test_samples").get<int64_t>(), 200);
  const double after = report_.at("test_accuracy_after").get<double>();
  EXPECT_GT(report_.at("test_accuracy_before").get<double>(), 0.5);

  // The file is compressed (no optimizer state either) ...
  const Checkpoint ck = Checkpoint::load(checkpoint_file(pruned()));
  EXPECT_TRUE(ck.has("sparse/fc1.weight/values"));
  EXPECT_FALSE(ck.has("param/fc1.weight"));
  EXPECT_FALSE(ck.has("optim/fc1.bias.momentum"));
  const json meta = json::parse(ck.meta("pruned"));
  EXPECT_EQ(meta.at("distribution"), "global");
  EXPECT_LT(report_.at("bytes").get<double>(), 0.2 * report_.at("bytes_before").get<double>());

  // ... and evaluates to the accuracy the command reported after pruning.
  const RunResult eval = testing::run_cli(
      "eval --json --limit 200 --threads 2 --checkpoint " + pruned() + " --data-dir " + data_dir(),
      false);
  ASSERT_EQ(eval.exit_code, 0) << eval.out;
  EXPECT_DOUBLE_EQ(json::parse(eval.out).at("accuracy").get<double>(), after);
}

TEST_F(Prune, UniformTextReport) {
  const std::string out_dir = (dir_ / "uniform").string();
  const RunResult r = run("prune --checkpoint " + checkpoint_file(original()) +
                          " --sparsity 0.8 --distribution uniform --no-eval --out " + out_dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("magnitude, uniform, sparsity 0.800"), std::string::npos) << r.out;
  // 20% of each layer kept.
  EXPECT_NE(r.out.find("47040 /  235200    0.200"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("6000 /   30000    0.200"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sparsity: 80.00% of the prunable weights"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("test accuracy"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(out_dir + "/checkpoint.safetensors"));
}

TEST_F(Prune, BadInvocationsAreRefused) {
  const std::string out_dir = (dir_ / "bad").string();
  expect_error(run("prune --checkpoint " + original() + " --sparsity 1 --out " + out_dir),
               "--sparsity must be in [0, 1)");
  expect_error(
      run("prune --checkpoint " + (dir_ / "nothing").string() + " --sparsity 0.5 --out " + out_dir),
      "nothing");
  expect_error(run("prune --checkpoint " + original() +
                   " --sparsity 0.5 --distribution spread --out " + out_dir),
               "--distribution");
  expect_error(run("train --model mlp --retrain finetune --data-dir " + data_dir()),
               "--retrain finetune needs --init-from");
  expect_error(run("train --model mlp --init-from " + pruned() +
                   " --retrain lr-rewind --lr 0.1 --data-dir " + data_dir()),
               "--lr with --retrain lr-rewind");
}

// Through the binary, a retraining run takes the original run's model, data
// and batch size from the checkpoint.
TEST_F(Prune, BinaryRetrainsWithTheOriginalRunsOptions) {
  const std::string out_dir = (dir_ / "retrained").string();
  const RunResult r = run("train --init-from " + pruned() +
                          " --retrain lr-rewind --epochs 1 --no-progress --threads 2 --data-dir " +
                          data_dir() + " --out " + out_dir);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("model mlp"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(500 train / 200 test images), batch 50"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("replayed from epoch 2 for 1 epoch,"), std::string::npos) << r.out;
  const TrainOptions saved = read_checkpoint_options(out_dir);
  EXPECT_EQ(saved.retrain, "lr-rewind");
  EXPECT_EQ(saved.rewind_epoch, 2);
  EXPECT_EQ(saved.lr_schedule_offset_epochs, 2);
  EXPECT_EQ(saved.lr_schedule_epochs, kOriginalEpochs);
}

// A retraining run stopped and resumed ends with the same weights as one
// run through: the resolved schedule (span, offset) is saved with it.
TEST_F(Prune, ResumedRetrainingIsBitIdentical) {
  const std::string whole = (dir_ / "whole").string();
  const std::string parts = (dir_ / "parts").string();
  const std::string common = " --no-progress --threads 2 --kernels sparse --data-dir " + data_dir();
  const RunResult once = run("train --init-from " + pruned() +
                             " --retrain lr-rewind --epochs 2 --out " + whole + common);
  ASSERT_EQ(once.exit_code, 0) << once.out;
  const RunResult stop =
      run("train --init-from " + pruned() +
          " --retrain lr-rewind --epochs 2 --max-steps 15 --out " + parts + common);
  ASSERT_EQ(stop.exit_code, 0) << stop.out;
  const RunResult resume = run("train --resume " + parts + common);
  ASSERT_EQ(resume.exit_code, 0) << resume.out;
  const Checkpoint a = Checkpoint::load(checkpoint_file(whole));
  const Checkpoint b = Checkpoint::load(checkpoint_file(parts));
  for (const char* name :
       {"sparse/fc1.weight/values", "sparse/fc3.weight/values", "param/fc2.bias"}) {
    EXPECT_TRUE(a.raw(name).bytes == b.raw(name).bytes) << name;
  }
  EXPECT_EQ(read_checkpoint_options(parts).lr_schedule_offset_epochs, 1);
}

TEST_F(Prune, FinetuneRunsAtTheOriginalFinalLr) {
  Trainer t(retrain_options("finetune", 1), zoo());
  const float final_lr = original_lr_.back();
  EXPECT_EQ(t.lr_at(0), final_lr);
  EXPECT_EQ(t.lr_at(kStepsPerEpoch - 1), final_lr);
  EXPECT_EQ(t.options().lr_schedule, "constant");
  EXPECT_EQ(weights(t.graph()), pruned_weights());
  // The original one-cycle schedule ends near 0: the run says so.
  std::ostringstream log;
  t.run(log);
  EXPECT_NE(log.str().find("note: the original onecycle schedule ends at"), std::string::npos)
      << log.str();
}

TEST_F(Prune, LrRewindReplaysTheOriginalScheduleWithPrunedWeights) {
  // 2 epochs of retraining rewind to epoch 3 - 2 = 1 by default.
  Trainer t(retrain_options("lr-rewind", 2), zoo());
  EXPECT_EQ(t.options().rewind_epoch, 1);
  for (int64_t s = 0; s < 2 * kStepsPerEpoch; ++s) {
    EXPECT_EQ(t.lr_at(s), original_lr_[static_cast<std::size_t>(kStepsPerEpoch + s)]) << s;
  }
  const auto before = pruned_weights();
  EXPECT_EQ(weights(t.graph()), before);

  // Masks stay fixed while retraining.
  std::ostringstream log;
  const TrainResult r = t.run(log);
  EXPECT_EQ(r.steps, 2 * kStepsPerEpoch);
  const auto after = weights(t.graph());
  for (const auto& [name, w] : before) {
    if (name.find("weight") == std::string::npos) continue;
    std::set<int64_t> a, b;
    for (const auto& [pos, unused] : w) a.insert(pos);
    for (const auto& [pos, unused] : after.at(name)) b.insert(pos);
    EXPECT_EQ(a, b) << name;
    EXPECT_TRUE(t.graph().parameter(name).compressed()) << name;
  }
  EXPECT_NE(log.str().find("retraining (lr-rewind)"), std::string::npos) << log.str();
}

TEST_F(Prune, WeightRewindRestoresTheSnapshotUnderThePrunedMasks) {
  TrainOptions o = retrain_options("weight-rewind", 2);
  o.rewind_epoch = 1;
  Trainer t(o, zoo());
  EXPECT_EQ(t.lr_at(0), original_lr_[kStepsPerEpoch]);
  const Checkpoint snapshot = Checkpoint::load(original() + "/epoch-1/checkpoint.safetensors");
  const auto masks = pruned_weights();
  for (const Parameter* p : t.graph().parameters()) {
    const Tensor saved = snapshot.get("param/" + p->name);
    if (p->prunable()) {
      ASSERT_TRUE(p->compressed()) << p->name;
      std::set<int64_t> kept;
      for (std::size_t k = 0; k < p->dense_index.size(); ++k) {
        kept.insert(p->dense_index[k]);
        EXPECT_EQ(p->value[static_cast<int64_t>(k)], saved[p->dense_index[k]]) << p->name;
      }
      std::set<int64_t> pruned_positions;
      for (const auto& [pos, unused] : masks.at(p->name)) pruned_positions.insert(pos);
      EXPECT_EQ(kept, pruned_positions) << p->name;
    } else {
      EXPECT_TRUE(p->value.equals(saved)) << p->name;
    }
  }
  // The epoch-1 weights differ from the pruned (epoch-3) ones.
  EXPECT_NE(weights(t.graph()), masks);
}

TEST_F(Prune, WeightRewindNeedsTheSnapshot) {
  TrainOptions o = retrain_options("weight-rewind", 1);
  o.rewind_epoch = 2;  // the original run saved epochs 0 and 1 only
  try {
    Trainer t(o, zoo());
    ADD_FAILURE() << "weight rewinding without a snapshot";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--save-epochs 2"), std::string::npos) << e.what();
  }
  TrainOptions other = retrain_options("finetune", 1);
  other.model = "lenet5";
  try {
    Trainer t(other, zoo());
    ADD_FAILURE() << "initialised a lenet5 from an mlp checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds model 'mlp'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sparsetrain

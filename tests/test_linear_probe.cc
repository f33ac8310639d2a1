// Linear probing (issue 23): the head of an 80%-sparse MNIST MLP (digits
// 0-4) is replaced and trained on digits 5-9 over the cached features of its
// input. The cache holds exactly what a forward pass gives at that node and
// follows its key (checkpoint, classes, node); the backbone stays bit for bit
// the upstream's; the checkpoint holds the whole model and evaluates to the
// accuracy the run reported; a stopped run resumes; bad settings are refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "transfer/features.h"
#include "transfer_fixture.h"

namespace sparsetrain {
namespace {

constexpr int64_t kBatch = 64;

Dataset digits(const std::string& classes, Split split, int64_t limit) {
  return load_dataset("mnist", kDataDir, split, limit, classes);
}

// What one forward pass of `images` gives at `node`, plain (N, F).
std::vector<float> forward_at(Graph& g, const std::string& node, const Tensor& images) {
  std::vector<float> seen;
  HookHandle h = g.add_hook(HookPoint::kAfterForward, node, [&](HookEvent& ev) {
    const Tensor plain = to_layout(*ev.output, Layout::kPlain);
    seen.assign(plain.data(), plain.data() + plain.numel());
  });
  g.forward(images, ExecMode::kInference);
  g.release();
  return seen;
}

TEST_F(Transfer, FeatureCacheHoldsTheForwardPassAndFollowsItsKey) {
  Graph g;
  load_model_checkpoint(checkpoint_file(upstream()), zoo_factory(), g);
  const Dataset train = digits("5-9", Split::kTrain, 300);
  const Dataset test = digits("5-9", Split::kTest, 100);
  const std::string cache = (root_ / "cache-key").string();

  const detail::CachedFeatures first =
      detail::cached_features(g, "relu2", train, test, kBatch, cache);
  EXPECT_NE(first.note.find("computed"), std::string::npos) << first.note;
  ASSERT_EQ(first.train.channels, 100);  // the MLP's second hidden layer
  ASSERT_EQ(first.train.values.size(), 300u * 100u);
  EXPECT_TRUE(first.train.pixels.empty());
  EXPECT_EQ(first.train.labels, train.labels);

  // The first batch as a forward pass of the same images sees it.
  Loader loader(train, kBatch, /*shuffle=*/false, AugmentOptions{}, 0);
  Batch batch;
  ASSERT_TRUE(loader.next(batch));
  const std::vector<float> seen = forward_at(g, "relu2", batch.images);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kBatch * 100));
  EXPECT_EQ(seen, std::vector<float>(first.train.values.begin(),
                                     first.train.values.begin() + kBatch * 100));

  // Same key: read back, same values.
  const detail::CachedFeatures again =
      detail::cached_features(g, "relu2", train, test, kBatch, cache);
  EXPECT_NE(again.note.find("read from the cache"), std::string::npos) << again.note;
  EXPECT_EQ(again.train.values, first.train.values);
  EXPECT_EQ(again.test.values, first.test.values);

  // The head does not change the features, so it does not change the key.
  const std::string key = detail::feature_key(g, "relu2", train);
  g.parameter("fc3.weight").value[0] += 1.0f;
  EXPECT_EQ(detail::feature_key(g, "relu2", train), key);
  // Another node, other classes, other preprocessing, another checkpoint:
  // another key, and the features are computed again.
  EXPECT_NE(detail::feature_key(g, "relu1", train), key);
  const Dataset other_classes = digits("0-4", Split::kTrain, 300);
  EXPECT_NE(detail::feature_key(g, "relu2", other_classes), key);
  Dataset other_norm = train;
  other_norm.mean[0] += 0.01f;
  EXPECT_NE(detail::feature_key(g, "relu2", other_norm), key);
  Parameter& b = g.parameter("fc2.bias");
  const Tensor bias = b.value.clone();
  for (int64_t i = 0; i < b.value.numel(); ++i) b.value[i] += 0.5f;
  EXPECT_NE(detail::feature_key(g, "relu2", train), key);
  const detail::CachedFeatures changed =
      detail::cached_features(g, "relu2", train, test, kBatch, cache);
  EXPECT_NE(changed.note.find("computed"), std::string::npos) << changed.note;
  EXPECT_NE(changed.train.values, first.train.values);
  for (int64_t i = 0; i < b.value.numel(); ++i) b.value[i] = bias[i];

  // A damaged cache file is replaced, not trusted.
  for (const auto& entry : fs::directory_iterator(cache)) {
    std::ofstream(entry.path(), std::ios::trunc) << "not a safetensors file";
  }
  const detail::CachedFeatures repaired =
      detail::cached_features(g, "relu2", train, test, kBatch, cache);
  EXPECT_NE(repaired.note.find("not usable"), std::string::npos) << repaired.note;
  EXPECT_EQ(repaired.train.values, first.train.values);
}

TEST_F(Transfer, LinearProbeTrainsTheHeadAloneAndSavesTheWholeModel) {
  Graph up;
  load_model_checkpoint(checkpoint_file(upstream()), zoo_factory(), up);
  const auto before = values_by_name(up);
  TrainOptions o = downstream("linear-probe", "linear-probe");
  o.feature_cache = (root_ / "cache-run").string();
  o.epochs = 3;
  o.lr = 0.05f;
  Trainer t(o, zoo_factory());
  EXPECT_EQ(t.graph().input_shape(), (Shape{100, 1, 1}));  // the head over relu2's features
  EXPECT_FALSE(t.train_data().values.empty());
  std::ostringstream log;
  const TrainResult r = t.run(log);
  EXPECT_NE(log.str().find("fine-tuning (linear-probe) from"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("features of 'relu2' (100, 1, 1): computed"), std::string::npos)
      << log.str();
  ASSERT_EQ(r.epochs.size(), 3u);
  EXPECT_GT(r.epochs.back().test_accuracy, 0.8);  // five new digits, chance is 20%

  Graph down;
  const TrainOptions saved = load_model_checkpoint(checkpoint_file(o.out_dir), zoo_factory(), down);
  EXPECT_EQ(saved.finetune, "linear-probe");
  for (Parameter* p : down.parameters()) {
    SCOPED_TRACE(p->name);
    if (p->name.rfind("fc3.", 0) == 0) continue;
    EXPECT_EQ(dense_values(*p), before.at(p->name));  // the backbone, bit for bit
    EXPECT_EQ(p->compressed(), up.parameter(p->name).compressed());
  }
  EXPECT_EQ(down.parameter("fc3.weight").value.shape(), (Shape{5, 100}));
  // The checkpoint is the model the run evaluated.
  const Dataset test = digits("5-9", Split::kTest, o.test_limit);
  EXPECT_EQ(evaluate_graph(down, test, o.eval_batch_size).accuracy, r.epochs.back().test_accuracy);
  EXPECT_EQ(t.evaluate(test).accuracy, r.epochs.back().test_accuracy);  // images: the model
}

TEST_F(Transfer, LinearProbeFromTheCommandLineStopsAndResumes) {
  const auto run = [](const std::string& args) { return testing::run_cli(args, true); };
  const std::string out = (root_ / "lp-cli").string();
  const std::string cache = " --feature-cache " + (root_ / "cache-cli").string();
  const auto r = run("finetune --checkpoint " + upstream() +
                     " --mode linear-probe --classes 5-9 --epochs 2 --max-steps 15 --no-progress "
                     "--out " +
                     out + cache);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("stopped at step 15"), std::string::npos) << r.out;
  const auto resumed = run("finetune --resume " + out + " --no-progress");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out;
  // The resumed run's backbone is the saved one: its features come from the cache.
  EXPECT_NE(resumed.out.find("read from the cache"), std::string::npos) << resumed.out;
  EXPECT_NE(resumed.out.find("final test accuracy"), std::string::npos) << resumed.out;
  const auto e = testing::run_cli("eval --checkpoint " + out + " --json", false);
  ASSERT_EQ(e.exit_code, 0) << e.out;
  EXPECT_EQ(nlohmann::json::parse(e.out)["classes"], nlohmann::json({"5", "6", "7", "8", "9"}));

  const auto refused = [&](const std::string& extra, const std::string& needle) {
    const auto bad = run("finetune --checkpoint " + upstream() +
                         " --mode linear-probe --classes 5-9 --out " + out + "-bad " + extra);
    EXPECT_EQ(bad.exit_code, 1) << extra;
    EXPECT_NE(bad.out.find(needle), std::string::npos) << bad.out;
  };
  refused("--head fc1", "--head 'fc1': linear-probe trains a new classifier");
  refused("--freeze fc1.*", "--freeze with --mode linear-probe");
  refused("--augment on", "--augment on with --mode linear-probe");
}

}  // namespace
}  // namespace sparsetrain

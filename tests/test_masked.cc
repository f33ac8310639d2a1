// The masked state of a prunable weight (dense storage plus a mask): pruned
// weights stay exactly zero through momentum and weight decay, training
// matches the compressed state step for step, and checkpoints keep the mask.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "sparsetrain/error.h"
#include "sparsetrain/models.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;

GraphFactory zoo() {
  return [](const std::string& model, int64_t c, int64_t h, int64_t w, int64_t k) {
    return build_model(model, ModelOptions{c, h, w, k});
  };
}

TrainOptions sparse_mlp(const std::string& storage) {
  TrainOptions o;
  o.model = "mlp";
  o.dataset = "mnist";
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.train_limit = 1000;
  o.test_limit = 200;
  o.epochs = 2;
  o.batch_size = 50;
  o.momentum = 0.9f;
  o.weight_decay = 5e-3f;  // large, so a leak through decay would show
  o.threads = 2;
  o.sparsity = 0.9f;
  o.sparse_storage = storage;
  o.kernels = "dense";
  o.progress = false;
  return o;
}

TEST(Masked, PrunedWeightsStayExactlyZero) {
  Trainer t(sparse_mlp("masked"), zoo());
  std::ostringstream log;
  t.run(log);
  int layers = 0;
  for (Parameter* p : t.graph().parameters()) {
    if (!p->prunable()) continue;
    ++layers;
    ASSERT_TRUE(p->masked()) << p->name;
    EXPECT_FALSE(p->compressed());
    int64_t kept = 0, nonzero = 0;
    for (int64_t i = 0; i < p->value.numel(); ++i) {
      if (p->mask[i] == 0.0f) {
        ASSERT_EQ(p->value[i], 0.0f) << p->name << "[" << i << "] came back to life";
      } else {
        ++kept;
      }
      nonzero += p->value[i] != 0.0f;
    }
    EXPECT_NEAR(static_cast<double>(kept) / p->value.numel(), 0.1, 0.001) << p->name;
    EXPECT_EQ(nonzero, kept) << p->name;
  }
  EXPECT_EQ(layers, 3);
  EXPECT_NE(log.str().find("masked layers (density, dense kernels): fc1 0.100"), std::string::npos)
      << log.str();
}

TEST(Masked, TrainsLikeTheCompressedState) {
  std::ostringstream log;
  Trainer masked(sparse_mlp("masked"), zoo());
  const TrainResult a = masked.run(log);
  Trainer compressed(sparse_mlp("compressed"), zoo());
  const TrainResult b = compressed.run(log);
  ASSERT_EQ(a.step_losses.size(), b.step_losses.size());
  for (std::size_t i = 0; i < a.step_losses.size(); ++i) {
    EXPECT_NEAR(a.step_losses[i], b.step_losses[i], 1e-5f * std::max(1.0f, b.step_losses[i]))
        << "step " << i;
  }
}

TEST(Masked, CheckpointKeepsTheMask) {
  TrainOptions o = sparse_mlp("masked");
  o.epochs = 1;
  o.out_dir =
      (fs::temp_directory_path() / ("sparsetrain_masked_" + std::to_string(::getpid()))).string();
  Trainer t(o, zoo());
  std::ostringstream log;
  t.run(log);
  Graph g;
  const TrainOptions saved =
      load_model_checkpoint((fs::path(o.out_dir) / "checkpoint.safetensors").string(), zoo(), g);
  EXPECT_EQ(saved.sparse_storage, "masked");
  const Parameter& p = g.parameter("fc1.weight");
  ASSERT_TRUE(p.masked());
  EXPECT_TRUE(p.mask.equals(t.graph().parameter("fc1.weight").mask));
  EXPECT_TRUE(p.value.equals(t.graph().parameter("fc1.weight").value));
  fs::remove_all(o.out_dir);
}

TEST(Masked, RefusesACompressedWeightAndBadShapes) {
  Graph g = build_model("mlp", ModelOptions{1, 28, 28, 10});
  g.initialize(0);
  EXPECT_THROW(g.mask("fc1", Tensor::zeros({3, 3})), Error);
  EXPECT_THROW(g.mask("relu1", Tensor::zeros({3, 3})), Error);
  EXPECT_EQ(prune_linear_layers(g, 0.5f), 3);
  EXPECT_THROW(g.mask("fc1", Tensor::zeros({300, 784})), Error);
}

// The logical value and the kept positions of a parameter in each state.
TEST(ParameterViews, DenseValueAndKeptMaskInEveryState) {
  const auto values = [](const Tensor& t) {
    return std::vector<float>(t.data(), t.data() + t.numel());
  };
  Parameter dense = zero_parameter("w", ParamKind::kWeight, {2, 3});
  for (int64_t i = 0; i < 6; ++i) dense.value[i] = static_cast<float>(i + 1);
  EXPECT_EQ(values(dense_value(dense)), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(values(kept_mask(dense)), std::vector<float>(6, 1.0f));

  Parameter masked = dense;
  masked.mask = Tensor::from({2, 3}, {1, 0, 2, 0, 0, 1});  // nonzero = kept
  EXPECT_EQ(values(kept_mask(masked)), (std::vector<float>{1, 0, 1, 0, 0, 1}));

  Parameter compressed = zero_parameter("w", ParamKind::kWeight, {3});
  compressed.value = Tensor::from({3}, {7, 8, 9});
  compressed.dense_shape = {2, 3};
  compressed.dense_index = {5, 0, 2};  // stored order need not be increasing
  EXPECT_EQ(dense_value(compressed).shape(), (Shape{2, 3}));
  EXPECT_EQ(values(dense_value(compressed)), (std::vector<float>{8, 0, 9, 0, 0, 7}));
  EXPECT_EQ(values(kept_mask(compressed)), (std::vector<float>{1, 0, 1, 0, 0, 1}));
}

}  // namespace
}  // namespace sparsetrain

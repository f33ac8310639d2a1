// The shared passes of the attribution probes: each score's input gradient
// against central differences (dense and compressed layers, probe mode),
// the graph left as it was, the dataset's samples as the loader gives them,
// and errors naming a bad target or index.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/models.h"
#include "sparsetrain/sparsity.h"
#include "tests/graph_test_util.h"
#include "tests/probe_test_util.h"

namespace sparsetrain {
namespace {

using testing::compress_all;
using testing::state_bytes;

using testing::random_tensor;

// Kernels by the density rule, not timed: a timed choice can differ
// between two batch sizes on a busy machine, and with it the last bits.
Graph lenet(float sparsity) {
  Graph g = testing::lenet5(3, sparsity);
  g.set_sparse_kernels("auto-fixed");
  return g;
}

// score(x) of sample n for `target`, from a probe pass.
double score_of(Graph& g, const Tensor& x, int32_t target, ClassScore score) {
  const std::vector<int32_t> targets(static_cast<size_t>(x.dim(0)), target);
  return class_score_gradient(g, x, targets, score).score[0];
}

void check_against_differences(Graph& g, ClassScore score) {
  const Tensor x = random_tensor({1, 1, 28, 28}, 9);
  const std::vector<int32_t> target{4};
  const ScoreGradient sg = class_score_gradient(g, x, target, score);
  ASSERT_EQ(sg.input_grad.shape(), x.shape());
  constexpr float kStep = 1e-3f;
  // Norms over the positions checked: a difference step that crosses a
  // ReLU or max-pooling kink spoils one position, not the sum.
  double err2 = 0, grad2 = 0;
  for (int64_t i = 0; i < x.numel(); i += 37) {
    Tensor up = x.clone(), down = x.clone();
    up[i] += kStep;
    down[i] -= kStep;
    const double fd = (score_of(g, up, 4, score) - score_of(g, down, 4, score)) / (2.0 * kStep);
    err2 += (fd - sg.input_grad[i]) * (fd - sg.input_grad[i]);
    grad2 += fd * fd;
  }
  EXPECT_GT(grad2, 0.0);
  EXPECT_LT(std::sqrt(err2), 2e-2 * std::sqrt(grad2)) << class_score_name(score);
}

TEST(Attribution, ScoreGradientsMatchDifferences) {
  for (float sparsity : {0.0f, 0.8f}) {
    Graph g = lenet(sparsity);
    for (ClassScore s : {ClassScore::kLogit, ClassScore::kProbability, ClassScore::kLogProbability})
      check_against_differences(g, s);
  }
}

TEST(Attribution, ScoresAreConsistentAndTheGraphUnchanged) {
  Graph g = lenet(0.8f);
  const Tensor x = random_tensor({3, 1, 28, 28}, 4);
  const std::vector<int32_t> targets{0, 5, 9};
  const auto before = state_bytes(g);
  const ScoreGradient logit = class_score_gradient(g, x, targets, ClassScore::kLogit);
  const ScoreGradient logp = class_score_gradient(g, x, targets, ClassScore::kLogProbability);
  EXPECT_TRUE(state_bytes(g) == before);
  const Tensor logits = class_logits(g, x, 2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FLOAT_EQ(logit.score[i], logits[i * 10 + targets[i]]);
    EXPECT_NEAR(std::log(logit.probability[i]), logp.score[i], 1e-5);
  }
}

TEST(Attribution, DatasetImagesAreTheLoadersSamples) {
  Dataset d = load_dataset("mnist", SPARSETRAIN_TEST_DATA_DIR, Split::kTest, 64);
  const std::vector<int64_t> idx{0, 7, 42};
  const Tensor x = dataset_images(d, idx);
  Loader loader(d, 64, /*shuffle=*/false, AugmentOptions{}, 0);
  loader.start_epoch(0);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  for (size_t i = 0; i < idx.size(); ++i)
    EXPECT_EQ(std::memcmp(x.data() + i * 784, b.images.data() + idx[i] * 784, 784 * sizeof(float)),
              0);
}

TEST(Attribution, BadTargetsAndIndicesAreNamed) {
  Graph g = lenet(0.0f);
  const Tensor x = random_tensor({1, 1, 28, 28}, 1);
  try {
    class_score_gradient(g, x, std::vector<int32_t>{10});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target class 10 is outside the model's 10 classes"),
              std::string::npos)
        << e.what();
  }
  Dataset d = load_dataset("mnist", SPARSETRAIN_TEST_DATA_DIR, Split::kTest, 10);
  try {
    dataset_images(d, std::vector<int64_t>{3, 10});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sample index 10 is outside"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(parse_class_score("softmax"), Error);
}

}  // namespace
}  // namespace sparsetrain

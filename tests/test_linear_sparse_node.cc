// Compressed Linear nodes in the graph and the trainer: gradients, exactness
// against the dense node with the masked weight, pruned weights staying zero
// under momentum and weight decay, sparse vs dense kernels, training MNIST at
// 90% sparsity and bit-identical resume of a sparse run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/models.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/trainer.h"
#include "tests/tensor_fill.h"

namespace sparsetrain {
namespace {

using testing::normals;
using testing::random_mask;

namespace fs = std::filesystem;

// input(in) -> fc1 -> fc2 (no ReLU, so the loss is smooth for differences).
Graph two_layers(int64_t in, int64_t hidden, int64_t out, uint64_t seed) {
  Graph g;
  NodeId x = g.input("x", {in});
  x = g.linear("fc1", x, {.out_features = hidden});
  x = g.linear("fc2", x, {.out_features = out});
  g.set_output(x);
  g.initialize(seed);
  for (Parameter* p : g.parameters())
    if (p->kind == ParamKind::kBias) p->value = normals(p->value.shape(), seed + 7);
  return g;
}

// Central differences of L = sum(y * R) (exact up to rounding per coordinate).
TEST(LinearSparseNode, GradientsMatchCentralDifferences) {
  for (const char* kernels : {"sparse", "dense"}) {
    SCOPED_TRACE(kernels);
    constexpr double kStep = 0.0625, kTolerance = 2e-3;
    constexpr int64_t kBatch = 5, kIn = 9, kHidden = 6, kOut = 4;
    Graph g = two_layers(kIn, kHidden, kOut, 3);
    g.compress("fc1", random_mask({kHidden, kIn}, 11));
    g.compress("fc2", random_mask({kOut, kHidden}, 12));
    g.set_sparse_kernels(kernels);
    Tensor x = normals({kBatch, kIn}, 4);
    const Tensor r = normals({kBatch, kOut}, 5);
    auto loss = [&] {
      const Tensor y = g.forward(x, /*training=*/false);
      double sum = 0;
      for (int64_t i = 0; i < y.numel(); ++i) sum += static_cast<double>(y[i]) * r[i];
      return sum;
    };
    const Tensor y = g.forward(x, /*training=*/true);
    EXPECT_EQ(y.layout(), Layout::kPlain);
    const Tensor dx = g.backward(r, /*want_input_grad=*/true);
    ASSERT_TRUE(dx.defined());
    EXPECT_EQ(dx.layout(), Layout::kPlain);
    if (std::string(kernels) == "sparse") {
      EXPECT_EQ(g.sparse_layer_count(), 2);
    } else {
      EXPECT_EQ(g.sparse_layer_count(), 0);
    }
    auto numeric = [&](float& c) {
      const float saved = c;
      c = static_cast<float>(saved + kStep);
      const double plus = loss();
      c = static_cast<float>(saved - kStep);
      const double minus = loss();
      c = saved;
      return (plus - minus) / (2 * kStep);
    };
    auto expect_close = [&](double analytic, double fd, const std::string& what) {
      EXPECT_NEAR(analytic, fd, kTolerance * std::max(1.0, std::abs(fd))) << what;
    };
    for (int64_t i = 0; i < x.numel(); ++i) expect_close(dx[i], numeric(x[i]), "diff_src");
    for (Parameter* p : g.parameters()) {
      if (p->kind == ParamKind::kWeight) {
        ASSERT_TRUE(p->compressed()) << p->name;
        EXPECT_EQ(p->value.shape(), p->grad.shape());
        EXPECT_EQ(p->value.numel(), static_cast<int64_t>(p->dense_index.size()));
        EXPECT_LT(p->value.numel(), p->dense_numel());
      }
      for (int64_t i = 0; i < p->value.numel(); ++i) {
        expect_close(p->grad[i], numeric(p->value[i]), p->name + "[" + std::to_string(i) + "]");
      }
    }
  }
}

// Small integers: every product and sum is exact, so the compressed node
// equals the dense node with the masked weight bit for bit.
TEST(LinearSparseNode, ForwardEqualsDenseWithMaskedWeight) {
  constexpr int64_t kBatch = 17, kIn = 33, kHidden = 20, kOut = 7;
  Graph dense = two_layers(kIn, kHidden, kOut, 1);
  Graph sparse = two_layers(kIn, kHidden, kOut, 1);
  Rng rng(9);
  const Tensor m1 = random_mask({kHidden, kIn}, 21), m2 = random_mask({kOut, kHidden}, 22);
  for (Parameter* p : dense.parameters()) {
    const Tensor* mask = p->name == "fc1.weight" ? &m1 : (p->name == "fc2.weight" ? &m2 : nullptr);
    for (int64_t i = 0; i < p->value.numel(); ++i) {
      p->value[i] = static_cast<float>(static_cast<int>(rng.uniform() * 7) - 3);
      if (mask != nullptr && (*mask)[i] == 0.0f) p->value[i] = 0.0f;
    }
    sparse.parameter(p->name).value.copy_from(p->value);
  }
  sparse.compress("fc1", m1);
  sparse.compress("fc2", m2);
  Tensor x = Tensor::zeros({kBatch, kIn});
  for (int64_t i = 0; i < x.numel(); ++i)
    x[i] = static_cast<float>(static_cast<int>(rng.uniform() * 5) - 2);
  for (const char* kernels : {"sparse", "dense", "auto"}) {
    sparse.set_sparse_kernels(kernels);
    EXPECT_TRUE(sparse.forward(x, false).equals(dense.forward(x, false))) << kernels;
  }
  // Decompression brings the masked dense weight back.
  sparse.decompress("fc1");
  EXPECT_FALSE(sparse.parameter("fc1.weight").compressed());
  EXPECT_TRUE(sparse.parameter("fc1.weight").value.equals(dense.parameter("fc1.weight").value));
  EXPECT_THROW(sparse.set_sparse_kernels("fast"), Error);
  EXPECT_THROW(sparse.compress("fc2", Tensor::zeros({3, 3})), Error);
}

TEST(LinearSparseNode, PrunedWeightsStayZeroUnderMomentumAndWeightDecay) {
  constexpr int64_t kBatch = 8, kIn = 40, kHidden = 30, kOut = 5;
  Graph g = two_layers(kIn, kHidden, kOut, 2);
  SGD opt(0.9f, /*nesterov=*/false, /*weight_decay=*/0.01f);
  std::vector<Parameter*> params = g.parameters();
  const Tensor x = normals({kBatch, kIn}, 6);
  const std::vector<int32_t> labels{0, 1, 2, 3, 4, 0, 1, 2};
  auto step = [&] {
    Optimizer::zero_grad(params);
    const Tensor logits = g.forward(x, true);
    Tensor diff = Tensor::empty(logits.shape());
    const LossResult l = softmax_cross_entropy(logits, labels, &diff);
    g.backward(diff);
    opt.step(params, 0.1f);
    return l.loss;
  };
  step();  // momentum exists for the dense weights before compression
  EXPECT_EQ(prune_linear_layers(g, 0.8f, &opt), 2);
  params = g.parameters();
  const float first = step();
  float last = first;
  for (int i = 0; i < 10; ++i) last = step();
  EXPECT_LT(last, first);
  for (const char* name : {"fc1", "fc2"}) {
    Parameter& p = g.parameter(std::string(name) + ".weight");
    ASSERT_TRUE(p.compressed());
    const int64_t nnz = p.value.numel();
    EXPECT_EQ(nnz, std::llround(0.2 * static_cast<double>(p.dense_numel())));
    const Optimizer::ParamState* state = opt.state_of(p.name);
    ASSERT_NE(state, nullptr);
    EXPECT_EQ(state->slot[0].numel(), nnz);
    // Decompressed, everything outside the stored positions is exactly zero.
    g.decompress(name, &opt);
    Parameter& dense = g.parameter(std::string(name) + ".weight");
    EXPECT_EQ(opt.state_of(dense.name), nullptr);
    EXPECT_EQ(dense.value.numel(), dense.dense_numel());
    int64_t nonzero = 0;
    for (int64_t i = 0; i < dense.value.numel(); ++i) nonzero += dense.value[i] != 0.0f;
    EXPECT_LE(nonzero, nnz);
  }
}

GraphFactory zoo() {
  return [](const std::string& model, int64_t c, int64_t h, int64_t w, int64_t k) {
    return build_model(model, ModelOptions{c, h, w, k});
  };
}

TrainOptions sparse_mlp() {
  TrainOptions o = recommended_options("mlp");
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.threads = 2;
  o.progress = false;
  o.sparsity = 0.9f;
  return o;
}

TEST(LinearSparseNode, SparseAndDenseKernelsGiveTheSameLoss) {
  TrainOptions o = sparse_mlp();
  o.train_limit = 500;
  o.test_limit = 100;
  o.max_steps = 6;
  std::vector<float> losses[2];
  for (int i = 0; i < 2; ++i) {
    o.kernels = i == 0 ? "sparse" : "dense";
    Trainer t(o, zoo());
    std::ostringstream log;
    losses[i] = t.run(log).step_losses;
    EXPECT_EQ(t.graph().sparse_layer_count(), i == 0 ? 3 : 0);
  }
  ASSERT_EQ(losses[0].size(), 6u);
  ASSERT_EQ(losses[1].size(), 6u);
  for (std::size_t s = 0; s < 6; ++s) EXPECT_NEAR(losses[0][s], losses[1][s], 1e-4f) << s;
}

TEST(LinearSparseNode, MlpAt90PercentSparsityLearnsMnistSubset) {
  TrainOptions o = sparse_mlp();
  o.train_limit = 10000;
  o.epochs = 3;
  // Forced: auto's choice depends on timings (e.g. under the sanitizers).
  o.kernels = "sparse";
  Trainer t(o, zoo());
  std::ostringstream log;
  const TrainResult r = t.run(log);
  EXPECT_GE(r.test_accuracy, 0.92) << log.str();
  EXPECT_NE(log.str().find("fc1 0.100"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("3/3"), std::string::npos) << log.str();
  for (Parameter* p : t.graph().parameters()) {
    if (p->kind == ParamKind::kWeight) {
      EXPECT_TRUE(p->compressed()) << p->name;
    }
  }
  EXPECT_LT(t.graph().parameter_count(), 300000);
}

TEST(LinearSparseNode, SparseRunResumesBitIdentically) {
  TrainOptions o = sparse_mlp();
  o.kernels = "sparse";  // auto's timing may choose differently per process
  o.train_limit = 600;
  o.test_limit = 100;
  o.epochs = 2;
  o.batch_size = 100;
  const fs::path root =
      fs::temp_directory_path() / ("sparsetrain_test_sparse_resume_" + std::to_string(::getpid()));
  fs::remove_all(root);
  std::ostringstream log;
  TrainOptions whole = o;
  whole.out_dir = (root / "whole").string();
  Trainer a(whole, zoo());
  const TrainResult ra = a.run(log);
  ASSERT_EQ(ra.step_losses.size(), 12u);

  TrainOptions first = o;
  first.out_dir = (root / "split").string();
  first.max_steps = 8;
  std::vector<float> losses;
  {
    Trainer b(first, zoo());
    losses = b.run(log).step_losses;
  }
  TrainOptions second = o;
  second.out_dir = first.out_dir;
  second.resume_dir = first.out_dir;
  Trainer c(second, zoo());
  const TrainResult rc = c.run(log);
  losses.insert(losses.end(), rc.step_losses.begin(), rc.step_losses.end());
  ASSERT_EQ(losses.size(), ra.step_losses.size());
  for (std::size_t i = 0; i < losses.size(); ++i) EXPECT_EQ(losses[i], ra.step_losses[i]) << i;
  for (Parameter* p : a.graph().parameters()) {
    const Parameter& q = c.graph().parameter(p->name);
    EXPECT_EQ(p->compressed(), q.compressed()) << p->name;
    EXPECT_EQ(p->dense_index, q.dense_index) << p->name;
    EXPECT_TRUE(p->value.equals(q.value)) << p->name;
  }
  // An evaluation-only load of the sparse checkpoint.
  Graph loaded;
  load_model_checkpoint((root / "whole" / "checkpoint.safetensors").string(), zoo(), loaded);
  EXPECT_TRUE(loaded.parameter("fc1.weight").compressed());
  EXPECT_EQ(evaluate_graph(loaded, c.test_data(), 100).accuracy, ra.test_accuracy);
  fs::remove_all(root);
}

}  // namespace
}  // namespace sparsetrain

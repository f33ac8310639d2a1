// Compressed and masked conv2d nodes: exactness against the dense node on the
// masked weight (swept kernel sizes, strides, padding, batches, groups and
// input layouts, sparse and dense kernels), central-difference gradients
// through a sparse residual block in the sparse layout, the masked state,
// re-compression carrying weights and optimizer state, pruned weights staying
// zero, and sparse / dense / auto kernels training alike.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "nodes/nodes.h"
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

// Integers in [-2, 2]: every product and partial sum here stays far below
// 2^24, so the sparse kernels and oneDNN agree bit for bit.
Tensor small_ints(Shape shape, uint64_t seed, Layout layout = Layout::kPlain) {
  Rng rng(seed);
  Tensor t = Tensor::empty(std::move(shape), layout);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(rng.below(5)) - 2.0f;
  return t;
}

// Each position kept with probability `density`.
Tensor random_mask(const Shape& shape, double density, uint64_t seed) {
  Rng rng(seed);
  Tensor mask = Tensor::zeros(shape);
  for (int64_t i = 0; i < mask.numel(); ++i) mask[i] = rng.uniform() < density ? 1.0f : 0.0f;
  return mask;
}

::testing::AssertionResult same_values(const Tensor& got, const Tensor& want) {
  const Tensor g = to_layout(got, got.rank() == 4 ? Layout::kNCHW : Layout::kPlain);
  const Tensor w = to_layout(want, want.rank() == 4 ? Layout::kNCHW : Layout::kPlain);
  if (g.shape() != w.shape()) {
    return ::testing::AssertionFailure()
           << "shapes " << g.shape_string() << " and " << w.shape_string();
  }
  for (int64_t i = 0; i < g.numel(); ++i) {
    if (g[i] != w[i]) {
      return ::testing::AssertionFailure()
             << "value " << i << ": got " << g[i] << ", want " << w[i];
    }
  }
  return ::testing::AssertionSuccess();
}

Parameter* find_param(Node& node, const std::string& field) {
  for (Parameter* p : node.parameters())
    if (p->name == node.name() + "." + field) return p;
  return nullptr;
}

struct ConvCase {
  int64_t in_channels, out_channels, kernel, stride, padding, groups;
  bool bias;
};

// Forward, backward-data and backward-weights of a compressed node against
// the dense node whose weight is the masked weight, on integer data.
void expect_matches_dense(const ConvCase& c, int64_t batch, Layout input_layout,
                          nodes::SparseKernels kernels, double density, uint64_t seed) {
  const Conv2dOptions options{.out_channels = c.out_channels,
                              .kernel = c.kernel,
                              .stride = c.stride,
                              .padding = c.padding,
                              .groups = c.groups,
                              .bias = c.bias};
  const bool sparse = kernels == nodes::SparseKernels::kSparse;
  SCOPED_TRACE("C" + std::to_string(c.in_channels) + " O" + std::to_string(c.out_channels) + " k" +
               std::to_string(c.kernel) + " s" + std::to_string(c.stride) + " p" +
               std::to_string(c.padding) + " g" + std::to_string(c.groups) + " batch " +
               std::to_string(batch) + " " + layout_name(input_layout) + " density " +
               std::to_string(density) + (sparse ? " sparse" : " dense"));
  auto dense = nodes::make_conv2d("dense", c.in_channels, options);
  auto node = nodes::make_conv2d("conv", c.in_channels, options);
  Parameter& w_dense = *find_param(*dense, "weight");
  const Shape w_shape = w_dense.value.shape();
  const Tensor mask = random_mask(w_shape, density, seed);
  const Tensor w = small_ints(w_shape, seed + 1);
  for (int64_t i = 0; i < w.numel(); ++i) w_dense.value[i] = w[i] * mask[i];
  find_param(*node, "weight")->value.copy_from(w);
  if (c.bias) {
    const Tensor b = small_ints({c.out_channels}, seed + 2);
    find_param(*dense, "bias")->value.copy_from(b);
    find_param(*node, "bias")->value.copy_from(b);
  }
  nodes::PrunableNode* p = nodes::as_prunable(*node);
  ASSERT_NE(p, nullptr);
  p->compress(mask);
  p->set_kernels(kernels);
  Parameter& w_sparse = p->weight();
  ASSERT_TRUE(w_sparse.compressed());
  ASSERT_EQ(w_sparse.dense_shape, w_shape);
  ASSERT_TRUE(std::is_sorted(w_sparse.dense_index.begin(), w_sparse.dense_index.end()));
  int64_t kept = 0;
  for (int64_t i = 0; i < mask.numel(); ++i) kept += mask[i] != 0.0f;
  ASSERT_EQ(w_sparse.value.numel(), kept);
  // Gradients start non-zero: backward-weights accumulates.
  const Tensor g0 = small_ints(w_shape, seed + 3);
  w_dense.grad.copy_from(g0);
  for (std::size_t k = 0; k < w_sparse.dense_index.size(); ++k) {
    w_sparse.grad[k] = g0[w_sparse.dense_index[k]];
  }

  const Shape x_shape{batch, c.in_channels, 7, 6};
  const Tensor x = to_layout(small_ints(x_shape, seed + 4, Layout::kNCHW), input_layout);
  const std::vector<Tensor> in{x};
  const Tensor y_dense = dense->forward({in, true, 0});
  const Tensor y = node->forward({in, true, 0});
  EXPECT_EQ(y.layout(), sparse ? Layout::kCHWN : nodes::dense_conv_layout());
  EXPECT_EQ(p->runs_sparse(), sparse);
  EXPECT_TRUE(same_values(y, y_dense)) << "forward";

  Tensor dy = to_layout(small_ints(y.shape(), seed + 5, Layout::kNCHW), y.layout());
  const std::vector<char> need{1};
  const std::vector<Tensor> dx_dense = dense->backward({in, nullptr, &dy, need});
  const std::vector<Tensor> dx = node->backward({in, nullptr, &dy, need});
  ASSERT_EQ(dx.size(), 1u);
  EXPECT_EQ(dx[0].layout(), input_layout);
  EXPECT_TRUE(same_values(dx[0], dx_dense[0])) << "backward-data";
  for (std::size_t k = 0; k < w_sparse.dense_index.size(); ++k) {
    ASSERT_EQ(w_sparse.grad[k], w_dense.grad[w_sparse.dense_index[k]]) << "backward-weights " << k;
  }
  if (c.bias) {
    EXPECT_TRUE(same_values(find_param(*node, "bias")->grad, find_param(*dense, "bias")->grad))
        << "bias gradient";
  }
  // Inference, and back to dense: the masked weight.
  EXPECT_TRUE(same_values(node->forward({in, false, 0}), dense->forward({in, false, 0})));
  p->decompress();
  EXPECT_FALSE(p->weight().compressed());
  EXPECT_TRUE(same_values(p->weight().value, w_dense.value));  // -0 == 0: w * 0 may be -0
}

TEST(ConvSparseNode, MatchesTheDenseNodeOnTheMaskedWeight) {
  const ConvCase cases[] = {
      {6, 4, 1, 1, 0, 1, true},   {6, 8, 3, 1, 1, 1, false}, {6, 4, 3, 2, 1, 1, true},
      {5, 3, 5, 2, 2, 1, false},  {6, 4, 3, 1, 0, 1, true},  {4, 6, 2, 2, 0, 1, false},
      {6, 6, 3, 1, 1, 6, false},  {8, 8, 3, 2, 1, 8, true},  {6, 4, 3, 1, 1, 2, true},
      {3, 16, 5, 1, 2, 1, false},
  };
  const int64_t batches[] = {1, 5, 17};
  const Layout layouts[] = {Layout::kNCHW, Layout::kNHWC, Layout::kCHWN};
  uint64_t seed = 1;
  for (const ConvCase& c : cases) {
    for (int b = 0; b < 3; ++b) {
      for (nodes::SparseKernels k : {nodes::SparseKernels::kSparse, nodes::SparseKernels::kDense}) {
        expect_matches_dense(c, batches[b], layouts[(b + seed) % 3], k, 0.5, seed);
        ++seed;
      }
    }
  }
  // Every position, and none.
  for (nodes::SparseKernels k : {nodes::SparseKernels::kSparse, nodes::SparseKernels::kDense}) {
    expect_matches_dense(cases[1], 5, Layout::kCHWN, k, 1.0, 91);
    expect_matches_dense(cases[2], 5, Layout::kNHWC, k, 0.0, 92);
  }
}

// --- gradients through a sparse residual block ------------------------------------

// x -> conv1 (3x3 s2) -> bn1 -> relu1 -> conv2 (3x3) -> bn2 -> add -> relu2,
// shortcut: conv (1x1 s2) -> bn; every convolution compressed.
Graph residual_block(uint64_t seed) {
  Graph g;
  NodeId x = g.input("x", {4, 6, 6});
  NodeId y = g.conv2d("conv1", x, {.out_channels = 6, .kernel = 3, .stride = 2, .padding = 1});
  y = g.batchnorm2d("bn1", y);
  y = g.relu("relu1", y);
  y = g.conv2d("conv2", y, {.out_channels = 6, .kernel = 3, .padding = 1, .bias = false});
  y = g.batchnorm2d("bn2", y);
  NodeId s = g.conv2d("shortcut", x, {.out_channels = 6, .kernel = 1, .stride = 2, .bias = false});
  s = g.batchnorm2d("shortcut.bn", s);
  y = g.add("add", y, s);
  y = g.relu("relu2", y);
  g.set_output(y);
  g.initialize(seed);
  for (Parameter* p : g.parameters()) {
    if (p->kind == ParamKind::kBias || p->kind == ParamKind::kNorm) {
      const Tensor r = normals(p->value.shape(), seed + p->name.size());
      for (int64_t i = 0; i < r.numel(); ++i) p->value[i] += 0.5f * r[i];
    }
  }
  uint64_t k = 10;
  for (const char* conv : {"conv1", "conv2", "shortcut"}) {
    g.compress(conv, random_mask(g.parameter(std::string(conv) + ".weight").value.shape(), 0.5,
                                 seed + ++k));
  }
  return g;
}

void check_block_gradients(const std::string& kernels) {
  SCOPED_TRACE(kernels);
  constexpr double kStep = 1e-2, kTolerance = 2e-2;
  const bool sparse = kernels == "sparse";
  Graph g = residual_block(7);
  g.set_sparse_kernels(kernels);
  std::map<std::string, Layout> layouts;
  HookHandle h = g.add_hook(HookPoint::kAfterForward, "*",
                            [&](HookEvent& e) { layouts[e.node] = e.output->layout(); });
  Tensor x = normals({3, 4, 6, 6}, 1);
  const Shape y_shape{3, 6, 3, 3};
  const Tensor r = normals(y_shape, 2);
  auto loss = [&] {
    const Tensor y = g.forward(x, /*training=*/true);
    double sum = 0;
    for (int64_t i = 0; i < y.numel(); ++i) sum += static_cast<double>(y[i]) * r[i];
    return sum;
  };
  for (Parameter* p : g.parameters())
    if (p->grad.defined()) p->grad.zero();
  const Tensor y = g.forward(x, /*training=*/true);
  EXPECT_EQ(y.shape(), y_shape);
  EXPECT_EQ(y.layout(), Layout::kNCHW);
  for (const char* node : {"conv1", "bn1", "relu1", "conv2", "bn2", "shortcut", "add", "relu2"}) {
    EXPECT_EQ(layouts[node], sparse ? Layout::kCHWN : nodes::dense_conv_layout()) << node;
  }
  EXPECT_EQ(g.sparse_layer_count(), sparse ? 3 : 0);
  const Tensor dx = g.backward(r, /*want_input_grad=*/true);
  ASSERT_TRUE(dx.defined());
  EXPECT_EQ(dx.layout(), Layout::kNCHW);

  auto numeric = [&](float& v, double step) {
    const float saved = v;
    v = static_cast<float>(saved + step);
    const double plus = loss();
    v = static_cast<float>(saved - step);
    const double minus = loss();
    v = saved;
    return (plus - minus) / (2 * step);
  };
  // A ReLU input that crosses zero within the step makes the difference
  // quotient meaningless there. Away from kinks the quotients at step and
  // step / 2 agree to O(step^2); where they do not, a kink is near and the
  // coordinate is skipped (a wrong gradient fails everywhere, not there).
  int checked = 0, skipped = 0;
  auto check = [&](double analytic, float& v, const std::string& what) {
    const double fd = numeric(v, kStep / 2);
    if (std::abs(numeric(v, kStep) - fd) > kTolerance * std::max(1.0, std::abs(fd))) {
      ++skipped;
      return;
    }
    ++checked;
    EXPECT_NEAR(analytic, fd, kTolerance * std::max(1.0, std::abs(fd))) << what;
  };
  for (int64_t i = 0; i < x.numel(); ++i) check(dx[i], x[i], "x[" + std::to_string(i) + "]");
  for (Parameter* p : g.parameters()) {
    if (!p->trainable()) continue;
    if (p->kind == ParamKind::kWeight) {
      EXPECT_TRUE(p->compressed()) << p->name;
    }
    for (int64_t i = 0; i < p->value.numel(); ++i) {
      check(p->grad[i], p->value[i], p->name + "[" + std::to_string(i) + "]");
    }
  }
  EXPECT_LT(skipped, checked / 10);
  EXPECT_GT(checked, 600);
}

TEST(ConvSparseNode, GradientsMatchCentralDifferencesThroughASparseResidualBlock) {
  check_block_gradients("sparse");
  check_block_gradients("dense");
}

// --- training: masked, compressed, recompressed ---------------------------------

// conv (dense stem) -> bn -> relu -> conv -> bn -> relu -> maxpool -> conv
// -> global avgpool -> linear.
Graph small_cnn(uint64_t seed) {
  Graph g;
  NodeId x = g.input("x", {3, 8, 8});
  x = g.conv2d("stem", x, {.out_channels = 8, .kernel = 3, .padding = 1, .bias = false});
  x = g.batchnorm2d("stem.bn", x);
  x = g.relu("stem.relu", x);
  x = g.conv2d("conv1", x, {.out_channels = 12, .kernel = 3, .padding = 1, .bias = false});
  x = g.batchnorm2d("bn1", x);
  x = g.relu("relu1", x);
  x = g.maxpool2d("pool", x, {.kernel = 2, .stride = 2});
  x = g.conv2d("conv2", x, {.out_channels = 16, .kernel = 3, .stride = 2, .padding = 1});
  x = g.global_avgpool("gap", x);
  x = g.linear("fc", x, {.out_features = 5});
  g.set_output(x);
  g.initialize(seed);
  return g;
}

struct Batch {
  Tensor x;
  std::vector<int32_t> labels;
};

Batch make_batch(int64_t n, uint64_t seed) {
  Batch b{normals({n, 3, 8, 8}, seed), {}};
  Rng rng(seed + 1);
  for (int64_t i = 0; i < n; ++i) b.labels.push_back(static_cast<int32_t>(rng.below(5)));
  return b;
}

// One SGD step as the trainer takes it; masked weights get their mask
// applied to the gradients before the update and to the values after it.
float train_step(Graph& g, Optimizer& opt, const Batch& b, float lr = 0.05f) {
  std::vector<Parameter*> params = g.parameters();
  Optimizer::zero_grad(params);
  const Tensor logits = g.forward(b.x, /*training=*/true);
  Tensor diff = Tensor::empty(logits.shape());
  const LossResult l = softmax_cross_entropy(logits, b.labels, &diff);
  g.backward(diff);
  for (Parameter* p : params) apply_mask(*p, /*grads=*/true);
  opt.step(params, lr);
  for (Parameter* p : params) apply_mask(*p, /*grads=*/false);
  return l.loss;
}

// The dense weight of a compressed parameter (zeros at pruned positions).
Tensor densified(const Parameter& p) {
  if (!p.compressed()) return p.value.clone();
  Tensor dense = Tensor::zeros(p.dense_shape);
  for (std::size_t k = 0; k < p.dense_index.size(); ++k) dense[p.dense_index[k]] = p.value[k];
  return dense;
}

TEST(ConvSparseNode, MaskedConvTrainsLikeTheCompressedOneAndPrunedWeightsStayZero) {
  Graph masked = small_cnn(4), compressed = small_cnn(4);
  std::map<std::string, Tensor> masks;
  for (const char* conv : {"conv1", "conv2"}) {
    const Tensor m = random_mask(masked.parameter(std::string(conv) + ".weight").value.shape(), 0.3,
                                 std::string(conv).size());
    masks[conv] = m;
    masked.mask(conv, m);
    compressed.compress(conv, m);
  }
  compressed.set_sparse_kernels("sparse");
  EXPECT_EQ(masked.sparse_layer_count(), 0);
  SGD opt_masked(0.9f, /*nesterov=*/true, /*weight_decay=*/0.05f);
  SGD opt_compressed(0.9f, /*nesterov=*/true, /*weight_decay=*/0.05f);
  for (int s = 0; s < 8; ++s) {
    const Batch b = make_batch(6, 100 + s);
    const float a = train_step(masked, opt_masked, b);
    const float c = train_step(compressed, opt_compressed, b);
    EXPECT_NEAR(a, c, 1e-4f * std::max(1.0f, c)) << "step " << s;
  }
  for (const auto& [conv, m] : masks) {
    const Parameter& p = masked.parameter(conv + ".weight");
    ASSERT_TRUE(p.masked());
    EXPECT_EQ(masked.node(conv).describe().find("sparse"), std::string::npos);
    const Tensor c = densified(compressed.parameter(conv + ".weight"));
    for (int64_t i = 0; i < p.value.numel(); ++i) {
      if (m[i] == 0.0f) {
        ASSERT_EQ(p.value[i], 0.0f) << conv << "[" << i << "] came back to life (masked)";
        ASSERT_EQ(c[i], 0.0f) << conv << "[" << i << "] came back to life (compressed)";
      } else {
        EXPECT_NEAR(p.value[i], c[i], 1e-4f) << conv << "[" << i << "]";
      }
    }
  }
  // Unmasked, the weight is dense again with its values.
  masked.unmask("conv1");
  EXPECT_FALSE(masked.parameter("conv1.weight").masked());
}

TEST(ConvSparseNode, RecompressionCarriesWeightsAndOptimizerState) {
  for (const char* which : {"sgd", "adamw"}) {
    SCOPED_TRACE(which);
    Graph g = small_cnn(5);
    std::unique_ptr<Optimizer> opt;
    if (std::string(which) == "sgd") {
      opt = std::make_unique<SGD>(0.9f, false, 1e-3f);
    } else {
      opt = std::make_unique<AdamW>(0.9f, 0.999f, 1e-8f, 1e-2f);
    }
    train_step(g, *opt, make_batch(6, 1));  // dense state first
    const Shape shape = g.parameter("conv1.weight").value.shape();
    const Tensor first = random_mask(shape, 0.5, 21);
    g.compress("conv1", first, opt.get());
    g.compress("fc", random_mask(g.parameter("fc.weight").value.shape(), 0.5, 22), opt.get());
    for (int s = 0; s < 3; ++s) train_step(g, *opt, make_batch(6, 2 + s));

    auto snapshot = [&](const std::string& param) {
      std::map<int64_t, std::vector<float>> at;  // position -> value, slots
      const Parameter& p = g.parameter(param);
      const Optimizer::ParamState* st = opt->state_of(param);
      for (std::size_t k = 0; k < p.dense_index.size(); ++k) {
        std::vector<float> v{p.value[k]};
        for (const Tensor& slot : st->slot)
          if (slot.defined()) v.push_back(slot[k]);
        at[p.dense_index[k]] = v;
      }
      return at;
    };
    for (const char* node : {"conv1", "fc"}) {
      const std::string param = std::string(node) + ".weight";
      const auto before = snapshot(param);
      const int64_t steps = opt->state_of(param)->steps;
      const Tensor second = random_mask(g.parameter(param).dense_shape, 0.5, 31);
      g.compress(node, second, opt.get());
      const Parameter& p = g.parameter(param);
      const Optimizer::ParamState* st = opt->state_of(param);
      ASSERT_NE(st, nullptr);
      EXPECT_EQ(st->steps, steps);
      const auto after = snapshot(param);
      int64_t kept = 0, grown = 0;
      for (int64_t i = 0; i < second.numel(); ++i) {
        if (second[i] == 0.0f) {
          EXPECT_EQ(after.count(i), 0u);
          continue;
        }
        ASSERT_EQ(after.count(i), 1u) << i;
        const std::vector<float>& now = after.at(i);
        if (auto it = before.find(i); it != before.end()) {
          ++kept;
          EXPECT_EQ(now, it->second) << param << " position " << i;
        } else {
          ++grown;
          for (float v : now) EXPECT_EQ(v, 0.0f) << param << " position " << i;
        }
      }
      EXPECT_GT(kept, 0);
      EXPECT_GT(grown, 0);
      EXPECT_EQ(p.value.numel(), kept + grown);
    }
    // Training goes on with the carried state; decompression resets it.
    train_step(g, *opt, make_batch(6, 9));
    g.decompress("conv1", opt.get());
    EXPECT_EQ(opt->state_of("conv1.weight"), nullptr);
    EXPECT_FALSE(g.parameter("conv1.weight").compressed());
    train_step(g, *opt, make_batch(6, 10));
  }
}

TEST(ConvSparseNode, PrunedWeightsStayZeroUnderMomentumAndWeightDecay) {
  Graph g = small_cnn(6);
  SGD opt(0.9f, /*nesterov=*/false, /*weight_decay=*/0.1f);
  train_step(g, opt, make_batch(6, 1));  // momentum for the dense weights first
  const Tensor mask = random_mask(g.parameter("conv2.weight").value.shape(), 0.2, 5);
  g.compress("conv2", mask, &opt);
  g.set_sparse_kernels("sparse");
  const float first = train_step(g, opt, make_batch(6, 2));
  for (int s = 0; s < 10; ++s) train_step(g, opt, make_batch(6, 2));
  EXPECT_LT(train_step(g, opt, make_batch(6, 2)), first);
  ASSERT_EQ(opt.state_of("conv2.weight")->slot[0].numel(),
            g.parameter("conv2.weight").value.numel());
  g.decompress("conv2", &opt);
  const Parameter& p = g.parameter("conv2.weight");
  int64_t nonzero = 0;
  for (int64_t i = 0; i < p.value.numel(); ++i) {
    if (mask[i] == 0.0f) {
      ASSERT_EQ(p.value[i], 0.0f) << i;
    }
    nonzero += p.value[i] != 0.0f;
  }
  EXPECT_GT(nonzero, 0);
}

TEST(ConvSparseNode, SparseDenseAndAutoKernelsTrainAlike) {
  std::vector<float> losses[3];
  const char* modes[] = {"sparse", "dense", "auto"};
  for (int m = 0; m < 3; ++m) {
    Graph g = small_cnn(8);
    for (const char* conv : {"conv1", "conv2"}) {
      g.compress(conv, random_mask(g.parameter(std::string(conv) + ".weight").value.shape(), 0.2,
                                   std::string(conv).size()));
    }
    g.set_sparse_kernels(modes[m]);
    SGD opt(0.9f, false, 5e-4f);
    for (int s = 0; s < 12; ++s) losses[m].push_back(train_step(g, opt, make_batch(8, s % 3)));
    const int sparse = g.sparse_layer_count();
    if (m == 0) {
      EXPECT_EQ(sparse, 2);
    } else if (m == 1) {
      EXPECT_EQ(sparse, 0);
    } else {
      EXPECT_LE(sparse, 2);  // auto: whichever was faster here
    }
    EXPECT_EQ(g.prunable_layer_count(), 4);
  }
  for (int s = 0; s < 12; ++s) {
    EXPECT_NEAR(losses[0][s], losses[1][s], 1e-3f * std::max(1.0f, losses[1][s])) << s;
    EXPECT_NEAR(losses[2][s], losses[1][s], 1e-3f * std::max(1.0f, losses[1][s])) << s;
  }
  EXPECT_LT(losses[0].back(), losses[0].front());
}

// The trainer with --kernels sparse | dense | auto: LeNet-5 on an MNIST
// subset at 80% sparsity (conv2, fc1 and fc2 compressed; the first and last
// layers stay dense), the same losses step for step.
TEST(ConvSparseNode, TrainerKernelsSparseDenseAndAutoAgree) {
  TrainOptions o = recommended_options("lenet5");
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.threads = 2;
  o.progress = false;
  o.sparsity = 0.8f;
  o.train_limit = 400;
  o.test_limit = 100;
  o.max_steps = 6;
  const GraphFactory zoo = [](const std::string& m, int64_t c, int64_t h, int64_t w, int64_t k) {
    return build_model(m, ModelOptions{c, h, w, k});
  };
  std::vector<float> losses[3];
  const char* modes[] = {"sparse", "dense", "auto"};
  for (int m = 0; m < 3; ++m) {
    o.kernels = modes[m];
    Trainer t(o, zoo);
    std::ostringstream log;
    losses[m] = t.run(log).step_losses;
    EXPECT_TRUE(t.graph().parameter("conv2.weight").compressed()) << modes[m];
    EXPECT_FALSE(t.graph().parameter("conv1.weight").compressed()) << modes[m];
    EXPECT_EQ(t.graph().prunable_layer_count(), 5);
    if (m == 0) {
      EXPECT_EQ(t.graph().sparse_layer_count(), 3);
    } else if (m == 1) {
      EXPECT_EQ(t.graph().sparse_layer_count(), 0);
    }
  }
  for (int m : {0, 2}) {
    ASSERT_EQ(losses[m].size(), losses[1].size());
    for (std::size_t s = 0; s < losses[1].size(); ++s) {
      EXPECT_NEAR(losses[m][s], losses[1][s], 1e-4f * std::max(1.0f, losses[1][s]))
          << modes[m] << " step " << s;
    }
  }
  EXPECT_EQ(losses[1].size(), 6u);
}

TEST(ConvSparseNode, SummaryAndErrorsNameTheNode) {
  Graph g = small_cnn(9);
  Tensor mask = Tensor::zeros(g.parameter("conv1.weight").value.shape());
  for (int64_t i = 0; i < mask.numel(); i += 4) mask[i] = 1.0f;
  g.compress("conv1", mask);
  EXPECT_EQ(g.node("conv1").describe(), "3x3 s1 p1 8->12 no-bias sparse density 0.250");
  EXPECT_NE(g.summary().find("sparse density 0.250"), std::string::npos) << g.summary();
  auto expect_error = [](auto&& fn, const std::string& fragment) {
    try {
      fn();
      ADD_FAILURE() << "expected Error containing '" << fragment << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error([&] { g.compress("conv2", Tensor::zeros({3, 3})); }, "conv2");
  expect_error([&] { g.compress("relu1", Tensor::zeros({3, 3})); }, "not a prunable layer");
  expect_error([&] { g.mask("conv1", mask); }, "compressed");
  expect_error([&] { g.mask("conv2", Tensor::zeros({16, 12, 3, 1})); }, "(16, 12, 3, 3)");
  expect_error([&] { g.set_sparse_kernels("fastest"); }, "--kernels");
  // Compressed -> dense and back; re-initialising starts dense.
  g.decompress("conv1");
  EXPECT_FALSE(g.parameter("conv1.weight").compressed());
  g.compress("conv1", mask);
  g.initialize(1);
  EXPECT_FALSE(g.parameter("conv1.weight").compressed());
}

}  // namespace
}  // namespace sparsetrain

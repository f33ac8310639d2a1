// Execution modes and frozen parameters: backward after a probe-mode
// (inference-behaviour) forward is the true input gradient, a probe pass
// between training steps changes nothing, frozen parameters stay bit for bit
// and their weight-gradient passes are not run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/models.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/sparsity.h"
#include "tests/graph_test_util.h"

namespace sparsetrain {
namespace {

using testing::labels_for;
using testing::random_tensor;
using testing::values;
using testing::weighted_sum;

// Compresses every conv and linear layer to its largest-magnitude weights.
void compress_all(Graph& g, float sparsity) {
  for (const PrunableLayer& l : prunable_layers(g, /*dense_first_last=*/false)) {
    g.compress(l.node, magnitude_mask(g.parameter(l.param).value, sparsity));
  }
}

// One SGD step on a batch: kTrain forward, cross-entropy, backward, update.
void train_step(Graph& g, Optimizer& opt, const Tensor& x, const std::vector<int32_t>& labels,
                uint64_t seed) {
  const Tensor logits = g.forward(x, ExecMode::kTrain, seed);
  Tensor diff;
  softmax_cross_entropy(logits, labels, &diff);
  g.backward(diff);
  opt.step(g.parameters(), 0.05f);
  opt.zero_grad(g.parameters());
}

// Every parameter's value and gradient, and every buffer, as raw bytes.
std::vector<std::vector<char>> state_bytes(Graph& g) {
  std::vector<std::vector<char>> out;
  for (Parameter* p : g.parameters()) {
    for (const Tensor* t : {&p->value, &p->grad}) {
      if (!t->defined()) continue;
      std::vector<char> b(static_cast<size_t>(t->numel()) * sizeof(float));
      std::memcpy(b.data(), t->data(), b.size());
      out.push_back(std::move(b));
    }
  }
  return out;
}

Graph model(const std::string& name, int64_t channels, int64_t side) {
  Graph g = build_model(name, {.channels = channels, .height = side, .width = side});
  g.initialize(11);
  return g;
}

// Checks the probe-mode input gradient of L = sum(out * r) against central
// differences at `count` input positions.
void check_probe_input_gradient(Graph& g, const Tensor& x, int count) {
  const Tensor out = g.forward(x, ExecMode::kProbe);
  const Tensor r = random_tensor(out.shape(), 5);
  const Tensor dx = g.backward(r, BackwardOptions{.param_grads = true, .input_grad = true});
  ASSERT_TRUE(dx.defined());
  ASSERT_EQ(dx.shape(), x.shape());
  constexpr float kStep = 1e-2f;
  Rng pick(17);
  double max_err = 0, max_grad = 0;
  for (int c = 0; c < count; ++c) {
    const int64_t i =
        static_cast<int64_t>(pick.uniform(0.0f, 1.0f) * static_cast<float>(x.numel())) % x.numel();
    Tensor xp = x.clone(), xm = x.clone();
    xp[i] += kStep;
    xm[i] -= kStep;
    const double fd = (weighted_sum(g.forward(xp, ExecMode::kInference), r) -
                       weighted_sum(g.forward(xm, ExecMode::kInference), r)) /
                      (2.0 * kStep);
    max_err = std::max(max_err, std::abs(fd - dx[i]));
    max_grad = std::max(max_grad, std::abs(fd));
  }
  EXPECT_GT(max_grad, 1e-4) << "the gradient checked is all zero";
  EXPECT_LT(max_err, 2e-2 * std::max(1.0, max_grad)) << "largest |gradient| " << max_grad;
}

TEST(ExecModes, ProbeBackwardIsTheInputGradientOnLenet5) {
  Graph g = model("lenet5", 1, 28);
  check_probe_input_gradient(g, random_tensor({2, 1, 28, 28}, 3), 24);
}

TEST(ExecModes, ProbeBackwardIsTheInputGradientOnResnet20) {
  Graph g = model("resnet20", 3, 32);
  // A few training steps first, so BatchNorm's running statistics are not
  // the initial ones (probe mode normalises with them).
  auto opt = make_optimizer({});
  for (int s = 0; s < 2; ++s) {
    train_step(g, *opt, random_tensor({4, 3, 32, 32}, 40 + s), labels_for(4, s), s);
  }
  check_probe_input_gradient(g, random_tensor({2, 3, 32, 32}, 9), 16);
}

// Two training steps with a probe (forward and input-gradient backward on
// other images) in between end bit for bit where the two steps alone do, on
// a model with BatchNorm and on compressed (sparse-kernel) layers.
TEST(ExecModes, ProbeBetweenTrainingStepsChangesNothing) {
  for (const bool compressed : {false, true}) {
    SCOPED_TRACE(compressed ? "compressed" : "dense");
    auto build = [&] {
      Graph g = model("resnet20", 3, 16);
      if (compressed) compress_all(g, 0.8f);
      g.set_sparse_kernels("sparse");
      return g;
    };
    Graph a = build(), b = build();
    auto opt_a = make_optimizer({}), opt_b = make_optimizer({});
    const Tensor x1 = random_tensor({4, 3, 16, 16}, 1), x2 = random_tensor({4, 3, 16, 16}, 2);
    const auto l1 = labels_for(4, 1), l2 = labels_for(4, 2);

    train_step(a, *opt_a, x1, l1, 1);
    const Tensor probe_out = a.forward(random_tensor({3, 3, 16, 16}, 77), ExecMode::kProbe);
    const Tensor saliency =
        a.backward(random_tensor(probe_out.shape(), 78), BackwardOptions{.input_grad = true});
    EXPECT_TRUE(saliency.defined());
    train_step(a, *opt_a, x2, l2, 2);

    train_step(b, *opt_b, x1, l1, 1);
    train_step(b, *opt_b, x2, l2, 2);
    EXPECT_TRUE(state_bytes(a) == state_bytes(b));
    EXPECT_EQ(values(a.forward(x1, ExecMode::kInference)),
              values(b.forward(x1, ExecMode::kInference)));
  }
}

TEST(ExecModes, ProbeLeavesGradientsOfARunningStepAlone) {
  Graph g = model("lenet5", 1, 28);
  const Tensor x = random_tensor({4, 1, 28, 28}, 1);
  const Tensor logits = g.forward(x, ExecMode::kTrain);
  Tensor diff;
  softmax_cross_entropy(logits, labels_for(4, 1), &diff);
  g.backward(diff);
  const auto before = state_bytes(g);
  const Tensor out = g.forward(random_tensor({2, 1, 28, 28}, 2), ExecMode::kProbe);
  g.backward(random_tensor(out.shape(), 3),
             BackwardOptions{.param_grads = true, .input_grad = true});
  EXPECT_TRUE(state_bytes(g) == before) << "a probe backward touched a gradient or a weight";
}

TEST(ExecModes, BackwardAfterInferenceIsRefused) {
  Graph g = model("lenet5", 1, 28);
  const Tensor out = g.forward(random_tensor({2, 1, 28, 28}, 1), ExecMode::kInference);
  EXPECT_EQ(g.last_mode(), ExecMode::kInference);
  try {
    g.backward(Tensor::zeros(out.shape()));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the last one ran in inference mode"), std::string::npos)
        << e.what();
  }
  EXPECT_STREQ(exec_mode_name(ExecMode::kProbe), "probe");
}

// A plan is made once per mode, hook set and sparse state, then reused; a
// new hook or compressed layers make a new one. The ResNet-20 plan in train
// mode folds BatchNorm's ReLU, which a forward hook on that ReLU turns off.
TEST(ExecModes, PlansAreMadeOncePerModeHooksAndSparsity) {
  Graph g = model("resnet20", 3, 8);
  const Tensor x = random_tensor({2, 3, 8, 8}, 4);
  EXPECT_EQ(g.plans_made(), 0);
  g.forward(x, ExecMode::kTrain);
  g.forward(x, ExecMode::kTrain);
  EXPECT_EQ(g.plans_made(), 1);
  g.forward(x, ExecMode::kProbe);
  g.forward(x, ExecMode::kInference);
  g.forward(x, ExecMode::kTrain);
  g.forward(x, ExecMode::kProbe);
  EXPECT_EQ(g.plans_made(), 3);
  const Tensor fused = g.forward(x, ExecMode::kTrain);
  int seen = 0;
  HookHandle h = g.add_hook(HookPoint::kAfterForward, "*relu*", [&](HookEvent&) { ++seen; });
  const Tensor unfused = g.forward(x, ExecMode::kTrain);
  EXPECT_EQ(g.plans_made(), 4);
  EXPECT_GT(seen, 0);
  // Fused or not, the same numbers.
  ASSERT_EQ(fused.numel(), unfused.numel());
  for (int64_t i = 0; i < fused.numel(); ++i) ASSERT_EQ(fused[i], unfused[i]) << i;
  h.remove();
  g.forward(x, ExecMode::kTrain);
  EXPECT_EQ(g.plans_made(), 5);
  const std::vector<PrunableLayer> layers = prunable_layers(g, true);
  const std::vector<Tensor> masks = magnitude_masks(g, layers, 0.9f, Distribution::kUniform);
  for (std::size_t k = 0; k < layers.size(); ++k) g.compress(layers[k].node, masks[k]);
  g.set_sparse_kernels("sparse");
  g.forward(x, ExecMode::kTrain);
  g.forward(x, ExecMode::kTrain);
  EXPECT_EQ(g.plans_made(), 6);
}

int64_t weight_grad_passes(Graph& g, const std::string& node) {
  return nodes::as_prunable(g.node(node))->weight_grad_passes();
}

// Frozen layers (the backbone, as in transfer fine-tuning) keep every bit;
// their weight-gradient passes do not run; the rest trains.
TEST(ExecModes, FrozenParametersStayAndSkipTheirWeightGradientPass) {
  for (const bool compressed : {false, true}) {
    SCOPED_TRACE(compressed ? "compressed" : "dense");
    Graph g = model("lenet5", 1, 28);
    if (compressed) compress_all(g, 0.8f);
    g.set_sparse_kernels("sparse");
    EXPECT_EQ(g.set_frozen("conv*"), 4);  // conv1/conv2 weight and bias
    Parameter& conv2 = g.parameter("conv2.weight");
    const std::vector<float> frozen_before = values(conv2.value);
    const std::vector<float> fc_before = values(g.parameter("fc3.weight").value);
    auto opt = make_optimizer({.weight_decay = 5e-4f});
    for (int s = 0; s < 3; ++s) {
      train_step(g, *opt, random_tensor({4, 1, 28, 28}, 10 + s), labels_for(4, s), s);
    }
    EXPECT_EQ(values(conv2.value), frozen_before);
    EXPECT_NE(values(g.parameter("fc3.weight").value), fc_before);
    EXPECT_EQ(weight_grad_passes(g, "conv1"), 0);
    EXPECT_EQ(weight_grad_passes(g, "conv2"), 0);
    EXPECT_EQ(weight_grad_passes(g, "fc3"), 3);

    // Unfrozen, they train again.
    g.set_frozen("conv*", false);
    train_step(g, *opt, random_tensor({4, 1, 28, 28}, 20), labels_for(4, 20), 20);
    EXPECT_EQ(weight_grad_passes(g, "conv2"), 1);
    EXPECT_NE(values(conv2.value), frozen_before);
  }
}

TEST(ExecModes, BackwardWithoutParameterGradientsRunsNoWeightPass) {
  Graph g = model("lenet5", 1, 28);
  const Tensor out = g.forward(random_tensor({2, 1, 28, 28}, 1), ExecMode::kTrain);
  const Tensor dx = g.backward(random_tensor(out.shape(), 2),
                               BackwardOptions{.param_grads = false, .input_grad = true});
  EXPECT_TRUE(dx.defined());
  for (const char* n : {"conv1", "conv2", "fc1", "fc2", "fc3"})
    EXPECT_EQ(weight_grad_passes(g, n), 0);
  for (Parameter* p : g.parameters()) {
    if (!p->grad.defined()) continue;
    for (float v : values(p->grad)) ASSERT_EQ(v, 0.0f) << p->name;
  }
}

TEST(ExecModes, FreezingAnUnknownNameIsAnError) {
  Graph g = model("lenet5", 1, 28);
  EXPECT_THROW(g.set_frozen("backbone.*"), Error);
}

}  // namespace
}  // namespace sparsetrain

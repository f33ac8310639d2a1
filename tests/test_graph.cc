// The executor: forward/backward through small graphs checked by finite
// differences, hooks (points, globs, handles, replacement, input gradients),
// activation freeing and peak memory, and build-time shape errors.
#include <gtest/gtest.h>

#include <cmath>

#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/rng.h"
#include "tests/graph_test_util.h"

namespace sparsetrain {
namespace {

using testing::random_tensor;
using testing::weighted_sum;

Graph residual_mlp() {
  Graph g;
  NodeId x = g.input("x", {6});
  NodeId a = g.linear("fc1", x, {.out_features = 5});
  NodeId r = g.relu("relu1", a);
  NodeId b = g.linear("fc2", r, {.out_features = 5});
  NodeId s = g.add("add", r, b);
  NodeId y = g.linear("fc3", s, {.out_features = 3});
  g.set_output(y);
  g.initialize(3);
  return g;
}

Graph small_convnet() {
  Graph g;
  NodeId x = g.input("x", {2, 6, 6});
  NodeId c = g.conv2d("conv", x, {.out_channels = 3, .kernel = 3, .stride = 1, .padding = 1});
  NodeId n = g.batchnorm2d("bn", c);
  NodeId r = g.relu("relu", n);
  NodeId c2 = g.conv2d("conv2", r,
                       {.out_channels = 3, .kernel = 3, .stride = 1, .padding = 1, .bias = false});
  NodeId s = g.add("add", r, c2);
  NodeId p = g.maxpool2d("pool", s, {.kernel = 2, .stride = 2});
  NodeId gp = g.global_avgpool("gap", p);
  NodeId y = g.linear("fc", gp, {.out_features = 4});
  g.set_output(y);
  g.initialize(5);
  return g;
}

// Checks every parameter gradient and the input gradient of `g` against
// central differences of L = sum(out * r).
void check_gradients(Graph& g, const Tensor& x, double tol) {
  const Tensor out0 = g.forward(x, true);
  const Tensor r = random_tensor(out0.shape(), 11);
  for (Parameter* p : g.parameters())
    if (p->trainable()) p->grad.zero();
  g.forward(x, true);
  const Tensor dx = g.backward(r, /*want_input_grad=*/true);
  ASSERT_TRUE(dx.defined());
  // Small steps: a larger one crosses ReLU kinks and max-pool switches.
  const float eps = 1e-3f;
  auto loss_at = [&]() { return weighted_sum(g.forward(x, true), r); };
  auto check = [&](float* v, const float* analytic, int64_t n, const std::string& what) {
    for (int64_t i = 0; i < n; i += std::max<int64_t>(1, n / 23)) {
      const float keep = v[i];
      v[i] = keep + eps;
      const double up = loss_at();
      v[i] = keep - eps;
      const double down = loss_at();
      v[i] = keep;
      const double numeric = (up - down) / (2 * eps);
      EXPECT_NEAR(analytic[i], numeric, tol * std::max(1.0, std::fabs(numeric)))
          << what << "[" << i << "]";
    }
  };
  for (Parameter* p : g.parameters()) {
    if (p->trainable()) check(p->value.data(), p->grad.data(), p->value.numel(), p->name);
  }
  Tensor xin = x;
  Tensor dx_plain = to_layout(dx, x.layout());
  check(xin.data(), dx_plain.data(), xin.numel(), "input");
  g.release();
}

TEST(Graph, ResidualMlpGradientsMatchFiniteDifferences) {
  Graph g = residual_mlp();
  check_gradients(g, random_tensor({4, 6}, 1), 2e-2);
}

TEST(Graph, ConvNetGradientsMatchFiniteDifferences) {
  Graph g = small_convnet();
  check_gradients(g, random_tensor({3, 2, 6, 6}, 2), 3e-2);
}

TEST(Graph, BackwardAccumulatesIntoParameterGradients) {
  Graph g = residual_mlp();
  const Tensor x = random_tensor({4, 6}, 1);
  for (Parameter* p : g.parameters()) p->grad.zero();
  const Tensor out = g.forward(x, true);
  const Tensor r = random_tensor(out.shape(), 4);
  g.backward(r);
  const Tensor once = g.parameter("fc1.weight").grad.clone();
  g.forward(x, true);
  g.backward(r);
  const Tensor& twice = g.parameter("fc1.weight").grad;
  for (int64_t i = 0; i < once.numel(); ++i) EXPECT_FLOAT_EQ(twice[i], 2 * once[i]);
}

TEST(Graph, HooksFireByGlobAndCanBeRemoved) {
  Graph g = residual_mlp();
  int fc_calls = 0, all_calls = 0, backward_calls = 0;
  HookHandle h1 = g.add_hook(HookPoint::kAfterForward, "fc?", [&](HookEvent& e) {
    ++fc_calls;
    EXPECT_EQ(e.node_type, "linear");
    ASSERT_NE(e.output, nullptr);
  });
  HookHandle h2 = g.add_hook(HookPoint::kBeforeForward, "*", [&](HookEvent&) { ++all_calls; });
  HookHandle h3 = g.add_hook(HookPoint::kAfterBackward, "relu*", [&](HookEvent& e) {
    ++backward_calls;
    ASSERT_NE(e.diff_dst, nullptr);
    EXPECT_EQ(e.diff_src.size(), 1u);
  });
  const Tensor x = random_tensor({2, 6}, 1);
  const Tensor out = g.forward(x, true);
  g.backward(Tensor::full(out.shape(), 1.0f));
  EXPECT_EQ(fc_calls, 3);
  EXPECT_EQ(all_calls, 5);  // every node but the input
  EXPECT_EQ(backward_calls, 1);
  h1.remove();
  EXPECT_FALSE(h1.active());
  EXPECT_TRUE(h2.active());
  g.forward(x, false);
  EXPECT_EQ(fc_calls, 3);
  EXPECT_EQ(all_calls, 10);
  {
    HookHandle scoped = g.add_hook(HookPoint::kAfterForward, "*", [&](HookEvent&) { ++fc_calls; });
  }
  g.forward(x, false);
  EXPECT_EQ(fc_calls, 3) << "a destroyed handle removes its hook";
}

TEST(Graph, HookCanReplaceAnOutput) {
  Graph g = residual_mlp();
  const Tensor x = random_tensor({2, 6}, 1);
  HookHandle h = g.add_hook(HookPoint::kAfterForward, "add", [](HookEvent& e) {
    *e.output = Tensor::zeros(e.output->shape(), e.output->layout());
  });
  const Tensor out = g.forward(x, false);
  const Tensor& bias = g.parameter("fc3.bias").value;
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t k = 0; k < 3; ++k) EXPECT_FLOAT_EQ(out[n * 3 + k], bias[k]);
}

TEST(Graph, InputGradientOnlyWhenAsked) {
  Graph g = residual_mlp();
  const Tensor x = random_tensor({2, 6}, 1);
  Tensor out = g.forward(x, true);
  EXPECT_FALSE(g.backward(Tensor::full(out.shape(), 1.0f)).defined());
  Tensor seen;
  HookHandle h = g.add_hook(
      HookPoint::kAfterBackward, "fc1", [&](HookEvent& e) { seen = e.diff_src[0]; },
      HookOptions{.wants_input_grad = true});
  out = g.forward(x, true);
  const Tensor dx = g.backward(Tensor::full(out.shape(), 1.0f));
  ASSERT_TRUE(dx.defined());
  ASSERT_TRUE(seen.defined());
  EXPECT_EQ(dx.shape(), x.shape());
}

TEST(Graph, InferenceFreesActivationsEarly) {
  Graph g;
  NodeId x = g.input("x", {256});
  for (int i = 0; i < 8; ++i)
    x = g.relu("relu" + std::to_string(i),
               g.linear("fc" + std::to_string(i), x, {.out_features = 256}));
  g.set_output(x);
  g.initialize(1);
  const Tensor in = random_tensor({512, 256}, 1);
  g.forward(in, true);
  const int64_t train_peak = g.last_peak_bytes();
  g.release();
  g.forward(in, false);
  const int64_t eval_peak = g.last_peak_bytes();
  // Training keeps the eight ReLU outputs (512 KiB each) for backward;
  // inference holds at most three activations at a time.
  const int64_t activation = 512 * 256 * 4;
  EXPECT_GE(train_peak - eval_peak, 4 * activation) << train_peak << " vs " << eval_peak;
}

TEST(Graph, ShapeErrorsNameTheNode) {
  Graph g;
  NodeId x = g.input("x", {3, 8, 8});
  try {
    g.linear("head", x, {.out_features = 10});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("head"), std::string::npos) << e.what();
  }
  NodeId a = g.conv2d("a", x, {.out_channels = 4, .kernel = 3, .padding = 1});
  NodeId b = g.conv2d("b", x, {.out_channels = 5, .kernel = 3, .padding = 1});
  EXPECT_THROW(g.add("sum", a, b), Error);
  EXPECT_THROW(g.relu("a", x), Error) << "duplicate names are refused";
}

TEST(Graph, ForwardRejectsInputsThatDoNotFit) {
  Graph g = residual_mlp();
  EXPECT_THROW(g.forward(random_tensor({2, 7}, 1), false), Error);
}

TEST(Glob, Matches) {
  EXPECT_TRUE(glob_match("*", "anything"));
  EXPECT_TRUE(glob_match("layer1.*.conv?", "layer1.0.conv2"));
  EXPECT_FALSE(glob_match("layer1.*.conv?", "layer2.0.conv2"));
  EXPECT_TRUE(glob_match("fc", "fc"));
  EXPECT_FALSE(glob_match("fc", "fc1"));
  EXPECT_TRUE(glob_match("*bn*", "layer3.2.bn1"));
}

}  // namespace
}  // namespace sparsetrain

// Dense linear: every variant in kLinearDenseKernels against the scalar
// reference on swept shapes (small-integer data, so fp32 sums are exact and
// the threshold is 0), accumulation of backward-weights, and the linear node:
// central-difference gradients, layouts, parameters and shape errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/linear/linear.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"
#include "tests/test_util.h"

namespace sparsetrain {
namespace {

using kernels::LinearKernels;
using kernels::LinearShape;

using testing::normals;
using testing::same_values;
using testing::small_ints;

void expect_matches_ref(const LinearKernels& kernels, const LinearShape& s, bool with_bias,
                        uint64_t seed) {
  SCOPED_TRACE(std::string(kernels.name) + " N" + std::to_string(s.batch) + " I" +
               std::to_string(s.in_features) + " O" + std::to_string(s.out_features) +
               (with_bias ? " bias" : " no-bias"));
  const LinearKernels& ref = kernels::kLinearDenseKernels.reference();
  const int64_t n = s.batch, in = s.in_features, out = s.out_features;
  const auto src = small_ints(n * in, seed);
  const auto weights = small_ints(out * in, seed + 1);
  const auto bias = small_ints(out, seed + 2);
  const auto diff_dst = small_ints(n * out, seed + 3);
  const float* bias_ptr = with_bias ? bias.data() : nullptr;

  std::vector<float> want(static_cast<std::size_t>(n * out)), got(want.size(), -99.0f);
  ref.forward(want.data(), src.data(), weights.data(), bias_ptr, s);
  kernels.forward(got.data(), src.data(), weights.data(), bias_ptr, s);
  EXPECT_TRUE(same_values(got, want)) << "forward";

  std::vector<float> want_dx(static_cast<std::size_t>(n * in)), got_dx(want_dx.size(), -99.0f);
  ref.backward_data(want_dx.data(), diff_dst.data(), weights.data(), s);
  kernels.backward_data(got_dx.data(), diff_dst.data(), weights.data(), s);
  EXPECT_TRUE(same_values(got_dx, want_dx)) << "backward-data";

  // Start from non-zero gradients: backward-weights accumulates.
  std::vector<float> want_dw = small_ints(out * in, seed + 4), got_dw = want_dw;
  std::vector<float> want_db = small_ints(out, seed + 5), got_db = want_db;
  ref.backward_weights(want_dw.data(), with_bias ? want_db.data() : nullptr, diff_dst.data(),
                       src.data(), s);
  kernels.backward_weights(got_dw.data(), with_bias ? got_db.data() : nullptr, diff_dst.data(),
                           src.data(), s);
  EXPECT_TRUE(same_values(got_dw, want_dw)) << "backward-weights";
  EXPECT_TRUE(same_values(got_db, want_db)) << "backward-weights (bias)";
}

// Sizes around the 16-float vector (N/2, N, N+1, 8N+2), the MNIST MLP and the
// ResNet classifier heads.
TEST(LinearKernels, EveryVariantMatchesRef) {
  constexpr int64_t kBatches[] = {1, 5, 17, 128};
  constexpr int64_t kInputs[] = {1, 8, 16, 17, 130};
  constexpr int64_t kOutputs[] = {1, 7, 16, 33};
  uint64_t seed = 0;
  for (const LinearKernels& k : kernels::kLinearDenseKernels) {
    if (&k == &kernels::kLinearDenseKernels.reference()) continue;
    for (int64_t n : kBatches)
      for (int64_t in : kInputs)
        for (int64_t out : kOutputs) {
          expect_matches_ref(k, {.batch = n, .in_features = in, .out_features = out}, seed % 2 == 0,
                             seed);
          ++seed;
        }
    for (const LinearShape& s : {LinearShape{128, 784, 300}, LinearShape{128, 300, 100},
                                 LinearShape{128, 100, 10}, LinearShape{128, 64, 10}}) {
      expect_matches_ref(k, s, true, seed++);
    }
  }
}

TEST(LinearKernels, BackwardWeightsAccumulates) {
  const LinearShape s{.batch = 9, .in_features = 20, .out_features = 12};
  const auto src = small_ints(9 * 20, 1);
  const auto diff_dst = small_ints(9 * 12, 2);
  for (const LinearKernels& k : kernels::kLinearDenseKernels) {
    SCOPED_TRACE(k.name);
    std::vector<float> once(12 * 20, 0.0f), twice = once, bias_once(12, 0.0f),
                                            bias_twice = bias_once;
    k.backward_weights(once.data(), bias_once.data(), diff_dst.data(), src.data(), s);
    k.backward_weights(twice.data(), bias_twice.data(), diff_dst.data(), src.data(), s);
    k.backward_weights(twice.data(), bias_twice.data(), diff_dst.data(), src.data(), s);
    ASSERT_TRUE(std::any_of(once.begin(), once.end(), [](float v) { return v != 0.0f; }));
    for (float& v : once) v *= 2.0f;
    for (float& v : bias_once) v *= 2.0f;
    EXPECT_TRUE(same_values(twice, once));
    EXPECT_TRUE(same_values(bias_twice, bias_once));
  }
}

// Pins the reference itself on a case small enough to compute by hand.
TEST(LinearRef, MatchesHandComputedValues) {
  const LinearShape s{.batch = 2, .in_features = 3, .out_features = 2};
  const std::vector<float> src{1, 2, 3, 4, 5, 6};       // (2, 3)
  const std::vector<float> weights{1, 0, -1, 2, 1, 0};  // (2, 3)
  const std::vector<float> bias{0.5f, -1.0f};
  std::vector<float> dst(4);
  kernels::linear_forward_ref(dst.data(), src.data(), weights.data(), bias.data(), s);
  EXPECT_TRUE(same_values(dst, {-1.5f, 3.0f, -1.5f, 12.0f}));
  const std::vector<float> diff_dst{1, 2, 3, 4};  // (2, 2)
  std::vector<float> diff_src(6);
  kernels::linear_backward_data_ref(diff_src.data(), diff_dst.data(), weights.data(), s);
  EXPECT_TRUE(same_values(diff_src, {5, 2, -1, 11, 4, -3}));
  std::vector<float> diff_w(6, 0.0f), diff_b(2, 0.0f);
  kernels::linear_backward_weights_ref(diff_w.data(), diff_b.data(), diff_dst.data(), src.data(),
                                       s);
  EXPECT_TRUE(same_values(diff_w, {13, 17, 21, 18, 24, 30}));
  EXPECT_TRUE(same_values(diff_b, {4, 6}));
}

// --- the linear node --------------------------------------------------------------

std::unique_ptr<Node> make_node(int64_t in, const LinearOptions& options, uint64_t seed) {
  auto node = nodes::make_linear("fc", in, options);
  Rng rng(seed);
  node->reset_parameters(rng);
  for (Parameter* p : node->parameters())
    if (p->kind == ParamKind::kBias)
      for (int64_t i = 0; i < p->value.numel(); ++i) p->value[i] = rng.normal();
  return node;
}

Tensor run_forward(Node& node, const Tensor& x) {
  const std::vector<Tensor> inputs{x};
  ForwardArgs args;
  args.inputs = inputs;
  return node.forward(args);
}

// Central differences of L = sum(y * R), which is linear in every coordinate:
// the quotient is exact up to rounding.
void check_gradients(const LinearOptions& options, Layout input_layout) {
  SCOPED_TRACE(std::string("input ") + layout_name(input_layout));
  constexpr double kStep = 0.0625;
  constexpr double kTolerance = 2e-3;
  constexpr int64_t kBatch = 3, kIn = 7;
  auto node = make_node(kIn, options, 1);
  Tensor x = to_layout(Tensor::from({kBatch, kIn}, normals(kBatch * kIn, 2)), input_layout);
  const Tensor r =
      Tensor::from({kBatch, options.out_features}, normals(kBatch * options.out_features, 3));
  auto loss = [&] {
    const Tensor y = run_forward(*node, x);
    double sum = 0.0;
    for (int64_t i = 0; i < y.numel(); ++i) sum += static_cast<double>(y[i]) * r[i];
    return sum;
  };
  const Tensor y = run_forward(*node, x);
  EXPECT_EQ(y.layout(), Layout::kPlain);
  EXPECT_EQ(y.shape(), (Shape{kBatch, options.out_features}));
  const std::vector<Tensor> inputs{x};
  const std::vector<char> need{1};
  BackwardArgs args;
  args.inputs = inputs;
  args.diff_dst = &r;
  args.need_diff_src = need;
  const auto diff_src = node->backward(args);
  ASSERT_EQ(diff_src.size(), 1u);
  ASSERT_TRUE(diff_src[0].defined());
  EXPECT_EQ(diff_src[0].layout(), input_layout);

  auto numeric = [&](float& coordinate) {
    const float saved = coordinate;
    coordinate = static_cast<float>(saved + kStep);
    const double plus = loss();
    coordinate = static_cast<float>(saved - kStep);
    const double minus = loss();
    coordinate = saved;
    return (plus - minus) / (2 * kStep);
  };
  auto expect_close = [&](double analytic, double fd, const std::string& what) {
    EXPECT_NEAR(analytic, fd, kTolerance * std::max(1.0, std::abs(fd))) << what;
  };
  for (int64_t i = 0; i < x.numel(); ++i) {
    expect_close(diff_src[0][i], numeric(x[i]), "diff_src[" + std::to_string(i) + "]");
  }
  for (Parameter* p : node->parameters())
    for (int64_t i = 0; i < p->value.numel(); ++i) {
      expect_close(p->grad[i], numeric(p->value[i]), p->name + "[" + std::to_string(i) + "]");
    }
}

TEST(LinearNode, GradientsMatchCentralDifferences) {
  check_gradients({.out_features = 4}, Layout::kPlain);
  check_gradients({.out_features = 5, .bias = false}, Layout::kPlain);
  check_gradients({.out_features = 3}, Layout::kCN);  // batch-innermost input
}

TEST(LinearNode, ParametersAndHeNormalInit) {
  auto node = nodes::make_linear("fc1", 784, {.out_features = 300});
  EXPECT_STREQ(node->type(), "linear");
  EXPECT_EQ(node->describe(), "784->300");
  const auto params = node->parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->name, "fc1.weight");
  EXPECT_EQ(params[0]->kind, ParamKind::kWeight);
  EXPECT_EQ(params[0]->value.shape(), (Shape{300, 784}));
  EXPECT_EQ(params[0]->grad.shape(), (Shape{300, 784}));
  EXPECT_EQ(params[1]->name, "fc1.bias");
  EXPECT_EQ(params[1]->kind, ParamKind::kBias);
  params[1]->value.fill(2.0f);

  Rng rng(7);
  node->reset_parameters(rng);
  const Tensor& w = params[0]->value;
  double sum = 0.0, sum_sq = 0.0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    sum += w[i];
    sum_sq += static_cast<double>(w[i]) * w[i];
  }
  const double mean = sum / static_cast<double>(w.numel());
  const double stddev = std::sqrt(sum_sq / static_cast<double>(w.numel()) - mean * mean);
  const double expected = std::sqrt(2.0 / 784);
  EXPECT_NEAR(stddev, expected, 0.02 * expected);
  EXPECT_NEAR(mean, 0.0, 0.02 * expected);
  for (int64_t i = 0; i < params[1]->value.numel(); ++i) EXPECT_EQ(params[1]->value[i], 0.0f);

  auto no_bias = nodes::make_linear("head", 64, {.out_features = 10, .bias = false});
  EXPECT_EQ(no_bias->parameters().size(), 1u);
  EXPECT_EQ(no_bias->describe(), "64->10 no-bias");
}

template <class Fn>
void expect_error(Fn fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "no sparsetrain::Error thrown";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const auto& f : fragments) EXPECT_NE(what.find(f), std::string::npos) << what;
  }
}

TEST(LinearNode, BadInputShapesThrow) {
  auto node = nodes::make_linear("fc1", 784, {.out_features = 300});
  expect_error(
      [&] {
        node->output_shape({{1, 3, 32, 32}});
      },
      {"linear 'fc1': expects 784 input features, got 3072 (input shape (1, 3, 32, 32))"});
  expect_error(
      [&] {
        node->output_shape({{16, 100}});
      },
      {"linear 'fc1'", "expects 784 input features, got 100"});
  // The right number of features, but not flattened.
  expect_error(
      [&] {
        node->output_shape({{1, 1, 28, 28}});
      },
      {"linear 'fc1'", "2-D input", "flatten"});
  EXPECT_EQ(node->output_shape({{16, 784}}), (Shape{16, 300}));
  expect_error(
      [&] {
        run_forward(*node, Tensor({2, 10}));
      },
      {"linear 'fc1'", "expects 784 input features, got 10"});
}

TEST(LinearNode, BadOptionsThrow) {
  expect_error([] { nodes::make_linear("fc", 10, {.out_features = 0}); },
               {"linear 'fc'", "out_features must be positive"});
  expect_error([] { nodes::make_linear("fc", 0, {.out_features = 3}); },
               {"linear 'fc'", "in_features must be positive"});
}

}  // namespace
}  // namespace sparsetrain

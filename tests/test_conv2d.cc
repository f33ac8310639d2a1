// Dense conv2d: every variant in kConv2dDenseKernels against the scalar
// reference on swept shapes (small-integer data, so fp32 sums are exact and
// the threshold is 0), accumulation of backward-weights, and the conv2d node:
// central-difference gradients, layouts, parameters and shape errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/common/threads.h"
#include "kernels/conv2d/conv2d.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"
#include "tests/test_util.h"

namespace sparsetrain {
namespace {

using kernels::Conv2dKernels;
using kernels::Conv2dShape;

using testing::normals;
using testing::same_values;
using testing::small_ints;

// Streams, not string concatenation: GCC 12 at -O3 reports false overflows
// in long chains of std::string + (GCC bug 105329).
std::string describe(const Conv2dShape& s, Layout layout) {
  std::ostringstream o;
  o << "N" << s.batch << " C" << s.in_channels << " " << s.in_h << "x" << s.in_w << " O"
    << s.out_channels << " k" << s.kernel_h << "x" << s.kernel_w << " s" << s.stride_h << ","
    << s.stride_w << " p" << s.pad_h << "," << s.pad_w << " g" << s.groups << " "
    << layout_name(layout);
  return o.str();
}

// Runs all three passes of `kernels` and of the reference on the same integer
// data and expects identical results; backward-weights starts from non-zero
// gradients to check that it accumulates.
void expect_matches_ref(const Conv2dKernels& kernels, const Conv2dShape& s, Layout layout,
                        bool with_bias, uint64_t seed) {
  SCOPED_TRACE(std::string(kernels.name) + " " + describe(s, layout) +
               (with_bias ? " bias" : " no-bias"));
  ASSERT_TRUE(s.valid());
  const Conv2dKernels& ref = kernels::kConv2dDenseKernels.reference();
  const int64_t src_n = Tensor::count(s.src_shape()), dst_n = Tensor::count(s.dst_shape());
  const int64_t w_n = Tensor::count(s.weights_shape());
  const auto src = small_ints(src_n, seed);
  const auto weights = small_ints(w_n, seed + 1);
  const auto bias = small_ints(s.out_channels, seed + 2);
  const auto diff_dst = small_ints(dst_n, seed + 3);
  const float* bias_ptr = with_bias ? bias.data() : nullptr;

  std::vector<float> want(static_cast<std::size_t>(dst_n)), got(want.size(), -99.0f);
  ref.forward(want.data(), src.data(), weights.data(), bias_ptr, s, layout);
  kernels.forward(got.data(), src.data(), weights.data(), bias_ptr, s, layout);
  EXPECT_TRUE(same_values(got, want)) << "forward";

  std::vector<float> want_dx(static_cast<std::size_t>(src_n)), got_dx(want_dx.size(), -99.0f);
  ref.backward_data(want_dx.data(), diff_dst.data(), weights.data(), s, layout);
  kernels.backward_data(got_dx.data(), diff_dst.data(), weights.data(), s, layout);
  EXPECT_TRUE(same_values(got_dx, want_dx)) << "backward-data";

  const auto initial_dw = small_ints(w_n, seed + 4);
  const auto initial_db = small_ints(s.out_channels, seed + 5);
  std::vector<float> want_dw = initial_dw, got_dw = initial_dw;
  std::vector<float> want_db = initial_db, got_db = initial_db;
  ref.backward_weights(want_dw.data(), with_bias ? want_db.data() : nullptr, diff_dst.data(),
                       src.data(), s, layout);
  kernels.backward_weights(got_dw.data(), with_bias ? got_db.data() : nullptr, diff_dst.data(),
                           src.data(), s, layout);
  EXPECT_TRUE(same_values(got_dw, want_dw)) << "backward-weights";
  EXPECT_TRUE(same_values(got_db, want_db)) << "backward-weights (bias)";
}

// --- the swept shapes -----------------------------------------------------------

enum class GroupKind { kOne, kTwo, kDepthwise };

struct SweepCase {
  int64_t kernel;
  int64_t stride;
  int64_t padding;
  GroupKind groups;
  Layout layout;
  int64_t batch;  // these three cycle through their values across the sweep
  int64_t side;
  bool bias;
};

std::string case_name(const ::testing::TestParamInfo<SweepCase>& info) {
  const SweepCase& c = info.param;
  const char* g = c.groups == GroupKind::kOne ? "g1" : c.groups == GroupKind::kTwo ? "g2" : "dw";
  std::ostringstream o;
  o << "k" << c.kernel << "_s" << c.stride << "_p" << c.padding << "_" << g << "_"
    << layout_name(c.layout) << "_n" << c.batch << "_hw" << c.side << (c.bias ? "_bias" : "");
  return o.str();
}

std::vector<SweepCase> sweep_cases() {
  constexpr int64_t kBatches[] = {1, 5, 17};
  constexpr int64_t kSides[] = {7, 9, 13};  // odd, and not multiples of the stride
  std::vector<SweepCase> cases;
  std::size_t i = 0;
  for (int64_t kernel : {1, 3, 5, 7})
    for (int64_t stride : {1, 2})
      for (int64_t padding : {0, 1, 3})
        for (GroupKind groups : {GroupKind::kOne, GroupKind::kTwo, GroupKind::kDepthwise})
          for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
            cases.push_back({kernel, stride, padding, groups, layout, kBatches[i % 3],
                             kSides[(i / 3) % 3], i % 2 == 0});
            ++i;
          }
  return cases;
}

class Conv2dSweep : public ::testing::TestWithParam<SweepCase> {};

TEST_P(Conv2dSweep, EveryVariantMatchesRef) {
  const SweepCase& c = GetParam();
  Conv2dShape s;
  s.batch = c.batch;
  s.in_h = c.side;
  s.in_w = c.side + 2;  // non-square
  s.kernel_h = s.kernel_w = c.kernel;
  s.stride_h = s.stride_w = c.stride;
  s.pad_h = s.pad_w = c.padding;
  switch (c.groups) {
    case GroupKind::kOne:
      s.in_channels = 3, s.out_channels = 5, s.groups = 1;
      break;
    case GroupKind::kTwo:
      s.in_channels = 4, s.out_channels = 6, s.groups = 2;
      break;
    case GroupKind::kDepthwise:
      s.in_channels = 6, s.out_channels = 6, s.groups = 6;
      break;
  }
  for (const Conv2dKernels& k : kernels::kConv2dDenseKernels) {
    if (&k == &kernels::kConv2dDenseKernels.reference()) continue;
    expect_matches_ref(k, s, c.layout, c.bias, static_cast<uint64_t>(c.batch * 1000 + c.side));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dSweep, ::testing::ValuesIn(sweep_cases()), case_name);

// Channel counts that reach oneDNN's blocked JIT kernels (multiples of the
// 16-float vector), including the ResNet-20 shapes at a small batch and
// channel counts just off the block size.
TEST(Conv2dDnnl, MatchesRefOnBlockedShapes) {
  struct Case {
    int64_t c, o, side, kernel, stride, padding, groups;
  };
  constexpr Case kCases[] = {
      {3, 16, 11, 3, 1, 1, 1},  {16, 16, 8, 3, 1, 1, 1}, {16, 32, 9, 3, 2, 1, 1},
      {32, 32, 6, 3, 1, 1, 1},  {32, 64, 7, 3, 2, 1, 1}, {64, 64, 4, 3, 1, 1, 1},
      {16, 32, 8, 1, 2, 0, 1},  {17, 33, 7, 3, 1, 1, 1}, {32, 32, 7, 3, 1, 1, 32},
      {32, 64, 6, 3, 2, 1, 32}, {48, 48, 5, 5, 1, 2, 3}, {16, 16, 5, 7, 1, 3, 1},
  };
  const auto& dnnl = *kernels::kConv2dDenseKernels.find("dnnl");
  uint64_t seed = 100;
  for (const Case& c : kCases)
    for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
      const Conv2dShape s{.batch = 3,
                          .in_channels = c.c,
                          .in_h = c.side,
                          .in_w = c.side,
                          .out_channels = c.o,
                          .kernel_h = c.kernel,
                          .kernel_w = c.kernel,
                          .stride_h = c.stride,
                          .stride_w = c.stride,
                          .pad_h = c.padding,
                          .pad_w = c.padding,
                          .groups = c.groups};
      expect_matches_ref(dnnl, s, layout, seed % 2 == 0, seed);
      ++seed;
    }
}

TEST(Conv2dDnnl, MatchesRefWithRectangularKernelsAndBatchInnermostLayout) {
  const auto& dnnl = *kernels::kConv2dDenseKernels.find("dnnl");
  const Conv2dShape rect{.batch = 2,
                         .in_channels = 5,
                         .in_h = 9,
                         .in_w = 6,
                         .out_channels = 4,
                         .kernel_h = 3,
                         .kernel_w = 1,
                         .stride_h = 2,
                         .stride_w = 1,
                         .pad_h = 1,
                         .pad_w = 0};
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC, Layout::kCHWN, Layout::kPlain}) {
    expect_matches_ref(dnnl, rect, layout, true, 7);
  }
}

// Backward-weights adds to what is there: twice from zero is twice once.
TEST(Conv2dKernels, BackwardWeightsAccumulates) {
  const Conv2dShape s{.batch = 2,
                      .in_channels = 16,
                      .in_h = 6,
                      .in_w = 6,
                      .out_channels = 16,
                      .kernel_h = 3,
                      .kernel_w = 3,
                      .pad_h = 1,
                      .pad_w = 1};
  const auto src = small_ints(Tensor::count(s.src_shape()), 1);
  const auto diff_dst = small_ints(Tensor::count(s.dst_shape()), 2);
  for (const Conv2dKernels& k : kernels::kConv2dDenseKernels)
    for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
      SCOPED_TRACE(std::string(k.name) + " " + layout_name(layout));
      std::vector<float> once(static_cast<std::size_t>(Tensor::count(s.weights_shape())), 0.0f);
      std::vector<float> twice = once, bias_once(16, 0.0f), bias_twice(16, 0.0f);
      k.backward_weights(once.data(), bias_once.data(), diff_dst.data(), src.data(), s, layout);
      k.backward_weights(twice.data(), bias_twice.data(), diff_dst.data(), src.data(), s, layout);
      k.backward_weights(twice.data(), bias_twice.data(), diff_dst.data(), src.data(), s, layout);
      ASSERT_TRUE(std::any_of(once.begin(), once.end(), [](float v) { return v != 0.0f; }));
      for (float& v : once) v *= 2.0f;
      for (float& v : bias_once) v *= 2.0f;
      EXPECT_TRUE(same_values(twice, once));
      EXPECT_TRUE(same_values(bias_twice, bias_once));
    }
}

// A hand-computed case pins the reference itself: a 2x2 all-ones kernel over
// a 3x3 ramp with stride 1 and no padding sums each 2x2 window.
TEST(Conv2dRef, MatchesHandComputedValues) {
  const Conv2dShape s{.batch = 1,
                      .in_channels = 1,
                      .in_h = 3,
                      .in_w = 3,
                      .out_channels = 1,
                      .kernel_h = 2,
                      .kernel_w = 2};
  const std::vector<float> src{1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> weights{1, 1, 1, 1};
  const float bias = 0.5f;
  std::vector<float> dst(4);
  kernels::conv2d_forward_ref(dst.data(), src.data(), weights.data(), &bias, s, Layout::kNCHW);
  EXPECT_TRUE(same_values(dst, {12.5f, 16.5f, 24.5f, 28.5f}));
  // Each input pixel is covered by as many windows as the 2x2 kernel fits.
  std::vector<float> diff_src(9);
  const std::vector<float> ones{1, 1, 1, 1};
  kernels::conv2d_backward_data_ref(diff_src.data(), ones.data(), weights.data(), s, Layout::kNCHW);
  EXPECT_TRUE(same_values(diff_src, {1, 2, 1, 2, 4, 2, 1, 2, 1}));
  std::vector<float> diff_w(4, 0.0f);
  float diff_b = 0.0f;
  kernels::conv2d_backward_weights_ref(diff_w.data(), &diff_b, ones.data(), src.data(), s,
                                       Layout::kNCHW);
  EXPECT_TRUE(same_values(diff_w, {12, 16, 24, 28}));
  EXPECT_EQ(diff_b, 4.0f);
}

// Run twice, bit for bit: catches races in the threaded primitives.
TEST(Conv2dDnnl, RepeatableBitForBit) {
  const Conv2dShape s{.batch = 8,
                      .in_channels = 32,
                      .in_h = 16,
                      .in_w = 16,
                      .out_channels = 32,
                      .kernel_h = 3,
                      .kernel_w = 3,
                      .pad_h = 1,
                      .pad_w = 1};
  const auto src = normals(Tensor::count(s.src_shape()), 1);
  const auto weights = normals(Tensor::count(s.weights_shape()), 2);
  const auto diff_dst = normals(Tensor::count(s.dst_shape()), 3);
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
    std::vector<float> results[2][3];
    for (auto& run : results) {
      run[0].assign(static_cast<std::size_t>(Tensor::count(s.dst_shape())), 0.0f);
      run[1].assign(static_cast<std::size_t>(Tensor::count(s.src_shape())), 0.0f);
      run[2].assign(static_cast<std::size_t>(Tensor::count(s.weights_shape())), 0.0f);
      kernels::conv2d_forward_dnnl(run[0].data(), src.data(), weights.data(), nullptr, s, layout);
      kernels::conv2d_backward_data_dnnl(run[1].data(), diff_dst.data(), weights.data(), s, layout);
      kernels::conv2d_backward_weights_dnnl(run[2].data(), nullptr, diff_dst.data(), src.data(), s,
                                            layout);
    }
    for (int pass = 0; pass < 3; ++pass) {
      EXPECT_TRUE(same_values(results[1][pass], results[0][pass]))
          << layout_name(layout) << " pass " << pass;
    }
  }
}

// The thread count is part of the primitive cache key; results do not depend
// on it (integer data: every order of summation is exact).
TEST(Conv2dDnnl, SameResultsForOneAndTwoThreads) {
  const Conv2dShape s{.batch = 4,
                      .in_channels = 16,
                      .in_h = 10,
                      .in_w = 10,
                      .out_channels = 32,
                      .kernel_h = 3,
                      .kernel_w = 3,
                      .stride_h = 2,
                      .stride_w = 2,
                      .pad_h = 1,
                      .pad_w = 1};
  const int before = kernels::num_threads();
  for (int threads : {1, 2}) {
    kernels::set_num_threads(threads);
    EXPECT_EQ(kernels::num_threads(), threads);
    expect_matches_ref(*kernels::kConv2dDenseKernels.find("dnnl"), s, Layout::kNHWC, true, 11);
  }
  kernels::set_num_threads(before);
}

// --- the conv2d node ------------------------------------------------------------

std::unique_ptr<Node> make_node(int64_t in_channels, const Conv2dOptions& options, uint64_t seed) {
  auto node = nodes::make_conv2d("conv", in_channels, options);
  Rng rng(seed);
  node->reset_parameters(rng);
  // He-normal leaves the bias at zero; give it values so its gradient and its
  // effect on the output are exercised.
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

// sum(y * r) in double, y read in logical (N, C, H, W) order.
double weighted_sum(const Tensor& y, const Tensor& r_nchw) {
  const Tensor y_nchw = to_layout(y, Layout::kNCHW);
  double sum = 0.0;
  for (int64_t i = 0; i < y_nchw.numel(); ++i) sum += static_cast<double>(y_nchw[i]) * r_nchw[i];
  return sum;
}

// Central differences of L(x, W, b) = sum(conv(x) * R). L is linear in each
// coordinate, so the difference quotient is exact up to rounding and a
// power-of-two step keeps the perturbation itself exact.
void check_gradients(const Conv2dOptions& options, int64_t in_channels, Layout input_layout) {
  SCOPED_TRACE(std::string("groups ") + std::to_string(options.groups) + " input " +
               layout_name(input_layout));
  constexpr double kStep = 0.0625;
  constexpr double kTolerance = 2e-3;
  auto node = make_node(in_channels, options, 3);
  const Shape x_shape{2, in_channels, 5, 6};
  Tensor x = to_layout(Tensor::from(x_shape, normals(Tensor::count(x_shape), 4), Layout::kNCHW),
                       input_layout);
  const Shape y_shape = node->output_shape({x_shape});
  const Tensor r = Tensor::from(y_shape, normals(Tensor::count(y_shape), 5), Layout::kNCHW);

  const Tensor y = run_forward(*node, x);
  EXPECT_EQ(y.layout(), nodes::dense_conv_layout());
  EXPECT_EQ(y.shape(), y_shape);
  const std::vector<Tensor> inputs{x};
  const std::vector<char> need{1};
  BackwardArgs args;
  args.inputs = inputs;
  args.diff_dst = &r;
  args.need_diff_src = need;
  const std::vector<Tensor> diff_src = node->backward(args);
  ASSERT_EQ(diff_src.size(), 1u);
  ASSERT_TRUE(diff_src[0].defined());
  EXPECT_EQ(diff_src[0].layout(), input_layout);
  EXPECT_EQ(diff_src[0].shape(), x_shape);

  auto numeric = [&](float& coordinate) {
    const float saved = coordinate;
    coordinate = static_cast<float>(saved + kStep);
    const double plus = weighted_sum(run_forward(*node, x), r);
    coordinate = static_cast<float>(saved - kStep);
    const double minus = weighted_sum(run_forward(*node, x), r);
    coordinate = saved;
    return (plus - minus) / (2 * kStep);
  };
  auto expect_close = [&](double analytic, double fd, const std::string& what) {
    EXPECT_NEAR(analytic, fd, kTolerance * std::max(1.0, std::abs(fd))) << what;
  };
  for (int64_t i = 0; i < x.numel(); ++i) {
    expect_close(diff_src[0][i], numeric(x[i]), "diff_src[" + std::to_string(i) + "]");
  }
  for (Parameter* p : node->parameters()) {
    for (int64_t i = 0; i < p->value.numel(); ++i) {
      expect_close(p->grad[i], numeric(p->value[i]), p->name + "[" + std::to_string(i) + "]");
    }
  }
}

TEST(Conv2dNode, GradientsMatchCentralDifferences) {
  check_gradients({.out_channels = 4, .kernel = 3, .stride = 2, .padding = 1}, 3, Layout::kNCHW);
  check_gradients({.out_channels = 4, .kernel = 3, .stride = 1, .padding = 1, .groups = 2}, 2,
                  Layout::kNHWC);
  check_gradients(
      {.out_channels = 3, .kernel = 3, .stride = 1, .padding = 0, .groups = 3, .bias = false}, 3,
      Layout::kPlain);
  check_gradients({.out_channels = 2, .kernel = 1, .stride = 2, .padding = 0}, 3, Layout::kCHWN);
}

TEST(Conv2dNode, ForwardMatchesRefInAnyInputLayout) {
  const Conv2dOptions options{.out_channels = 16, .kernel = 3, .stride = 1, .padding = 1};
  auto node = make_node(16, options, 9);
  const Shape x_shape{3, 16, 8, 8};
  const Tensor x_nchw =
      Tensor::from(x_shape, small_ints(Tensor::count(x_shape), 10), Layout::kNCHW);
  // Integer weights: every variant and layout must agree exactly.
  Parameter* weight = node->parameters()[0];
  Parameter* bias = node->parameters()[1];
  const auto w = small_ints(weight->value.numel(), 11);
  std::copy(w.begin(), w.end(), weight->value.data());
  bias->value.fill(1.0f);

  const Conv2dShape s{.batch = 3,
                      .in_channels = 16,
                      .in_h = 8,
                      .in_w = 8,
                      .out_channels = 16,
                      .kernel_h = 3,
                      .kernel_w = 3,
                      .pad_h = 1,
                      .pad_w = 1};
  std::vector<float> want(static_cast<std::size_t>(Tensor::count(s.dst_shape())));
  kernels::conv2d_forward_ref(want.data(), x_nchw.data(), weight->value.data(), bias->value.data(),
                              s, Layout::kNCHW);
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC, Layout::kCHWN, Layout::kPlain}) {
    const Tensor y = to_layout(run_forward(*node, to_layout(x_nchw, layout)), Layout::kNCHW);
    EXPECT_TRUE(same_values(std::vector<float>(y.data(), y.data() + y.numel()), want))
        << layout_name(layout);
  }
}

TEST(Conv2dNode, SkipsDiffSrcWhenNotNeeded) {
  auto node = make_node(3, {.out_channels = 4, .kernel = 3, .padding = 1}, 1);
  const Tensor x = Tensor::full({1, 3, 4, 4}, 1.0f, Layout::kNCHW);
  const Tensor y = run_forward(*node, x);
  const Tensor dy = Tensor::full(y.shape(), 1.0f, y.layout());
  const std::vector<Tensor> inputs{x};
  const std::vector<char> need{0};
  BackwardArgs args;
  args.inputs = inputs;
  args.diff_dst = &dy;
  args.need_diff_src = need;
  const auto diff_src = node->backward(args);
  ASSERT_EQ(diff_src.size(), 1u);
  EXPECT_FALSE(diff_src[0].defined());
  // The bias gradient is the sum of diff_dst over batch and image: 16 ones.
  EXPECT_EQ(node->parameters()[1]->grad[0], 16.0f);
}

TEST(Conv2dNode, ParametersAndHeNormalInit) {
  auto node = nodes::make_conv2d("layer1.0.conv1", 64, {.out_channels = 64, .kernel = 3});
  EXPECT_STREQ(node->type(), "conv2d");
  const auto params = node->parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->name, "layer1.0.conv1.weight");
  EXPECT_EQ(params[0]->kind, ParamKind::kWeight);
  EXPECT_EQ(params[0]->value.shape(), (Shape{64, 64, 3, 3}));
  EXPECT_EQ(params[0]->grad.shape(), (Shape{64, 64, 3, 3}));
  EXPECT_EQ(params[1]->name, "layer1.0.conv1.bias");
  EXPECT_EQ(params[1]->kind, ParamKind::kBias);
  EXPECT_EQ(params[1]->value.shape(), (Shape{64}));
  params[1]->value.fill(3.0f);

  Rng rng(42);
  node->reset_parameters(rng);
  const Tensor& w = params[0]->value;
  double sum = 0.0, sum_sq = 0.0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    sum += w[i];
    sum_sq += static_cast<double>(w[i]) * w[i];
  }
  const double mean = sum / static_cast<double>(w.numel());
  const double stddev = std::sqrt(sum_sq / static_cast<double>(w.numel()) - mean * mean);
  const double expected = std::sqrt(2.0 / (64 * 3 * 3));
  // 36864 draws: the sample std is within about 0.4% of the true one.
  EXPECT_NEAR(stddev, expected, 0.03 * expected);
  EXPECT_NEAR(mean, 0.0, 0.03 * expected);
  for (int64_t i = 0; i < params[1]->value.numel(); ++i) EXPECT_EQ(params[1]->value[i], 0.0f);

  auto grouped =
      nodes::make_conv2d("dw", 32, {.out_channels = 32, .kernel = 3, .groups = 32, .bias = false});
  ASSERT_EQ(grouped->parameters().size(), 1u);
  EXPECT_EQ(grouped->parameters()[0]->value.shape(), (Shape{32, 1, 3, 3}));
}

TEST(Conv2dNode, Describe) {
  EXPECT_EQ(
      nodes::make_conv2d("c", 16, {.out_channels = 16, .kernel = 3, .padding = 1})->describe(),
      "3x3 s1 p1 16->16");
  EXPECT_EQ(
      nodes::make_conv2d("c", 16, {.out_channels = 32, .kernel = 1, .stride = 2, .bias = false})
          ->describe(),
      "1x1 s2 p0 16->32 no-bias");
  EXPECT_EQ(nodes::make_conv2d("c", 8, {.out_channels = 8, .kernel = 3, .padding = 1, .groups = 8})
                ->describe(),
            "3x3 s1 p1 8->8 depthwise");
}

// Expects `fn` to throw sparsetrain::Error whose message contains every
// fragment.
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

TEST(Conv2dNode, BadInputShapesThrow) {
  auto node = nodes::make_conv2d("conv1", 3, {.out_channels = 16, .kernel = 5});
  expect_error(
      [&] {
        node->output_shape({{8, 1, 28, 28}});
      },
      {"conv2d 'conv1'", "expects 3 input channels, got 1", "(8, 1, 28, 28)"});
  expect_error(
      [&] {
        node->output_shape({{8, 784}});
      },
      {"conv2d 'conv1'", "4-D input", "(8, 784)"});
  expect_error(
      [&] {
        node->output_shape({{8, 3, 4, 32}});
      },
      {"conv2d 'conv1'", "5x5 kernel", "4x32"});
  expect_error(
      [&] {
        node->output_shape({{1, 3, 8, 8}, {1, 3, 8, 8}});
      },
      {"conv2d 'conv1'", "takes one input, got 2"});
  EXPECT_EQ(node->output_shape({{8, 3, 32, 32}}), (Shape{8, 16, 28, 28}));
  // The forward pass checks too.
  expect_error(
      [&] {
        run_forward(*node, Tensor({2, 4, 8, 8}, Layout::kNCHW));
      },
      {"conv2d 'conv1'", "expects 3 input channels, got 4"});
}

TEST(Conv2dNode, BadOptionsThrow) {
  expect_error([] { nodes::make_conv2d("c", 6, {.out_channels = 8, .kernel = 3, .groups = 4}); },
               {"conv2d 'c'", "groups (4)", "in_channels (6)"});
  expect_error([] { nodes::make_conv2d("c", 6, {.out_channels = 0}); },
               {"conv2d 'c'", "out_channels must be positive"});
  expect_error([] { nodes::make_conv2d("c", 6, {.out_channels = 4, .stride = 0}); },
               {"conv2d 'c'", "stride"});
  expect_error([] { nodes::make_conv2d("c", 6, {.out_channels = 4, .padding = -1}); },
               {"conv2d 'c'", "padding"});
}

}  // namespace
}  // namespace sparsetrain

// Pooling: every kernel against the scalar reference on swept shapes, window
// options and layouts; the max/avg/global-average nodes (finite-difference
// gradients, shapes, bad options).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/pooling/pooling.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"
#include "tests/test_util.h"

namespace sparsetrain {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();
constexpr Layout kLayouts[] = {Layout::kNCHW, Layout::kNHWC, Layout::kCHWN};

using testing::small_ints;

// |got - ref| <= c * eps * max(|ref|, 1) element-wise; c = 0 is exact.
void expect_close(const std::vector<float>& ref, const std::vector<float>& got, double c,
                  const std::string& what) {
  ASSERT_EQ(ref.size(), got.size());
  int reported = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double tol = c * kEps * std::max<double>(std::abs(ref[i]), 1.0);
    const bool ok =
        c == 0 ? got[i] == ref[i] : std::abs(static_cast<double>(got[i]) - ref[i]) <= tol;
    if (!ok && reported++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", reference " << ref[i];
    }
  }
}

// ---------------------------------------------------------------------------
// Kernels against the reference.

void check_kernel(const kernels::PoolKernel& k, const kernels::PoolDesc& d, uint64_t seed) {
  const auto& ref = kernels::pool_kernels().reference();
  SCOPED_TRACE(std::string(k.name) + " " + std::to_string(d.n) + "x" + std::to_string(d.c) + "x" +
               std::to_string(d.h) + "x" + std::to_string(d.w) + " k" + std::to_string(d.kernel) +
               " s" + std::to_string(d.stride) + " p" + std::to_string(d.padding) + " " +
               layout_name(d.layout));
  Rng rng(seed);
  // Small integers: many ties inside windows (the first maximum must win in
  // every implementation) and exact sums.
  const std::vector<float> src = small_ints(d.src_numel(), -5, 5, rng);
  const std::vector<float> diff_dst = small_ints(d.dst_numel(), -3, 3, rng);
  const auto dst_n = static_cast<size_t>(d.dst_numel()), src_n = static_cast<size_t>(d.src_numel());

  std::vector<float> want(dst_n), got(dst_n, -99.0f);
  ref.max_forward(want.data(), src.data(), d);
  k.max_forward(got.data(), src.data(), d);
  expect_close(want, got, 0, "max dst");

  std::vector<float> want_dx(src_n), got_dx(src_n, -99.0f);
  ref.max_backward(want_dx.data(), diff_dst.data(), src.data(), d);
  k.max_backward(got_dx.data(), diff_dst.data(), src.data(), d);
  expect_close(want_dx, got_dx, 0, "max diff_src");

  ref.avg_forward(want.data(), src.data(), d);
  k.avg_forward(got.data(), src.data(), d);
  expect_close(want, got, 2, "avg dst");  // an exact sum, one division

  ref.avg_backward(want_dx.data(), diff_dst.data(), d);
  std::fill(got_dx.begin(), got_dx.end(), -99.0f);
  k.avg_backward(got_dx.data(), diff_dst.data(), d);
  // oneDNN divides before it sums: up to kernel^2 rounded terms.
  expect_close(want_dx, got_dx, static_cast<double>(d.kernel * d.kernel), "avg diff_src");

  const auto nc = static_cast<size_t>(d.n * d.c);
  std::vector<float> want_g(nc), got_g(nc, -99.0f);
  ref.global_avg_forward(want_g.data(), src.data(), d);
  k.global_avg_forward(got_g.data(), src.data(), d);
  expect_close(want_g, got_g, 2, "global dst");

  const std::vector<float> diff_g = small_ints(d.n * d.c, -3, 3, rng);
  ref.global_avg_backward(want_dx.data(), diff_g.data(), d);
  std::fill(got_dx.begin(), got_dx.end(), -99.0f);
  k.global_avg_backward(got_dx.data(), diff_g.data(), d);
  expect_close(want_dx, got_dx, 2, "global diff_src");

  // Run twice: bit for bit the same.
  std::vector<float> again(src_n);
  k.max_backward(again.data(), diff_dst.data(), src.data(), d);
  k.max_backward(got_dx.data(), diff_dst.data(), src.data(), d);
  EXPECT_EQ(again, got_dx);
}

struct Window {
  int64_t kernel, stride, padding;
};

TEST(PoolKernels, MatchReferenceOnSweptShapes) {
  const int64_t batches[] = {1, 5, 17};
  const int64_t channels[] = {1, 3, 16, 17};
  const int64_t spatial[][2] = {{2, 2}, {7, 5}, {9, 11}};
  // Non-overlapping, overlapping with padding, stride 1, a window wider than
  // its stride at odd sizes.
  const Window windows[] = {{2, 2, 0}, {3, 2, 1}, {3, 1, 1}, {1, 1, 0}, {2, 1, 1}, {5, 3, 2}};
  uint64_t seed = 1;
  for (int64_t n : batches)
    for (int64_t c : channels)
      for (const auto& hw : spatial)
        for (const Window& win : windows)
          for (Layout layout : kLayouts) {
            const kernels::PoolDesc d = {n,          c,          hw[0],       hw[1],
                                         win.kernel, win.stride, win.padding, layout};
            if (d.h + 2 * d.padding < d.kernel || d.w + 2 * d.padding < d.kernel) continue;
            for (const auto& k : kernels::pool_kernels())
              if (k.supports(d) && std::string(k.name) != "ref") check_kernel(k, d, seed);
            ++seed;
          }
}

TEST(PoolKernels, MatchReferenceOnResNetShapes) {
  const int64_t shapes[][4] = {{128, 16, 32, 32}, {128, 32, 16, 16}, {128, 64, 8, 8}};
  const Window windows[] = {{2, 2, 0}, {3, 2, 1}};
  uint64_t seed = 1000;
  for (const auto& s : shapes)
    for (const Window& win : windows)
      for (Layout layout : kLayouts) {
        const kernels::PoolDesc d = {s[0],       s[1],       s[2],        s[3],
                                     win.kernel, win.stride, win.padding, layout};
        for (const auto& k : kernels::pool_kernels())
          if (k.supports(d) && std::string(k.name) != "ref") check_kernel(k, d, seed++);
      }
}

TEST(PoolKernels, MaxPoolPropagatesNaNAndIgnoresPadding) {
  // One 1x1x2x2 plane, 3x3 window, stride 2, padding 1: a single output whose
  // window holds the whole plane; padding never wins even when all values
  // are negative.
  // With N = C = 1 every layout stores the plane the same way; each takes
  // its own code path.
  for (Layout layout : kLayouts) {
    const kernels::PoolDesc d = {1, 1, 2, 2, 3, 2, 1, layout};
    for (const auto& k : kernels::pool_kernels()) {
      if (!k.supports(d)) continue;
      SCOPED_TRACE(std::string(k.name) + " " + layout_name(layout));
      const std::vector<float> negative = {-3, -1, -2, -4};
      float out = 0.0f;
      k.max_forward(&out, negative.data(), d);
      EXPECT_EQ(out, -1.0f);
      std::vector<float> dx(4, 5.0f);
      const float g = 2.0f;
      k.max_backward(dx.data(), &g, negative.data(), d);
      EXPECT_EQ(dx, (std::vector<float>{0, 2, 0, 0}));
      // A NaN wins, as in PyTorch (oneDNN's max ignores it); the first NaN
      // takes the gradient.
      const std::vector<float> with_nan = {1, std::nanf(""), 7, std::nanf("")};
      k.max_forward(&out, with_nan.data(), d);
      if (std::string(k.name) != "dnnl") {
        EXPECT_TRUE(std::isnan(out));
        k.max_backward(dx.data(), &g, with_nan.data(), d);
        EXPECT_EQ(dx, (std::vector<float>{0, 2, 0, 0}));
      }
      // Average counts the padding: 3x3 window, 4 real values.
      k.avg_forward(&out, negative.data(), d);
      EXPECT_FLOAT_EQ(out, -10.0f / 9.0f);
    }
  }
}

// ---------------------------------------------------------------------------
// The nodes.

Tensor from_logical(const Shape& s, Layout layout, const std::vector<float>& nchw) {
  return to_layout(Tensor::from(s, nchw, Layout::kNCHW), layout);
}

// Distinct values at least 0.05 apart (no argmax changes under a 1e-3 step).
Tensor distinct_tensor(const Shape& s, Layout layout, Rng& rng) {
  const int64_t n = Tensor::count(s);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = 0.05f * static_cast<float>(i - n / 2);
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[i], v[rng.below(i + 1)]);
  return from_logical(s, layout, v);
}

double weighted_sum(const Tensor& y, const Tensor& w) {
  double s = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(y[i]) * w[i];
  return s;
}

// Central differences of L = sum(w * node(x)) against the node's backward.
void check_gradients(Node& node, std::vector<Tensor> inputs, double h, double tol) {
  const Tensor y = node.forward({inputs, true, 1});
  Rng rng(42);
  Tensor w = Tensor::empty(y.shape(), y.layout());
  for (int64_t i = 0; i < w.numel(); ++i) w[i] = rng.uniform(-1.0f, 1.0f);
  const Saves saves = node.saves();
  std::vector<Tensor> saved_inputs(inputs.size());
  if (saves.inputs) saved_inputs = inputs;
  const std::vector<char> need(inputs.size(), 1);
  const std::vector<Tensor> diff =
      node.backward({saved_inputs, saves.output ? &y : nullptr, &w, need});
  ASSERT_EQ(diff.size(), inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    ASSERT_EQ(diff[k].shape(), inputs[k].shape());
    EXPECT_EQ(diff[k].layout(), inputs[k].layout());
    for (int64_t i = 0; i < inputs[k].numel(); ++i) {
      float& x = inputs[k][i];
      const float x0 = x;
      x = x0 + static_cast<float>(h);
      const double up = x - x0;
      const double l_up = weighted_sum(node.forward({inputs, true, 1}), w);
      x = x0 - static_cast<float>(h);
      const double down = x0 - x;
      const double l_down = weighted_sum(node.forward({inputs, true, 1}), w);
      x = x0;
      const double numeric = (l_up - l_down) / (up + down);
      EXPECT_NEAR(diff[k][i], numeric, tol * std::max(1.0, std::abs(numeric)))
          << node.name() << " input " << k << " value " << i;
    }
  }
}

TEST(PoolNodes, MaxPoolGradientsMatchFiniteDifferences) {
  for (Layout layout : kLayouts)
    for (const Window& win : {Window{2, 2, 0}, Window{3, 2, 1}}) {
      SCOPED_TRACE(std::string(layout_name(layout)) + " k" + std::to_string(win.kernel));
      Rng rng(1);
      auto node = nodes::make_maxpool2d("pool", {win.kernel, win.stride, win.padding});
      check_gradients(*node, {distinct_tensor({2, 3, 5, 4}, layout, rng)}, 1e-3, 1e-3);
    }
}

TEST(PoolNodes, AvgPoolGradientsMatchFiniteDifferences) {
  for (Layout layout : kLayouts)
    for (const Window& win : {Window{2, 2, 0}, Window{3, 2, 1}}) {
      SCOPED_TRACE(std::string(layout_name(layout)) + " k" + std::to_string(win.kernel));
      Rng rng(2);
      auto node = nodes::make_avgpool2d("pool", {win.kernel, win.stride, win.padding});
      check_gradients(*node, {distinct_tensor({2, 3, 5, 4}, layout, rng)}, 1e-2, 1e-3);
    }
}

TEST(PoolNodes, GlobalAvgPoolGradientsMatchFiniteDifferences) {
  for (Layout layout : kLayouts) {
    SCOPED_TRACE(layout_name(layout));
    Rng rng(3);
    auto node = nodes::make_global_avgpool("gap");
    check_gradients(*node, {distinct_tensor({3, 4, 3, 2}, layout, rng)}, 1e-2, 1e-3);
  }
}

TEST(PoolNodes, OutputShapesAndLayouts) {
  auto max = nodes::make_maxpool2d("pool1", {3, 2, 1});
  EXPECT_STREQ(max->type(), "maxpool2d");
  EXPECT_EQ(max->output_shape({{8, 64, 112, 112}}), (Shape{8, 64, 56, 56}));
  auto avg = nodes::make_avgpool2d("pool2", {2, 2, 0});
  EXPECT_EQ(avg->output_shape({{8, 6, 28, 28}}), (Shape{8, 6, 14, 14}));
  EXPECT_EQ(avg->output_shape({{8, 6, 5, 5}}), (Shape{8, 6, 2, 2}));
  auto gap = nodes::make_global_avgpool("gap");
  EXPECT_EQ(gap->output_shape({{8, 64, 8, 8}}), (Shape{8, 64}));

  Rng rng(4);
  for (Layout layout : {Layout::kPlain, Layout::kNCHW, Layout::kNHWC, Layout::kCHWN}) {
    const Tensor x = distinct_tensor({2, 3, 6, 6}, layout, rng);
    const std::vector<Tensor> in = {x};
    const Tensor m = max->forward({in, true, 0});
    EXPECT_EQ(m.layout(), layout);
    EXPECT_EQ(m.shape(), (Shape{2, 3, 3, 3}));
    const Tensor a = avg->forward({in, true, 0});
    EXPECT_EQ(a.layout(), layout);
    const Tensor g = gap->forward({in, true, 0});
    EXPECT_EQ(g.layout(), Layout::kPlain);
    EXPECT_EQ(g.shape(), (Shape{2, 3}));
    // Global average of channel c of sample n, from the logical values.
    const Tensor xn = to_layout(x, Layout::kNCHW);
    for (int64_t i = 0; i < 6; ++i) {
      double s = 0.0;
      for (int64_t j = 0; j < 36; ++j) s += xn[i * 36 + j];
      EXPECT_NEAR(g[i], s / 36, 1e-6);
    }
  }
}

TEST(PoolNodes, SaveOnlyWhatBackwardReads) {
  EXPECT_TRUE(nodes::make_maxpool2d("p", {})->saves().inputs);
  EXPECT_FALSE(nodes::make_maxpool2d("p", {})->saves().output);
  EXPECT_FALSE(nodes::make_avgpool2d("p", {})->saves().inputs);
  EXPECT_FALSE(nodes::make_avgpool2d("p", {})->saves().output);
  EXPECT_FALSE(nodes::make_global_avgpool("p")->saves().inputs);
  EXPECT_FALSE(nodes::make_global_avgpool("p")->saves().output);
}

TEST(PoolNodes, RejectBadOptionsAndShapes) {
  EXPECT_THROW(nodes::make_maxpool2d("p", {0, 1, 0}), Error);
  EXPECT_THROW(nodes::make_maxpool2d("p", {2, 0, 0}), Error);
  EXPECT_THROW(nodes::make_maxpool2d("p", {2, 2, 2}), Error);  // padding > kernel / 2
  EXPECT_THROW(nodes::make_avgpool2d("p", {3, 1, -1}), Error);
  auto pool = nodes::make_maxpool2d("features.pool", {3, 2, 0});
  try {
    pool->output_shape({{1, 4, 2, 8}});
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("features.pool"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pool->output_shape({{4, 8}}), Error);
  EXPECT_THROW(nodes::make_avgpool2d("p", {})->output_shape({{1, 2, 3}}), Error);
  EXPECT_THROW(nodes::make_global_avgpool("p")->output_shape({{4, 10}}), Error);
  EXPECT_THROW(nodes::make_global_avgpool("p")->output_shape({{4, 10, 2, 2}, {4, 10, 2, 2}}),
               Error);
}

}  // namespace
}  // namespace sparsetrain

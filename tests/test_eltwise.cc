// Element-wise ops and the shape-only nodes: ReLU, Add, Dropout kernels
// against the scalar reference; the relu, add, dropout, flatten and input
// nodes (finite-difference gradients, layouts, saved state, errors).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/eltwise/eltwise.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"
#include "tests/test_util.h"

namespace sparsetrain {
namespace {

constexpr Layout kLayouts[] = {Layout::kNCHW, Layout::kNHWC, Layout::kCHWN};

using testing::small_ints;

// Sizes around the vector width, the mask word, the TBB grain and the
// dropout block.
const int64_t kCounts[] = {0,    1,    7,    16,   17,    63,    64,     65,
                           1000, 4095, 4096, 4097, 16384, 16385, 100003, 128 * 16 * 32 * 32};

// ---------------------------------------------------------------------------
// Kernels against the reference (all exact: the same float operations).

TEST(EltwiseKernels, ReluMatchesReference) {
  Rng rng(1);
  const auto& ref = kernels::eltwise_kernels().reference();
  for (const auto& k : kernels::eltwise_kernels())
    for (int64_t n : kCounts) {
      SCOPED_TRACE(std::string(k.name) + " count " + std::to_string(n));
      const std::vector<float> src = small_ints(n, -3, 3, rng), dy = small_ints(n, -3, 3, rng);
      std::vector<float> want(n), got(n, 9.0f);
      ref.relu_forward(want.data(), src.data(), n);
      k.relu_forward(got.data(), src.data(), n);
      EXPECT_EQ(want, got);
      std::vector<float> want_dx(n), got_dx(n, 9.0f);
      ref.relu_backward(want_dx.data(), dy.data(), want.data(), n);
      k.relu_backward(got_dx.data(), dy.data(), want.data(), n);
      EXPECT_EQ(want_dx, got_dx);
    }
}

TEST(EltwiseKernels, ReluKeepsNaNAndUsesTheOutputForBackward) {
  for (const auto& k : kernels::eltwise_kernels()) {
    const float src[] = {-1.0f, 0.0f, 2.0f, std::nanf("")};
    float dst[4];
    k.relu_forward(dst, src, 4);
    EXPECT_EQ(dst[0], 0.0f);
    EXPECT_EQ(dst[1], 0.0f);
    EXPECT_EQ(dst[2], 2.0f);
    EXPECT_TRUE(std::isnan(dst[3])) << k.name;
    const float dy[] = {5.0f, 5.0f, 5.0f, 5.0f};
    float dx[4];
    k.relu_backward(dx, dy, dst, 3);
    EXPECT_EQ(dx[0], 0.0f);
    EXPECT_EQ(dx[1], 0.0f);  // the subgradient at 0 is 0
    EXPECT_EQ(dx[2], 5.0f);
  }
}

TEST(EltwiseKernels, AddMatchesReference) {
  Rng rng(2);
  const auto& ref = kernels::eltwise_kernels().reference();
  for (const auto& k : kernels::eltwise_kernels())
    for (int64_t n : kCounts) {
      SCOPED_TRACE(std::string(k.name) + " count " + std::to_string(n));
      const std::vector<float> a = small_ints(n, -9, 9, rng), b = small_ints(n, -9, 9, rng);
      std::vector<float> want(n), got(n, 0.5f);
      ref.add_forward(want.data(), a.data(), b.data(), n);
      k.add_forward(got.data(), a.data(), b.data(), n);
      EXPECT_EQ(want, got);
      std::vector<float> da(n, 0.5f), db(n, 0.5f);
      k.add_backward(da.data(), db.data(), a.data(), n);
      EXPECT_EQ(da, a);
      EXPECT_EQ(db, a);
      std::vector<float> only_b(n, 0.5f);
      k.add_backward(nullptr, only_b.data(), b.data(), n);
      EXPECT_EQ(only_b, b);
    }
}

TEST(EltwiseKernels, AddReluIsReluOfAddBitForBit) {
  Rng rng(5);
  const auto& ref = kernels::eltwise_kernels().reference();
  for (const auto& k : kernels::eltwise_kernels())
    for (int64_t n : kCounts) {
      SCOPED_TRACE(std::string(k.name) + " count " + std::to_string(n));
      std::vector<float> a = small_ints(n, -9, 9, rng), b = small_ints(n, -9, 9, rng);
      if (n >= 4) {  // -0, a NaN, and a sum that is exactly 0
        a[0] = -0.0f, b[0] = -0.0f;
        a[1] = std::nanf(""), b[2] = 3.0f, a[2] = -3.0f;
      }
      std::vector<float> sum(n), want(n), got(n, 0.5f), got_ref(n, 0.5f);
      ref.add_forward(sum.data(), a.data(), b.data(), n);
      ref.relu_forward(want.data(), sum.data(), n);
      k.add_relu_forward(got.data(), a.data(), b.data(), n);
      ref.add_relu_forward(got_ref.data(), a.data(), b.data(), n);
      const auto bits = [](const std::vector<float>& v) {
        std::vector<uint32_t> out(v.size());
        for (size_t i = 0; i < v.size(); ++i) out[i] = std::bit_cast<uint32_t>(v[i]);
        return out;
      };
      EXPECT_EQ(bits(want), bits(got));
      EXPECT_EQ(bits(want), bits(got_ref));
    }
}

TEST(EltwiseKernels, DropoutMatchesReferenceBitForBit) {
  Rng rng(3);
  const auto& ref = kernels::eltwise_kernels().reference();
  for (const auto& k : kernels::eltwise_kernels())
    for (int64_t n : kCounts)
      for (float p : {0.0f, 0.1f, 0.5f, 0.9f}) {
        SCOPED_TRACE(std::string(k.name) + " count " + std::to_string(n) + " p " +
                     std::to_string(p));
        const auto words = static_cast<size_t>(kernels::dropout_mask_words(n));
        std::vector<uint64_t> want_mask(words), got_mask(words, ~uint64_t{0});
        ref.dropout_mask(want_mask.data(), n, p, 77);
        k.dropout_mask(got_mask.data(), n, p, 77);
        ASSERT_EQ(want_mask, got_mask);
        const std::vector<float> src = small_ints(n, -4, 4, rng);
        std::vector<float> want(n), got(n, 0.5f);
        ref.dropout_forward(want.data(), src.data(), want_mask.data(), n, p);
        k.dropout_forward(got.data(), src.data(), want_mask.data(), n, p);
        EXPECT_EQ(want, got);
        ref.dropout_backward(want.data(), src.data(), want_mask.data(), n, p);
        k.dropout_backward(got.data(), src.data(), want_mask.data(), n, p);
        EXPECT_EQ(want, got);
      }
}

TEST(EltwiseKernels, DropoutKeepsOneMinusPAndScales) {
  const int64_t n = 1 << 20;
  for (const auto& k : kernels::eltwise_kernels())
    for (float p : {0.0f, 0.2f, 0.5f, 0.8f}) {
      SCOPED_TRACE(std::string(k.name) + " p " + std::to_string(p));
      std::vector<uint64_t> mask(static_cast<size_t>(kernels::dropout_mask_words(n)));
      k.dropout_mask(mask.data(), n, p, 5);
      int64_t kept = 0;
      for (uint64_t w : mask) kept += std::popcount(w);
      // Binomial(n, 1 - p): 6 standard deviations.
      const double expected = n * (1.0 - p), sd = std::sqrt(n * p * (1.0 - p));
      EXPECT_NEAR(static_cast<double>(kept), expected, 6 * sd + 1e-9);
      // Kept values are scaled by 1 / (1 - p), the rest are 0; the mean is kept.
      const std::vector<float> ones(n, 1.0f);
      std::vector<float> out(n);
      k.dropout_forward(out.data(), ones.data(), mask.data(), n, p);
      double sum = 0.0;
      for (float v : out) {
        EXPECT_TRUE(v == 0.0f || v == 1.0f / (1.0f - p));
        sum += v;
      }
      EXPECT_NEAR(sum / n, 1.0, 6 * sd / n / (1.0 - p) + 1e-9);
    }
}

TEST(EltwiseKernels, DropoutMaskDependsOnTheSeedOnly) {
  const int64_t n = 10000;
  const auto words = static_cast<size_t>(kernels::dropout_mask_words(n));
  const auto& k = kernels::eltwise_kernels().pick();
  std::vector<uint64_t> a(words), b(words), c(words);
  k.dropout_mask(a.data(), n, 0.5f, 11);
  k.dropout_mask(b.data(), n, 0.5f, 11);
  k.dropout_mask(c.data(), n, 0.5f, 12);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Neighbouring blocks are not copies of each other.
  const size_t block_words = kernels::kDropoutBlockValues / 64;
  EXPECT_FALSE(std::equal(a.begin(), a.begin() + block_words, a.begin() + block_words));
  // No bit is set past the count.
  EXPECT_EQ(a.back() >> (n % 64), 0u);
}

// ---------------------------------------------------------------------------
// Nodes.

Tensor random_tensor(const Shape& shape, Layout layout, Rng& rng) {
  Tensor t = Tensor::empty(shape, layout);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.uniform(-2.0f, 2.0f);
  return t;
}

// Values in +-[0.1, 2]: no ReLU kink within a 1e-3 step.
Tensor away_from_zero(const Shape& shape, Layout layout, Rng& rng) {
  Tensor t = random_tensor(shape, layout, rng);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = t[i] < 0 ? t[i] - 0.1f : t[i] + 0.1f;
  return t;
}

double weighted_sum(const Tensor& y, const Tensor& w) {
  double s = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(y[i]) * w[i];
  return s;
}

// Central differences of L = sum(w * node(x)) against the node's backward.
void check_gradients(Node& node, std::vector<Tensor> inputs, bool training, double h, double tol) {
  const uint64_t seed = 2024;
  const Tensor y = node.forward({inputs, training, seed}).clone();
  Rng rng(42);
  Tensor w = random_tensor(y.shape(), y.layout(), rng);
  const Saves saves = node.saves();
  std::vector<Tensor> saved_inputs(inputs.size());
  if (saves.inputs) saved_inputs = inputs;
  const std::vector<char> need(inputs.size(), 1);
  const std::vector<Tensor> diff =
      node.backward({saved_inputs, saves.output ? &y : nullptr, &w, need});
  ASSERT_EQ(diff.size(), inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    ASSERT_TRUE(diff[k].defined());
    ASSERT_EQ(diff[k].shape(), inputs[k].shape());
    EXPECT_EQ(diff[k].layout(), inputs[k].layout());
    const Tensor dk = diff[k].clone();  // may share storage with w
    for (int64_t i = 0; i < inputs[k].numel(); ++i) {
      float& x = inputs[k][i];
      const float x0 = x;
      x = x0 + static_cast<float>(h);
      const double up = x - x0;
      const double l_up = weighted_sum(node.forward({inputs, training, seed}), w);
      x = x0 - static_cast<float>(h);
      const double down = x0 - x;
      const double l_down = weighted_sum(node.forward({inputs, training, seed}), w);
      x = x0;
      const double numeric = (l_up - l_down) / (up + down);
      EXPECT_NEAR(dk[i], numeric, tol * std::max(1.0, std::abs(numeric)))
          << node.name() << " input " << k << " value " << i;
    }
  }
}

TEST(ReluNode, GradientsMatchFiniteDifferences) {
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC, Layout::kPlain}) {
    Rng rng(1);
    auto node = nodes::make_relu("relu");
    const Shape shape = layout == Layout::kPlain ? Shape{3, 7} : Shape{2, 3, 2, 3};
    check_gradients(*node, {away_from_zero(shape, layout, rng)}, true, 1e-3, 1e-3);
  }
}

TEST(ReluNode, SavesOnlyItsOutputAndKeepsTheLayout) {
  auto node = nodes::make_relu("r");
  EXPECT_STREQ(node->type(), "relu");
  EXPECT_FALSE(node->saves().inputs);
  EXPECT_TRUE(node->saves().output);
  Rng rng(2);
  const std::vector<Tensor> in = {random_tensor({2, 3, 4, 5}, Layout::kNHWC, rng)};
  const Tensor y = node->forward({in, true, 0});
  EXPECT_EQ(y.layout(), Layout::kNHWC);
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_EQ(y[i], std::max(in[0][i], 0.0f));
  EXPECT_THROW(node->output_shape({{2, 3}, {2, 3}}), Error);
}

TEST(AddNode, GradientsMatchFiniteDifferencesAcrossLayouts) {
  for (Layout la : kLayouts)
    for (Layout lb : kLayouts) {
      SCOPED_TRACE(std::string(layout_name(la)) + " + " + layout_name(lb));
      Rng rng(3);
      auto node = nodes::make_add("add");
      check_gradients(*node,
                      {random_tensor({2, 3, 2, 2}, la, rng), random_tensor({2, 3, 2, 2}, lb, rng)},
                      true, 1e-2, 1e-3);
    }
}

TEST(AddNode, OutputTakesTheFirstLayoutAndDiffsDoNotShareStorage) {
  Rng rng(4);
  const Tensor a = random_tensor({2, 3, 4, 4}, Layout::kNHWC, rng);
  const Tensor b = random_tensor({2, 3, 4, 4}, Layout::kNCHW, rng);
  auto node = nodes::make_add("block.add");
  EXPECT_FALSE(node->saves().inputs);
  EXPECT_FALSE(node->saves().output);
  const std::vector<Tensor> in = {a, b};
  const Tensor y = node->forward({in, true, 0});
  EXPECT_EQ(y.layout(), Layout::kNHWC);
  const Tensor bn = to_layout(b, Layout::kNHWC);
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_EQ(y[i], a[i] + bn[i]);

  Tensor dy = random_tensor(y.shape(), y.layout(), rng);
  const std::vector<Tensor> none(2);
  const std::vector<char> need = {1, 1};
  std::vector<Tensor> diff = node->backward({none, nullptr, &dy, need});
  ASSERT_EQ(diff.size(), 2u);
  EXPECT_EQ(diff[0].layout(), Layout::kNHWC);
  EXPECT_EQ(diff[1].layout(), Layout::kNCHW);
  EXPECT_TRUE(to_layout(diff[1], Layout::kNHWC).equals(dy));
  // Writing one diff never changes the other.
  const float before = to_layout(diff[1], Layout::kNHWC)[0];
  diff[0][0] += 100.0f;
  EXPECT_EQ(to_layout(diff[1], Layout::kNHWC)[0], before);
  EXPECT_NE(diff[0].data(), diff[1].data());
  // Same layouts: still two buffers.
  const std::vector<Tensor> same = {a, a};
  node->forward({same, true, 0});
  diff = node->backward({none, nullptr, &dy, need});
  EXPECT_NE(diff[0].data(), diff[1].data());
  // Only what is asked for.
  const std::vector<char> only_second = {0, 1};
  diff = node->backward({none, nullptr, &dy, only_second});
  EXPECT_FALSE(diff[0].defined());
  EXPECT_TRUE(diff[1].defined());
}

TEST(AddNode, RejectsMismatchedShapes) {
  auto node = nodes::make_add("layer2.0.add");
  EXPECT_EQ(node->output_shape({{4, 8, 2, 2}, {4, 8, 2, 2}}), (Shape{4, 8, 2, 2}));
  try {
    node->output_shape({{4, 8, 2, 2}, {4, 16, 2, 2}});
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer2.0.add"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(4, 16, 2, 2)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(node->output_shape({{4, 8, 2, 2}}), Error);
}

TEST(DropoutNode, GradientsMatchFiniteDifferences) {
  Rng rng(5);
  auto node = nodes::make_dropout("drop", 0.4f);
  check_gradients(*node, {random_tensor({4, 9}, Layout::kPlain, rng)}, true, 1e-2, 1e-3);
  check_gradients(*node, {random_tensor({2, 3, 2, 2}, Layout::kNHWC, rng)}, true, 1e-2, 1e-3);
  check_gradients(*node, {random_tensor({4, 9}, Layout::kPlain, rng)}, false, 1e-2, 1e-3);
}

TEST(DropoutNode, ScalesKeptValuesAndIsDeterministicPerSeedAndName) {
  const int64_t n = 64, f = 1000;
  const Tensor x = Tensor::full({n, f}, 2.0f);
  const std::vector<Tensor> in = {x};
  auto a = nodes::make_dropout("fc1.drop", 0.25f);
  const Tensor y1 = a->forward({in, true, 7});
  int64_t kept = 0;
  for (int64_t i = 0; i < y1.numel(); ++i) {
    ASSERT_TRUE(y1[i] == 0.0f || y1[i] == 2.0f / 0.75f) << y1[i];
    kept += y1[i] != 0.0f;
  }
  const double expected = 0.75 * n * f, sd = std::sqrt(n * f * 0.25 * 0.75);
  EXPECT_NEAR(static_cast<double>(kept), expected, 6 * sd);
  EXPECT_TRUE(a->forward({in, true, 7}).equals(y1));   // same seed, same mask
  EXPECT_FALSE(a->forward({in, true, 8}).equals(y1));  // next step, new mask
  auto b = nodes::make_dropout("fc2.drop", 0.25f);
  EXPECT_FALSE(b->forward({in, true, 7}).equals(y1));  // another node, another mask
  auto a2 = nodes::make_dropout("fc1.drop", 0.25f);
  EXPECT_TRUE(a2->forward({in, true, 7}).equals(y1));  // a rebuilt model repeats it
  // Evaluation: the identity.
  const Tensor e = a->forward({in, false, 7});
  EXPECT_TRUE(e.equals(x));
  // p = 0 keeps everything.
  auto none = nodes::make_dropout("d0", 0.0f);
  EXPECT_TRUE(none->forward({in, true, 3}).equals(x));
}

TEST(DropoutNode, RejectsBadProbability) {
  EXPECT_THROW(nodes::make_dropout("d", 1.0f), Error);
  EXPECT_THROW(nodes::make_dropout("d", -0.1f), Error);
  EXPECT_THROW(nodes::make_dropout("d", std::nanf("")), Error);
  EXPECT_NO_THROW(nodes::make_dropout("d", 0.999f));
  auto node = nodes::make_dropout("d", 0.5f);
  EXPECT_FALSE(node->saves().inputs);
  EXPECT_FALSE(node->saves().output);
}

TEST(FlattenNode, GivesNchwOrderFromEveryLayout) {
  const Shape shape = {2, 3, 2, 2};
  std::vector<float> nchw(24);
  for (int i = 0; i < 24; ++i) nchw[i] = static_cast<float>(i);
  const Tensor logical = Tensor::from(shape, nchw, Layout::kNCHW);
  auto node = nodes::make_flatten("flat");
  EXPECT_EQ(node->output_shape({shape}), (Shape{2, 12}));
  for (Layout layout : {Layout::kPlain, Layout::kNCHW, Layout::kNHWC, Layout::kCHWN}) {
    SCOPED_TRACE(layout_name(layout));
    const std::vector<Tensor> in = {to_layout(logical, layout)};
    const Tensor y = node->forward({in, true, 0});
    EXPECT_EQ(y.shape(), (Shape{2, 12}));
    // CHWN is already (C*H*W, N): a kCN view.
    EXPECT_EQ(y.layout(), layout == Layout::kCHWN ? Layout::kCN : Layout::kPlain);
    const Tensor plain = to_layout(y, Layout::kPlain);
    for (int i = 0; i < 24; ++i) EXPECT_EQ(plain[i], static_cast<float>(i));
    // Backward: the diff in the input's layout.
    Tensor dy = y.clone();
    const std::vector<Tensor> none(1);
    const std::vector<char> need = {1};
    const std::vector<Tensor> diff = node->backward({none, nullptr, &dy, need});
    EXPECT_EQ(diff[0].layout(), layout);
    EXPECT_EQ(diff[0].shape(), shape);
    EXPECT_TRUE(to_layout(diff[0], Layout::kNCHW).equals(logical));
  }
}

TEST(FlattenNode, GradientsMatchFiniteDifferences) {
  Rng rng(6);
  auto node = nodes::make_flatten("flat");
  check_gradients(*node, {random_tensor({2, 3, 2, 2}, Layout::kNHWC, rng)}, true, 1e-2, 1e-3);
  check_gradients(*node, {random_tensor({3, 5}, Layout::kPlain, rng)}, true, 1e-2, 1e-3);
  check_gradients(*node, {random_tensor({3, 5}, Layout::kCN, rng)}, true, 1e-2, 1e-3);
}

TEST(FlattenNode, RejectsRankOne) {
  auto node = nodes::make_flatten("flat");
  EXPECT_THROW(node->output_shape({{5}}), Error);
  EXPECT_EQ(node->output_shape({{4, 2, 3}}), (Shape{4, 6}));
}

TEST(InputNode, PassesTheBatchThroughAsNchw) {
  auto node = nodes::make_input("image", {1, 28, 28});
  EXPECT_STREQ(node->type(), "input");
  EXPECT_EQ(node->output_shape({{64, 1, 28, 28}}), (Shape{64, 1, 28, 28}));
  Rng rng(7);
  const std::vector<Tensor> in = {random_tensor({2, 1, 28, 28}, Layout::kPlain, rng)};
  const Tensor y = node->forward({in, true, 0});
  EXPECT_EQ(y.layout(), Layout::kNCHW);
  EXPECT_EQ(y.data(), in[0].data());  // a view, no copy
  auto small = nodes::make_input("x", {1, 3, 3});
  check_gradients(*small, {random_tensor({2, 1, 3, 3}, Layout::kNCHW, rng)}, true, 1e-2, 1e-3);
}

TEST(InputNode, NamesTheMismatchBetweenDataAndModel) {
  auto node = nodes::make_input("image", {1, 28, 28});
  try {
    node->output_shape({{128, 3, 32, 32}});
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expects images of shape (1, 28, 28), got (3, 32, 32)"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("the dataset does not fit the model"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("image"), std::string::npos);
  }
  EXPECT_THROW(node->output_shape({{128, 784}}), Error);
  const std::vector<Tensor> wrong = {Tensor::zeros({2, 1, 28, 27})};
  EXPECT_THROW(node->forward({wrong, true, 0}), Error);
  auto flat = nodes::make_input("x", {784});
  EXPECT_EQ(flat->output_shape({{16, 784}}), (Shape{16, 784}));
  EXPECT_THROW(flat->output_shape({{16, 1, 28, 28}}), Error);
  EXPECT_THROW(nodes::make_input("x", {}), Error);
  EXPECT_THROW(nodes::make_input("x", {3, 0, 4}), Error);
}

}  // namespace
}  // namespace sparsetrain

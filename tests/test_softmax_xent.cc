// Softmax cross-entropy: the kernels against the reference and a hand-computed
// case, the gradient against finite differences, and the public loss API
// (errors, layouts, non-finite logits).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/softmax_xent/softmax_xent.h"
#include "sparsetrain/error.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

struct Batch {
  std::vector<float> logits;
  std::vector<int32_t> labels;
};

Batch random_batch(int64_t n, int64_t k, float scale, Rng& rng) {
  Batch b;
  b.logits.resize(static_cast<size_t>(n * k));
  for (float& x : b.logits) x = scale * rng.normal();
  b.labels.resize(static_cast<size_t>(n));
  for (int32_t& y : b.labels) y = static_cast<int32_t>(rng.below(static_cast<uint64_t>(k)));
  return b;
}

TEST(SoftmaxXentKernels, MatchReference) {
  Rng rng(1);
  const auto& ref = kernels::softmax_xent_kernels().reference();
  for (const auto& kern : kernels::softmax_xent_kernels())
    for (int64_t n : {1, 5, 17, 128, 1000})
      for (int64_t k : {1, 2, 10, 17, 1000})
        for (float scale : {1.0f, 30.0f}) {
          SCOPED_TRACE(std::string(kern.name) + " " + std::to_string(n) + "x" + std::to_string(k) +
                       " scale " + std::to_string(scale));
          const Batch b = random_batch(n, k, scale, rng);
          std::vector<float> want(b.logits.size()), got(b.logits.size(), 9.0f);
          float want_loss = 0, got_loss = 0;
          int64_t want_correct = -1, got_correct = -1;
          ref.forward_backward(want.data(), &want_loss, &want_correct, b.logits.data(),
                               b.labels.data(), n, k);
          kern.forward_backward(got.data(), &got_loss, &got_correct, b.logits.data(),
                                b.labels.data(), n, k);
          EXPECT_EQ(got_correct, want_correct);
          // A per-row log-sum-exp of magnitude ~|logits|: relative to that.
          EXPECT_NEAR(got_loss, want_loss, 16 * kEps * std::max(1.0f, 4 * scale));
          for (size_t i = 0; i < want.size(); ++i)
            ASSERT_NEAR(got[i], want[i], 16 * kEps * (std::abs(want[i]) + 1.0f / n)) << i;
          // The loss alone (no diff) is the same.
          float loss_only = 0;
          int64_t correct_only = -1;
          kern.forward_backward(nullptr, &loss_only, &correct_only, b.logits.data(),
                                b.labels.data(), n, k);
          EXPECT_EQ(loss_only, got_loss);
          EXPECT_EQ(correct_only, got_correct);
        }
}

TEST(SoftmaxXent, HandComputedCase) {
  // Row 0: logits (1, 2, 3), label 2.  Row 1: logits (0, 0, 0), label 0.
  // loss_0 = log(e + e^2 + e^3) - 3 = log(1 + e^-1 + e^-2)
  // loss_1 = log(3)
  const Tensor logits = Tensor::from({2, 3}, {1, 2, 3, 0, 0, 0});
  const std::vector<int32_t> labels = {2, 0};
  Tensor diff;
  const LossResult r = softmax_cross_entropy(logits, labels, &diff);
  const double e = std::exp(1.0);
  const double loss0 = std::log(1 + 1 / e + 1 / (e * e)), loss1 = std::log(3.0);
  EXPECT_NEAR(r.loss, (loss0 + loss1) / 2, 1e-6);
  // Row 0's argmax is its label; row 1 ties, the first (0) wins: both right.
  EXPECT_EQ(r.correct, 2);
  ASSERT_EQ(diff.shape(), (Shape{2, 3}));
  const double z = e + e * e + e * e * e;
  const double p0[] = {e / z, e * e / z, e * e * e / z};
  for (int j = 0; j < 3; ++j) {
    EXPECT_NEAR(diff[j], (p0[j] - (j == 2 ? 1.0 : 0.0)) / 2, 1e-7);
    EXPECT_NEAR(diff[3 + j], (1.0 / 3 - (j == 0 ? 1.0 : 0.0)) / 2, 1e-7);
  }
  // Each diff row sums to 0.
  EXPECT_NEAR(diff[0] + diff[1] + diff[2], 0.0, 1e-7);
}

TEST(SoftmaxXent, StableForHugeLogits) {
  // exp(1000) overflows float and double: the log-sum-exp shift avoids it.
  const Tensor logits = Tensor::from({2, 2}, {1000, 0, -1000, -1000});
  const std::vector<int32_t> labels = {1, 0};
  Tensor diff;
  const LossResult r = softmax_cross_entropy(logits, labels, &diff);
  EXPECT_NEAR(r.loss, (1000 + std::log(2.0)) / 2, 1e-3);
  EXPECT_TRUE(std::isfinite(diff[0]) && std::isfinite(diff[3]));
  EXPECT_NEAR(diff[0], 0.5, 1e-7);
  EXPECT_NEAR(diff[1], -0.5, 1e-7);
  EXPECT_EQ(r.correct, 1);
}

TEST(SoftmaxXent, GradientMatchesFiniteDifferences) {
  Rng rng(2);
  const int64_t n = 4, k = 5;
  const Batch b = random_batch(n, k, 2.0f, rng);
  Tensor logits = Tensor::from({n, k}, b.logits);
  Tensor diff;
  softmax_cross_entropy(logits, b.labels, &diff);
  const double h = 1e-2;
  for (int64_t i = 0; i < n * k; ++i) {
    const float x0 = logits[i];
    logits[i] = x0 + static_cast<float>(h);
    const double up = logits[i] - x0;
    const double l_up = softmax_cross_entropy(logits, b.labels, nullptr).loss;
    logits[i] = x0 - static_cast<float>(h);
    const double down = x0 - logits[i];
    const double l_down = softmax_cross_entropy(logits, b.labels, nullptr).loss;
    logits[i] = x0;
    EXPECT_NEAR(diff[i], (l_up - l_down) / (up + down), 2e-4) << i;
  }
}

TEST(SoftmaxXent, ReordersFeatureMajorLogits) {
  Rng rng(3);
  const Batch b = random_batch(6, 4, 1.0f, rng);
  const Tensor plain = Tensor::from({6, 4}, b.logits);
  Tensor d_plain, d_cn;
  const LossResult a = softmax_cross_entropy(plain, b.labels, &d_plain);
  const LossResult c = softmax_cross_entropy(to_layout(plain, Layout::kCN), b.labels, &d_cn);
  EXPECT_EQ(a.loss, c.loss);
  EXPECT_EQ(a.correct, c.correct);
  EXPECT_EQ(d_cn.layout(), Layout::kPlain);
  EXPECT_TRUE(d_cn.equals(d_plain));
}

TEST(SoftmaxXent, ReturnsNonFiniteLossAsIs) {
  const Tensor logits = Tensor::from({2, 2}, {std::nanf(""), 0, 1, 2});
  const std::vector<int32_t> labels = {0, 1};
  EXPECT_TRUE(std::isnan(softmax_cross_entropy(logits, labels, nullptr).loss));
}

TEST(SoftmaxXent, RejectsBadInputs) {
  const Tensor logits = Tensor::zeros({3, 10});
  const std::vector<int32_t> good = {0, 9, 4};
  EXPECT_NO_THROW(softmax_cross_entropy(logits, good, nullptr));
  try {
    const std::vector<int32_t> bad = {0, 10, 4};
    softmax_cross_entropy(logits, bad, nullptr);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 10"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[0, 10)"), std::string::npos) << e.what();
  }
  const std::vector<int32_t> negative = {0, -1, 4};
  EXPECT_THROW(softmax_cross_entropy(logits, negative, nullptr), Error);
  const std::vector<int32_t> short_labels = {0, 1};
  EXPECT_THROW(softmax_cross_entropy(logits, short_labels, nullptr), Error);
  EXPECT_THROW(softmax_cross_entropy(Tensor::zeros({3, 10, 1, 1}), good, nullptr), Error);
  EXPECT_THROW(softmax_cross_entropy(Tensor(), good, nullptr), Error);
  EXPECT_THROW(softmax_cross_entropy(Tensor::zeros({0, 10}), {}, nullptr), Error);
}

}  // namespace
}  // namespace sparsetrain

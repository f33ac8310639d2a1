// The measurements of sparsetrain/compare.h against their definitions:
// calibration of a calibrated and a hand-built set, modal predictions and
// PIEs of hand-built populations, the k-NN against brute force, Jaccard of
// identical and unrelated embeddings, PCA, corruptions, prune potential, and
// compare_models on real models (a model against itself agrees exactly).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "probe_test_util.h"
#include "sparsetrain/compare.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"

namespace sparsetrain {
namespace {

const std::string kDataDir = SPARSETRAIN_TEST_DATA_DIR;

TEST(Calibration, ACalibratedSetHasEceNearZero) {
  Rng rng(3);
  std::vector<float> conf;
  std::vector<uint8_t> right;
  for (int i = 0; i < 200000; ++i) {
    const float c = 0.1f + 0.9f * rng.uniform();
    conf.push_back(c);
    right.push_back(rng.uniform() < c);  // right with probability equal to the confidence
  }
  const auto bins = reliability_bins(conf, right, 15);
  EXPECT_LT(expected_calibration_error(bins), 0.005);
}

TEST(Calibration, AHandBuiltSetHasTheHandComputedEce) {
  // Two samples at confidence 0.9 (one right) and two at 0.3 (both right):
  // ECE = 2/4 |0.5 - 0.9| + 2/4 |1.0 - 0.3| = 0.2 + 0.35.
  const std::vector<float> conf = {0.9f, 0.9f, 0.3f, 0.3f};
  const std::vector<uint8_t> right = {1, 0, 1, 1};
  const auto bins = reliability_bins(conf, right, 15);
  EXPECT_NEAR(expected_calibration_error(bins), 0.55, 1e-6);
  EXPECT_EQ(bins[13].count, 2);  // [0.8667, 0.9333)
  EXPECT_EQ(bins[4].count, 2);   // [0.2667, 0.3333)
  // Confidence 1 lands in the last bin.
  const std::vector<float> one = {1.0f};
  const std::vector<uint8_t> yes = {1};
  EXPECT_EQ(reliability_bins(one, yes, 15).back().count, 1);
  EXPECT_THROW(reliability_bins(conf, right, 0), Error);
}

TEST(Pies, HandBuiltPopulationsGiveExactlyTheExpectedSamples) {
  // Reference: three models; group: three models; 6 samples.
  const std::vector<std::vector<int32_t>> ref = {
      {0, 1, 2, 3, 0, 1}, {0, 1, 2, 3, 1, 1}, {0, 2, 2, 1, 1, 0}};
  const std::vector<std::vector<int32_t>> grp = {
      {0, 1, 3, 3, 1, 2}, {0, 1, 3, 1, 1, 2}, {1, 1, 2, 1, 0, 0}};
  // Modes: ref {0,1,2,3,1,1}; group {0,1,3,1,1,2} (sample 5: 2,2,0 -> 2).
  std::vector<int32_t> mode;
  std::vector<double> share;
  modal_predictions(grp, 4, mode, share);
  EXPECT_EQ(mode, (std::vector<int32_t>{0, 1, 3, 1, 1, 2}));
  EXPECT_NEAR(share[0], 2.0 / 3.0, 1e-12);
  EXPECT_EQ(pruning_identified_exemplars(ref, grp, 4), (std::vector<int64_t>{2, 3, 5}));
  // Ties go to the lowest class: {2, 1} -> 1.
  modal_predictions({{2}, {1}}, 3, mode, share);
  EXPECT_EQ(mode[0], 1);
  EXPECT_TRUE(pruning_identified_exemplars(ref, ref, 4).empty());
}

std::vector<int64_t> brute_force_knn(const std::vector<float>& x, int64_t n, int64_t d, int64_t k,
                                     bool cosine) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<std::pair<double, int64_t>> s;
    for (int64_t j = 0; j < n; ++j) {
      if (j == i) continue;
      double dot = 0, ni = 0, nj = 0, dist = 0;
      for (int64_t t = 0; t < d; ++t) {
        dot += double(x[i * d + t]) * x[j * d + t];
        ni += double(x[i * d + t]) * x[i * d + t];
        nj += double(x[j * d + t]) * x[j * d + t];
        dist += (double(x[i * d + t]) - x[j * d + t]) * (double(x[i * d + t]) - x[j * d + t]);
      }
      s.push_back({cosine ? -dot / std::sqrt(ni * nj) : dist, j});
    }
    std::sort(s.begin(), s.end());
    for (int64_t t = 0; t < k; ++t) out.push_back(s[t].second);
  }
  return out;
}

TEST(NearestNeighbours, AgreeWithBruteForce) {
  const int64_t n = 300, d = 12, k = 7;
  Rng rng(11);
  std::vector<float> x(n * d);
  for (float& v : x) v = rng.normal();
  for (const char* metric : {"cosine", "euclidean"}) {
    const auto got = nearest_neighbours(x, n, d, k, metric);
    const auto want = brute_force_knn(x, n, d, k, std::string(metric) == "cosine");
    int64_t same = 0;
    for (int64_t i = 0; i < n * k; ++i) same += got[i] == want[i];
    // Float against double: allow a rare swap of two near-equal neighbours.
    EXPECT_GE(same, n * k - 4) << metric;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t t = 0; t < k; ++t)
        EXPECT_NE(got[i * k + t], i) << "a sample is its own neighbour";
  }
  EXPECT_THROW(nearest_neighbours(x, n, d, n, "cosine"), Error);
  EXPECT_THROW(nearest_neighbours(x, n, d, k, "manhattan"), Error);
}

TEST(NearestNeighbours, JaccardIsOneForIdenticalAndNearChanceForUnrelated) {
  const int64_t n = 2000, d = 16, k = 50;
  Rng rng(5);
  std::vector<float> a(n * d), b(n * d);
  for (float& v : a) v = rng.normal();
  // b: the same points given to other samples (a random permutation).
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
  for (int64_t i = 0; i < n; ++i) std::copy_n(a.begin() + perm[i] * d, d, b.begin() + i * d);
  const auto na = nearest_neighbours(a, n, d, k);
  const auto same = neighbour_jaccard(na, na, n, k);
  EXPECT_TRUE(std::all_of(same.begin(), same.end(), [](float j) { return j == 1.0f; }));
  // Permuted: a sample's neighbours in b are those of another sample in a,
  // renamed, so random k-subsets for a: overlap about k^2 / n, Jaccard about
  // k / (2n - k) (k / n for the overlap's share of k).
  const auto nb = nearest_neighbours(b, n, d, k);
  const auto rand = neighbour_jaccard(na, nb, n, k);
  const double mean = std::accumulate(rand.begin(), rand.end(), 0.0) / n;
  const double expect = double(k) / (2.0 * n - k);
  EXPECT_NEAR(mean, expect, 0.3 * expect) << "k/n = " << double(k) / n;
}

TEST(Pca, FindsTheDirectionOfTheData) {
  const int64_t n = 500;
  Rng rng(2);
  for (int64_t d : {3, 800}) {  // the covariance path and the Gram path
    std::vector<float> x(n * d, 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      const float t = rng.normal() * 5.0f;
      for (int64_t j = 0; j < d; ++j)
        x[i * d + j] = t * (j % 2 ? 1.0f : -1.0f) + 0.01f * rng.normal();
    }
    double explained[2];
    const auto p = principal_components_2d(x, n, d, explained);
    EXPECT_GT(explained[0], 0.99) << d;
    EXPECT_LT(explained[1], 0.01) << d;
    EXPECT_EQ(p.size(), static_cast<std::size_t>(n * 2));
  }
}

TEST(Corruptions, AreDeterministicAndSeverityZeroIsTheIdentity) {
  const int64_t c = 3, h = 32, w = 32, n = 4;
  Rng rng(9);
  std::vector<float> clean(n * c * h * w);
  for (float& v : clean) v = rng.uniform();
  for (const std::string& name : corruption_names()) {
    std::vector<float> zero = clean;
    corrupt_images(zero, c, h, w, name, 0, 1);
    EXPECT_EQ(zero, clean) << name;
    double last_change = 0.0;
    for (int s = 1; s <= 5; ++s) {
      std::vector<float> a = clean, b = clean;
      corrupt_images(a, c, h, w, name, s, 7);
      corrupt_images(b, c, h, w, name, s, 7);
      EXPECT_EQ(a, b) << name << " severity " << s;
      EXPECT_NE(a, clean) << name << " severity " << s;
      EXPECT_TRUE(std::all_of(a.begin(), a.end(), [](float v) { return v >= 0.0f && v <= 1.0f; }));
      double change = 0.0;
      for (std::size_t i = 0; i < a.size(); ++i) change += std::abs(a[i] - clean[i]);
      if (name != "defocus-blur") {
        EXPECT_GT(change, last_change) << name << " severity " << s;
      }
      last_change = change;
    }
  }
  // Noise follows the sample, not the batch: image 2 alone equals image 2 of the batch.
  std::vector<float> all = clean, one(clean.begin() + 2 * c * h * w, clean.begin() + 3 * c * h * w);
  corrupt_images(all, c, h, w, "gaussian-noise", 3, 4);
  corrupt_images(one, c, h, w, "gaussian-noise", 3, 4, /*first=*/2);
  EXPECT_TRUE(std::equal(one.begin(), one.end(), all.begin() + 2 * c * h * w));
  std::vector<float> other = clean;
  corrupt_images(other, c, h, w, "gaussian-noise", 3, 5);
  EXPECT_NE(other, all) << "another seed draws other noise";
  std::vector<float> noisy = clean;
  add_uniform_noise(noisy, c * h * w, 0.0, 1);
  EXPECT_EQ(noisy, clean);
  const std::vector<float> scale = {0.25f, 0.5f, 1.0f};  // per channel
  add_uniform_noise(noisy, c * h * w, 0.2, 1, 0, scale);
  double largest[3] = {0, 0, 0};
  for (std::size_t i = 0; i < noisy.size(); ++i) {
    const int64_t ch = static_cast<int64_t>(i) / (h * w) % c;
    largest[ch] = std::max(largest[ch], double(std::abs(noisy[i] - clean[i])));
  }
  for (int ch = 0; ch < 3; ++ch) {
    EXPECT_LE(largest[ch], 0.2 * scale[ch] + 1e-6) << ch;
    EXPECT_GT(largest[ch], 0.15 * scale[ch]) << ch;  // the noise reaches near its amplitude
  }
  EXPECT_THROW(corrupt_images(noisy, c, h, w, "fog", 1, 0), Error);
  EXPECT_THROW(corrupt_images(noisy, c, h, w, "contrast", 6, 0), Error);
}

TEST(PrunePotential, IsTheLargestSparsityWithinTheTolerance) {
  const std::vector<double> sparsity = {0.5, 0.7, 0.8, 0.9, 0.95};
  const std::vector<double> acc = {0.91, 0.906, 0.899, 0.907, 0.80};
  EXPECT_DOUBLE_EQ(prune_potential(sparsity, acc, 0.0, 0.91, 0.005), 0.9);
  EXPECT_DOUBLE_EQ(prune_potential(sparsity, acc, 0.0, 0.95, 0.005), 0.0);
}

TEST(CompareModels, AModelAgainstItselfAgreesEverywhere) {
  const Dataset data = load_dataset("mnist", kDataDir, Split::kTest, 300);
  Graph a = testing::lenet5(1, 0.0f), b = testing::lenet5(2, 0.8f);
  CompareOptions o;
  o.k = 10;
  o.robust_limit = 100;
  o.noise_steps = 3;
  o.corruptions = {"contrast", "pixelate"};
  o.severities = 2;
  const std::vector<CompareGroup> groups = {{"self", {{"a", "", &a}, {"a-again", "", &a}}},
                                            {"other", {{"b", "", &b}, {"b-again", "", &b}}}};
  const CompareResult r = compare_models(groups, data, o);
  ASSERT_EQ(r.groups.size(), 2u);
  EXPECT_EQ(r.groups[0].disagreement, 0.0);  // a against a
  EXPECT_EQ(r.models[0].accuracy, r.models[1].accuracy);
  EXPECT_EQ(r.embeddings.front().mean, 1.0);  // a-again against a: identical embeddings
  EXPECT_EQ(r.layer, "relu4");                // LeNet-5's classifier input
  EXPECT_NEAR(r.models[2].sparsity, 0.8, 0.01);
  EXPECT_EQ(r.models[0].noise_accuracy.size(), 3u);
  EXPECT_EQ(r.models[0].corruption_accuracy.at("pixelate").size(), 2u);
  EXPECT_TRUE(r.groups[1].has_pies);
  EXPECT_EQ(r.pairs.size(), 4u);
  // Disagreement of b against a equals the PIE count when each population is one model twice.
  EXPECT_NEAR(r.groups[1].pie_fraction, r.pairs[0].disagreement, 1e-12);
  o.layer = "no-such-node";
  EXPECT_THROW(compare_models(groups, data, o), Error);
  const Dataset cifar = load_dataset("cifar10", kDataDir, Split::kTest, 20);
  o.layer.clear();
  EXPECT_THROW(compare_models(groups, cifar, o), Error);  // 28x28 models, 32x32 images
}

}  // namespace
}  // namespace sparsetrain

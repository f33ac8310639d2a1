// The sis probe: the SIS found keeps the target's confidence at the threshold
// and the SIS without its least important pixel does not (as a forward pass
// sees them), with one pixel a step it is the smallest suffix of the order
// that does; batched and exact backward selection agree where the mask
// enters the score linearly; probing leaves the model as it was; bad
// options are named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "probes/sis.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/models.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/sparsity.h"
#include "tests/graph_test_util.h"
#include "tests/probe_test_util.h"

namespace sparsetrain {
namespace {

using testing::compress_all;
using testing::state_bytes;

using detail::BackwardSelection;
using detail::SufficientSubset;
using testing::random_tensor;

constexpr int kTrainSteps = 60;
constexpr int64_t kMnistPixels = 28 * 28;

// LeNet-300-100 after a few SGD steps on MNIST: confident on most digits.
Graph& trained_mlp() {
  static Graph g = [] {
    const Dataset train = load_dataset("mnist", SPARSETRAIN_TEST_DATA_DIR, Split::kTrain, 4096);
    Graph m = build_model("mlp", {.channels = 1, .height = 28, .width = 28});
    m.initialize(5);
    auto opt = make_optimizer({});
    Loader loader(train, 64, /*shuffle=*/true, AugmentOptions{}, 1);
    loader.start_epoch(0);
    Batch b;
    for (int s = 0; s < kTrainSteps && loader.next(b); ++s) {
      const Tensor logits = m.forward(b.images, ExecMode::kTrain, s);
      Tensor diff;
      softmax_cross_entropy(logits, b.labels, &diff);
      m.backward(diff);
      opt->step(m.parameters(), 0.05f);
      opt->zero_grad(m.parameters());
    }
    return m;
  }();
  return g;
}

const Dataset& mnist_test() {
  static const Dataset d = load_dataset("mnist", SPARSETRAIN_TEST_DATA_DIR, Split::kTest, 64);
  return d;
}

// Softmax probabilities of class `target` of each image, by plain
// inference, with the masked images built here (not by the probe).
std::vector<float> probabilities(Graph& g, const Tensor& images, int32_t target) {
  const Tensor logits = class_logits(g, images, 256);
  const int64_t k = logits.dim(1);
  std::vector<float> out;
  for (int64_t i = 0; i < logits.dim(0); ++i) {
    const float* row = logits.data() + i * k;
    const float top = *std::max_element(row, row + k);
    double sum = 0;
    for (int64_t c = 0; c < k; ++c) sum += std::exp(static_cast<double>(row[c] - top));
    out.push_back(static_cast<float>(std::exp(static_cast<double>(row[target] - top)) / sum));
  }
  return out;
}

// Image n of x with only pixels order[k..P) present, for each k of `ks`.
Tensor suffix_images(const Tensor& x, int64_t n, const std::vector<int32_t>& order,
                     const std::vector<int64_t>& ks) {
  const int64_t c = x.dim(1), p = x.dim(2) * x.dim(3);
  Tensor out = Tensor::zeros({static_cast<int64_t>(ks.size()), c, x.dim(2), x.dim(3)});
  for (size_t i = 0; i < ks.size(); ++i)
    for (int64_t r = ks[i]; r < p; ++r)
      for (int64_t ch = 0; ch < c; ++ch)
        out[(static_cast<int64_t>(i) * c + ch) * p + order[r]] = x[(n * c + ch) * p + order[r]];
  return out;
}

void expect_permutation(const std::vector<int32_t>& order, int64_t p) {
  std::vector<int32_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int32_t> all(static_cast<size_t>(p));
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all);
}

// Test images the model gets right with confidence above `floor`.
std::vector<int64_t> confident_images(Graph& g, float floor, size_t count) {
  const Dataset& d = mnist_test();
  std::vector<int64_t> out;
  for (int64_t i = 0; i < d.size() && out.size() < count; ++i) {
    const int32_t label = d.labels[static_cast<size_t>(i)];
    const Tensor one = dataset_images(d, std::vector<int64_t>{i});
    if (probabilities(g, one, label)[0] > floor) out.push_back(i);
  }
  return out;
}

TEST(Sis, ReachesTheThresholdAndOnePixelFewerDoesNot) {
  Graph& g = trained_mlp();
  constexpr float kThreshold = 0.9f;
  const std::vector<int64_t> idx = confident_images(g, 0.97f, 3);
  ASSERT_EQ(idx.size(), 3u) << "the trained model is not confident on 3 of 64 test digits";
  const Tensor x = dataset_images(mnist_test(), idx);
  std::vector<int32_t> targets;
  for (int64_t i : idx) targets.push_back(mnist_test().labels[static_cast<size_t>(i)]);
  const std::vector<BackwardSelection> sel =
      detail::backward_selection(g, x, targets, /*remove_per_iter=*/8, /*batch=*/2);
  const std::vector<SufficientSubset> sis = detail::find_sis(g, x, targets, sel, kThreshold);
  for (size_t i = 0; i < idx.size(); ++i) {
    SCOPED_TRACE("sample " + std::to_string(idx[i]));
    expect_permutation(sel[i].order, kMnistPixels);
    EXPECT_EQ(sel[i].removed.front(), 0);
    EXPECT_EQ(sel[i].removed.back(), kMnistPixels);
    const SufficientSubset& s = sis[i];
    ASSERT_GT(s.size, 0);
    ASSERT_LT(s.size, kMnistPixels);
    const int64_t k = kMnistPixels - s.size;
    EXPECT_TRUE(std::equal(s.pixels.begin(), s.pixels.end(), sel[i].order.begin() + k));
    const std::vector<float> p = probabilities(
        g, suffix_images(x, static_cast<int64_t>(i), sel[i].order, {k, k + 1}), targets[i]);
    EXPECT_GE(p[0], kThreshold);
    EXPECT_LT(p[1], kThreshold);
    EXPECT_FLOAT_EQ(s.confidence, p[0]);
    EXPECT_FLOAT_EQ(s.confidence_without_first, p[1]);
  }
}

TEST(Sis, WithOnePixelAStepItIsTheSmallestSuffix) {
  Graph& g = trained_mlp();
  constexpr float kThreshold = 0.9f;
  const std::vector<int64_t> idx = confident_images(g, 0.97f, 1);
  ASSERT_EQ(idx.size(), 1u);
  const Tensor x = dataset_images(mnist_test(), idx);
  const std::vector<int32_t> targets{mnist_test().labels[static_cast<size_t>(idx[0])]};
  const std::vector<BackwardSelection> sel = detail::backward_selection(g, x, targets, 1);
  ASSERT_EQ(sel[0].removed.size(), static_cast<size_t>(kMnistPixels + 1));
  const SufficientSubset s = detail::find_sis(g, x, targets, sel, kThreshold)[0];
  ASSERT_GT(s.size, 0);
  // Every suffix: the SIS reaches the threshold, no shorter one does.
  std::vector<int64_t> all(static_cast<size_t>(kMnistPixels + 1));
  std::iota(all.begin(), all.end(), 0);
  const std::vector<float> p = probabilities(g, suffix_images(x, 0, sel[0].order, all), targets[0]);
  const int64_t k = kMnistPixels - s.size;
  EXPECT_GE(p[static_cast<size_t>(k)], kThreshold);
  for (int64_t j = k + 1; j <= kMnistPixels; ++j)
    EXPECT_LT(p[static_cast<size_t>(j)], kThreshold) << "a suffix of " << kMnistPixels - j;
}

// Two classes and logits linear in the input: the target's probability is
// sigmoid(d) with d = sum_j m_j a_j + const linear in the mask, so the
// gradient ranks the pixels by a_j (times sigmoid' > 0), exactly as trying
// every removal does, at every step: the two orders are the same.
TEST(Sis, BatchedAndExactAgreeWhenTheMaskEntersLinearly) {
  Graph g;
  const NodeId in = g.input("input", {2, 5, 5});
  const NodeId flat = g.flatten("flatten", in);
  g.set_output(g.linear("fc", flat, {.out_features = 2}));
  g.initialize(11);
  const Tensor x = random_tensor({3, 2, 5, 5}, 7);
  const std::vector<int32_t> targets{0, 1, 0};
  // Several pixels a step: both remove the same smallest a_j, in the same order.
  for (int64_t per_step : {1, 3}) {
    const std::vector<BackwardSelection> batched =
        detail::backward_selection(g, x, targets, per_step, /*batch=*/2);
    const std::vector<BackwardSelection> exact =
        detail::exact_backward_selection(g, x, targets, per_step, /*batch=*/8);
    for (size_t i = 0; i < targets.size(); ++i) {
      SCOPED_TRACE("sample " + std::to_string(i) + ", " + std::to_string(per_step) + " a step");
      EXPECT_EQ(batched[i].order, exact[i].order);
      EXPECT_EQ(batched[i].removed, exact[i].removed);
      ASSERT_EQ(batched[i].confidence.size(), exact[i].confidence.size());
      for (size_t s = 0; s < exact[i].confidence.size(); ++s)
        EXPECT_NEAR(batched[i].confidence[s], exact[i].confidence[s], 1e-5);
    }
  }
}

// With a hidden ReLU layer the orders may differ, but the exact selection's
// first removal is the best one there is.
TEST(Sis, ExactFirstRemovalIsTheBest) {
  Graph g;
  const NodeId in = g.input("input", {1, 6, 6});
  const NodeId h = g.relu("relu", g.linear("fc1", g.flatten("flatten", in), {.out_features = 8}));
  g.set_output(g.linear("fc2", h, {.out_features = 3}));
  g.initialize(3);
  const Tensor x = random_tensor({2, 1, 6, 6}, 5);
  const std::vector<int32_t> targets{2, 0};
  const auto batched = detail::backward_selection(g, x, targets, 1);
  const auto exact = detail::exact_backward_selection(g, x, targets, 1);
  for (size_t i = 0; i < targets.size(); ++i) {
    expect_permutation(exact[i].order, 36);
    EXPECT_GE(exact[i].confidence[1] + 1e-5f, batched[i].confidence[1]) << "sample " << i;
  }
}

ProbeContext context_for(Graph& g, const std::vector<int64_t>& idx,
                         const std::map<std::string, std::string>& options) {
  ProbeContext c;
  c.graph = &g;
  c.data = &mnist_test();
  c.indices = idx;
  for (int64_t i : idx) c.targets.push_back(mnist_test().labels[static_cast<size_t>(i)]);
  c.images = dataset_images(mnist_test(), idx);
  c.options = resolve_probe_options("sis", options);
  c.seed = 3;
  return c;
}

TEST(Sis, ProbingLeavesTheModelUnchanged) {
  // A compressed copy of the trained model: the sparse kernels run too.
  Graph& dense = trained_mlp();
  Graph g = build_model("mlp", {.channels = 1, .height = 28, .width = 28});
  g.initialize(0);
  const std::vector<Parameter*> from = dense.parameters(), to = g.parameters();
  for (size_t i = 0; i < from.size(); ++i) to[i]->value.copy_from(from[i]->value);
  for (const PrunableLayer& l : prunable_layers(g, /*dense_first_last=*/false))
    g.compress(l.node, magnitude_mask(g.parameter(l.param).value, 0.7f));
  const auto before = state_bytes(g);
  const ProbeContext c = context_for(
      g, {0, 1, 2}, {{"threshold", "0.8"}, {"keep", "0.05"}, {"images", "6"}, {"batch", "4"}});
  const ProbeReport r = make_sample_probe("sis")->run(c);
  EXPECT_TRUE(state_bytes(g) == before);

  const nlohmann::json j = nlohmann::json::parse(r.json);
  ASSERT_EQ(j["samples"].size(), 3u);
  for (const nlohmann::json& s : j["samples"]) {
    const bool none = s["confidence"].get<double>() < 0.8;
    EXPECT_EQ(none, s["sis_size"].get<int64_t>() == -1) << s["index"];
    EXPECT_EQ(s["order"].size(), static_cast<size_t>(kMnistPixels));
    if (!none) {
      EXPECT_GE(s["sis_confidence"].get<double>(), 0.8);
    }
  }
  ASSERT_EQ(r.maps.size(), 6u);
  for (size_t i = 0; i < 3; ++i) {
    const int64_t size = j["samples"][i]["sis_size"].get<int64_t>();
    const ProbeMap& order = r.maps[2 * i];
    const ProbeMap& sis = r.maps[2 * i + 1];
    EXPECT_EQ(order.title, "removal order");
    // Ranks 1 (removed first) to P (removed last), each once.
    double rank_sum = 0;
    for (int64_t q = 0; q < kMnistPixels; ++q) rank_sum += order.map[q];
    EXPECT_EQ(rank_sum, kMnistPixels * (kMnistPixels + 1) / 2.0);
    // The SIS picture is the reduced image: its pixels kept (no MNIST level
    // normalises to exactly 0), the rest at the mean (0); without a SIS, a
    // blank map over the sample.
    EXPECT_EQ(sis.image.defined(), size >= 0);
    EXPECT_EQ(sis.map.defined(), size < 0);
    if (size >= 0) {
      int64_t kept = 0;
      for (int64_t q = 0; q < kMnistPixels; ++q) kept += sis.image[q] != 0.0f;
      EXPECT_EQ(kept, size);
    }
  }
  const auto& rows = j["overinterpretation"]["rows"];
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(j["overinterpretation"]["kept_pixels"], 39);  // round(0.05 * 784)
  EXPECT_EQ(rows[0]["agreement"], 1.0);                   // the whole images
  // The same seed, the same random subsets.
  const ProbeReport again = make_sample_probe("sis")->run(c);
  EXPECT_EQ(nlohmann::json::parse(again.json)["overinterpretation"], j["overinterpretation"]);
}

void expect_error(const std::function<void()>& f, const std::string& name) {
  try {
    f();
    ADD_FAILURE() << "no error for " << name;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(Sis, BadOptionsAreNamed) {
  Graph& g = trained_mlp();
  for (const char* t : {"0", "-0.5", "1.5", "high"})
    expect_error(
        [&] {
          make_sample_probe("sis")->run(context_for(g, {0}, {{"threshold", t}}));
        },
        "--threshold");
  expect_error(
      [&] {
        make_sample_probe("sis")->run(context_for(g, {0}, {{"remove-per-iter", "0"}}));
      },
      "--remove-per-iter");
  expect_error(
      [&] {
        make_sample_probe("sis")->run(context_for(g, {0}, {{"keep", "2"}}));
      },
      "--keep");
  const Tensor x = dataset_images(mnist_test(), std::vector<int64_t>{0});
  const std::vector<int32_t> t{mnist_test().labels[0]};
  expect_error([&] { detail::backward_selection(g, x, t, 0); }, "--remove-per-iter");
  const auto sel = detail::backward_selection(g, x, t, 50);
  expect_error([&] { detail::find_sis(g, x, t, sel, 0.0); }, "--threshold");
  expect_error([&] { detail::find_sis(g, x, t, sel, 1.01); }, "--threshold");
}

}  // namespace
}  // namespace sparsetrain

// Mask selection (global, uniform, ERK; first/last dense), the sparsity
// report, and the schedules in steps (AC/DC phase boundaries, the cubic GMP
// target, RigL's update steps), plus option validation and the JSON round
// trip of the sparsity options.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <numeric>

#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/models.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
namespace {

// Expects `fn` to throw Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn fn, std::initializer_list<const char*> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning " << *parts.begin();
  } catch (const Error& e) {
    for (const char* part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "'" << e.what() << "' does not mention '" << part << "'";
  }
}

PrunableLayer layer(const std::string& name, Shape shape) {
  return PrunableLayer{name, name + ".weight", std::move(shape)};
}

int64_t numel(const PrunableLayer& l) { return Tensor::count(l.shape); }

int64_t ones(const Tensor& mask) {
  int64_t n = 0;
  for (int64_t i = 0; i < mask.numel(); ++i) n += mask[i] != 0.0f;
  return n;
}

// LeNet-300-100 on MNIST: (300, 784), (100, 300), (10, 100).
std::vector<PrunableLayer> mlp_layers() {
  return {layer("fc1", {300, 784}), layer("fc2", {100, 300}), layer("fc3", {10, 100})};
}

TEST(Sparsity, NamesParseAndErrorsNameTheFlag) {
  EXPECT_EQ(parse_distribution("global"), Distribution::kGlobal);
  EXPECT_EQ(parse_distribution("uniform"), Distribution::kUniform);
  EXPECT_EQ(parse_distribution("erk"), Distribution::kErk);
  EXPECT_STREQ(distribution_name(Distribution::kErk), "erk");
  expect_error([] { parse_distribution("ERK2"); }, {"--distribution", "ERK2"});
  EXPECT_EQ(sparsity_method_names(), (std::vector<std::string>{"static", "acdc", "gmp", "rigl"}));
  EXPECT_NE(dynamic_cast<AcdcMethod*>(make_sparsity_method("acdc").get()), nullptr);
  EXPECT_NE(dynamic_cast<RiglMethod*>(make_sparsity_method("rigl").get()), nullptr);
  EXPECT_NE(dynamic_cast<GmpMethod*>(make_sparsity_method("gmp").get()), nullptr);
  expect_error([] { make_sparsity_method("snip"); },
               {"--sparsity-method", "snip", "(expected static, acdc, gmp or rigl)"});
  EXPECT_EQ(make_sparsity_method("static")->default_distribution(), Distribution::kUniform);
  EXPECT_EQ(make_sparsity_method("acdc")->default_distribution(), Distribution::kGlobal);
  EXPECT_EQ(make_sparsity_method("gmp")->default_distribution(), Distribution::kGlobal);
  EXPECT_EQ(make_sparsity_method("rigl")->default_distribution(), Distribution::kErk);
  EXPECT_STREQ(phase_name(SparsityPhase::kDecompressed), "decompressed");
}

TEST(Sparsity, PrunableLayersAndFirstLastDense) {
  Graph mlp = build_mlp(ModelOptions{1, 28, 28, 10});
  EXPECT_FALSE(has_convolutions(mlp));
  std::vector<PrunableLayer> all = prunable_layers(mlp, false);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].node, "fc1");
  EXPECT_EQ(all[0].param, "fc1.weight");
  EXPECT_EQ(all[0].shape, (Shape{300, 784}));
  const std::vector<PrunableLayer> inner = prunable_layers(mlp, true);
  ASSERT_EQ(inner.size(), 1u);
  EXPECT_EQ(inner[0].node, "fc2");

  Graph lenet = build_lenet5(ModelOptions{1, 28, 28, 10});
  EXPECT_TRUE(has_convolutions(lenet));
  all = prunable_layers(lenet, false);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[1].node, "conv2");
  EXPECT_EQ(all[1].shape, (Shape{16, 6, 5, 5}));
  const std::vector<PrunableLayer> chosen = prunable_layers(lenet, true);
  ASSERT_EQ(chosen.size(), 3u);
  EXPECT_EQ(chosen.front().node, "conv2");
  EXPECT_EQ(chosen.back().node, "fc2");

  // Two layers: nothing is left out.
  Graph two;
  NodeId x = two.input("input", {8});
  x = two.linear("a", x, {.out_features = 4});
  x = two.linear("b", x, {.out_features = 2});
  two.set_output(x);
  EXPECT_EQ(prunable_layers(two, true).size(), 2u);
}

TEST(Sparsity, UniformCountsSumExactlyToTheTarget) {
  const std::vector<PrunableLayer> layers = {layer("a", {7, 13}), layer("b", {5, 3, 3, 3}),
                                             layer("c", {3, 11}), layer("d", {1, 1})};
  int64_t total = 0;
  for (const auto& l : layers) total += numel(l);
  for (const float s : {0.0f, 0.3f, 0.5f, 0.77f, 0.9f, 0.99f}) {
    const std::vector<int64_t> kept = layer_keep_counts(layers, s, Distribution::kUniform);
    int64_t sum = 0;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const double share = (1.0 - s) * static_cast<double>(numel(layers[l]));
      EXPECT_LE(std::fabs(static_cast<double>(kept[l]) - share), 1.0)
          << "s " << s << " layer " << l;
      sum += kept[l];
    }
    EXPECT_EQ(sum, std::llround((1.0 - s) * static_cast<double>(total))) << "s " << s;
  }
  const std::vector<double> d = layer_densities(mlp_layers(), 0.9f, Distribution::kUniform);
  for (const double v : d) EXPECT_NEAR(v, 0.1, 1e-12);
}

TEST(Sparsity, ErkMakesTheSmallestLayerDenseAndSumsToTheTarget) {
  // raw_l = (O + I) / (O I): 1084/235200, 400/30000, 110/1000. At 90% the
  // first solve gives eps = 26620 / (1084 + 400 + 110) = 16.70 and fc3 would
  // keep 16.70 * 0.11 = 184% of its weights: it becomes dense, and eps is
  // re-solved over fc1 and fc2: (26620 - 1000) / (1084 + 400).
  const std::vector<PrunableLayer> layers = mlp_layers();
  const std::vector<int64_t> kept = layer_keep_counts(layers, 0.9f, Distribution::kErk);
  EXPECT_EQ(kept[2], 1000);
  EXPECT_EQ(kept[0] + kept[1] + kept[2], 26620);
  const double eps = (26620.0 - 1000.0) / (1084.0 + 400.0);
  EXPECT_NEAR(static_cast<double>(kept[0]), eps * 1084.0, 1.0);
  EXPECT_NEAR(static_cast<double>(kept[1]), eps * 400.0, 1.0);
  const std::vector<double> d = layer_densities(layers, 0.9f, Distribution::kErk);
  EXPECT_NEAR(d[1] / d[0], (400.0 / 30000.0) / (1084.0 / 235200.0), 1e-3);
  EXPECT_DOUBLE_EQ(d[2], 1.0);

  // Conv shapes count the kernel dims: raw = (O + C + KH + KW) / (O C KH KW).
  const std::vector<PrunableLayer> convs = {layer("c1", {16, 3, 3, 3}), layer("c2", {32, 16, 3, 3}),
                                            layer("c3", {64, 32, 3, 3}), layer("fc", {10, 64})};
  int64_t total = 0;
  for (const auto& l : convs) total += numel(l);
  for (const float s : {0.5f, 0.8f, 0.95f}) {
    const std::vector<int64_t> k = layer_keep_counts(convs, s, Distribution::kErk);
    EXPECT_EQ(std::accumulate(k.begin(), k.end(), int64_t{0}),
              std::llround((1.0 - s) * static_cast<double>(total)))
        << "s " << s;
    for (std::size_t l = 0; l < convs.size(); ++l) EXPECT_LE(k[l], numel(convs[l]));
    // Density ratios follow raw (for layers not made dense).
    const double raw2 = (32.0 + 16 + 3 + 3) / (32.0 * 16 * 9),
                 raw3 = (64.0 + 32 + 3 + 3) / (64.0 * 32 * 9);
    const double d2 = static_cast<double>(k[1]) / numel(convs[1]);
    const double d3 = static_cast<double>(k[2]) / numel(convs[2]);
    if (d2 < 1.0) {
      EXPECT_NEAR(d2 / d3, raw2 / raw3, 0.01) << "s " << s;
    }
  }
  expect_error([&] { layer_keep_counts(convs, 0.5f, Distribution::kGlobal); }, {"global"});
  expect_error([&] { layer_keep_counts(convs, 1.0f, Distribution::kErk); }, {"--sparsity"});
}

// A graph of two linear layers with set weights: a (2, 4) and b (2, 3).
Graph two_layers(const std::vector<float>& wa, const std::vector<float>& wb) {
  Graph g;
  NodeId x = g.input("input", {4});
  x = g.linear("a", x, {.out_features = 2});
  x = g.linear("b", x, {.out_features = 3});
  g.set_output(x);
  g.initialize(1);
  g.parameter("a.weight").value = Tensor::from({2, 4}, wa);
  g.parameter("b.weight").value = Tensor::from({3, 2}, wb);
  return g;
}

TEST(Sparsity, GlobalUsesOneThresholdAndBreaksTiesByPosition) {
  Graph g = two_layers({0.9f, -0.8f, 0.7f, 0.1f, 0.6f, -0.05f, 0.5f, 0.2f},
                       {0.01f, 0.02f, -0.03f, 0.4f, 0.3f, 0.04f});
  const std::vector<PrunableLayer> layers = prunable_layers(g, false);
  // 14 weights at 50%: keep 7, the 7 largest magnitudes over both layers:
  // 0.9, 0.8, 0.7, 0.6, 0.5 in a, 0.4, 0.3 in b.
  std::vector<Tensor> m = magnitude_masks(g, layers, 0.5f, Distribution::kGlobal);
  EXPECT_EQ(m[0].shape(), (Shape{2, 4}));
  const std::vector<float> ea = {1, 1, 1, 0, 1, 0, 1, 0}, eb = {0, 0, 0, 1, 1, 0};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(m[0][i], ea[i]) << "a " << i;
  for (int i = 0; i < 6; ++i) EXPECT_EQ(m[1][i], eb[i]) << "b " << i;
  // Uniform instead keeps 4 of a and 3 of b.
  m = magnitude_masks(g, layers, 0.5f, Distribution::kUniform);
  EXPECT_EQ(ones(m[0]), 4);
  EXPECT_EQ(ones(m[1]), 3);
  EXPECT_EQ(m[1][5], 1.0f);  // 0.04 is b's third largest

  // Ties: equal magnitudes everywhere, keep 3 of 14 -> the first three of a.
  Graph flat = two_layers(std::vector<float>(8, 0.5f), std::vector<float>(6, -0.5f));
  m = magnitude_masks(flat, layers, 11.0f / 14.0f, Distribution::kGlobal);
  EXPECT_EQ(ones(m[0]) + ones(m[1]), 3);
  EXPECT_EQ(m[0][0] + m[0][1] + m[0][2], 3.0f);
}

TEST(Sparsity, CompressedWeightsCountTheirPrunedEntriesAsZeros) {
  Graph g = two_layers({0.9f, -0.8f, 0.7f, 0.1f, 0.6f, -0.05f, 0.5f, 0.2f},
                       {0.01f, 0.02f, -0.03f, 0.4f, 0.3f, 0.04f});
  // Compress a keeping only its three smallest: 0.1, 0.05, 0.2.
  g.compress("a", Tensor::from({2, 4}, {0, 0, 0, 1, 0, 1, 0, 1}));
  const std::vector<PrunableLayer> layers = prunable_layers(g, false);
  EXPECT_EQ(layers[0].shape, (Shape{2, 4}));
  const std::vector<Tensor> m = magnitude_masks(g, layers, 0.5f, Distribution::kGlobal);
  // Nonzeros: a 0.1, 0.05, 0.2; b all six. The seven largest: 0.4, 0.3,
  // 0.2, 0.1, 0.05, 0.04, 0.03.
  const std::vector<float> ea = {0, 0, 0, 1, 0, 1, 0, 1}, eb = {0, 0, 1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(m[0][i], ea[i]) << "a " << i;
  for (int i = 0; i < 6; ++i) EXPECT_EQ(m[1][i], eb[i]) << "b " << i;
}

TEST(Sparsity, RandomMasksKeepTheCountsAndFollowTheSeed) {
  const std::vector<PrunableLayer> layers = mlp_layers();
  const std::vector<Tensor> a = random_masks(layers, 0.9f, Distribution::kErk, 7);
  const std::vector<Tensor> b = random_masks(layers, 0.9f, Distribution::kErk, 7);
  const std::vector<Tensor> c = random_masks(layers, 0.9f, Distribution::kErk, 8);
  const std::vector<int64_t> kept = layer_keep_counts(layers, 0.9f, Distribution::kErk);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    EXPECT_EQ(ones(a[l]), kept[l]);
    EXPECT_TRUE(a[l].equals(b[l]));
  }
  EXPECT_FALSE(a[0].equals(c[0]));
  const std::vector<Tensor> g = random_masks(layers, 0.9f, Distribution::kGlobal, 7);
  EXPECT_EQ(ones(g[0]) + ones(g[1]) + ones(g[2]), 26620);
}

TEST(Sparsity, ReportCountsPrunableWeightsAndAllParameters) {
  Graph g = build_mlp(ModelOptions{1, 28, 28, 10});
  g.initialize(3);
  // fc1 compressed to its first 23520 positions (10%), one bias entry zero.
  Tensor mask = Tensor::zeros({300, 784});
  for (int64_t i = 0; i < 23520; ++i) mask[i] = 1.0f;
  g.compress("fc1", mask);
  g.parameter("fc2.bias").value.zero();
  g.parameter("fc3.bias").value[0] = 0.5f;
  const SparsityReport r = sparsity_report(g);
  EXPECT_EQ(r.prunable_total, 266200);
  EXPECT_EQ(r.prunable_nonzero, 23520 + 30000 + 1000);
  EXPECT_EQ(r.params_total, 266610);
  // Biases start at zero: 300 + 100 + 10 zeros, except fc3.bias[0].
  EXPECT_EQ(r.params_nonzero, 23520 + 30000 + 1000 + 1);
  EXPECT_DOUBLE_EQ(r.prunable_sparsity(), 1.0 - 54520.0 / 266200.0);
  EXPECT_DOUBLE_EQ(r.params_sparsity(), 1.0 - 54521.0 / 266610.0);

  // Memory: values + int64 indices of the compressed weight, dense values
  // elsewhere; no optimizer.
  const int64_t expected = 4 * (23520 + 30000 + 1000 + 410) + 8 * 23520;
  EXPECT_EQ(parameter_memory_bytes(g, nullptr), expected);
}

TEST(Sparsity, CubicGmpTarget) {
  // s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, t0 = 100, n dt = 400.
  EXPECT_DOUBLE_EQ(gmp_sparsity(0, 0.0, 0.8, 100, 500), 0.0);
  EXPECT_DOUBLE_EQ(gmp_sparsity(100, 0.0, 0.8, 100, 500), 0.0);
  EXPECT_DOUBLE_EQ(gmp_sparsity(200, 0.0, 0.8, 100, 500), 0.8 - 0.8 * 0.421875);
  EXPECT_DOUBLE_EQ(gmp_sparsity(300, 0.0, 0.8, 100, 500), 0.8 - 0.8 * 0.125);
  EXPECT_DOUBLE_EQ(gmp_sparsity(400, 0.2, 0.8, 100, 500), 0.8 - 0.6 * 0.015625);
  EXPECT_DOUBLE_EQ(gmp_sparsity(500, 0.0, 0.8, 100, 500), 0.8);
  EXPECT_DOUBLE_EQ(gmp_sparsity(900, 0.0, 0.8, 100, 500), 0.8);
}

TrainOptions method_options(const std::string& method, int64_t epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.sparsity = 0.9f;
  o.sparsity_method = method;
  return o;
}

// The built-ins' plans.
const AcdcMethod& acdc(const SparsitySchedule& s) { return s.method_as<AcdcMethod>(); }
const GmpMethod& gmp(const SparsitySchedule& s) { return s.method_as<GmpMethod>(); }
const RiglMethod& rigl(const SparsitySchedule& s) { return s.method_as<RiglMethod>(); }

TEST(Sparsity, AcdcDefaultPhasesOn200And30Epochs) {
  // The paper's schedule: 200 epochs, compressed from 10, 50, 90, 130, 170,
  // decompressed from 30, 70, 110, 150 (10 steps per epoch here).
  SparsitySchedule s = make_sparsity_schedule(method_options("acdc", 200), 10);
  EXPECT_EQ(s.distribution, Distribution::kGlobal);
  EXPECT_EQ(acdc(s).compress_steps(), (std::vector<int64_t>{100, 500, 900, 1300, 1700}));
  EXPECT_EQ(acdc(s).decompress_steps(), (std::vector<int64_t>{300, 700, 1100, 1500}));
  // 30 epochs of 100 steps: 1.5, 7.5, 13.5, 19.5, 25.5 and 4.5, 10.5, 16.5, 22.5.
  s = make_sparsity_schedule(method_options("acdc", 30), 100);
  EXPECT_EQ(acdc(s).compress_steps(), (std::vector<int64_t>{150, 750, 1350, 1950, 2550}));
  EXPECT_EQ(acdc(s).decompress_steps(), (std::vector<int64_t>{450, 1050, 1650, 2250}));
  EXPECT_EQ(s.phase_at(0), SparsityPhase::kDense);
  EXPECT_EQ(s.phase_at(149), SparsityPhase::kDense);
  EXPECT_EQ(s.phase_at(150), SparsityPhase::kCompressed);
  EXPECT_EQ(s.phase_at(449), SparsityPhase::kCompressed);
  EXPECT_EQ(s.phase_at(450), SparsityPhase::kDecompressed);
  EXPECT_EQ(s.phase_at(749), SparsityPhase::kDecompressed);
  EXPECT_EQ(s.phase_at(750), SparsityPhase::kCompressed);
  EXPECT_EQ(s.phase_at(2549), SparsityPhase::kDecompressed);
  EXPECT_EQ(s.phase_at(2550), SparsityPhase::kCompressed);
  EXPECT_EQ(s.phase_at(2999), SparsityPhase::kCompressed);
  EXPECT_NE(s.describe().find("compressed from epochs 1.5, 7.5, 13.5, 19.5, 25.5"),
            std::string::npos)
      << s.describe();
  // With masked storage the sparse phases hold masks.
  TrainOptions masked = method_options("acdc", 30);
  masked.sparse_storage = "masked";
  EXPECT_EQ(make_sparsity_schedule(masked, 100).phase_at(200), SparsityPhase::kMasked);
}

TEST(Sparsity, AcdcGivenEpochsBecomeSteps) {
  TrainOptions o = method_options("acdc", 4);
  o.compress_epochs = {0.5, 2};
  o.decompress_epochs = {1.25};
  const SparsitySchedule s = make_sparsity_schedule(o, 7);
  // round(0.5 * 7) = 4, round(2 * 7) = 14, round(1.25 * 7) = 9.
  EXPECT_EQ(acdc(s).compress_steps(), (std::vector<int64_t>{4, 14}));
  EXPECT_EQ(acdc(s).decompress_steps(), (std::vector<int64_t>{9}));
  EXPECT_EQ(s.phase_at(3), SparsityPhase::kDense);
  EXPECT_EQ(s.phase_at(4), SparsityPhase::kCompressed);
  EXPECT_EQ(s.phase_at(9), SparsityPhase::kDecompressed);
  EXPECT_EQ(s.phase_at(14), SparsityPhase::kCompressed);
  // One compressed phase and no decompression: a one-shot prune.
  o.compress_epochs = {1};
  o.decompress_epochs = {};
  EXPECT_EQ(make_sparsity_schedule(o, 7).phase_at(7), SparsityPhase::kCompressed);
}

TEST(Sparsity, AcdcPhasesAreValidated) {
  TrainOptions o = method_options("acdc", 10);
  o.compress_epochs = {1, 5};
  o.decompress_epochs = {6};
  expect_error([&] { validate(o); }, {"--compress-epochs", "--decompress-epochs", "alternate"});
  o.decompress_epochs = {3};
  o.compress_epochs = {1, 5, 7};
  expect_error([&] { validate(o); }, {"one more compress epoch"});
  o.compress_epochs = {1, 10};
  expect_error([&] { validate(o); }, {"--compress-epochs", "outside the run"});
  o.compress_epochs = {1, 5};
  o.decompress_epochs = {-2};
  expect_error([&] { validate(o); }, {"--decompress-epochs", "outside the run"});
  o.compress_epochs = {};
  o.decompress_epochs = {3};
  expect_error([&] { validate(o); }, {"--decompress-epochs needs --compress-epochs"});
  // Epochs that round to the same step.
  o.compress_epochs = {1, 1.2};
  o.decompress_epochs = {1.1};
  EXPECT_NO_THROW(validate(o));
  expect_error([&] { make_sparsity_schedule(o, 2); }, {"--compress-epochs", "begin on step 2"});
  // The defaults on a run too short for them name the options too.
  expect_error([&] { make_sparsity_schedule(method_options("acdc", 1), 3); },
               {"--compress-epochs", "defaults"});
  // Other methods refuse AC/DC options.
  TrainOptions g = method_options("gmp", 10);
  g.compress_epochs = {1};
  expect_error([&] { validate(g); }, {"--compress-epochs", "acdc only"});
}

TEST(Sparsity, GmpPrunesEveryDtStepsOnTheCubic) {
  // Defaults on 10 epochs of 100 steps, dt 100: from step 100 to 600.
  SparsitySchedule s = make_sparsity_schedule(method_options("gmp", 10), 100);
  EXPECT_EQ(gmp(s).start_step(), 100);
  EXPECT_EQ(gmp(s).end_step(), 600);
  EXPECT_FALSE(gmp(s).prunes_at(0));
  EXPECT_TRUE(gmp(s).prunes_at(100));
  EXPECT_FALSE(gmp(s).prunes_at(150));
  EXPECT_TRUE(gmp(s).prunes_at(300));
  EXPECT_TRUE(gmp(s).prunes_at(600));
  EXPECT_FALSE(gmp(s).prunes_at(700));
  EXPECT_DOUBLE_EQ(gmp(s).target(100), 0.0);
  EXPECT_NEAR(gmp(s).target(350), 0.9 - 0.9 * 0.125, 1e-7);
  EXPECT_NEAR(gmp(s).target(600), 0.9, 1e-7);
  EXPECT_EQ(s.phase_at(99), SparsityPhase::kDense);
  EXPECT_EQ(s.phase_at(100), SparsityPhase::kMasked);
  EXPECT_EQ(s.phase_at(599), SparsityPhase::kMasked);
  EXPECT_EQ(s.phase_at(600), SparsityPhase::kCompressed);
  // t0 + n dt stops at the last multiple of dt before the requested end.
  TrainOptions o = method_options("gmp", 10);
  o.prune_every_steps = 70;
  o.initial_sparsity = 0.5f;
  o.prune_start_epoch = 2;
  o.prune_end_epoch = 7;
  s = make_sparsity_schedule(o, 100);
  EXPECT_EQ(gmp(s).start_step(), 200);
  EXPECT_EQ(gmp(s).end_step(), 200 + 7 * 70);
  EXPECT_TRUE(gmp(s).prunes_at(270));
  EXPECT_NEAR(gmp(s).target(200), 0.5, 1e-7);
  // An end at the run's end is clamped to its last step.
  o.prune_every_steps = 1;
  o.prune_end_epoch = 10;
  EXPECT_EQ(gmp(make_sparsity_schedule(o, 100)).end_step(), 999);
}

TEST(Sparsity, RiglUpdatesEveryDtWithCosineDecay) {
  TrainOptions o = method_options("rigl", 8);
  o.drop_fraction = 0.4f;
  const SparsitySchedule s = make_sparsity_schedule(o, 100);
  EXPECT_EQ(s.distribution, Distribution::kErk);
  EXPECT_EQ(rigl(s).end_step(), 600);
  EXPECT_FALSE(rigl(s).updates_at(0));
  EXPECT_TRUE(rigl(s).updates_at(100));
  EXPECT_FALSE(rigl(s).updates_at(150));
  EXPECT_TRUE(rigl(s).updates_at(500));
  EXPECT_FALSE(rigl(s).updates_at(600));
  EXPECT_EQ(s.phase_at(0), SparsityPhase::kCompressed);
  EXPECT_DOUBLE_EQ(rigl(s).drop_fraction_at(0), 0.4f);
  EXPECT_NEAR(rigl(s).drop_fraction_at(300), 0.2, 1e-7);
  EXPECT_NEAR(rigl(s).drop_fraction_at(150), 0.2 * (1 + std::cos(std::numbers::pi / 4)), 1e-7);
  EXPECT_DOUBLE_EQ(rigl(s).drop_fraction_at(600), 0.0);
  // Another method's plan is refused by name.
  expect_error([&] { gmp(s); }, {"'rigl'"});
}

TEST(Sparsity, OptionsAreValidatedByName) {
  TrainOptions o;
  o.sparsity_method = "acdc";
  expect_error([&] { validate(o); }, {"--sparsity-method acdc", "--sparsity"});
  o = method_options("static", 10);
  o.dense_first_last = 2;
  expect_error([&] { validate(o); }, {"--dense-first-last"});
  o = method_options("rigl", 10);
  o.drop_fraction = 1.0f;
  expect_error([&] { validate(o); }, {"--drop-fraction"});
  o = method_options("gmp", 10);
  o.prune_every_steps = 0;
  expect_error([&] { validate(o); }, {"--prune-every-steps"});
  o = method_options("gmp", 10);
  o.initial_sparsity = 0.95f;
  expect_error([&] { validate(o); }, {"--initial-sparsity"});
  o = method_options("rigl", 10);
  o.initial_sparsity = 0.5f;
  expect_error([&] { validate(o); }, {"--initial-sparsity", "gmp only"});
  o = method_options("gmp", 10);
  o.prune_start_epoch = 6;
  o.prune_end_epoch = 3;
  expect_error([&] { validate(o); }, {"--prune-start-epoch", "--prune-end-epoch"});
  o.prune_end_epoch = 11;
  expect_error([&] { validate(o); }, {"--prune-end-epoch"});
  o = method_options("static", 10);
  o.prune_end_epoch = 3;
  expect_error([&] { validate(o); }, {"--prune-end-epoch", "gmp or rigl"});
  o = method_options("static", 10);
  o.distribution = "random";
  expect_error([&] { validate(o); }, {"--distribution"});
}

TEST(Sparsity, OptionsRoundTripThroughJson) {
  TrainOptions o = method_options("acdc", 12);
  o.distribution = "erk";
  o.dense_first_last = 1;
  o.compress_epochs = {1, 4.5, 9};
  o.decompress_epochs = {3, 7.25};
  o.initial_sparsity = 0.25f;
  o.prune_start_epoch = 1.5;
  o.prune_end_epoch = 8;
  o.prune_every_steps = 37;
  o.drop_fraction = 0.15f;
  const TrainOptions r = options_from_json(options_to_json(o));
  EXPECT_EQ(r.sparsity, o.sparsity);
  EXPECT_EQ(r.sparsity_method, "acdc");
  EXPECT_EQ(r.distribution, "erk");
  EXPECT_EQ(r.dense_first_last, 1);
  EXPECT_EQ(r.compress_epochs, o.compress_epochs);
  EXPECT_EQ(r.decompress_epochs, o.decompress_epochs);
  EXPECT_EQ(r.initial_sparsity, 0.25f);
  EXPECT_EQ(r.prune_start_epoch, 1.5);
  EXPECT_EQ(r.prune_end_epoch, 8.0);
  EXPECT_EQ(r.prune_every_steps, 37);
  EXPECT_EQ(r.drop_fraction, 0.15f);
}

}  // namespace
}  // namespace sparsetrain

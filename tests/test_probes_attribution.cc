// The gradient probes: saliency is the score's gradient (central
// differences, LeNet-5 and ResNet-20 with compressed layers), integrated
// gradients approach completeness as the steps grow and do not depend on
// the internal batch, Gauss-Legendre integrates polynomials exactly,
// smoothgrad without noise is its inner probe, probing leaves the model as
// it was, and the command line names bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/models.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/sparsity.h"
#include "tests/cli_runner.h"
#include "tests/graph_test_util.h"
#include "tests/probe_test_util.h"

namespace sparsetrain {
namespace {

using testing::compress_all;
using testing::state_bytes;

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::random_tensor;

const std::string kDataDir = SPARSETRAIN_TEST_DATA_DIR;

// A LeNet-5 trained for 300 steps of 32 MNIST images.
Graph trained_lenet(const Dataset& train, float sparsity) {
  Graph g = build_model("lenet5", {.channels = 1, .height = 28, .width = 28});
  g.initialize(1);
  if (sparsity > 0) compress_all(g, sparsity);
  auto opt = make_optimizer({});
  Loader loader(train, 32, /*shuffle=*/true, AugmentOptions{}, 3);
  loader.start_epoch(0);
  Batch b;
  for (int s = 0; s < 300 && loader.next(b); ++s) {
    const Tensor logits = g.forward(b.images, ExecMode::kTrain, s);
    Tensor diff;
    const LossResult loss = softmax_cross_entropy(logits, b.labels, &diff);
    EXPECT_TRUE(std::isfinite(loss.loss)) << "step " << s;
    g.backward(diff);
    opt->step(g.parameters(), 0.01f);
    opt->zero_grad(g.parameters());
  }
  return g;
}

ProbeReport run_probe(Graph& g, const Dataset& d, const std::string& name,
                      const std::vector<int64_t>& indices,
                      const std::map<std::string, std::string>& options) {
  ProbeContext c;
  c.graph = &g;
  c.data = &d;
  c.indices = indices;
  c.images = dataset_images(d, indices);
  for (int64_t i : indices) c.targets.push_back(d.labels[static_cast<size_t>(i)]);
  c.options = resolve_probe_options(name, options);
  return make_sample_probe(name)->run(c);
}

// The saliency probe's gradient of a sample against central differences of
// its logit. The image gets a little noise first: MNIST's flat background
// makes max-pooling ties, where the gradient picks one input and a
// difference sees half of it.
void check_saliency(Graph& g, const Dataset& d, int64_t index, float step) {
  ProbeContext c;
  c.graph = &g;
  c.data = &d;
  c.indices = {index};
  c.images = dataset_images(d, c.indices);
  const Tensor noise = random_tensor(c.images.shape(), 8, 0.3f);
  for (int64_t i = 0; i < c.images.numel(); ++i) c.images[i] += noise[i];
  const int32_t target = d.labels[static_cast<size_t>(index)];
  c.targets = {target};
  c.options = resolve_probe_options("saliency", {});
  const ProbeReport r = make_sample_probe("saliency")->run(c);
  const json s = json::parse(r.json)["samples"][0];
  const std::vector<float> grad = s["gradient"];
  const Tensor& x = c.images;
  auto logit = [&](const Tensor& in) { return class_logits(g, in)[target]; };
  // Per position; a difference step that crosses a ReLU kink spoils its
  // position, so most (85%) must agree closely and the rest loosely.
  std::vector<double> fd, an;
  double top = 0;
  for (int64_t i = 0; i < x.numel(); i += 23) {
    Tensor up = x.clone(), down = x.clone();
    up[i] += step;
    down[i] -= step;
    fd.push_back((static_cast<double>(logit(up)) - logit(down)) / (2.0 * step));
    an.push_back(grad[i]);
    top = std::max(top, std::abs(fd.back()));
  }
  ASSERT_GT(top, 0.0);
  int close = 0;
  for (size_t k = 0; k < fd.size(); ++k) {
    close += std::abs(fd[k] - an[k]) <= 0.03 * top;
    EXPECT_LE(std::abs(fd[k] - an[k]), 0.3 * top) << "position " << k * 23;
  }
  EXPECT_GE(close, static_cast<int>(0.85 * static_cast<double>(fd.size())));
  // The map is the largest |gradient| over channels.
  const std::vector<float> map = s["map"];
  const int64_t hw = d.height * d.width;
  for (int64_t j = 0; j < hw; j += 17) {
    float top = 0;
    for (int64_t c = 0; c < d.channels; ++c) top = std::max(top, std::abs(grad[c * hw + j]));
    EXPECT_FLOAT_EQ(map[j], top);
  }
  // The signed modes: the gradient, and the gradient times the input,
  // summed over channels.
  for (const std::string mode : {"gradient", "gradient-x-input"}) {
    c.options = resolve_probe_options("saliency", {{"mode", mode}});
    const ProbeReport signed_report = make_sample_probe("saliency")->run(c);
    const json m = json::parse(signed_report.json)["samples"][0];
    const std::vector<float> signed_map = m["map"];
    EXPECT_TRUE(signed_report.maps[0].is_signed);
    for (int64_t j = 0; j < hw; j += 17) {
      double sum = 0;
      for (int64_t ch = 0; ch < d.channels; ++ch)
        sum += grad[ch * hw + j] * (mode == "gradient" ? 1.0f : x[ch * hw + j]);
      EXPECT_NEAR(signed_map[j], sum, 1e-6 * (1 + std::abs(sum))) << mode << " at " << j;
    }
  }
}

TEST(AttributionProbes, SaliencyIsTheGradientOfTheScore) {
  const Dataset mnist = load_dataset("mnist", kDataDir, Split::kTest, 50);
  Graph lenet = build_model("lenet5", {.channels = 1, .height = 28, .width = 28});
  lenet.initialize(2);
  compress_all(lenet, 0.8f);
  check_saliency(lenet, mnist, 3, 1e-3f);

  const Dataset cifar = load_dataset("cifar10", kDataDir, Split::kTest, 20);
  Graph resnet = build_model("resnet20", {.channels = 3, .height = 32, .width = 32});
  resnet.initialize(2);
  // Training steps first, so BatchNorm's running statistics are not the
  // initial ones (probes normalise with them).
  auto opt = make_optimizer({});
  const Tensor x = dataset_images(cifar, std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
  const std::vector<int32_t> y(cifar.labels.begin(), cifar.labels.begin() + 8);
  for (int s = 0; s < 3; ++s) {
    Tensor diff;
    softmax_cross_entropy(resnet.forward(x, ExecMode::kTrain, s), y, &diff);
    resnet.backward(diff);
    opt->step(resnet.parameters(), 0.05f);
    opt->zero_grad(resnet.parameters());
  }
  compress_all(resnet, 0.9f);
  // Small gradients: a larger step keeps float rounding out of the differences.
  check_saliency(resnet, cifar, 11, 1e-2f);
}

double mean_relative_error(const ProbeReport& r) {
  double sum = 0;
  int n = 0;
  const json j = json::parse(r.json);
  for (const json& s : j["samples"]) {
    sum += s["relative_completeness_error"].get<double>();
    ++n;
  }
  return sum / n;
}

TEST(AttributionProbes, IntegratedGradientsApproachCompleteness) {
  const Dataset train = load_dataset("mnist", kDataDir, Split::kTrain, 9600);
  const Dataset test = load_dataset("mnist", kDataDir, Split::kTest, 100);
  Graph g = trained_lenet(train, 0.9f);
  const std::vector<int64_t> idx{0, 1, 2, 3, 4, 5};
  const double coarse =
      mean_relative_error(run_probe(g, test, "integrated-gradients", idx, {{"steps", "4"}}));
  const ProbeReport fine = run_probe(g, test, "integrated-gradients", idx, {{"steps", "256"}});
  EXPECT_LT(mean_relative_error(fine), coarse);
  const json fine_json = json::parse(fine.json);
  for (const json& s : fine_json["samples"])
    EXPECT_LT(s["relative_completeness_error"].get<double>(), 0.01) << s["index"];

  // Chunks of 7 or of 64 path points: the same attributions.
  const json a = json::parse(
      run_probe(g, test, "integrated-gradients", {7}, {{"steps", "50"}, {"internal-batch", "7"}})
          .json);
  const json b = json::parse(
      run_probe(g, test, "integrated-gradients", {7}, {{"steps", "50"}, {"internal-batch", "64"}})
          .json);
  const std::vector<float> va = a["samples"][0]["attribution"], vb = b["samples"][0]["attribution"];
  ASSERT_EQ(va.size(), vb.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    diff += std::abs(va[i] - vb[i]);
    norm += std::abs(va[i]);
  }
  EXPECT_LT(diff, 1e-4 * norm);
}

TEST(AttributionProbes, GaussLegendreIntegratesPolynomialsExactly) {
  const Dataset test = load_dataset("mnist", kDataDir, Split::kTest, 10);
  Graph g = build_model("lenet5", {.channels = 1, .height = 28, .width = 28});
  g.initialize(4);
  for (int n : {1, 2, 5, 12}) {
    const json r =
        json::parse(run_probe(g, test, "integrated-gradients", {0},
                              {{"steps", std::to_string(n)}, {"method", "gauss-legendre"}})
                        .json);
    const std::vector<double> a = r["alphas"], w = r["weights"];
    ASSERT_EQ(a.size(), static_cast<size_t>(n));
    for (int k = 0; k < 2 * n; ++k) {
      double q = 0;
      for (int i = 0; i < n; ++i) q += w[i] * std::pow(a[i], k);
      EXPECT_NEAR(q, 1.0 / (k + 1), 1e-12) << n << " points, degree " << k;
    }
  }
}

TEST(AttributionProbes, SmoothgradWithoutNoiseIsItsProbeAndNothingChanges) {
  const Dataset test = load_dataset("mnist", kDataDir, Split::kTest, 10);
  Graph g = build_model("lenet5", {.channels = 1, .height = 28, .width = 28});
  g.initialize(5);
  compress_all(g, 0.5f);
  const auto before = state_bytes(g);
  const ProbeReport plain = run_probe(g, test, "saliency", {2, 3}, {});
  const ProbeReport smooth =
      run_probe(g, test, "smoothgrad", {2, 3}, {{"noise", "0"}, {"samples", "3"}});
  ASSERT_EQ(plain.maps.size(), smooth.maps.size());
  for (size_t m = 0; m < plain.maps.size(); ++m)
    for (int64_t j = 0; j < plain.maps[m].map.numel(); ++j)
      EXPECT_NEAR(plain.maps[m].map[j], smooth.maps[m].map[j], 1e-6f);
  run_probe(g, test, "integrated-gradients", {2}, {{"steps", "8"}, {"baseline", "blur"}});
  run_probe(g, test, "smoothgrad", {2}, {{"of", "integrated-gradients"}, {"steps", "4"}});
  EXPECT_TRUE(state_bytes(g) == before) << "a probe changed a weight, buffer or gradient";
}

// Two training steps with probes run between them end bit for bit where
// the two steps alone do (BatchNorm's running statistics included).
TEST(AttributionProbes, ProbesBetweenTrainingStepsChangeNothing) {
  const Dataset cifar = load_dataset("cifar10", kDataDir, Split::kTest, 16);
  const Tensor x = dataset_images(cifar, std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
  const std::vector<int32_t> y(cifar.labels.begin(), cifar.labels.begin() + 8);
  auto run = [&](bool probe) {
    Graph g = build_model("resnet20", {.channels = 3, .height = 32, .width = 32});
    g.initialize(9);
    compress_all(g, 0.9f);
    // The density rule: a timed kernel choice could differ between the two
    // runs on a busy machine, and with it the last bits.
    g.set_sparse_kernels("auto-fixed");
    auto opt = make_optimizer({});
    for (int s = 0; s < 2; ++s) {
      Tensor diff;
      softmax_cross_entropy(g.forward(x, ExecMode::kTrain, s), y, &diff);
      g.backward(diff);
      opt->step(g.parameters(), 0.05f);
      if (probe && s == 0) {
        run_probe(g, cifar, "saliency", {9}, {});
        run_probe(g, cifar, "integrated-gradients", {10}, {{"steps", "8"}});
        run_probe(g, cifar, "sis", {11}, {{"remove-per-iter", "256"}});
      }
      opt->zero_grad(g.parameters());
    }
    return state_bytes(g);
  };
  EXPECT_TRUE(run(true) == run(false));
}

TEST(AttributionProbes, BadOptionsAreNamed) {
  EXPECT_THROW(make_sample_probe("gradcam"), Error);
  try {
    resolve_probe_options("saliency", {{"steps", "5"}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--steps is not an option of probe saliency"),
              std::string::npos)
        << e.what();
  }
  const Dataset test = load_dataset("mnist", kDataDir, Split::kTest, 10);
  Graph g = build_model("lenet5", {.channels = 1, .height = 28, .width = 28});
  g.initialize(6);
  EXPECT_THROW(run_probe(g, test, "integrated-gradients", {0}, {{"steps", "0"}}), Error);
  EXPECT_THROW(run_probe(g, test, "saliency", {0}, {{"mode", "abs"}}), Error);
}

TEST(AttributionProbes, CommandLineWritesTheReportAndNamesBadInput) {
  const fs::path dir = testing::fresh_temp_dir("sparsetrain_probe_", "cli");
  const auto run = [](const std::string& args) { return testing::run_cli(args, true); };
  const auto t = run("train --model lenet5 --dataset mnist --data-dir " + kDataDir +
                     " --train-limit 2000 --test-limit 200 --epochs 1 --no-progress --threads 2"
                     " --out " +
                     (dir / "run").string());
  ASSERT_EQ(t.exit_code, 0) << t.out;
  const std::string ck = " --checkpoint " + (dir / "run").string() + " --data-dir " + kDataDir;
  const auto p = run("probe integrated-gradients" + ck + " --indices 0,5-6 --steps 16 --out " +
                     (dir / "ig").string());
  ASSERT_EQ(p.exit_code, 0) << p.out;
  EXPECT_NE(p.out.find("probe integrated-gradients: checkpoint"), std::string::npos) << p.out;
  for (const char* f : {"integrated-gradients.json", "integrated-gradients-0.png",
                        "integrated-gradients-6.png", "integrated-gradients-sheet.png"})
    EXPECT_TRUE(fs::exists(dir / "ig" / f)) << f;
  const json j = json::parse(std::ifstream(dir / "ig" / "integrated-gradients.json"));
  EXPECT_EQ(j["samples"].size(), 3u);
  EXPECT_EQ(j["options"]["steps"], "16");
  EXPECT_EQ(j["results"]["samples"][2]["index"], 6);

  // Two models side by side: results keyed by label, the same samples.
  const std::string run_dir = (dir / "run").string();
  const auto two = run("probe saliency --checkpoint a=" + run_dir + " --checkpoint b=" + run_dir +
                       " --data-dir " + kDataDir + " --indices 3 --out " + (dir / "two").string());
  ASSERT_EQ(two.exit_code, 0) << two.out;
  const json t2 = json::parse(std::ifstream(dir / "two" / "saliency.json"));
  EXPECT_EQ(t2["checkpoints"].size(), 2u);
  EXPECT_EQ(t2["results"]["a"]["samples"][0]["map"], t2["results"]["b"]["samples"][0]["map"]);
  EXPECT_TRUE(fs::exists(dir / "two" / "saliency-3.png"));

  const auto refused = [&](const std::string& args, const std::string& needle) {
    const auto b = run(args);
    EXPECT_EQ(b.exit_code, 1) << b.out;
    EXPECT_NE(b.out.find(needle), std::string::npos) << b.out;
    EXPECT_EQ(std::count(b.out.begin(), b.out.end(), '\n'), 1) << b.out;
  };
  const std::string out = " --out " + (dir / "bad").string();
  refused("probe saliency" + ck + " --indices 0,10000" + out,
          "sample index 10000 is outside the mnist set's 10000 samples");
  refused("probe saliency" + ck + " --target 12" + out, "--target: unknown target class '12'");
  refused("probe gradcam" + ck + out, "unknown probe 'gradcam'");
  refused("probe saliency" + ck + " --steps 3" + out, "--steps is not an option of probe saliency");
  refused("probe integrated-gradients" + ck + " --steps -1" + out, "--steps");
  refused("probe saliency --checkpoint x=" + run_dir + " --checkpoint x=" + run_dir + out,
          "two models are labelled 'x'");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sparsetrain

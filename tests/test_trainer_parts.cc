// The trainer over an app's own parts: its graph, its datasets, its
// callbacks; the library's messages through the app's log sink.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/log.h"
#include "sparsetrain/models.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
namespace {

// A made-up two-class set: class 0 is bright on the left half of an 8x8
// image, class 1 on the right half, with noise.
Dataset halves(int64_t count, uint64_t seed) {
  Dataset d;
  d.name = "halves";
  d.channels = 1;
  d.height = 8;
  d.width = 8;
  d.num_classes = 2;
  d.mean = {0.5f};
  d.stddev = {0.3f};
  Rng rng(seed);
  for (int64_t n = 0; n < count; ++n) {
    const int label = static_cast<int>(n % 2);
    d.labels.push_back(label);
    for (int64_t y = 0; y < 8; ++y) {
      for (int64_t x = 0; x < 8; ++x) {
        const bool lit = (x < 4) == (label == 0);
        const float v = (lit ? 170.0f : 60.0f) + rng.uniform(-50.0f, 50.0f);
        d.pixels.push_back(static_cast<uint8_t>(v));
      }
    }
  }
  return d;
}

Graph small_convnet(int64_t channels, int64_t side, int64_t classes) {
  Graph g;
  NodeId x = g.input("image", {channels, side, side});
  x = g.conv2d("conv", x, {.out_channels = 4, .kernel = 3, .stride = 1, .padding = 1});
  x = g.relu("relu", x);
  x = g.flatten("flat", x);
  x = g.linear("fc", x, {.out_features = classes});
  g.set_output(x);
  g.initialize(3);
  return g;
}

TrainOptions options(int64_t epochs) {
  TrainOptions o;
  o.model = "small-convnet";
  o.dataset = "halves";
  o.epochs = epochs;
  o.batch_size = 16;
  o.lr = 0.05f;
  o.momentum = 0.9f;
  o.threads = 2;
  o.progress = false;
  return o;
}

TEST(TrainerParts, OwnGraphAndDataLearnWithCallbacks) {
  Trainer t(small_convnet(1, 8, 2), halves(256, 1), halves(64, 2), options(3));
  int starts = 0, epochs = 0;
  std::vector<int64_t> steps;
  TrainerCallbacks cb;
  cb.on_start = [&](Trainer&) { ++starts; };
  cb.on_step = [&](Trainer&, int64_t step, float loss) {
    EXPECT_TRUE(std::isfinite(loss));
    steps.push_back(step);
  };
  cb.on_epoch_end = [&](Trainer& tr, const EpochStats& e) {
    ++epochs;
    EXPECT_EQ(e.epoch, epochs);
    EXPECT_EQ(tr.steps_done(), epochs * 16);
  };
  t.add_callbacks(cb);
  std::ostringstream log;
  const TrainResult r = t.run(log);
  EXPECT_EQ(starts, 1);
  EXPECT_EQ(epochs, 3);
  ASSERT_EQ(steps.size(), 48u);
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i], static_cast<int64_t>(i));
  EXPECT_GE(r.test_accuracy, 0.95) << log.str();
  EXPECT_NE(log.str().find("model small-convnet"), std::string::npos) << log.str();
}

TEST(TrainerParts, PhaseChangesReachTheCallback) {
  TrainOptions o = options(4);
  o.sparsity = 0.5f;
  o.sparsity_method = "acdc";
  Trainer t(small_convnet(1, 8, 2), halves(128, 1), halves(32, 2), o);
  std::vector<std::string> phases;
  TrainerCallbacks cb;
  cb.on_phase_change = [&](Trainer&, const std::string& p) { phases.push_back(p); };
  t.add_callbacks(cb);
  std::ostringstream log;
  t.run(log);
  ASSERT_FALSE(phases.empty()) << log.str();
  EXPECT_EQ(phases.front(), "compressed") << log.str();
}

TEST(TrainerParts, OwnGraphOnRealDataLearns) {
  const std::string dir = SPARSETRAIN_TEST_DATA_DIR;
  Dataset train = load_dataset("mnist", dir, Split::kTrain, 4000);
  Dataset test = load_dataset("mnist", dir, Split::kTest, 1000);
  Graph g = build_mlp({}, {64});
  g.initialize(5);
  TrainOptions o = options(2);
  o.model = "mlp-64";
  o.dataset = "mnist";
  o.batch_size = 50;
  Trainer t(std::move(g), std::move(train), std::move(test), o);
  std::ostringstream log;
  EXPECT_GE(t.run(log).test_accuracy, 0.85) << log.str();
}

TEST(TrainerParts, GraphThatDoesNotTakeTheSamplesIsRefused) {
  try {
    Trainer t(small_convnet(3, 8, 2), halves(32, 1), halves(8, 2), options(1));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not take the samples"), std::string::npos)
        << e.what();
  }
  Dataset broken = halves(32, 1);
  broken.pixels.pop_back();
  EXPECT_THROW(Trainer(small_convnet(1, 8, 2), broken, halves(8, 2), options(1)), Error);
}

TEST(TrainerParts, KernelChoicesGoToTheInstalledSink) {
  std::vector<std::string> lines;
  set_log_sink([&](LogLevel level, std::string_view line) {
    if (level == LogLevel::kInfo) lines.emplace_back(line);
  });
  TrainOptions o = options(1);
  o.sparsity = 0.9f;
  o.kernels = "auto";
  Graph g = small_convnet(1, 8, 2);
  Trainer t(std::move(g), halves(64, 1), halves(16, 2), o);
  std::ostringstream log;
  t.run(log);
  set_log_sink({});
  bool found = false;
  for (const std::string& l : lines)
    found = found || l.find(" kernels (sparse ") != std::string::npos;
  EXPECT_TRUE(found) << "no kernel choice logged";
  for (const std::string& l : lines) EXPECT_EQ(l.find('\n'), std::string::npos) << l;
  EXPECT_EQ(log.str().find(" kernels (sparse "), std::string::npos)
      << "the choice went to the run log";

  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  set_num_threads(2);
  EXPECT_EQ(num_threads(), 2);
}

// The dense layers swap to the scalar reference with one call: a LeNet-5
// step gives the same numbers up to rounding (and not the same bits, so the
// swap really happened).
TEST(TrainerParts, DenseKernelsSwapToTheReference) {
  const auto run = [](const std::string& impl) {
    set_dense_kernels(impl);
    Graph g = build_lenet5({});
    g.initialize(7);
    Tensor x({4, 1, 28, 28});
    Rng rng(3);
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.uniform(-1.0f, 1.0f);
    const Tensor out = g.forward(x, ExecMode::kTrain);
    Tensor r = Tensor::full(out.shape(), 0.1f);
    g.backward(r);
    std::vector<float> v(out.data(), out.data() + out.numel());
    const Parameter& w = g.parameter("conv2.weight");
    v.insert(v.end(), w.grad.data(), w.grad.data() + w.grad.numel());
    return v;
  };
  const std::vector<float> dnnl = run("dnnl");
  const std::vector<float> ref = run("ref");
  EXPECT_EQ(dense_kernels(), "ref");
  set_dense_kernels("dnnl");
  ASSERT_EQ(dnnl.size(), ref.size());
  float max_diff = 0;
  for (size_t i = 0; i < dnnl.size(); ++i)
    max_diff = std::max(max_diff, std::abs(dnnl[i] - ref[i]));
  EXPECT_LT(max_diff, 1e-4f);
  EXPECT_NE(dnnl, ref) << "the reference gave oneDNN's bits: was it run?";
  EXPECT_THROW(set_dense_kernels("mkl"), Error);
}

}  // namespace
}  // namespace sparsetrain

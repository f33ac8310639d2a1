// Probes: the registry by name, a probe of an app's own run through the
// trainer, and the activation statistics against values worked out by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "sparsetrain/error.h"
#include "sparsetrain/files.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/probes.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;

TEST(Probes, BuiltInsAreRegisteredByName) {
  const std::vector<std::string> names = probe_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "activation-stats"), names.end());
  EXPECT_STREQ(make_probe("activation-stats")->name(), "activation-stats");
  try {
    make_probe("saliency-of-everything");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown probe 'saliency-of-everything' (expected "),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(register_probe("activation-stats", [] { return make_probe("activation-stats"); }),
               Error);
}

// A probe an app registers: counts the batches of the final evaluation.
class CountingProbe final : public Probe {
 public:
  const char* name() const override { return "count-batches"; }
  void attach(Graph& graph, const std::string& pattern) override {
    handle_ = graph.add_hook(HookPoint::kAfterForward, pattern, [this](HookEvent& ev) {
      if (ev.node == "fc") ++batches_;
    });
  }
  void detach() override { handle_.remove(); }
  std::string write(const std::string& folder) const override {
    const std::string path = (fs::path(folder) / "count.txt").string();
    write_file_atomic(path, std::to_string(batches_));
    return path;
  }

 private:
  int batches_ = 0;
  HookHandle handle_;
};

TEST(Probes, AnAppsProbeRunsOverTheFinalEvaluation) {
  register_probe("count-batches", [] { return std::make_unique<CountingProbe>(); });
  const fs::path out = testing::fresh_temp_dir("sparsetrain_probes_", "run");
  TrainOptions o;
  o.model = "mlp";
  o.dataset = "mnist";
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.epochs = 2;
  o.train_limit = 200;
  o.test_limit = 120;
  o.eval_batch_size = 50;
  o.progress = false;
  o.threads = 2;
  o.out_dir = out.string();
  o.probes = {"count-batches", "activation-stats"};
  Trainer t(o, [](const std::string&, int64_t, int64_t, int64_t, int64_t) {
    Graph copy;
    NodeId x = copy.input("image", {1, 28, 28});
    x = copy.flatten("flat", x);
    x = copy.linear("fc", x, {.out_features = 10});
    copy.set_output(x);
    return copy;
  });
  std::ostringstream log;
  t.run(log);
  std::ifstream count(out / "count.txt");
  int batches = -1;
  count >> batches;
  EXPECT_EQ(batches, 3) << "120 test images in batches of 50, final epoch only";
  EXPECT_NE(log.str().find("count-batches written to " + (out / "count.txt").string()),
            std::string::npos)
      << log.str();
  EXPECT_TRUE(fs::exists(out / "activation-stats.json"));
}

// ReLU of a known input: 2 samples x 3 features, feature 2 never positive.
TEST(Probes, ActivationStatisticsMatchTheirDefinition) {
  Graph g;
  NodeId x = g.input("x", {3});
  x = g.relu("relu", x);
  g.set_output(x);
  ActivationStatsProbe probe;
  probe.attach(g, "relu");
  g.forward(Tensor::from({2, 3}, {1.0f, -2.0f, -1.0f, 3.0f, 0.0f, -5.0f}), ExecMode::kInference);
  probe.detach();
  const std::vector<ActivationStats> r = probe.results();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].node, "relu");
  EXPECT_EQ(r[0].samples, 2);
  EXPECT_EQ(r[0].elements, 6);
  // Outputs 1, 0, 0, 3, 0, 0: mean 4/6, variance 10/6 - (4/6)^2.
  EXPECT_NEAR(r[0].mean, 4.0 / 6.0, 1e-12);
  EXPECT_NEAR(r[0].stddev, std::sqrt(10.0 / 6.0 - 16.0 / 36.0), 1e-9);
  EXPECT_NEAR(r[0].zero_fraction, 4.0 / 6.0, 1e-12);
  EXPECT_EQ(r[0].units, 3);
  EXPECT_EQ(r[0].dead_units, 2);  // features 1 and 2 are zero for both samples
}

}  // namespace
}  // namespace sparsetrain

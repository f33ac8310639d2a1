// The sparsity schedules applied to training: AC/DC's transitions (fresh
// top-k at each compression, momentum kept for kept weights, pruned weights
// back as zero and momentum reset at decompression), GMP's masked ramp
// (pruned weights exactly zero through momentum and weight decay, then
// compressed), RigL's drop-and-grow (counts exactly constant, grown weights
// and their momentum zero, the smallest dropped and the steepest grown), and
// whole runs on an MNIST subset: they learn, report phases and sparsity,
// and resume bit-identically.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli_runner.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/models.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/options.h"
#include "sparsetrain/recipe.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kBatch = 32;
constexpr int64_t kFeatures = 16;
constexpr int32_t kClasses = 4;

// A small MLP (16 -> 24 -> 20 -> 4) on one fixed random batch, trained with
// SGD (momentum 0.9, a large weight decay so a leak would show) and the
// controller called around each step exactly as Trainer::step does.
class Harness {
 public:
  Harness(const TrainOptions& o, int64_t steps_per_epoch) {
    NodeId x = graph_.input("input", {kFeatures});
    x = graph_.linear("fc1", x, {.out_features = 24});
    x = graph_.relu("relu1", x);
    x = graph_.linear("fc2", x, {.out_features = 20});
    x = graph_.relu("relu2", x);
    x = graph_.linear("fc3", x, {.out_features = kClasses});
    graph_.set_output(x);
    graph_.initialize(11);
    graph_.set_sparse_kernels("sparse");
    params_ = graph_.parameters();
    optimizer_ = std::make_unique<SGD>(0.9f, false, 0.05f);
    controller_ = std::make_unique<SparsityController>(make_sparsity_schedule(o, steps_per_epoch),
                                                       graph_, optimizer_.get());
    Rng rng(3);
    x_ = Tensor::empty({kBatch, kFeatures});
    for (int64_t i = 0; i < x_.numel(); ++i) x_[i] = rng.normal();
    for (int64_t i = 0; i < kBatch; ++i)
      labels_.push_back(static_cast<int32_t>(rng.below(kClasses)));
    controller_->start();
  }

  Graph& graph() { return graph_; }
  SGD& optimizer() { return *optimizer_; }
  SparsityController& controller() { return *controller_; }
  Parameter& weight(const std::string& node) { return graph_.parameter(node + ".weight"); }

  // The two halves of a step: transitions, then forward, backward, update.
  void begin(int64_t step) {
    graph_.set_step(step);
    controller_->before_step(step);
  }
  float finish(int64_t step) {
    Optimizer::zero_grad(params_);
    const Tensor logits = graph_.forward(x_, /*training=*/true);
    Tensor diff;
    const LossResult loss = softmax_cross_entropy(logits, labels_, &diff);
    graph_.backward(diff);
    controller_->after_backward(step);
    grads_.clear();
    for (const PrunableLayer& l : controller_->layers())
      grads_.push_back(graph_.parameter(l.param).grad.clone());
    for (Parameter* p : params_) apply_mask(*p, true);
    optimizer_->step(params_, 0.05f);
    for (Parameter* p : params_) apply_mask(*p, false);
    values_.clear();
    for (const PrunableLayer& l : controller_->layers())
      values_.push_back(graph_.parameter(l.param).value.clone());
    controller_->after_step(step);
    return loss.loss;
  }
  float step(int64_t s) {
    begin(s);
    return finish(s);
  }
  // Gradients right after backward and values right after the optimizer
  // step of the last step, per chosen layer (dense on RigL update steps).
  const std::vector<Tensor>& grads() const { return grads_; }
  const std::vector<Tensor>& values() const { return values_; }

 private:
  Graph graph_;
  std::vector<Parameter*> params_;
  std::unique_ptr<SGD> optimizer_;
  std::unique_ptr<SparsityController> controller_;
  Tensor x_;
  std::vector<int32_t> labels_;
  std::vector<Tensor> grads_, values_;
};

// Dense view of a weight and of its mask (stored positions, or the mask).
Tensor dense_of(const Parameter& p) {
  if (!p.compressed()) return p.value.clone();
  Tensor d = Tensor::zeros(p.dense_shape);
  for (std::size_t k = 0; k < p.dense_index.size(); ++k)
    d[p.dense_index[k]] = p.value[static_cast<int64_t>(k)];
  return d;
}
std::set<int64_t> kept_set(const Parameter& p) {
  std::set<int64_t> s;
  if (p.compressed()) return {p.dense_index.begin(), p.dense_index.end()};
  for (int64_t i = 0; i < p.mask.numel(); ++i)
    if (p.mask[i] != 0.0f) s.insert(i);
  return s;
}

int64_t total_weights(Harness& h) {
  int64_t n = 0;
  for (const PrunableLayer& l : h.controller().layers()) n += Tensor::count(l.shape);
  return n;
}

TrainOptions acdc_options(float sparsity, const std::string& storage) {
  TrainOptions o;
  o.epochs = 6;
  o.sparsity = sparsity;
  o.sparsity_method = "acdc";
  o.compress_epochs = {1, 3, 5};
  o.decompress_epochs = {2, 4};
  o.sparse_storage = storage;
  return o;
}

TEST(SparsityMethods, AcdcSwitchesPhasesAtTheScheduledSteps) {
  constexpr int64_t kSpe = 5;  // phases at steps 5 (c), 10 (d), 15 (c), 20 (d), 25 (c)
  Harness h(acdc_options(0.75f, "compressed"), kSpe);
  std::vector<std::pair<int64_t, std::string>> fired;
  HookHandle hook = h.graph().add_hook(HookPoint::kPhaseChange, "*",
                                       [&](HookEvent& e) { fired.emplace_back(e.step, e.phase); });
  const int64_t n = total_weights(h);
  const int64_t keep = std::llround(0.25 * static_cast<double>(n));
  std::vector<Tensor> before_decompress;
  for (int64_t s = 0; s < 30; ++s) {
    const bool decompresses = s == 10 || s == 20;
    if (decompresses) {
      before_decompress.clear();
      for (const char* node : {"fc1", "fc2", "fc3"})
        before_decompress.push_back(dense_of(h.weight(node)));
    }
    // Momentum of the dense weights just before a compression.
    std::vector<Tensor> momentum;
    if (s == 5 || s == 15) {
      for (const char* node : {"fc1", "fc2", "fc3"})
        momentum.push_back(h.optimizer().state_of(std::string(node) + ".weight")->slot[0].clone());
    }
    h.begin(s);
    const SparsityPhase phase = h.controller().schedule().phase_at(s);
    EXPECT_EQ(h.controller().phase(), phase) << "step " << s;
    int64_t total = 0;
    for (const char* node : {"fc1", "fc2", "fc3"}) {
      Parameter& p = h.weight(node);
      EXPECT_EQ(p.compressed(), phase == SparsityPhase::kCompressed) << node << " step " << s;
      total += p.compressed() ? p.value.numel() : 0;
    }
    if (phase == SparsityPhase::kCompressed) {
      EXPECT_EQ(total, keep) << "step " << s;
    }
    if (!momentum.empty()) {
      // Compression keeps the momentum of the kept weights.
      int l = 0;
      for (const char* node : {"fc1", "fc2", "fc3"}) {
        const Parameter& p = h.weight(node);
        const Tensor& slot = h.optimizer().state_of(p.name)->slot[0];
        ASSERT_EQ(slot.numel(), p.value.numel());
        for (std::size_t k = 0; k < p.dense_index.size(); ++k)
          ASSERT_EQ(slot[static_cast<int64_t>(k)], momentum[l][p.dense_index[k]]) << node;
        ++l;
      }
    }
    if (decompresses) {
      // Pruned weights come back as exact zeros, kept ones unchanged, and
      // the momentum starts afresh.
      int l = 0;
      for (const char* node : {"fc1", "fc2", "fc3"}) {
        const Parameter& p = h.weight(node);
        EXPECT_TRUE(p.value.equals(before_decompress[l])) << node;
        EXPECT_EQ(h.optimizer().state_of(p.name), nullptr) << node;
        ++l;
      }
    }
    h.finish(s);
  }
  const std::vector<std::pair<int64_t, std::string>> expected = {{5, "compressed"},
                                                                 {10, "decompressed"},
                                                                 {15, "compressed"},
                                                                 {20, "decompressed"},
                                                                 {25, "compressed"}};
  EXPECT_EQ(fired, expected);
}

TEST(SparsityMethods, AcdcMaskedStorageKeepsPrunedWeightsZero) {
  Harness h(acdc_options(0.75f, "masked"), 5);
  const int64_t keep = std::llround(0.25 * static_cast<double>(total_weights(h)));
  for (int64_t s = 0; s < 30; ++s) {
    h.step(s);
    const SparsityPhase phase = h.controller().phase();
    EXPECT_EQ(phase, h.controller().schedule().phase_at(s));
    if (phase != SparsityPhase::kMasked) {
      for (const char* node : {"fc1", "fc2", "fc3"}) EXPECT_FALSE(h.weight(node).masked());
      continue;
    }
    int64_t kept = 0;
    for (const char* node : {"fc1", "fc2", "fc3"}) {
      const Parameter& p = h.weight(node);
      ASSERT_TRUE(p.masked());
      for (int64_t i = 0; i < p.value.numel(); ++i) {
        if (p.mask[i] == 0.0f) {
          ASSERT_EQ(p.value[i], 0.0f) << node << "[" << i << "] step " << s;
        }
        kept += p.mask[i] != 0.0f;
      }
    }
    EXPECT_EQ(kept, keep) << "step " << s;
  }
}

TEST(SparsityMethods, GmpRampsMaskedThenCompresses) {
  TrainOptions o;
  o.epochs = 10;
  o.sparsity = 0.8f;
  o.sparsity_method = "gmp";
  o.prune_every_steps = 5;
  constexpr int64_t kSpe = 5;  // prunes at 5, 10, ..., 30; compressed from 30
  Harness h(o, kSpe);
  const SparsitySchedule& sched = h.controller().schedule();
  const GmpMethod& gmp = sched.method_as<GmpMethod>();
  ASSERT_EQ(gmp.start_step(), 5);
  ASSERT_EQ(gmp.end_step(), 30);
  const int64_t n = total_weights(h);
  std::vector<std::set<int64_t>> previous;
  double last_target = 0;
  for (int64_t s = 0; s < 50; ++s) {
    h.begin(s);
    if (gmp.prunes_at(s)) {
      const double target = gmp.target(s);
      EXPECT_GE(target, last_target);
      last_target = target;
      int64_t kept = 0;
      std::vector<std::set<int64_t>> now;
      for (const char* node : {"fc1", "fc2", "fc3"}) {
        now.push_back(kept_set(h.weight(node)));
        kept += static_cast<int64_t>(now.back().size());
      }
      EXPECT_EQ(kept, std::llround((1.0 - static_cast<float>(target)) * static_cast<double>(n)))
          << "step " << s;
      // Pruned weights are never chosen again.
      for (std::size_t l = 0; l < previous.size(); ++l)
        for (const int64_t i : now[l]) EXPECT_TRUE(previous[l].count(i)) << "step " << s;
      previous = now;
    }
    h.finish(s);
    const SparsityPhase phase = h.controller().phase();
    EXPECT_EQ(phase, sched.phase_at(s));
    for (const char* node : {"fc1", "fc2", "fc3"}) {
      const Parameter& p = h.weight(node);
      if (phase == SparsityPhase::kMasked) {
        ASSERT_TRUE(p.masked());
        for (int64_t i = 0; i < p.value.numel(); ++i)
          if (p.mask[i] == 0.0f) {
            ASSERT_EQ(p.value[i], 0.0f) << node << "[" << i << "] step " << s;
          }
      }
      EXPECT_EQ(p.compressed(), s >= 30) << node << " step " << s;
      EXPECT_EQ(p.masked(), s >= 5 && s < 30) << node << " step " << s;
    }
  }
  EXPECT_NEAR(h.controller().sparsity(), 0.8, 0.5 / static_cast<double>(n));
}

TEST(SparsityMethods, RiglKeepsCountsAndGrowsAtZero) {
  TrainOptions o;
  o.epochs = 8;
  o.sparsity = 0.8f;
  o.sparsity_method = "rigl";
  o.prune_every_steps = 5;
  o.drop_fraction = 0.3f;
  constexpr int64_t kSpe = 5;  // updates at 5, 10, ..., 25 (end: 75% of 40 steps = 30)
  Harness h(o, kSpe);
  const std::vector<PrunableLayer>& layers = h.controller().layers();
  const std::vector<int64_t> expected = layer_keep_counts(layers, 0.8f, Distribution::kErk);
  int updates = 0;
  for (int64_t s = 0; s < 40; ++s) {
    std::vector<std::set<int64_t>> before;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const Parameter& p = h.graph().parameter(layers[l].param);
      ASSERT_TRUE(p.compressed());
      ASSERT_EQ(p.value.numel(), expected[l]) << layers[l].node << " step " << s;
      before.push_back(kept_set(p));
    }
    h.step(s);
    const RiglMethod& rigl = h.controller().schedule().method_as<RiglMethod>();
    const bool update = rigl.updates_at(s);
    const double fraction = rigl.drop_fraction_at(s);
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const Parameter& p = h.graph().parameter(layers[l].param);
      const std::set<int64_t> after = kept_set(p);
      ASSERT_EQ(static_cast<int64_t>(after.size()), expected[l]);
      if (!update) {
        EXPECT_EQ(after, before[l]) << layers[l].node << " step " << s;
        continue;
      }
      const int64_t k = std::min<int64_t>(static_cast<int64_t>(fraction * expected[l]),
                                          Tensor::count(layers[l].shape) - expected[l]);
      std::vector<int64_t> grown, dropped, both;
      for (const int64_t i : after) (before[l].count(i) ? both : grown).push_back(i);
      for (const int64_t i : before[l])
        if (!after.count(i)) dropped.push_back(i);
      EXPECT_EQ(static_cast<int64_t>(grown.size()), k) << layers[l].node << " step " << s;
      EXPECT_EQ(dropped.size(), grown.size());
      // Grown weights and their momentum start at zero.
      const Tensor& momentum = h.optimizer().state_of(p.name)->slot[0];
      for (std::size_t j = 0; j < p.dense_index.size(); ++j) {
        if (before[l].count(p.dense_index[j])) continue;
        EXPECT_EQ(p.value[static_cast<int64_t>(j)], 0.0f);
        EXPECT_EQ(momentum[static_cast<int64_t>(j)], 0.0f);
      }
      // Dropped: the smallest magnitudes after the step; grown: the largest
      // dense gradients among the positions pruned before.
      const Tensor& w = h.values()[l];
      const Tensor& g = h.grads()[l];
      ASSERT_EQ(g.numel(), Tensor::count(layers[l].shape)) << "the update step's gradient is dense";
      float max_dropped = 0, min_both = 1e30f, min_grown = 1e30f, max_not_grown = 0;
      for (const int64_t i : dropped) max_dropped = std::max(max_dropped, std::fabs(w[i]));
      for (const int64_t i : both) min_both = std::min(min_both, std::fabs(w[i]));
      for (const int64_t i : grown) min_grown = std::min(min_grown, std::fabs(g[i]));
      for (int64_t i = 0; i < g.numel(); ++i)
        if (!before[l].count(i) && !after.count(i))
          max_not_grown = std::max(max_not_grown, std::fabs(g[i]));
      if (k > 0) {
        EXPECT_LE(max_dropped, min_both) << layers[l].node << " step " << s;
        EXPECT_GE(min_grown, max_not_grown) << layers[l].node << " step " << s;
      }
    }
    updates += update;
  }
  EXPECT_EQ(updates, 5);
}

TEST(SparsityMethods, StaticWithFirstAndLastDense) {
  TrainOptions o;
  o.sparsity = 0.5f;
  o.dense_first_last = 1;
  Harness h(o, 10);
  EXPECT_TRUE(h.controller().dense_first_last());
  ASSERT_EQ(h.controller().layers().size(), 1u);
  EXPECT_FALSE(h.weight("fc1").compressed());
  EXPECT_TRUE(h.weight("fc2").compressed());
  EXPECT_EQ(h.weight("fc2").value.numel(), 240);
  EXPECT_FALSE(h.weight("fc3").compressed());
  EXPECT_EQ(h.controller().phase(), SparsityPhase::kCompressed);
  // The mlp has no convolution: auto keeps every layer.
  o.dense_first_last = -1;
  Harness all(o, 10);
  EXPECT_EQ(all.controller().layers().size(), 3u);
}

// --- whole runs on an MNIST subset ---------------------------------------------

GraphFactory zoo() {
  return [](const std::string& model, int64_t c, int64_t h, int64_t w, int64_t k) {
    return build_model(model, ModelOptions{c, h, w, k});
  };
}

fs::path temp_dir(const std::string& name) {
  return testing::fresh_temp_dir("sparsetrain_methods_", name);
}

// 500 images, batch 50: 10 steps per epoch.
TrainOptions mnist_run(const std::string& method) {
  TrainOptions o;
  o.model = "mlp";
  o.dataset = "mnist";
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.train_limit = 500;
  o.test_limit = 500;
  o.epochs = 6;
  o.batch_size = 50;
  o.lr = 0.05f;
  o.lr_schedule = "constant";
  o.momentum = 0.9f;
  o.weight_decay = 5e-4f;
  o.threads = 2;
  o.kernels = "sparse";
  o.progress = false;
  o.sparsity = 0.9f;
  o.sparsity_method = method;
  return o;
}

std::vector<nlohmann::json> read_lines(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream f(p);
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(SparsityMethods, AcdcRunOnMnistSubsetLearns) {
  TrainOptions o = mnist_run("acdc");
  o.compress_epochs = {1, 3, 5};
  o.decompress_epochs = {2, 4};
  const fs::path dir = temp_dir("acdc");
  o.metrics_path = (dir / "metrics.jsonl").string();
  Trainer t(o, zoo());
  std::ostringstream log;
  const TrainResult r = t.run(log);
  EXPECT_GE(r.test_accuracy, 0.75) << log.str();
  ASSERT_EQ(r.epochs.size(), 6u);
  // An epoch's row shows the phase at its end: epoch 1 ends before the
  // compression at step 10.
  const std::vector<std::string> phases = {"dense",      "compressed",   "decompressed",
                                           "compressed", "decompressed", "compressed"};
  for (std::size_t e = 0; e < 6; ++e) EXPECT_EQ(r.epochs[e].phase, phases[e]) << "epoch " << e + 1;
  EXPECT_DOUBLE_EQ(r.epochs.back().sparsity, 1.0 - 26620.0 / 266200.0);
  EXPECT_EQ(r.epochs.back().sparse_layers, 3);
  EXPECT_LT(r.epochs.back().param_bytes, r.epochs.front().param_bytes / 3) << log.str();
  const SparsityReport rep = sparsity_report(t.graph());
  EXPECT_EQ(rep.prunable_nonzero, 26620);
  const std::string text = log.str();
  EXPECT_NE(text.find("sparsity: acdc, global, target 0.900"), std::string::npos) << text;
  EXPECT_NE(text.find("step 10 (epoch 1.00): compressed, sparsity 0.900"), std::string::npos)
      << text;
  EXPECT_NE(text.find("step 20 (epoch 2.00): decompressed"), std::string::npos) << text;
  int phase_events = 0;
  for (const nlohmann::json& j : read_lines(o.metrics_path)) {
    if (j["event"] == "sparsity") ++phase_events;
    if (j["event"] == "epoch") {
      EXPECT_TRUE(j.contains("phase"));
      EXPECT_TRUE(j.contains("sparsity"));
      EXPECT_GT(j["param_memory_bytes"].get<int64_t>(), 0);
    }
  }
  EXPECT_EQ(phase_events, 5);
  fs::remove_all(dir);
}

TEST(SparsityMethods, GmpAndRiglRunsReachTheirSparsity) {
  TrainOptions g = mnist_run("gmp");
  g.prune_every_steps = 5;  // prunes at 6, 11, ..., 36 (epochs 0.6 to 3.6)
  Trainer gt(g, zoo());
  std::ostringstream log;
  const TrainResult gr = gt.run(log);
  EXPECT_GE(gr.test_accuracy, 0.7) << log.str();
  EXPECT_EQ(gr.epochs.back().phase, "compressed");
  EXPECT_EQ(gr.epochs[1].phase, "masked");
  for (std::size_t e = 1; e < gr.epochs.size(); ++e)
    EXPECT_GE(gr.epochs[e].sparsity, gr.epochs[e - 1].sparsity);
  EXPECT_NEAR(gr.epochs.back().sparsity, 0.9, 1e-6);

  TrainOptions rg = mnist_run("rigl");
  rg.prune_every_steps = 10;
  Trainer rt(rg, zoo());
  const TrainResult rr = rt.run(log);
  EXPECT_GE(rr.test_accuracy, 0.7) << log.str();
  for (const EpochStats& e : rr.epochs) {
    EXPECT_EQ(e.phase, "compressed");
    EXPECT_DOUBLE_EQ(e.sparsity, rr.epochs.front().sparsity);
  }
  EXPECT_NEAR(rr.epochs.front().sparsity, 0.9, 1e-6);
}

TEST(SparsityMethods, ConvLayersOfLenet5) {
  // 200 images, batch 50: 4 steps per epoch. LeNet-5 has convolutions, so
  // conv1 and fc3 stay dense and conv2, fc1, fc2 are pruned.
  TrainOptions o = mnist_run("acdc");
  o.model = "lenet5";
  o.train_limit = 200;
  o.test_limit = 100;
  o.epochs = 3;
  o.compress_epochs = {1, 2.5};
  o.decompress_epochs = {2};
  Trainer acdc(o, zoo());
  std::ostringstream log;
  const TrainResult r = acdc.run(log);
  EXPECT_EQ(r.epochs[0].phase, "dense");
  EXPECT_EQ(r.epochs[1].phase, "compressed");
  EXPECT_EQ(r.epochs[2].phase, "compressed");
  Graph& g = acdc.graph();
  EXPECT_FALSE(g.parameter("conv1.weight").compressed());
  EXPECT_FALSE(g.parameter("fc3.weight").compressed());
  int64_t kept = 0, total = 0;
  for (const char* node : {"conv2", "fc1", "fc2"}) {
    const Parameter& p = g.parameter(std::string(node) + ".weight");
    ASSERT_TRUE(p.compressed()) << node;
    kept += p.value.numel();
    total += p.dense_numel();
  }
  EXPECT_EQ(kept, std::llround(0.1 * static_cast<double>(total)));
  EXPECT_NE(log.str().find("dense: conv1, fc3"), std::string::npos) << log.str();

  // RigL drops and grows in the conv weight too, at a constant count.
  TrainOptions rl = o;
  rl.sparsity_method = "rigl";
  rl.compress_epochs.clear();
  rl.decompress_epochs.clear();
  rl.epochs = 2;
  rl.prune_every_steps = 2;
  Trainer rigl(rl, zoo());
  const Parameter& conv2 = rigl.graph().parameter("conv2.weight");
  ASSERT_TRUE(conv2.compressed());
  const std::vector<int64_t> before = conv2.dense_index;
  const TrainResult rr = rigl.run(log);
  ASSERT_TRUE(conv2.compressed());
  EXPECT_EQ(conv2.dense_index.size(), before.size());
  std::vector<int64_t> a = before, b = conv2.dense_index;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_NE(a, b) << "no conv weight was dropped or grown";
  EXPECT_EQ(rr.epochs.front().sparsity, rr.epochs.back().sparsity);
}

// Stopping inside a phase and resuming gives the uninterrupted run's losses.
void expect_resume_matches(TrainOptions o, int64_t stop_at, const std::string& name) {
  TrainOptions whole = o;
  std::ostringstream log;
  Trainer a(whole, zoo());
  const TrainResult ra = a.run(log);

  const fs::path dir = temp_dir(name);
  TrainOptions first = o;
  first.out_dir = dir.string();
  first.max_steps = stop_at;
  Trainer b(first, zoo());
  const TrainResult rb = b.run(log);
  ASSERT_TRUE(rb.interrupted);
  TrainOptions rest = o;
  rest.out_dir = dir.string();
  rest.resume_dir = dir.string();
  Trainer c(rest, zoo());
  const TrainResult rc = c.run(log);
  std::vector<float> joined = rb.step_losses;
  joined.insert(joined.end(), rc.step_losses.begin(), rc.step_losses.end());
  ASSERT_EQ(joined.size(), ra.step_losses.size());
  for (std::size_t i = 0; i < joined.size(); ++i)
    ASSERT_EQ(joined[i], ra.step_losses[i]) << name << ": step " << i << "\n" << log.str();
  ASSERT_EQ(rc.epochs.size(), ra.epochs.size());
  for (std::size_t e = 0; e < ra.epochs.size(); ++e) {
    EXPECT_EQ(rc.epochs[e].phase, ra.epochs[e].phase) << name << " epoch " << e + 1;
    EXPECT_EQ(rc.epochs[e].sparsity, ra.epochs[e].sparsity) << name << " epoch " << e + 1;
  }
  EXPECT_EQ(rc.test_accuracy, ra.test_accuracy);
  fs::remove_all(dir);
}

TEST(SparsityMethods, ResumeContinuesAcdcGmpAndRigl) {
  TrainOptions acdc = mnist_run("acdc");
  acdc.epochs = 4;
  acdc.compress_epochs = {1, 3};
  acdc.decompress_epochs = {2};
  expect_resume_matches(acdc, 15, "acdc-compressed");  // inside the first compressed phase
  expect_resume_matches(acdc, 20, "acdc-boundary");    // the decompression is the next step
  TrainOptions gmp = mnist_run("gmp");
  gmp.epochs = 4;
  gmp.prune_every_steps = 4;
  expect_resume_matches(gmp, 13, "gmp-masked");  // mid-ramp: masked weights
  TrainOptions rigl = mnist_run("rigl");
  rigl.epochs = 3;
  rigl.prune_every_steps = 4;
  expect_resume_matches(rigl, 14, "rigl");
}

// --- an app's own method ----------------------------------------------------

// A method an app adds, all of it here: dense until --prune-start-epoch
// (default: half the run), then one pruning by magnitude at the target,
// fixed from then on.
class OneShotMethod final : public SparsityMethod {
 public:
  std::unique_ptr<SparsityMethod> clone() const override {
    return std::make_unique<OneShotMethod>(*this);
  }
  Distribution default_distribution() const override { return Distribution::kUniform; }
  std::vector<std::string> option_flags() const override { return {"--prune-start-epoch"}; }
  void plan(const TrainOptions& o, const SparsitySchedule& s) override {
    const double epoch =
        o.prune_start_epoch != -1.0 ? o.prune_start_epoch : 0.5 * static_cast<double>(o.epochs);
    prune_step_ = epoch_to_step(epoch, s.steps_per_epoch);
  }
  SparsityPhase phase_at(const SparsitySchedule& s, int64_t step) const override {
    return step < prune_step_ ? SparsityPhase::kDense : s.sparse_phase();
  }
  std::string describe(const SparsitySchedule& s) const override {
    return "; pruned once at step " + std::to_string(prune_step_);
  }
  void before_step(SparsityController& c, int64_t step) override {
    if (step != prune_step_) return;
    const SparsitySchedule& s = c.schedule();
    c.apply_masks(magnitude_masks(c.graph(), c.layers(), s.sparsity, s.distribution),
                  !s.masked_storage);
    c.set_phase(s.sparse_phase(), step);
    c.record(step, "prune");
  }

 private:
  int64_t prune_step_ = 0;
};

void register_one_shot() {
  static const bool registered = [] {
    register_sparsity_method("one-shot", [] { return std::make_unique<OneShotMethod>(); });
    return true;
  }();
  (void)registered;
}

TEST(SparsityMethods, AnAppsOwnMethodRunsThroughTheController) {
  register_one_shot();
  EXPECT_EQ(sparsity_method_names(),
            (std::vector<std::string>{"static", "acdc", "gmp", "rigl", "one-shot"}));
  EXPECT_THROW(register_sparsity_method("gmp", [] { return std::make_unique<OneShotMethod>(); }),
               Error);
  TrainOptions o;
  o.epochs = 4;
  o.sparsity = 0.75f;
  o.sparsity_method = "one-shot";
  o.prune_start_epoch = 1.5;
  EXPECT_NO_THROW(validate(o));
  constexpr int64_t kSpe = 4;  // pruned at step 6
  Harness h(o, kSpe);
  std::vector<std::pair<int64_t, std::string>> fired;
  HookHandle hook = h.graph().add_hook(HookPoint::kPhaseChange, "*",
                                       [&](HookEvent& e) { fired.emplace_back(e.step, e.phase); });
  const SparsitySchedule& sched = h.controller().schedule();
  EXPECT_EQ(sched.describe(), "one-shot, uniform, target 0.750; pruned once at step 6");
  const std::vector<PrunableLayer>& layers = h.controller().layers();
  const std::vector<int64_t> expected = layer_keep_counts(layers, 0.75f, Distribution::kUniform);
  std::vector<std::set<int64_t>> kept_at_prune;
  for (int64_t s = 0; s < 16; ++s) {
    EXPECT_TRUE(std::isfinite(h.step(s)));
    EXPECT_EQ(h.controller().phase(), s < 6 ? SparsityPhase::kDense : SparsityPhase::kCompressed)
        << "step " << s;
    EXPECT_EQ(h.controller().phase(), sched.phase_at(s)) << "step " << s;
    const std::vector<SparsityEvent> events = h.controller().take_events();
    if (s == 6) {
      ASSERT_EQ(events.size(), 2u);
      EXPECT_EQ(events[0].kind, "phase");
      EXPECT_EQ(events[1].kind, "prune");
      EXPECT_NEAR(events[1].sparsity, 0.75, 1e-12);
    } else {
      EXPECT_TRUE(events.empty()) << "step " << s;
    }
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const Parameter& p = h.graph().parameter(layers[l].param);
      ASSERT_EQ(p.compressed(), s >= 6) << layers[l].node << " step " << s;
      if (s < 6) continue;
      EXPECT_EQ(p.value.numel(), expected[l]) << layers[l].node << " step " << s;
      // The masks stay as pruned.
      if (s == 6) kept_at_prune.push_back(kept_set(p));
      EXPECT_EQ(kept_set(p), kept_at_prune[l]) << layers[l].node << " step " << s;
    }
  }
  EXPECT_EQ(fired, (std::vector<std::pair<int64_t, std::string>>{{6, "compressed"}}));
  // A resumed controller adopts its phase.
  SparsityController resumed(make_sparsity_schedule(o, kSpe), h.graph(), &h.optimizer());
  resumed.resume(10);
  EXPECT_EQ(resumed.phase(), SparsityPhase::kCompressed);
  // The options know it: another method refuses its option naming it, an
  // unknown name lists it.
  TrainOptions other = o;
  other.sparsity_method = "static";
  try {
    validate(other);
    ADD_FAILURE() << "static accepted --prune-start-epoch";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "--prune-start-epoch applies to --sparsity-method gmp, rigl or one-shot only"),
              std::string::npos)
        << e.what();
  }
  try {
    make_sparsity_method("snip");
    ADD_FAILURE() << "no error for an unknown method";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(expected static, acdc, gmp, rigl or one-shot)"),
              std::string::npos)
        << e.what();
  }
}

// The settings schema reads the registry: the app's method is a value of
// --sparsity-method and of a recipe's sparsity.method, and the per-method
// settings it reads (option_flags) are allowed for it and refused for a
// method that does not read them.
TEST(SparsityMethods, AnAppsOwnMethodIsASettingsChoice) {
  register_one_shot();
  const OptionRow& method = option_row("sparsity_method");
  const std::vector<std::string> choices = option_choices(method);
  EXPECT_NE(std::find(choices.begin(), choices.end(), "one-shot"), choices.end());
  const std::vector<std::string> readers = option_methods(option_row("prune_start_epoch"));
  EXPECT_EQ(readers, (std::vector<std::string>{"gmp", "rigl", "one-shot"}));
  EXPECT_EQ(option_methods(option_row("drop_fraction")), std::vector<std::string>{"rigl"});
  const Recipe recipe = Recipe::parse(
      "model: mlp\nepochs: 4\nsparsity:\n  method: one-shot\n  target: 0.5\n"
      "  start_epoch: 2\n",
      "test");
  TrainOptions o = recommended_options("mlp");
  recipe.apply(o);
  EXPECT_EQ(o.sparsity_method, "one-shot");
  EXPECT_EQ(o.prune_start_epoch, 2.0);
  EXPECT_NO_THROW(validate(o));
  o.drop_fraction = 0.5f;
  try {
    validate(o);
    ADD_FAILURE() << "a rigl-only setting under one-shot was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--drop-fraction applies to --sparsity-method rigl only"),
              std::string::npos)
        << e.what();
  }
}

TEST(SparsityMethods, AnAppsOwnMethodTrainsThroughTheTrainer) {
  register_one_shot();
  TrainOptions o = mnist_run("one-shot");
  o.epochs = 2;  // 20 steps, pruned at step 10
  Trainer t(o, zoo());
  std::ostringstream log;
  const TrainResult r = t.run(log);
  ASSERT_EQ(r.epochs.size(), 2u);
  EXPECT_EQ(r.epochs[0].phase, "dense");
  EXPECT_EQ(r.epochs[1].phase, "compressed");
  EXPECT_NEAR(r.epochs[1].sparsity, 0.9, 1e-6);
  const std::string text = log.str();
  EXPECT_NE(text.find("sparsity: one-shot, uniform, target 0.900; pruned once at step 10"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("step 10 (epoch 1.00): compressed, sparsity 0.900"), std::string::npos)
      << text;
}

TEST(SparsityMethods, CommandLineErrorsNameTheFlag) {
  auto expect_error = [](const std::string& args, const std::string& flag) {
    const testing::RunResult r = testing::run_cli("train " + args, /*merge_stderr=*/true);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.out.find(flag), std::string::npos) << args << "\n" << r.out;
  };
  expect_error("--sparsity 0.9 --sparsity-method acdc --compress-epochs 3,1 --decompress-epochs 2",
               "--compress-epochs");
  expect_error("--sparsity 0.9 --sparsity-method gmp --drop-fraction 1.5", "--drop-fraction");
  expect_error("--sparsity 0.9 --dense-first-last maybe", "--dense-first-last");
  expect_error("--sparsity 0.9 --sparsity-method snip", "--sparsity-method");
  expect_error("--sparsity-method rigl", "--sparsity");
  expect_error("--sparsity 0.9 --distribution normal", "--distribution");
  expect_error("--sparsity 0.9 --sparsity-method gmp --prune-every-steps 0", "--prune-every-steps");
}

}  // namespace
}  // namespace sparsetrain

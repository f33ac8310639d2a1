// Fusion across node boundaries (Graph::set_fusion): a training step with
// the executor's fusions (BatchNorm + ReLU, Add + ReLU, BatchNorm + Add +
// ReLU, a sparse convolution forming its BatchNorm's statistics) gives the
// unfused step's loss, gradients and BatchNorm statistics to float
// rounding, on dense and compressed ResNets; the fusions really run; and a
// hook on a fused node sees the tensors of the unfused step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "nodes/nodes.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/models.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/sparsity.h"
#include "tests/graph_test_util.h"

namespace sparsetrain {
namespace {

using testing::labels_for;
using testing::random_tensor;
using testing::values;

// |got - want| <= 1e-5 * max(|want|, largest |want|) element-wise: float
// rounding of a sum that may be formed in another order, nothing more.
void expect_close(const std::vector<float>& want, const std::vector<float>& got,
                  const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  float scale = 0.0f;
  for (float v : want) scale = std::max(scale, std::abs(v));
  int reported = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double tol = 1e-5 * std::max(std::abs(want[i]), scale) + 1e-30;
    if (!(std::abs(static_cast<double>(got[i]) - want[i]) <= tol) && reported++ < 3) {
      ADD_FAILURE() << what << "[" << i << "]: fused " << got[i] << ", unfused " << want[i];
    }
  }
}

// A small ResNet-20 (8x8 images), dense or with every layer but the first
// and last compressed at 90% on the sparse kernels (the batch-innermost
// layout, where BatchNorm fuses).
Graph make_resnet(bool sparse) {
  Graph g = build_model("resnet20", {.channels = 3, .height = 8, .width = 8});
  g.initialize(11);
  if (sparse) {
    const std::vector<PrunableLayer> layers = prunable_layers(g, true);
    const std::vector<Tensor> masks = magnitude_masks(g, layers, 0.9f, Distribution::kUniform);
    for (std::size_t k = 0; k < layers.size(); ++k) g.compress(layers[k].node, masks[k]);
    g.set_sparse_kernels("sparse");
  }
  return g;
}

struct StepResult {
  double loss = 0;
  std::vector<float> logits;
  std::vector<std::vector<float>> grads, buffers;
};

// One SGD step (forward, cross-entropy, backward, update), recording the
// loss, the logits, every gradient and every buffer (BatchNorm's running
// statistics) after the step.
StepResult step(Graph& g, Optimizer& opt, const Tensor& x, const std::vector<int32_t>& labels) {
  StepResult r;
  const Tensor logits = g.forward(x, ExecMode::kTrain, 5);
  r.logits = values(logits);
  Tensor diff;
  r.loss = softmax_cross_entropy(logits, labels, &diff).loss;
  g.backward(diff);
  for (Parameter* p : g.parameters()) {
    if (p->trainable()) {
      r.grads.push_back(values(p->grad));
    } else {
      r.buffers.push_back(values(p->value));
    }
  }
  opt.step(g.parameters(), 0.05f);
  opt.zero_grad(g.parameters());
  return r;
}

void expect_same_steps(bool sparse) {
  Graph fused = make_resnet(sparse), unfused = make_resnet(sparse);
  unfused.set_fusion(false);
  EXPECT_TRUE(fused.fusion());
  EXPECT_FALSE(unfused.fusion());
  fused.set_profiling(true);
  unfused.set_profiling(true);
  OptimizerOptions sgd;
  sgd.weight_decay = 5e-4f;
  const auto opt_a = make_optimizer(sgd), opt_b = make_optimizer(sgd);
  for (int s = 0; s < 3; ++s) {
    SCOPED_TRACE("step " + std::to_string(s));
    // Each step starts from the unfused graph's parameters and buffers:
    // BatchNorm statistics formed by a convolution differ from BatchNorm's
    // own in the last bits, and training amplifies such differences step
    // by step (it is the step that must agree).
    const std::vector<Parameter*> from = unfused.parameters(), to = fused.parameters();
    ASSERT_EQ(from.size(), to.size());
    for (std::size_t k = 0; k < from.size(); ++k) to[k]->value.copy_from(from[k]->value);
    // A batch of 64 makes the 8x8 and 4x4 planes multiples of 4 KiB, which
    // the executor pads (chwn_padded_plane); the 2x2 ones stay packed.
    const Tensor x = random_tensor({64, 3, 8, 8}, 100 + s);
    const std::vector<int32_t> labels = labels_for(64, 200 + s);
    const StepResult a = step(fused, *opt_a, x, labels);
    const StepResult b = step(unfused, *opt_b, x, labels);
    EXPECT_NEAR(a.loss, b.loss, 1e-6 * std::max(1.0, std::abs(b.loss)));
    expect_close(b.logits, a.logits, "logits");
    ASSERT_EQ(a.grads.size(), b.grads.size());
    for (std::size_t k = 0; k < a.grads.size(); ++k)
      expect_close(b.grads[k], a.grads[k], "gradient " + std::to_string(k));
    ASSERT_EQ(a.buffers.size(), b.buffers.size());
    for (std::size_t k = 0; k < a.buffers.size(); ++k)
      expect_close(b.buffers[k], a.buffers[k], "buffer " + std::to_string(k));
  }
  // Which BatchNorms took their batch statistics from the convolution
  // before them (every one after a convolution on the sparse kernels: the
  // compressed layers and the stem on the direct path).
  const auto given = [](Graph& g) {
    int count = 0;
    for (const NodeTiming& t : g.profile())
      if (t.type == std::string("batchnorm2d"))
        count += nodes::as_statistics_consumer(g.node(t.name))->statistics_given();
    return count;
  };
  EXPECT_EQ(given(fused), sparse ? 21 : 0);
  EXPECT_EQ(given(unfused), 0);
  // Which convolutions padded their output's channel planes: on the sparse
  // kernels (the stem on the direct path included) and with fusion, those
  // whose output planes are multiples of 4 KiB (the first two stages).
  const auto padded = [sparse](Graph& g) {
    int count = 0;
    for (const NodeTiming& t : g.profile())
      if (t.type == std::string("conv2d")) {
        const bool want = sparse && !t.name.starts_with("layer3");
        if (t.padded_output) ++count;
        if (g.fusion()) {
          EXPECT_EQ(t.padded_output, want) << t.name;
        }
      }
    return count;
  };
  EXPECT_EQ(padded(fused), sparse ? 14 : 0);
  EXPECT_EQ(padded(unfused), 0);
  // Which Adds the fused graph folded into their BatchNorm (no forward of
  // their own: 0 ms) and which ReLUs into their producer.
  int folded_adds = 0, adds = 0, folded_relus = 0, masked_relus = 0;
  for (const NodeTiming& t : fused.profile()) {
    if (t.type == std::string("add")) {
      ++adds;
      folded_adds += t.forward_ms == 0.0;
    }
    if (t.type == std::string("relu")) {
      folded_relus += t.forward_ms == 0.0;
      // The backward of a ReLU after an Add, applied by the convolution that
      // sends it the last gradient (BackwardArgs::relu_output).
      masked_relus += t.backward_ms == 0.0 && t.name.find("relu2") != std::string::npos;
    }
  }
  for (const NodeTiming& t : unfused.profile())
    if (t.type == std::string("add") || t.type == std::string("relu")) {
      EXPECT_GT(t.forward_ms, 0.0) << t.name << " runs on its own without fusion";
    }
  EXPECT_EQ(adds, 9);
  if (sparse) {
    // In the batch-innermost layout every block's BatchNorm computes the
    // Add and its ReLU (the first block's too: its shortcut is the stem's
    // output, in the same layout).
    EXPECT_EQ(folded_adds, 9);
    EXPECT_GE(folded_relus, 9 + 9);
    // Every block's but the last (whose ReLU feeds the pooling).
    EXPECT_EQ(masked_relus, 8);
  } else {
    // Dense BatchNorm runs oneDNN's channel-last kernel, which fuses
    // nothing; the Adds still apply their ReLU.
    EXPECT_EQ(folded_adds, 0);
    EXPECT_GE(folded_relus, 9);
    EXPECT_EQ(masked_relus, 0);
  }
}

// Add on padded channel planes: the sum keeps the planes both inputs share,
// and is packed when they differ (one input padded, the other not), with
// the same values either way; its gradient keeps the planes it came with.
TEST(Fusion, AddSumsInputsWhateverTheirPlanes) {
  const Shape shape = {16, 3, 8, 8};  // planes of 1024 floats: padded to 1040
  const int64_t plane = chwn_padded_plane(16, 8, 8);
  ASSERT_GT(plane, 1024);
  Tensor a = Tensor::empty(shape, Layout::kCHWN), b = Tensor::empty(shape, Layout::kCHWN);
  for (int64_t i = 0; i < a.numel(); ++i) {
    a[i] = static_cast<float>(i % 7) - 3.0f;
    b[i] = static_cast<float>(i % 5) * 0.5f;
  }
  Tensor want = Tensor::empty(shape, Layout::kCHWN);
  for (int64_t i = 0; i < a.numel(); ++i) want[i] = a[i] + b[i];
  const auto padded = [&](const Tensor& t) {
    return to_layout_of(t, Tensor::empty_planes(shape, plane));
  };
  const std::unique_ptr<Node> add = nodes::make_add("add");
  for (const auto& [x, y, planes] :
       {std::tuple{padded(a), padded(b), plane}, std::tuple{padded(a), b, int64_t{0}},
        std::tuple{a, padded(b), int64_t{0}}}) {
    const std::vector<Tensor> in = {x, y};
    ForwardArgs args;
    args.inputs = in;
    const Tensor sum = add->forward(args);
    EXPECT_EQ(sum.plane(), planes);
    EXPECT_TRUE(sum.equals(want));
    BackwardArgs back;
    back.diff_dst = &sum;
    back.diffs_may_share = true;
    const std::vector<Tensor> diff = add->backward(back);
    EXPECT_EQ(diff[1].plane(), planes);
    EXPECT_TRUE(diff[1].equals(want));
  }
}

TEST(Fusion, CompressedResNetStepMatchesTheUnfusedStep) { expect_same_steps(true); }
TEST(Fusion, DenseResNetStepMatchesTheUnfusedStep) { expect_same_steps(false); }

// Hooks on a fused node: the forward hook on a BatchNorm whose Add was folded
// in sees the BatchNorm's own output (that node then runs unfused, the other
// blocks stay fused), and backward hooks see the unfused step's gradients
// (a ReLU they watch runs its own backward).
TEST(Fusion, HooksOnAFusedNodeSeeTheUnfusedTensors) {
  struct Seen {
    std::vector<float> bn_out, bn_diff, add_diff, add_out, relu_diff, conv_out, relu1_diff;
    bool bn_given = false, next_bn_given = false;
  };
  const auto run = [](bool fusion, Seen* seen, std::vector<NodeTiming>* profile) {
    Graph g = make_resnet(true);
    g.set_fusion(fusion);
    g.set_profiling(true);
    std::vector<HookHandle> hooks;
    hooks.push_back(g.add_hook(HookPoint::kAfterForward, "layer1.1.bn2",
                               [seen](HookEvent& e) { seen->bn_out = values(*e.output); }));
    hooks.push_back(g.add_hook(HookPoint::kAfterBackward, "layer1.1.bn2",
                               [seen](HookEvent& e) { seen->bn_diff = values(*e.diff_dst); }));
    // Backward hooks do not stop the forward fusions: layer2.1's sum is
    // still computed by its BatchNorm.
    hooks.push_back(g.add_hook(HookPoint::kAfterBackward, "layer2.1.add",
                               [seen](HookEvent& e) { seen->add_diff = values(*e.diff_dst); }));
    hooks.push_back(g.add_hook(HookPoint::kAfterForward, "layer3.0.add",
                               [seen](HookEvent& e) { seen->add_out = values(*e.output); }));
    // A forward hook on a convolution: its BatchNorm forms its own statistics.
    hooks.push_back(g.add_hook(HookPoint::kAfterForward, "layer2.2.conv1",
                               [seen](HookEvent& e) { seen->conv_out = values(*e.output); }));
    // A backward hook on a ReLU after an Add: its backward runs on its own.
    hooks.push_back(g.add_hook(HookPoint::kAfterBackward, "layer1.2.relu2",
                               [seen](HookEvent& e) { seen->relu_diff = values(e.diff_src[0]); }));
    // A backward hook on the ReLU between a block's convolutions: the first
    // keeps its output packed (the hook sees packed gradients).
    hooks.push_back(g.add_hook(HookPoint::kAfterBackward, "layer1.0.relu1", [seen](HookEvent& e) {
      EXPECT_FALSE(e.diff_dst->padded());
      EXPECT_FALSE(e.diff_src[0].padded());
      seen->relu1_diff = values(e.diff_src[0]);
    }));
    const auto opt = make_optimizer({});
    // Planes of 4 KiB multiples in the first two stages (padded where free).
    const Tensor x = random_tensor({64, 3, 8, 8}, 7);
    step(g, *opt, x, labels_for(64, 8));
    *profile = g.profile();
    seen->bn_given = nodes::as_statistics_consumer(g.node("layer2.2.bn1"))->statistics_given();
    seen->next_bn_given = nodes::as_statistics_consumer(g.node("layer2.2.bn2"))->statistics_given();
  };
  Seen fused, unfused;
  std::vector<NodeTiming> fused_profile, unfused_profile;
  run(true, &fused, &fused_profile);
  run(false, &unfused, &unfused_profile);
  ASSERT_FALSE(unfused.bn_out.empty());
  expect_close(unfused.bn_out, fused.bn_out, "layer1.1.bn2 output");
  expect_close(unfused.bn_diff, fused.bn_diff, "layer1.1.bn2 diff_dst");
  expect_close(unfused.add_diff, fused.add_diff, "layer2.1.add diff_dst");
  expect_close(unfused.add_out, fused.add_out, "layer3.0.add output");
  expect_close(unfused.conv_out, fused.conv_out, "layer2.2.conv1 output");
  EXPECT_FALSE(fused.bn_given) << "a forward hook on its convolution";
  EXPECT_TRUE(fused.next_bn_given);
  EXPECT_FALSE(unfused.next_bn_given);
  ASSERT_FALSE(fused.relu_diff.empty());
  expect_close(unfused.relu_diff, fused.relu_diff, "layer1.2.relu2 diff_src");
  ASSERT_FALSE(fused.relu1_diff.empty());
  expect_close(unfused.relu1_diff, fused.relu1_diff, "layer1.0.relu1 diff_src");
  const auto timing = [&](const std::string& name) {
    for (const NodeTiming& t : fused_profile)
      if (t.name == name) return t;
    ADD_FAILURE() << "no node " << name;
    return NodeTiming{};
  };
  const auto forward_ms = [&](const std::string& name) { return timing(name).forward_ms; };
  EXPECT_GT(timing("layer1.2.relu2").backward_ms, 0.0) << "a backward hook keeps it unfused";
  EXPECT_EQ(timing("layer1.1.relu2").backward_ms, 0.0) << "applied by layer1.2.conv1";
  EXPECT_GT(forward_ms("layer1.1.add"), 0.0) << "a forward hook on its BatchNorm unfuses it";
  EXPECT_GT(forward_ms("layer3.0.add"), 0.0) << "a forward hook on the Add unfuses it";
  EXPECT_EQ(forward_ms("layer2.1.add"), 0.0) << "a backward hook leaves the sum fused";
  EXPECT_EQ(forward_ms("layer1.0.add"), 0.0);
  EXPECT_FALSE(timing("layer1.0.conv1").padded_output) << "a backward hook on its ReLU";
  EXPECT_FALSE(timing("layer2.2.conv1").padded_output) << "a forward hook on it";
  EXPECT_TRUE(timing("layer1.1.conv1").padded_output);
  EXPECT_TRUE(timing("layer2.1.conv1").padded_output);
  EXPECT_FALSE(timing("layer1.1.conv2").padded_output) << "hooks on its BatchNorm";
  // The block outputs reach layer2.1.add, which a hook watches: whatever
  // feeds that chain of Adds stays packed.
  EXPECT_FALSE(timing("conv1").padded_output);
  EXPECT_FALSE(timing("layer1.0.conv2").padded_output);
}

}  // namespace
}  // namespace sparsetrain

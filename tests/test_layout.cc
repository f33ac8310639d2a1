// Layouts: to_layout between every pair of activation layouts (and 2-D
// plain / kCN) on odd shapes, the reorder counter, and the sparse layout
// domain in a graph: a ResNet-style network with sparse block convolutions
// reorders only where the dense stem hands over to the sparse blocks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/models.h"
#include "sparsetrain/rng.h"
#include "tests/tensor_fill.h"

namespace sparsetrain {
namespace {

using testing::normals;
using testing::random_mask;

constexpr Layout kLayouts4[] = {Layout::kPlain, Layout::kNCHW, Layout::kNHWC, Layout::kCHWN};

// Distinct values: every element is its own NCHW flat index.
Tensor iota_nchw(const Shape& shape) {
  Tensor t = Tensor::empty(shape, Layout::kNCHW);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(i);
  return t;
}

// Every element of `t` sits where offset4 says for its layout.
void expect_elements_in_place(const Tensor& t, const Tensor& nchw) {
  const Shape& s = t.shape();
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t c = 0; c < s[1]; ++c)
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t w = 0; w < s[3]; ++w) {
          const float want = nchw[offset4(Layout::kNCHW, s, n, c, h, w)];
          const float got = t[offset4(t.layout(), s, n, c, h, w)];
          if (got != want) {
            ADD_FAILURE() << layout_name(t.layout()) << " (" << n << ", " << c << ", " << h << ", "
                          << w << "): got " << got << ", want " << want;
            return;
          }
        }
}

// Around the 32 x 32 tile and the 4 x 4 vector block, a single element, and
// sizes above the parallel threshold.
const std::vector<Shape> kShapes4 = {{1, 1, 1, 1},   {1, 3, 5, 7},   {2, 1, 1, 1},  {3, 5, 7, 2},
                                     {17, 3, 5, 5},  {33, 37, 3, 1}, {4, 64, 8, 8}, {128, 16, 4, 4},
                                     {5, 31, 9, 11}, {64, 65, 3, 3}};

TEST(ToLayout, EveryPairOfActivationLayouts) {
  for (const Shape& shape : kShapes4) {
    const Tensor nchw = iota_nchw(shape);
    for (Layout from : kLayouts4) {
      const Tensor src = to_layout(nchw, from);
      ASSERT_EQ(src.layout(), from);
      for (Layout to : kLayouts4) {
        SCOPED_TRACE(shape_to_string(shape) + " " + layout_name(from) + " -> " + layout_name(to));
        const Tensor dst = to_layout(src, to);
        EXPECT_EQ(dst.layout(), to);
        EXPECT_EQ(dst.shape(), shape);
        expect_elements_in_place(dst, nchw);
        // And back, bit for bit.
        EXPECT_TRUE(to_layout(dst, from).equals(src));
      }
    }
  }
}

TEST(ToLayout, PlainAndFeaturesByBatch) {
  for (const Shape& shape : std::vector<Shape>{
           {1, 1}, {1, 9}, {9, 1}, {5, 3}, {33, 31}, {128, 300}, {50, 784}, {3, 100000}}) {
    SCOPED_TRACE(shape_to_string(shape));
    Tensor plain = Tensor::empty(shape);
    for (int64_t i = 0; i < plain.numel(); ++i) plain[i] = static_cast<float>(i);
    const Tensor cn = to_layout(plain, Layout::kCN);
    EXPECT_EQ(cn.layout(), Layout::kCN);
    const int64_t n = shape[0], f = shape[1];
    bool ok = true;
    for (int64_t i = 0; i < n && ok; ++i)
      for (int64_t j = 0; j < f && ok; ++j) ok = cn[j * n + i] == plain[i * f + j];
    EXPECT_TRUE(ok);
    EXPECT_TRUE(to_layout(cn, Layout::kPlain).equals(plain));
  }
}

TEST(ToLayout, CountsCopiesOnlyAndRefusesWhatItCannotReorder) {
  const Tensor x = iota_nchw({2, 3, 4, 5});
  const int64_t before = reorder_count();
  const Tensor view = to_layout(x, Layout::kPlain);
  EXPECT_EQ(view.data(), x.data());
  EXPECT_EQ(to_layout(x, Layout::kNCHW).data(), x.data());
  EXPECT_EQ(reorder_count(), before);
  const Tensor chwn = to_layout(x, Layout::kCHWN);
  EXPECT_EQ(reorder_count(), before + 1);
  to_layout(chwn, Layout::kNHWC);
  EXPECT_EQ(reorder_count(), before + 2);
  EXPECT_THROW(to_layout(x, Layout::kCN), Error);
  EXPECT_THROW(to_layout(Tensor::zeros({3, 4}), Layout::kCHWN), Error);
  EXPECT_THROW(to_layout(Tensor::zeros({2, 3, 4}), Layout::kNHWC), Error);
}

// --- the sparse layout domain in a graph ---------------------------------------

// Compresses every conv2d node except `dense_conv` at density 0.5.
int compress_convs(Graph& g, const std::string& dense_conv) {
  int count = 0;
  for (int i = 0; i < g.size(); ++i) {
    Node& n = g.node(NodeId{i});
    if (std::string(n.type()) != "conv2d" || n.name() == dense_conv) continue;
    g.compress(n.name(), random_mask(g.parameter(n.name() + ".weight").value.shape(), 100 + i));
    ++count;
  }
  return count;
}

// One training step; returns the reorders it made.
int64_t step_reorders(Graph& g, const Tensor& x, const std::vector<int32_t>& labels) {
  const int64_t before = reorder_count();
  const Tensor logits = g.forward(x, /*training=*/true);
  Tensor diff = Tensor::empty(logits.shape());
  softmax_cross_entropy(logits, labels, &diff);
  g.backward(diff);
  return reorder_count() - before;
}

// stem conv (dense) -> BN -> ReLU -> [sparse conv -> BN -> ReLU -> sparse conv
// -> BN -> Add -> ReLU] x 2 -> global avgpool -> linear.
Graph small_resnet() {
  Graph g;
  NodeId x = g.input("input", {3, 8, 8});
  x = g.conv2d("stem", x, {.out_channels = 8, .kernel = 3, .padding = 1, .bias = false});
  x = g.batchnorm2d("stem.bn", x);
  x = g.relu("stem.relu", x);
  for (int b = 0; b < 2; ++b) {
    const std::string p = "block" + std::to_string(b);
    NodeId y = g.conv2d(p + ".conv1", x, {.out_channels = 8, .kernel = 3, .padding = 1});
    y = g.batchnorm2d(p + ".bn1", y);
    y = g.relu(p + ".relu1", y);
    y = g.conv2d(p + ".conv2", y, {.out_channels = 8, .kernel = 3, .padding = 1});
    y = g.batchnorm2d(p + ".bn2", y);
    y = g.add(p + ".add", y, x);
    x = g.relu(p + ".relu2", y);
  }
  x = g.global_avgpool("pool", x);
  x = g.linear("fc", x, {.out_features = 10});
  g.set_output(x);
  g.initialize(3);
  return g;
}

// The graph input NCHW -> CHWN for the dense stem, which feeds only sparse
// convolutions and so runs on the direct kernels in CHWN. Nothing else, in
// either direction.
constexpr int64_t kDomainChangeReorders = 1;

TEST(SparseLayoutDomain, ReordersOnlyWhereTheDomainChanges) {
  Graph g = small_resnet();
  EXPECT_EQ(compress_convs(g, "stem"), 4);
  g.set_sparse_kernels("sparse");
  std::map<std::string, Layout> layouts;
  HookHandle h = g.add_hook(HookPoint::kAfterForward, "*",
                            [&](HookEvent& e) { layouts[e.node] = e.output->layout(); });
  const Tensor x = normals({6, 3, 8, 8}, 1);
  const std::vector<int32_t> labels{0, 1, 2, 3, 4, 5};
  EXPECT_EQ(step_reorders(g, x, labels), kDomainChangeReorders);
  EXPECT_EQ(step_reorders(g, x, labels), kDomainChangeReorders);  // and every step
  for (const char* node :
       {"stem", "stem.relu", "block0.conv1", "block0.bn1", "block0.relu1", "block0.conv2",
        "block0.bn2", "block0.add", "block0.relu2", "block1.add", "block1.relu2"}) {
    EXPECT_EQ(layouts[node], Layout::kCHWN) << node;
  }
  EXPECT_EQ(layouts["pool"], Layout::kPlain);
  EXPECT_EQ(g.sparse_layer_count(), 4);
  EXPECT_EQ(g.prunable_layer_count(), 6);
  // Dense kernels for the compressed convolutions: the whole net stays NHWC.
  g.set_sparse_kernels("dense");
  EXPECT_EQ(step_reorders(g, x, labels), 1);
  EXPECT_EQ(layouts["stem"], Layout::kNHWC);
  EXPECT_EQ(layouts["block1.relu2"], Layout::kNHWC);
  EXPECT_EQ(g.sparse_layer_count(), 0);
}

// The stem on the direct kernels computes what oneDNN computes: the same
// step with every convolution on dense kernels gives the same loss and
// gradients, the stem's included.
TEST(SparseLayoutDomain, DirectStemMatchesTheDenseStem) {
  const Tensor x = normals({6, 3, 8, 8}, 4);
  const std::vector<int32_t> labels{0, 1, 2, 3, 4, 5};
  std::vector<std::vector<float>> grads[2];
  float losses[2] = {};
  for (int run = 0; run < 2; ++run) {
    Graph g = small_resnet();
    compress_convs(g, "stem");
    g.set_sparse_kernels(run == 0 ? "sparse" : "dense");
    std::map<std::string, Layout> layouts;
    HookHandle h = g.add_hook(HookPoint::kAfterForward, "stem",
                              [&](HookEvent& e) { layouts[e.node] = e.output->layout(); });
    const Tensor logits = g.forward(x, /*training=*/true);
    EXPECT_EQ(layouts["stem"], run == 0 ? Layout::kCHWN : Layout::kNHWC);
    Tensor diff = Tensor::empty(logits.shape());
    losses[run] = softmax_cross_entropy(logits, labels, &diff).loss;
    g.backward(diff);
    for (const char* name : {"stem.weight", "stem.bn.weight", "block0.conv1.weight"}) {
      const Tensor& grad = g.parameter(name).grad;
      grads[run].emplace_back(grad.data(), grad.data() + grad.numel());
    }
  }
  EXPECT_NEAR(losses[0], losses[1], 1e-5f);
  for (std::size_t p = 0; p < grads[0].size(); ++p) {
    ASSERT_EQ(grads[0][p].size(), grads[1][p].size());
    float scale = 0.0f;
    for (const float v : grads[1][p]) scale = std::max(scale, std::abs(v));
    ASSERT_GT(scale, 0.0f) << p;
    for (std::size_t i = 0; i < grads[0][p].size(); ++i)
      EXPECT_NEAR(grads[0][p][i], grads[1][p][i], 1e-4f * scale) << p << " " << i;
  }
}

TEST(SparseLayoutDomain, ResNet20StepReordersOnce) {
  Graph g = build_cifar_resnet(20, ModelOptions{3, 8, 8, 10});
  g.initialize(5);
  EXPECT_EQ(compress_convs(g, "conv1"), 20);  // 18 in the blocks, 2 shortcut projections
  g.set_sparse_kernels("sparse");
  const Tensor x = normals({4, 3, 8, 8}, 2);
  const std::vector<int32_t> labels{1, 3, 5, 7};
  EXPECT_EQ(step_reorders(g, x, labels), kDomainChangeReorders);
}

// Add hands the same gradient to both inputs without a copy, unless a hook
// watches its backward (a hook may write into one of them in place): then
// each has its own storage. Gradients are the same either way.
TEST(SparseLayoutDomain, AddSharesItsGradientsUnlessAHookWatches) {
  const Tensor x = normals({6, 3, 8, 8}, 5);
  const std::vector<int32_t> labels{0, 1, 2, 3, 4, 5};
  std::vector<float> grads[2];
  for (int watched = 0; watched < 2; ++watched) {
    Graph g = small_resnet();
    compress_convs(g, "stem");
    g.set_sparse_kernels("sparse");
    bool distinct = false;
    HookHandle h;
    if (watched == 1) {
      h = g.add_hook(HookPoint::kAfterBackward, "block1.add", [&](HookEvent& e) {
        ASSERT_EQ(e.diff_src.size(), 2u);
        distinct = e.diff_src[0].data() != e.diff_src[1].data();
        e.diff_src[1].fill(0.0f);  // in place: must not reach the branch
      });
    }
    const Tensor logits = g.forward(x, /*training=*/true);
    Tensor diff = Tensor::empty(logits.shape());
    softmax_cross_entropy(logits, labels, &diff);
    g.backward(diff);
    if (watched == 1) {
      EXPECT_TRUE(distinct);
    }
    const Tensor& grad = g.parameter("block1.conv2.weight").grad;
    grads[watched].assign(grad.data(), grad.data() + grad.numel());
  }
  // block1.conv2 is on the branch, which the zeroed shortcut gradient must
  // not have touched.
  EXPECT_EQ(grads[0], grads[1]);
}

TEST(GraphProfile, TimesEveryNodeAndCountsItsReorders) {
  Graph g = small_resnet();
  compress_convs(g, "stem");
  g.set_sparse_kernels("sparse");
  const Tensor x = normals({6, 3, 8, 8}, 1);
  const std::vector<int32_t> labels{0, 1, 2, 3, 4, 5};
  EXPECT_FALSE(g.profiling());
  step_reorders(g, x, labels);
  for (const NodeTiming& t : g.profile()) EXPECT_EQ(t.forward_calls, 0) << t.name;
  g.set_profiling(true);
  for (int s = 0; s < 3; ++s) step_reorders(g, x, labels);
  g.forward(x, /*training=*/false);
  const std::vector<NodeTiming> profile = g.profile();
  ASSERT_EQ(static_cast<int>(profile.size()), g.size() - 1);  // all but the input
  int64_t reorders = 0;
  for (const NodeTiming& t : profile) {
    EXPECT_EQ(t.forward_calls, 4) << t.name;
    EXPECT_EQ(t.backward_calls, 3) << t.name;
    EXPECT_GE(t.forward_ms, 0.0) << t.name;
    EXPECT_GE(t.backward_ms, 0.0) << t.name;
    EXPECT_EQ(t.sparse, t.type == "conv2d" && t.name != "stem") << t.name;
    reorders += t.reorders;
  }
  // Per step: the one reorder above; the inference forward adds one more.
  EXPECT_EQ(reorders, 3 * kDomainChangeReorders + 1);
  EXPECT_EQ(profile.front().name, "stem");
  EXPECT_EQ(profile.front().type, "conv2d");
  EXPECT_EQ(profile.front().reorders, 4);  // the graph input, every forward
  g.reset_profile();
  for (const NodeTiming& t : g.profile()) {
    EXPECT_EQ(t.forward_calls, 0);
    EXPECT_EQ(t.forward_ms, 0.0);
  }
}

// --- BatchNorm + ReLU fusion ---------------------------------------------------

// One training step; returns the logits and keeps the gradients in `g`.
Tensor train_step(Graph& g, const Tensor& x, const std::vector<int32_t>& labels) {
  const Tensor logits = g.forward(x, /*training=*/true);
  Tensor diff = Tensor::empty(logits.shape());
  softmax_cross_entropy(logits, labels, &diff);
  g.backward(diff);
  return logits;
}

void expect_same_gradients(Graph& a, Graph& b) {
  const std::vector<Parameter*> pa = a.parameters(), pb = b.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t k = 0; k < pa.size(); ++k) {
    EXPECT_TRUE(pa[k]->value.equals(pb[k]->value)) << pa[k]->name;
    if (pa[k]->grad.defined()) {
      EXPECT_TRUE(pa[k]->grad.equals(pb[k]->grad)) << pa[k]->name;
    }
  }
}

// The executor fuses each BatchNorm and each Add with the ReLU after it
// (kCHWN with the blocks sparse; NHWC with them dense, where only the Adds
// fuse: oneDNN's BatchNorm does not) unless a forward hook watches one of
// them. Fusing must change nothing a user can see: logits, every gradient
// and running statistic bit for bit, and what a backward hook sees, also one
// attached between forward and backward.
void check_relu_fusion(const std::string& kernels) {
  SCOPED_TRACE("kernels " + kernels);
  const Tensor x = normals({6, 3, 8, 8}, 4);
  const std::vector<int32_t> labels{0, 1, 2, 3, 4, 5};
  const auto make = [&kernels] {
    Graph g = small_resnet();
    compress_convs(g, "stem");
    g.set_sparse_kernels(kernels);
    return g;
  };
  Graph fused = make(), unfused = make(), late = make();
  // A hook on every ReLU (doing nothing) keeps every pair unfused.
  std::map<std::string, Tensor> seen_unfused, seen_late;
  HookHandle keep = unfused.add_hook(HookPoint::kAfterForward, "*relu*", [](HookEvent&) {});
  HookHandle grads = unfused.add_hook(HookPoint::kAfterBackward, "block0.*", [&](HookEvent& e) {
    seen_unfused[e.node] = e.diff_src[0].clone();
  });
  const Tensor y_fused = train_step(fused, x, labels);
  const Tensor y_unfused = train_step(unfused, x, labels);
  EXPECT_TRUE(y_fused.equals(y_unfused));
  expect_same_gradients(fused, unfused);
  // The fused pairs keep one tensor where the unfused keep two.
  EXPECT_LT(fused.last_peak_bytes(), unfused.last_peak_bytes());

  // Fused forward, then backward hooks: they see what they see unfused.
  const Tensor logits = late.forward(x, /*training=*/true);
  EXPECT_TRUE(logits.equals(y_unfused));
  HookHandle late_grads = late.add_hook(HookPoint::kAfterBackward, "block0.*", [&](HookEvent& e) {
    seen_late[e.node] = e.diff_src[0].clone();
  });
  Tensor diff = Tensor::empty(logits.shape());
  softmax_cross_entropy(logits, labels, &diff);
  late.backward(diff);
  expect_same_gradients(late, unfused);
  for (const char* node : {"block0.relu1", "block0.bn1", "block0.relu2", "block0.add"}) {
    ASSERT_TRUE(seen_late.count(node) && seen_unfused.count(node)) << node;
    EXPECT_TRUE(seen_late[node].equals(seen_unfused[node])) << node;
  }

  // Evaluation never fuses and gives the same logits as the unfused graph.
  EXPECT_TRUE(fused.forward(x, false).equals(unfused.forward(x, false)));
}

TEST(ReluFusion, ChangesNoResultAndYieldsToHooks) {
  check_relu_fusion("sparse");
  check_relu_fusion("dense");
}

}  // namespace
}  // namespace sparsetrain

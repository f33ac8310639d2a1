// The spade probe: input second moments from the hooks against a plain
// im2col, the OBS solver against magnitude pruning, traces that keep exactly
// the asked sparsity per row with the reconstruction errors they report,
// sparsity 0 giving the model back, the source model left as it was, and
// errors naming a bad option.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "probes/obs_solver.h"
#include "probes/spade.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/masks.h"
#include "sparsetrain/models.h"
#include "sparsetrain/rng.h"
#include "tests/graph_test_util.h"
#include "tests/probe_test_util.h"

namespace sparsetrain {
namespace {

using testing::compress_all;
using testing::state_bytes;

using detail::ConvGeometry;
using detail::Gram;
using testing::random_tensor;

// --- plain references ------------------------------------------------------

// y = conv(x, w) + b, (N, C, H, W) plain in and out, w (O, C, K, K).
std::vector<double> conv_plain(const std::vector<double>& x, int64_t n, int64_t c, int64_t h,
                               int64_t w, const Tensor& weight, const float* bias,
                               const ConvGeometry& g, int64_t& oh, int64_t& ow) {
  const int64_t o = weight.dim(0), k = g.kernel;
  oh = (h + 2 * g.padding - k) / g.stride + 1;
  ow = (w + 2 * g.padding - k) / g.stride + 1;
  std::vector<double> y(static_cast<size_t>(n * o * oh * ow));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double s = bias != nullptr ? bias[oc] : 0.0;
          for (int64_t ic = 0; ic < c; ++ic)
            for (int64_t kh = 0; kh < k; ++kh)
              for (int64_t kw = 0; kw < k; ++kw) {
                const int64_t yy = i * g.stride - g.padding + kh;
                const int64_t xx = j * g.stride - g.padding + kw;
                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                s +=
                    weight[((oc * c + ic) * k + kh) * k + kw] * x[((b * c + ic) * h + yy) * w + xx];
              }
          y[((b * o + oc) * oh + i) * ow + j] = s;
        }
  return y;
}

void relu_inplace(std::vector<double>& v) {
  for (double& x : v) x = std::max(x, 0.0);
}

// X X^T of the unfolded input (C*K*K, N*OH*OW), by a plain loop.
std::vector<double> conv_gram_plain(const std::vector<double>& x, int64_t n, int64_t c, int64_t h,
                                    int64_t w, const ConvGeometry& g) {
  const int64_t k = g.kernel, d = c * k * k;
  const int64_t oh = (h + 2 * g.padding - k) / g.stride + 1;
  const int64_t ow = (w + 2 * g.padding - k) / g.stride + 1;
  std::vector<double> out(static_cast<size_t>(d * d), 0.0), column(static_cast<size_t>(d));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        for (int64_t ic = 0; ic < c; ++ic)
          for (int64_t kh = 0; kh < k; ++kh)
            for (int64_t kw = 0; kw < k; ++kw) {
              const int64_t yy = i * g.stride - g.padding + kh;
              const int64_t xx = j * g.stride - g.padding + kw;
              const bool inside = yy >= 0 && yy < h && xx >= 0 && xx < w;
              column[(ic * k + kh) * k + kw] = inside ? x[((b * c + ic) * h + yy) * w + xx] : 0.0;
            }
        for (int64_t r = 0; r < d; ++r)
          for (int64_t q = 0; q < d; ++q) out[r * d + q] += column[r] * column[q];
      }
  return out;
}

void expect_gram_near(const Gram& h, const std::vector<double>& ref, const std::string& what) {
  ASSERT_EQ(static_cast<size_t>(h.size * h.size), ref.size()) << what;
  double scale = 1.0;
  for (double v : ref) scale = std::max(scale, std::abs(v));
  double worst = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(h.values[i] - ref[i]));
  EXPECT_LT(worst, 1e-5 * scale) << what;
}

std::vector<double> as_double(const Tensor& t) {
  const Tensor plain = to_layout(t, t.rank() == 4 ? Layout::kNCHW : Layout::kPlain);
  return {plain.data(), plain.data() + plain.numel()};
}

// --- models ------------------------------------------------------------------

// input (2, 9, 9) -> c1 3x3 s1 p1 -> relu -> c2 3x3 s2 p1 -> relu -> flatten -> fc.
Graph small_net(bool compressed) {
  Graph g;
  NodeId x = g.input("input", {2, 9, 9});
  x = g.conv2d("c1", x, {.out_channels = 4, .kernel = 3, .stride = 1, .padding = 1});
  x = g.relu("r1", x);
  x = g.conv2d("c2", x, {.out_channels = 5, .kernel = 3, .stride = 2, .padding = 1});
  x = g.relu("r2", x);
  x = g.flatten("flat", x);
  x = g.linear("fc", x, {.out_features = 3});
  g.set_output(x);
  g.initialize(11);
  // Biases away from zero so the ReLUs cut somewhere.
  for (Parameter* p : g.parameters())
    if (p->kind == ParamKind::kBias)
      for (int64_t i = 0; i < p->value.numel(); ++i)
        p->value[i] = 0.1f * static_cast<float>(i % 3) - 0.1f;
  if (compressed) {
    for (const char* node : {"c1", "c2", "fc"}) {
      const std::string param = std::string(node) + ".weight";
      g.compress(node, magnitude_mask(g.parameter(param).value, 0.5f));
    }
    g.set_sparse_kernels("sparse");
  }
  return g;
}

Graph lenet(float sparsity) { return testing::lenet5(3, sparsity); }

// --- tests -------------------------------------------------------------------

TEST(Spade, GramFromTheHooksIsXXtOfTheUnfoldedInput) {
  constexpr int64_t kBatch = 3;
  const Tensor x = random_tensor({kBatch, 2, 9, 9}, 5);
  const ConvGeometry c1{3, 1, 1}, c2{3, 2, 1};
  for (bool compressed : {false, true}) {
    Graph g = small_net(compressed);
    // The inputs of c2 and fc, by plain loops from the graph's weights.
    int64_t oh = 0, ow = 0;
    const Tensor w1 = dense_value(g.parameter("c1.weight"));
    std::vector<double> a1 = conv_plain(as_double(x), kBatch, 2, 9, 9, w1,
                                        g.parameter("c1.bias").value.data(), c1, oh, ow);
    relu_inplace(a1);
    const std::vector<double> ref2 = conv_gram_plain(a1, kBatch, 4, oh, ow, c2);
    const Tensor w2 = dense_value(g.parameter("c2.weight"));
    int64_t oh2 = 0, ow2 = 0;
    std::vector<double> a2 =
        conv_plain(a1, kBatch, 4, oh, ow, w2, g.parameter("c2.bias").value.data(), c2, oh2, ow2);
    relu_inplace(a2);
    const int64_t f = 5 * oh2 * ow2;
    std::vector<double> ref_fc(static_cast<size_t>(f * f), 0.0);
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t i = 0; i < f; ++i)
        for (int64_t j = 0; j < f; ++j) ref_fc[i * f + j] += a2[b * f + i] * a2[b * f + j];
    const std::string mode = compressed ? "sparse kernels" : "dense";
    const Gram h2 = detail::layer_input_gram(g, "c2", x);
    EXPECT_EQ(h2.samples, kBatch * 5 * 5);
    expect_gram_near(h2, ref2, "c2 (stride 2, padding 1), " + mode);
    const Gram hfc = detail::layer_input_gram(g, "fc", x);
    EXPECT_EQ(hfc.samples, kBatch);
    expect_gram_near(hfc, ref_fc, "fc, " + mode);
    // The first layer reads the graph input itself.
    expect_gram_near(detail::layer_input_gram(g, "c1", x),
                     conv_gram_plain(as_double(x), kBatch, 2, 9, 9, c1), "c1, " + mode);
  }
}

// H of X (columns, samples) with correlated rows: X = A Z, Z standard normal.
Gram correlated_gram(int64_t columns, int64_t samples, uint64_t seed,
                     std::vector<double>* x_out = nullptr) {
  Rng rng(seed);
  std::vector<double> a(static_cast<size_t>(columns * columns)),
      z(static_cast<size_t>(columns * samples));
  for (double& v : a) v = rng.normal();
  for (double& v : z) v = rng.normal();
  std::vector<double> x(static_cast<size_t>(columns * samples), 0.0);
  for (int64_t i = 0; i < columns; ++i)
    for (int64_t k = 0; k < columns; ++k)
      for (int64_t s = 0; s < samples; ++s)
        x[i * samples + s] += a[i * columns + k] * z[k * samples + s];
  Gram h(columns);
  h.samples = samples;
  for (int64_t i = 0; i < columns; ++i)
    for (int64_t j = 0; j < columns; ++j) {
      double s = 0;
      for (int64_t t = 0; t < samples; ++t) s += x[i * samples + t] * x[j * samples + t];
      h.values[i * columns + j] = s;
    }
  if (x_out != nullptr) *x_out = x;
  return h;
}

TEST(ObsSolver, BeatsMagnitudePruningAndChangesNothingAtSparsityZero) {
  constexpr int64_t kRows = 12, kColumns = 40, kSamples = 200;
  std::vector<double> x;
  const Gram h = correlated_gram(kColumns, kSamples, 7, &x);
  const Tensor wt = random_tensor({kRows, kColumns}, 8);
  const std::span<const float> w(wt.data(), static_cast<size_t>(wt.numel()));
  for (double sparsity : {0.25, 0.5, 0.8}) {
    // Two blocks per row too (block 16): the adaptive masks.
    for (int64_t block : {int64_t{128}, int64_t{16}}) {
      const detail::ObsResult obs =
          detail::obs_prune(w, kRows, kColumns, h, {.sparsity = sparsity, .block = block});
      const int64_t per_row = std::llround(sparsity * kColumns);
      EXPECT_EQ(obs.pruned, kRows * per_row);
      // Magnitude pruning: each row keeps its largest weights, unchanged.
      std::vector<float> mag(wt.data(), wt.data() + wt.numel());
      for (int64_t r = 0; r < kRows; ++r) {
        std::vector<int64_t> order(kColumns);
        for (int64_t j = 0; j < kColumns; ++j) order[j] = j;
        std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
          return std::abs(wt[r * kColumns + a]) < std::abs(wt[r * kColumns + b]);
        });
        for (int64_t i = 0; i < per_row; ++i) mag[r * kColumns + order[i]] = 0.0f;
      }
      const double magnitude_error =
          detail::relative_reconstruction_error(w, mag, kRows, kColumns, h);
      EXPECT_LT(obs.reconstruction_error, magnitude_error)
          << "sparsity " << sparsity << ", block " << block;
      // The reported error is ||W X - W' X||^2 / ||W X||^2 itself.
      double lost = 0, total = 0;
      for (int64_t r = 0; r < kRows; ++r)
        for (int64_t s = 0; s < kSamples; ++s) {
          double y = 0, y_new = 0;
          for (int64_t j = 0; j < kColumns; ++j) {
            y += wt[r * kColumns + j] * x[j * kSamples + s];
            y_new += obs.weight[r * kColumns + j] * x[j * kSamples + s];
          }
          lost += (y - y_new) * (y - y_new);
          total += y * y;
        }
      EXPECT_NEAR(obs.reconstruction_error, lost / total, 1e-6 + 1e-4 * lost / total);
    }
  }
  const detail::ObsResult none = detail::obs_prune(w, kRows, kColumns, h, {.sparsity = 0.0});
  EXPECT_EQ(none.pruned, 0);
  EXPECT_EQ(none.reconstruction_error, 0.0);
  for (int64_t i = 0; i < wt.numel(); ++i) ASSERT_EQ(none.weight[i], wt[i]) << i;
  // With the forced zeros of a pruned model and nothing more to prune, the
  // forced positions are pruned and the error is still compensated.
  std::vector<uint8_t> forced(static_cast<size_t>(kRows * kColumns), 0);
  for (int64_t r = 0; r < kRows; ++r) forced[r * kColumns + (r % kColumns)] = 1;
  const detail::ObsResult kept =
      detail::obs_prune(w, kRows, kColumns, h, {.sparsity = 0.0}, forced);
  EXPECT_EQ(kept.pruned, kRows);
  for (int64_t r = 0; r < kRows; ++r) EXPECT_EQ(kept.weight[r * kColumns + r % kColumns], 0.0f);
  EXPECT_THROW(detail::obs_prune(w, kRows, kColumns, h, {.sparsity = 1.0}), Error);
}

// The trace of `source` on a batch of augmentations of MNIST test sample 0.
struct TraceCase {
  Graph trace;
  std::vector<detail::SpadeLayer> layers;
  Tensor batch;
};

TraceCase trace_of(float source_sparsity, double sparsity, int64_t augmentations = 12) {
  Dataset d = load_dataset("mnist", SPARSETRAIN_TEST_DATA_DIR, Split::kTest, 1);
  const std::vector<int64_t> idx{0};
  TraceCase t{lenet(source_sparsity), {}, {}};
  t.batch = detail::spade_augmentations(dataset_images(d, idx), augmentations, &d, 1);
  t.layers = detail::spade_prune(t.trace, t.batch, {.sparsity = sparsity});
  return t;
}

TEST(Spade, AugmentationsStartWithTheSampleAndVary) {
  Dataset d = load_dataset("mnist", SPARSETRAIN_TEST_DATA_DIR, Split::kTest, 1);
  const std::vector<int64_t> idx{0};
  const Tensor image = dataset_images(d, idx);
  const Tensor a = detail::spade_augmentations(image, 6, &d, 4);
  ASSERT_EQ(a.shape(), (Shape{6, 1, 28, 28}));
  for (int64_t i = 0; i < 784; ++i) ASSERT_EQ(a[i], image[i]);
  for (int64_t n = 1; n < 6; ++n) {
    double diff = 0;
    for (int64_t i = 0; i < 784; ++i) diff += std::abs(a[n * 784 + i] - image[i]);
    EXPECT_GT(diff, 1.0) << n;
  }
  EXPECT_TRUE(a.equals(detail::spade_augmentations(image, 6, &d, 4)));
  // Pixels stay in [0, 1].
  const float low = (0.0f - d.mean[0]) / d.stddev[0], high = (1.0f - d.mean[0]) / d.stddev[0];
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_GE(a[i], low - 1e-5f);
    ASSERT_LE(a[i], high + 1e-5f);
  }
}

TEST(Spade, SparsityZeroGivesTheModelBack) {
  for (float source_sparsity : {0.0f, 0.6f}) {
    TraceCase t = trace_of(source_sparsity, 0.0);
    Graph model = lenet(source_sparsity);
    ASSERT_EQ(t.layers.size(), 3u);  // conv2, fc1, fc2: first and last stay dense
    for (Parameter* p : model.parameters()) {
      const Tensor a = dense_value(*p), b = dense_value(t.trace.parameter(p->name));
      ASSERT_EQ(a.numel(), b.numel());
      for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a[i], b[i]) << p->name << " " << i;
    }
    const Tensor x = random_tensor({4, 1, 28, 28}, 2);
    const Tensor want = class_logits(model, x), got = class_logits(t.trace, x);
    for (int64_t i = 0; i < want.numel(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-4f * std::max(1.0f, std::abs(want[i])));
  }
}

// ||W X - W' X||^2 / ||W X||^2 of a layer of the trace, from its input on
// the batch (as the pruned layers before it give it) by plain loops.
double layer_error(Graph& trace, const Tensor& batch, const std::string& node, const Tensor& w,
                   const Tensor& w_new) {
  Tensor input;
  {
    HookHandle hook = trace.add_hook(HookPoint::kBeforeForward, node, [&](HookEvent& ev) {
      input = ev.inputs[0].rank() == 4 ? to_layout(ev.inputs[0], Layout::kNCHW).clone()
                                       : to_layout(ev.inputs[0], Layout::kPlain).clone();
    });
    trace.forward(batch, ExecMode::kInference);
    trace.release();
  }
  double lost = 0, total = 0;
  if (w.rank() == 4) {
    const ConvGeometry g{w.dim(2), 1, 0};  // LeNet's conv2: 5x5, stride 1, no padding
    const std::vector<double> x = as_double(input);
    int64_t oh = 0, ow = 0;
    const std::vector<double> y = conv_plain(x, input.dim(0), input.dim(1), input.dim(2),
                                             input.dim(3), w, nullptr, g, oh, ow);
    const std::vector<double> y_new = conv_plain(x, input.dim(0), input.dim(1), input.dim(2),
                                                 input.dim(3), w_new, nullptr, g, oh, ow);
    for (size_t i = 0; i < y.size(); ++i) {
      lost += (y[i] - y_new[i]) * (y[i] - y_new[i]);
      total += y[i] * y[i];
    }
  } else {
    const int64_t n = input.dim(0), f = input.dim(1), o = w.dim(0);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t r = 0; r < o; ++r) {
        double y = 0, y_new = 0;
        for (int64_t j = 0; j < f; ++j) {
          y += static_cast<double>(w[r * f + j]) * input[b * f + j];
          y_new += static_cast<double>(w_new[r * f + j]) * input[b * f + j];
        }
        lost += (y - y_new) * (y - y_new);
        total += y * y;
      }
  }
  return lost / total;
}

TEST(Spade, LayersKeepTheAskedSparsityAndReportTheirError) {
  // A dense model; a pruned one asked for more (each row prunes exactly the
  // asked count, its old zeros among them); and asked for less (its mask
  // stays as it was).
  const std::vector<std::pair<float, double>> cases{{0.0f, 0.7}, {0.5f, 0.9}, {0.5f, 0.3}};
  for (const auto& [source_sparsity, sparsity] : cases) {
    TraceCase t = trace_of(source_sparsity, sparsity);
    Graph model = lenet(source_sparsity);
    for (const char* dense : {"conv1.weight", "fc3.weight"})
      EXPECT_TRUE(
          dense_value(model.parameter(dense)).equals(dense_value(t.trace.parameter(dense))));
    ASSERT_EQ(t.layers.size(), 3u);
    for (const detail::SpadeLayer& l : t.layers) {
      SCOPED_TRACE(l.node + " from sparsity " + std::to_string(source_sparsity) + " to " +
                   std::to_string(sparsity));
      const Parameter& p = t.trace.parameter(l.node + ".weight");
      ASSERT_TRUE(p.compressed());
      const Tensor before = dense_value(model.parameter(l.node + ".weight"));
      const Tensor was_kept = kept_mask(model.parameter(l.node + ".weight"));
      const Tensor kept = kept_mask(p);
      const Tensor after = dense_value(p);
      EXPECT_EQ(l.rows * l.columns, kept.numel());
      const int64_t asked = std::llround(sparsity * static_cast<double>(l.columns));
      int64_t pruned = 0, forced = 0;
      for (int64_t r = 0; r < l.rows; ++r) {
        int64_t row_pruned = 0, row_forced = 0;
        for (int64_t j = 0; j < l.columns; ++j) {
          const int64_t i = r * l.columns + j;
          row_pruned += kept[i] == 0.0f ? 1 : 0;
          row_forced += was_kept[i] == 0.0f ? 1 : 0;
          if (was_kept[i] == 0.0f) {
            ASSERT_EQ(kept[i], 0.0f) << "a pruned weight came back";
          }
        }
        EXPECT_EQ(row_pruned, std::max(asked, row_forced)) << "row " << r;
        pruned += row_pruned;
        forced += row_forced;
      }
      EXPECT_EQ(l.pruned, pruned);
      EXPECT_DOUBLE_EQ(l.sparsity, static_cast<double>(pruned) / static_cast<double>(kept.numel()));
      if (source_sparsity == 0.0f) {
        EXPECT_LE(std::abs(l.sparsity - sparsity), 0.5 / static_cast<double>(l.columns));
      }
      const double error = layer_error(t.trace, t.batch, l.node, before, after);
      EXPECT_NEAR(l.reconstruction_error, error, 1e-6 + 1e-3 * error);
      // Only the source's zeros (all rows already past the asked sparsity):
      // nothing is lost. Else something is, less than all.
      if (pruned == forced) {
        EXPECT_EQ(l.reconstruction_error, 0.0);
      } else {
        EXPECT_GT(error, 0.0);
        EXPECT_LT(error, 1.0);
      }
    }
  }
}

ProbeContext mnist_context(Graph& g, const Dataset& d, const std::vector<int64_t>& idx,
                           std::map<std::string, std::string> options) {
  ProbeContext c;
  c.graph = &g;
  c.data = &d;
  c.indices = idx;
  for (int64_t i : idx) c.targets.push_back(d.labels[static_cast<size_t>(i)]);
  c.images = dataset_images(d, idx);
  c.options = resolve_probe_options("spade", options);
  c.seed = 5;
  c.model_copy = [] { return lenet(0.5f); };
  return c;
}

TEST(Spade, ProbeLeavesTheModelAsItWasAndReportsBothMaps) {
  Dataset d = load_dataset("mnist", SPARSETRAIN_TEST_DATA_DIR, Split::kTest, 4);
  Graph g = lenet(0.5f);
  const std::vector<char> before = state_bytes(g);
  const std::vector<int64_t> idx{1, 3};
  const ProbeContext c = mnist_context(g, d, idx, {{"augmentations", "8"}});
  const ProbeReport r = make_sample_probe("spade")->run(c);
  EXPECT_TRUE(state_bytes(g) == before);
  ASSERT_EQ(r.maps.size(), 4u);
  EXPECT_EQ(r.maps[0].title, "saliency (model)");
  EXPECT_EQ(r.maps[1].title, "saliency (SPADE trace)");
  EXPECT_EQ(r.maps[2].sample, 1);
  EXPECT_FALSE(r.maps[0].map.equals(r.maps[1].map));
  const nlohmann::json j = nlohmann::json::parse(r.json);
  ASSERT_EQ(j["samples"].size(), 2u);
  for (size_t i = 0; i < idx.size(); ++i) {
    const nlohmann::json& s = j["samples"][i];
    EXPECT_EQ(s["index"], idx[i]);
    EXPECT_EQ(s["label"], d.labels[static_cast<size_t>(idx[i])]);
    EXPECT_EQ(s["layers"].size(), 3u);
    for (const nlohmann::json& l : s["layers"]) EXPECT_NEAR(l["sparsity"].get<double>(), 0.8, 0.01);
    const Tensor logits = class_logits(g, dataset_images(d, std::vector<int64_t>{idx[i]}));
    const int64_t best = std::max_element(logits.data(), logits.data() + 10) - logits.data();
    EXPECT_EQ(s["model"]["predicted"], best);
    EXPECT_EQ(s["then_model"]["samples"][0]["index"], idx[i]);
    EXPECT_EQ(s["then_trace"]["samples"][0]["index"], idx[i]);
  }
  // The same seed gives the same traces.
  const ProbeReport again = make_sample_probe("spade")->run(c);
  EXPECT_TRUE(r.maps[1].map.equals(again.maps[1].map));
}

TEST(Spade, DenseFirstLastAutoFollowsTheTrainer) {
  Dataset d = load_dataset("mnist", SPARSETRAIN_TEST_DATA_DIR, Split::kTest, 1);
  const std::vector<int64_t> idx{0};
  const auto layers = [&](const std::string& model, const std::string& first_last) {
    const auto build = [model] {
      Graph g = build_model(model, {.channels = 1, .height = 28, .width = 28});
      g.initialize(2);
      return g;
    };
    Graph g = build();
    ProbeContext c = mnist_context(
        g, d, idx, {{"augmentations", "4"}, {"then", "none"}, {"dense-first-last", first_last}});
    c.model_copy = build;
    const ProbeReport r = make_sample_probe("spade")->run(c);
    EXPECT_TRUE(r.maps.empty());
    return nlohmann::json::parse(r.json)["samples"][0]["layers"].size();
  };
  EXPECT_EQ(layers("lenet5", "auto"), 3u);  // conv2, fc1, fc2
  EXPECT_EQ(layers("lenet5", "false"), 5u);
  EXPECT_EQ(layers("mlp", "auto"), 3u);  // no convolutions: every layer, as the trainer
  EXPECT_EQ(layers("mlp", "true"), 1u);
}

TEST(Spade, BadOptionsAreNamed) {
  Dataset d = load_dataset("mnist", SPARSETRAIN_TEST_DATA_DIR, Split::kTest, 1);
  Graph g = lenet(0.0f);
  const std::vector<int64_t> idx{0};
  const auto message = [&](std::map<std::string, std::string> options, bool copy = true) {
    ProbeContext c = mnist_context(g, d, idx, std::move(options));
    if (!copy) c.model_copy = {};
    try {
      make_sample_probe("spade")->run(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  for (const char* bad : {"1", "1.5", "-0.1", "x"})
    EXPECT_NE(message({{"sparsity", bad}}).find("--sparsity"), std::string::npos) << bad;
  EXPECT_NE(message({{"augmentations", "0"}}).find("--augmentations"), std::string::npos);
  EXPECT_NE(message({{"then", "spade"}}).find("--then"), std::string::npos);
  EXPECT_NE(message({{"then", "nothing"}}).find("--then: unknown probe 'nothing'"),
            std::string::npos);
  EXPECT_NE(message({}, false).find("spade needs a copy of the model"), std::string::npos);
  EXPECT_THROW(resolve_probe_options("spade", {{"steps", "3"}}), Error);

  Graph grouped;
  NodeId x = grouped.input("input", {4, 6, 6});
  x = grouped.conv2d("dw", x, {.out_channels = 4, .kernel = 3, .padding = 1, .groups = 2});
  grouped.set_output(x);
  grouped.initialize(1);
  try {
    detail::layer_input_gram(grouped, "dw", random_tensor({1, 4, 6, 6}, 1));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d 'dw' has 2 groups"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace sparsetrain

// compare_models (sparsetrain/compare.h): the passes over the data and the
// per-model statistics; group aggregates in compare_groups.cc.

#include "sparsetrain/compare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "compare/compare_internal.h"
#include "sparsetrain/error.h"

namespace sparsetrain {

namespace detail {

void pixels_01(const Dataset& data, int64_t first, int64_t count, std::vector<float>& out) {
  const int64_t numel = data.image_numel();
  out.resize(static_cast<std::size_t>(count * numel));
  const uint8_t* src = data.pixels.data() + first * numel;
  for (int64_t i = 0; i < count * numel; ++i) out[i] = static_cast<float>(src[i]) / 255.0f;
}

Tensor normalised(const Dataset& data, const std::vector<float>& images01) {
  const int64_t numel = data.image_numel();
  const int64_t plane = data.height * data.width;
  const int64_t n = static_cast<int64_t>(images01.size()) / numel;
  Tensor x = Tensor::empty({n, data.channels, data.height, data.width}, Layout::kNCHW);
  float* dst = x.data();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < data.channels; ++c)
      for (int64_t j = 0; j < plane; ++j) {
        const int64_t at = i * numel + c * plane + j;
        dst[at] = (images01[at] - data.mean[c]) / data.stddev[c];
      }
  return x;
}

std::vector<int32_t> argmax_rows(const Tensor& logits) {
  const int64_t n = logits.dim(0), k = logits.dim(1);
  std::vector<int32_t> out(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data() + i * k;
    out[i] = static_cast<int32_t>(std::max_element(row, row + k) - row);
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace detail

namespace {

using detail::ModelPass;

std::string default_layer(Graph& g) {
  const NodeId out = g.output();
  const auto& inputs = g.inputs_of(out);
  if (inputs.empty()) throw Error("compare: the model's output node has no input to embed");
  return g.node(inputs.front()).name();
}

void check_inputs(const std::vector<CompareGroup>& groups, const Dataset& data,
                  const CompareOptions& o) {
  if (groups.empty()) throw Error("compare: no model group (--model-group NAME=RUN[,RUN...])");
  if (data.pixels.empty() || data.size() == 0)
    throw Error("compare: the dataset has no images (compare needs an image dataset)");
  if (o.bins < 1) throw Error("--bins must be at least 1, got " + std::to_string(o.bins));
  if (!(o.uncertain_below > 0.0 && o.uncertain_below <= 1.0))
    throw Error("--uncertain-below must be in (0, 1]");
  if (o.noise_steps < 1) throw Error("--noise-steps must be at least 1");
  if (!(o.noise_max >= 0.0 && o.noise_max <= 1.0)) throw Error("--noise-max must be in [0, 1]");
  if (o.severities < 0 || o.severities > 5) throw Error("--severities must be in [0, 5]");
  if (o.batch < 1) throw Error("--batch-size must be at least 1");
  if (o.top < 0 || o.domino_neighbours < 1)
    throw Error("compare: --top and neighbours must be positive");
  if (o.metric != "cosine" && o.metric != "euclidean")
    throw Error("--metric must be cosine or euclidean, got '" + o.metric + "'");
  for (const std::string& c : o.corruptions) {
    std::vector<float> probe(static_cast<std::size_t>(data.image_numel()), 0.5f);
    corrupt_images(probe, data.channels, data.height, data.width, c, 0, 0);  // names it if unknown
  }
  const Shape want{data.channels, data.height, data.width};
  for (const CompareGroup& g : groups) {
    if (g.models.empty()) throw Error("compare: group '" + g.name + "' has no model");
    for (const CompareModel& m : g.models) {
      if (m.graph == nullptr) throw Error("compare: model '" + m.label + "' has no graph");
      const Shape in = m.graph->input_shape();
      if (in != want) {
        throw Error("compare: model '" + m.label + "' (group " + g.name + ") takes inputs " +
                    shape_to_string(in) + " but the " + data.name + " images are " +
                    shape_to_string(want));
      }
      const int64_t outputs = m.graph->shape_of(m.graph->output()).back();
      if (outputs != data.num_classes) {
        throw Error("compare: model '" + m.label + "' (group " + g.name + ") has " +
                    std::to_string(outputs) + " outputs but the data has " +
                    std::to_string(data.num_classes) + " classes");
      }
    }
  }
}

void weight_counts(Graph& g, ModelStats& s) {
  for (Parameter* p : g.parameters()) {
    if (!p->trainable()) continue;
    s.parameters += p->dense_numel();
    const auto dot = p->name.rfind('.');
    if (dot == std::string::npos || p->name.substr(dot + 1) != "weight") continue;
    const std::string type = g.node(p->name.substr(0, dot)).type();
    if (type != "conv2d" && type != "linear") continue;
    s.weights += p->dense_numel();
    const float* v = p->value.data();
    for (int64_t j = 0; j < p->value.numel(); ++j) s.nonzeros += v[j] != 0.0f ? 1 : 0;
  }
  s.sparsity = s.weights > 0 ? 1.0 - static_cast<double>(s.nonzeros) / s.weights : 0.0;
}

// One clean pass: logits of every sample, and the embedding at `layer`.
ModelPass clean_pass(Graph& g, const Dataset& data, const std::string& layer, int64_t batch) {
  ModelPass pass;
  const int64_t n = data.size();
  std::vector<float> buf;
  int64_t first = 0, rows = 0;
  HookHandle hook = g.add_hook(HookPoint::kAfterForward, layer, [&](HookEvent& e) {
    if (e.node != layer || e.output == nullptr) return;
    const Tensor t = to_layout(*e.output, e.output->rank() == 4 ? Layout::kNCHW : Layout::kPlain);
    const int64_t d = t.numel() / rows;
    if (pass.dim == 0) {
      if (static_cast<double>(n) * static_cast<double>(d) * 4.0 > 4.0 * (1ull << 30)) {
        throw Error("compare: the embedding at '" + layer + "' has " + std::to_string(d) +
                    " values per sample; for " + std::to_string(n) +
                    " samples that is over 4 GiB (choose a smaller --layer or --limit)");
      }
      pass.dim = d;
      pass.embedding.assign(static_cast<std::size_t>(n * d), 0.0f);
    }
    std::copy(t.data(), t.data() + t.numel(), pass.embedding.begin() + first * pass.dim);
  });
  std::vector<float> images;
  for (first = 0; first < n; first += batch) {
    rows = std::min(batch, n - first);
    detail::pixels_01(data, first, rows, images);
    const Tensor logits = g.forward(detail::normalised(data, images), ExecMode::kInference);
    const int64_t k = logits.dim(1);
    if (pass.logits.empty()) pass.logits.resize(static_cast<std::size_t>(n * k));
    std::copy(logits.data(), logits.data() + logits.numel(), pass.logits.begin() + first * k);
  }
  g.release();
  return pass;
}

void prediction_stats(const ModelPass& pass, const Dataset& data, const CompareOptions& o,
                      ModelStats& s) {
  const int64_t n = data.size();
  const int k = data.num_classes;
  s.predicted.resize(static_cast<std::size_t>(n));
  s.confidence.resize(static_cast<std::size_t>(n));
  std::vector<uint8_t> correct(static_cast<std::size_t>(n));
  std::vector<int64_t> class_right(k, 0), class_count(k, 0);
  double nll = 0.0, conf = 0.0;
  int64_t right = 0, uncertain = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = pass.logits.data() + i * k;
    const float top = *std::max_element(row, row + k);
    double z = 0.0;
    for (int c = 0; c < k; ++c) z += std::exp(static_cast<double>(row[c] - top));
    const int32_t pred = static_cast<int32_t>(std::max_element(row, row + k) - row);
    const int32_t label = data.labels[i];
    const double p_max = 1.0 / z;
    s.predicted[i] = pred;
    s.confidence[i] = static_cast<float>(p_max);
    nll += std::log(z) - static_cast<double>(row[label] - top);
    conf += p_max;
    correct[i] = pred == label;
    right += correct[i];
    uncertain += p_max < o.uncertain_below ? 1 : 0;
    class_count[label]++;
    class_right[label] += correct[i];
  }
  s.accuracy = static_cast<double>(right) / n;
  s.nll = nll / n;
  s.mean_confidence = conf / n;
  s.uncertain_fraction = static_cast<double>(uncertain) / n;
  s.class_accuracy.assign(k, 0.0);
  for (int c = 0; c < k; ++c)
    s.class_accuracy[c] =
        class_count[c] ? static_cast<double>(class_right[c]) / class_count[c] : 0.0;
  s.reliability = reliability_bins(s.confidence, correct, o.bins);
  s.ece = expected_calibration_error(s.reliability);
}

// Accuracy of every model on the first `count` images under each noise
// level and corruption severity; each corrupted batch is made once and run
// through all models.
void robustness(const std::vector<Graph*>& graphs, const Dataset& data, const CompareOptions& o,
                int64_t count, const std::vector<double>& levels, std::vector<ModelStats>& stats) {
  struct Condition {
    std::string corruption;  // empty: uniform noise
    double amplitude = 0;
    int severity = 0;
  };
  std::vector<Condition> conditions;
  for (double a : levels)
    if (a > 0.0) conditions.push_back({"", a, 0});
  for (const std::string& c : o.corruptions)
    for (int s = 1; s <= o.severities; ++s) conditions.push_back({c, 0.0, s});
  for (ModelStats& s : stats) {
    s.noise_accuracy.assign(levels.size(), 0.0);
    for (const std::string& c : o.corruptions) s.corruption_accuracy[c].assign(o.severities, 0.0);
    // Amplitude 0 is the clean set: the clean predictions of these images.
    int64_t right = 0;
    for (int64_t i = 0; i < count; ++i) right += s.predicted[i] == data.labels[i];
    for (std::size_t l = 0; l < levels.size(); ++l)
      if (levels[l] == 0.0) s.noise_accuracy[l] = static_cast<double>(right) / count;
  }
  std::vector<float> images;
  for (const Condition& cond : conditions) {
    std::vector<int64_t> right(graphs.size(), 0);
    for (int64_t first = 0; first < count; first += o.batch) {
      const int64_t rows = std::min(o.batch, count - first);
      detail::pixels_01(data, first, rows, images);
      if (cond.corruption.empty()) {
        add_uniform_noise(images, data.image_numel(), cond.amplitude, o.seed, first, data.stddev);
      } else {
        corrupt_images(images, data.channels, data.height, data.width, cond.corruption,
                       cond.severity, o.seed, first);
      }
      const Tensor x = detail::normalised(data, images);
      for (std::size_t m = 0; m < graphs.size(); ++m) {
        const std::vector<int32_t> pred =
            detail::argmax_rows(graphs[m]->forward(x, ExecMode::kInference));
        for (int64_t i = 0; i < rows; ++i) right[m] += pred[i] == data.labels[first + i];
      }
    }
    for (std::size_t m = 0; m < graphs.size(); ++m) {
      const double acc = static_cast<double>(right[m]) / count;
      if (cond.corruption.empty()) {
        const auto l = std::find(levels.begin(), levels.end(), cond.amplitude) - levels.begin();
        stats[m].noise_accuracy[l] = acc;
      } else {
        stats[m].corruption_accuracy[cond.corruption][cond.severity - 1] = acc;
      }
    }
  }
  for (Graph* g : graphs) g->release();
}

}  // namespace

CompareResult compare_models(const std::vector<CompareGroup>& groups, const Dataset& data,
                             const CompareOptions& options) {
  check_inputs(groups, data, options);
  const auto start = std::chrono::steady_clock::now();
  CompareResult r;
  r.options = options;
  r.dataset = data.name;
  r.files = data.files;
  r.class_names = data.class_names;
  r.samples = data.size();
  r.labels = data.labels;
  Graph& reference = *groups.front().models.front().graph;
  r.layer = options.layer.empty() ? default_layer(reference) : options.layer;
  if (options.k >= r.samples) {
    throw Error("--k " + std::to_string(options.k) + " needs more than " +
                std::to_string(options.k) + " samples; the data has " + std::to_string(r.samples));
  }
  std::vector<Graph*> graphs;
  for (const CompareGroup& g : groups) {
    for (const CompareModel& m : g.models) {
      if (m.graph->find(r.layer).index < 0) {
        throw Error("compare: model '" + m.label + "' (group " + g.name + ") has no node '" +
                    r.layer + "' (--layer)");
      }
      ModelStats s;
      s.group = g.name;
      s.label = m.label;
      s.path = m.path;
      weight_counts(*m.graph, s);
      r.models.push_back(std::move(s));
      graphs.push_back(m.graph);
    }
  }

  // Clean passes, one model at a time: statistics, neighbours, projections.
  auto t = std::chrono::steady_clock::now();
  std::vector<std::vector<int64_t>> neighbours(graphs.size());
  std::vector<float> scatter_source;
  const std::vector<int64_t> scatter = detail::scatter_samples(r.samples, options);
  double knn_seconds = 0.0;
  std::size_t m = 0;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    for (std::size_t mi = 0; mi < groups[gi].models.size(); ++mi, ++m) {
      ModelPass pass = clean_pass(*graphs[m], data, r.layer, options.batch);
      if (pass.dim == 0) throw Error("compare: the layer '" + r.layer + "' produced no output");
      if (r.embedding_dim == 0) r.embedding_dim = pass.dim;
      if (pass.dim != r.embedding_dim) {
        throw Error("compare: the embedding at '" + r.layer + "' of model '" + r.models[m].label +
                    "' has " + std::to_string(pass.dim) + " values per sample, the reference's " +
                    std::to_string(r.embedding_dim));
      }
      prediction_stats(pass, data, options, r.models[m]);
      const auto tk = std::chrono::steady_clock::now();
      neighbours[m] =
          nearest_neighbours(pass.embedding, r.samples, pass.dim, options.k, options.metric);
      knn_seconds += detail::seconds_since(tk);
      if (mi == 0) r.projections.push_back(detail::project(pass, r.models[m].label, scatter));
    }
  }
  r.seconds["clean passes"] = detail::seconds_since(t) - knn_seconds;
  r.seconds["nearest neighbours"] = knn_seconds;

  t = std::chrono::steady_clock::now();
  for (int s = 0; s < options.noise_steps; ++s) {
    r.noise_levels.push_back(
        options.noise_steps == 1 ? 0.0 : options.noise_max * s / (options.noise_steps - 1));
  }
  r.robust_samples =
      options.robust_limit < 0 ? r.samples : std::min(options.robust_limit, r.samples);
  if (r.robust_samples > 0)
    robustness(graphs, data, options, r.robust_samples, r.noise_levels, r.models);
  r.seconds["robustness"] = detail::seconds_since(t);

  t = std::chrono::steady_clock::now();
  detail::aggregate_groups(groups, data.num_classes, r);
  detail::embedding_pairs(neighbours, r);
  detail::prune_potentials(r);
  r.seconds["comparisons"] = detail::seconds_since(t);
  r.seconds["total"] = detail::seconds_since(start);
  return r;
}

}  // namespace sparsetrain

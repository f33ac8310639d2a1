// spade: sample-targeted pruning traces (Moakhar et al. 2023, "SPADE:
// Sparsity-Guided Debugging for Deep Neural Networks"). For each sample, a
// copy of the model is pruned layer by layer so that every layer keeps
// reproducing its outputs on augmentations of that one sample (the OBS /
// SparseGPT solver of obs_solver.h); what remains is the part of the network
// the sample uses, its "trace". Another sample probe ("then", saliency by
// default) then runs on the trace and on the model, side by side: SPADE's
// observation is that attributions on the trace are less noisy and more
// faithful to what the network does with that sample.
#include "probes/spade.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "probes/obs_solver.h"
#include "probes/sample_probes.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"
#include "sparsetrain/masks.h"
#include "sparsetrain/rng.h"

namespace sparsetrain {
namespace detail {
namespace {

using json = nlohmann::json;

// Random resized crop (torchvision's RandomResizedCrop ranges) and colour
// jitter (ColorJitter(brightness=0.2, contrast=0.2)).
constexpr float kCropAreaLow = 0.5f, kCropAreaHigh = 1.0f;
constexpr float kAspectLow = 3.0f / 4.0f, kAspectHigh = 4.0f / 3.0f;
constexpr float kJitterLow = 0.8f, kJitterHigh = 1.2f;
constexpr int64_t kFlipChannels = 3;  // colour images are mirrored, grey ones (digits) never

// Bilinear sample of plane (h, w) at (y, x), both within the plane.
float bilinear(const float* plane, int64_t w, float y, float x) {
  const auto y0 = static_cast<int64_t>(std::floor(y)), x0 = static_cast<int64_t>(std::floor(x));
  const float fy = y - static_cast<float>(y0), fx = x - static_cast<float>(x0);
  const int64_t y1 = fy > 0.0f ? y0 + 1 : y0, x1 = fx > 0.0f ? x0 + 1 : x0;
  const float top = plane[y0 * w + x0] * (1.0f - fx) + plane[y0 * w + x1] * fx;
  const float bottom = plane[y1 * w + x0] * (1.0f - fx) + plane[y1 * w + x1] * fx;
  return top * (1.0f - fy) + bottom * fy;
}

// The softmax of one row of logits: the largest class (the first on ties),
// its probability and the probability of `target`.
struct Prediction {
  int32_t predicted = 0;
  double confidence = 0.0;
  double target_probability = 0.0;
};

Prediction predict(const Tensor& logits, int32_t target) {
  const int64_t k = logits.dim(1);
  const float* z = logits.data();
  const int64_t best = std::max_element(z, z + k) - z;
  double sum = 0.0;
  for (int64_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(z[j]) - z[best]);
  const auto prob = [&](int64_t j) { return std::exp(static_cast<double>(z[j]) - z[best]) / sum; };
  Prediction p;
  p.predicted = static_cast<int32_t>(best);
  p.confidence = prob(best);
  p.target_probability = target >= 0 && target < k ? prob(target) : 0.0;
  return p;
}

json prediction_json(const Prediction& p) {
  return {{"predicted", p.predicted},
          {"confidence", p.confidence},
          {"target_probability", p.target_probability}};
}

class Spade final : public SampleProbe {
 public:
  std::vector<ProbeOption> options() const override {
    return {{"sparsity", "0.8",
             "fraction of each pruned layer's weights the trace sets to zero (the same in every "
             "output row), in [0, 1)"},
            {"augmentations", "256",
             "augmented copies of the sample the layers are fitted on, the sample itself "
             "included (random resized crops, flips of colour images, brightness and contrast)"},
            {"dense-first-last", "auto",
             "leave the first and the last prunable layer as they are: true, false, or auto "
             "(true when the model has convolutions, as the trainer does)"},
            {"then", "saliency",
             "the sample probe run on the trace and on the model, side by side, with its "
             "default options, or none"},
            {"dampening", "0.01",
             "lambda = dampening * mean(diag H) added to the diagonal of H = X X^T before "
             "inverting it"}};
  }

  // The options, checked (Error naming the bad one).
  static SpadeOptions parse(const ProbeContext& c) {
    SpadeOptions o;
    o.sparsity = option_number(c, "sparsity", 0.0, 1.0);
    if (o.sparsity >= 1.0)
      throw Error("--sparsity: expected a number in [0, 1), got '" + c.options.at("sparsity") +
                  "'");
    o.augmentations = option_integer(c, "augmentations", 1, int64_t{1} << 16);
    option_choice(c, "dense-first-last", {"auto", "true", "false"});
    o.dampening = option_number(c, "dampening", 0.0, 1e6);
    const std::string then = c.options.at("then");
    if (then == "spade") throw Error("--then: spade cannot run on its own traces");
    if (then != "none") {
      const std::vector<std::string> names = sample_probe_names();
      if (std::find(names.begin(), names.end(), then) == names.end()) {
        std::string known = "none";
        for (const std::string& n : names)
          if (n != "spade") known += ", " + n;
        throw Error("--then: unknown probe '" + then + "' (expected " + known + ")");
      }
    }
    return o;
  }

  void check(const ProbeContext& c) const override { parse(c); }

  ProbeReport run(const ProbeContext& c) override {
    SpadeOptions o = parse(c);
    const std::string then = c.options.at("then");
    const std::string first_last = c.options.at("dense-first-last");
    if (!c.model_copy) throw Error("spade needs a copy of the model");
    if (c.images.rank() != 4) throw Error("spade: the model's input is not an image");

    const Tensor images = to_layout(c.images, Layout::kNCHW);
    const int64_t ch = images.dim(1), h = images.dim(2), w = images.dim(3);
    const int64_t per = ch * h * w;
    ProbeReport report;
    json samples = json::array();
    std::ostringstream summary;
    for (size_t i = 0; i < c.indices.size(); ++i) {
      const auto start = std::chrono::steady_clock::now();
      const int64_t index = c.indices[i];
      const int32_t target = c.targets[i];
      Tensor image = Tensor::empty({1, ch, h, w}, Layout::kNCHW);
      std::copy_n(images.data() + static_cast<int64_t>(i) * per, per, image.data());

      // The same sample and seed give the same trace wherever it is listed.
      const Tensor batch = spade_augmentations(image, o.augmentations, c.data,
                                               c.seed + static_cast<uint64_t>(index));
      Graph trace = c.model_copy();
      o.dense_first_last =
          first_last == "auto" ? auto_dense_first_last(trace) : first_last == "true";
      const std::vector<SpadeLayer> layers = spade_prune(trace, batch, o);

      const Prediction on_trace = predict(class_logits(trace, image), target);
      const Prediction on_model = predict(class_logits(*c.graph, image), target);

      json sample = {{"index", index},
                     {"label", c.data != nullptr ? c.data->labels[static_cast<size_t>(index)] : -1},
                     {"target", target},
                     {"model", prediction_json(on_model)},
                     {"trace", prediction_json(on_trace)}};
      json layer_list = json::array();
      double error_sum = 0.0;
      int64_t pruned = 0, weights = 0;
      for (const SpadeLayer& l : layers) {
        layer_list.push_back({{"node", l.node},
                              {"sparsity", l.sparsity},
                              {"reconstruction_error", l.reconstruction_error},
                              {"rows", l.rows},
                              {"columns", l.columns}});
        error_sum += l.reconstruction_error;
        pruned += l.pruned;
        weights += l.rows * l.columns;
      }
      sample["layers"] = layer_list;
      sample["trace_sparsity"] = weights > 0 ? static_cast<double>(pruned) / weights : 0.0;

      if (then != "none") {
        ProbeContext inner;
        inner.data = c.data;
        inner.indices = {index};
        inner.targets = {target};
        inner.images = image;
        inner.options = resolve_probe_options(then, {});
        inner.seed = c.seed;
        inner.graph = c.graph;
        inner.model_copy = c.model_copy;
        const ProbeReport of_model = make_sample_probe(then)->run(inner);
        inner.graph = &trace;
        inner.model_copy = {};
        const ProbeReport of_trace = make_sample_probe(then)->run(inner);
        sample["then_model"] = json::parse(of_model.json);
        sample["then_trace"] = json::parse(of_trace.json);
        for (const auto& [from, label] :
             {std::pair{&of_model, " (model)"}, std::pair{&of_trace, " (SPADE trace)"}}) {
          for (ProbeMap m : from->maps) {
            m.sample = static_cast<int64_t>(i);
            m.title += label;
            report.maps.push_back(std::move(m));
          }
        }
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      sample["seconds"] = seconds;
      samples.push_back(std::move(sample));

      char line[256];
      std::snprintf(line, sizeof line,
                    "sample %lld: target %d, model predicts %d (p = %.3f), trace (%zu layers, "
                    "mean reconstruction error %.4f) predicts %d (p = %.3f); %.1f s\n",
                    static_cast<long long>(index), target, on_model.predicted, on_model.confidence,
                    layers.size(),
                    layers.empty() ? 0.0 : error_sum / static_cast<double>(layers.size()),
                    on_trace.predicted, on_trace.confidence, seconds);
      summary << line;
    }
    report.json = json{
        {"sparsity", o.sparsity},
        {"augmentations", o.augmentations},
        {"dense_first_last", first_last},
        {"dampening", o.dampening},
        {"then", then},
        {"samples",
         samples}}.dump();
    report.summary = summary.str();
    return report;
  }
};

}  // namespace

Tensor spade_augmentations(const Tensor& image, int64_t count, const Dataset* data, uint64_t seed) {
  if (image.rank() != 4 && image.rank() != 3)
    throw Error("spade: expected an image (C, H, W), got " + image.shape_string());
  if (count < 1) throw Error("--augmentations: expected at least 1, got " + std::to_string(count));
  const int64_t c = image.dim(-3), h = image.dim(-2), w = image.dim(-1), plane = h * w;
  const Tensor src =
      to_layout(image.rank() == 4 ? image : image.reshaped({1, c, h, w}), Layout::kNCHW);
  const bool pixels = data != nullptr && static_cast<int64_t>(data->mean.size()) == c &&
                      static_cast<int64_t>(data->stddev.size()) == c;
  // The image as pixels in [0, 1] (or as it is), (C, H, W).
  std::vector<float> base(src.data(), src.data() + c * plane);
  if (pixels)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t j = 0; j < plane; ++j)
        base[ch * plane + j] = base[ch * plane + j] * data->stddev[ch] + data->mean[ch];

  Tensor out = Tensor::empty({count, c, h, w}, Layout::kNCHW);
  std::copy_n(src.data(), c * plane, out.data());
  Rng rng(seed);
  std::vector<float> a(static_cast<size_t>(c * plane));
  for (int64_t n = 1; n < count; ++n) {
    const float area = rng.uniform(kCropAreaLow, kCropAreaHigh) * static_cast<float>(plane);
    const float aspect =
        std::exp(rng.uniform(std::log(kAspectLow), std::log(kAspectHigh)));  // width / height
    const int64_t cw = std::clamp<int64_t>(std::lround(std::sqrt(area * aspect)), 1, w);
    const int64_t chh = std::clamp<int64_t>(std::lround(std::sqrt(area / aspect)), 1, h);
    const auto x0 = static_cast<int64_t>(rng.below(static_cast<uint64_t>(w - cw + 1)));
    const auto y0 = static_cast<int64_t>(rng.below(static_cast<uint64_t>(h - chh + 1)));
    const bool flip = c == kFlipChannels && rng.uniform() < 0.5f;
    const float brightness = rng.uniform(kJitterLow, kJitterHigh);
    const float contrast = rng.uniform(kJitterLow, kJitterHigh);
    // Crop resized with half-pixel centres (align_corners = false).
    const float sy = static_cast<float>(chh) / static_cast<float>(h);
    const float sx = static_cast<float>(cw) / static_cast<float>(w);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y) {
        const float yy = std::clamp((static_cast<float>(y) + 0.5f) * sy - 0.5f, 0.0f,
                                    static_cast<float>(chh - 1)) +
                         static_cast<float>(y0);
        for (int64_t x = 0; x < w; ++x) {
          const int64_t from = flip ? w - 1 - x : x;
          const float xx = std::clamp((static_cast<float>(from) + 0.5f) * sx - 0.5f, 0.0f,
                                      static_cast<float>(cw - 1)) +
                           static_cast<float>(x0);
          a[ch * plane + y * w + x] = brightness * bilinear(base.data() + ch * plane, w, yy, xx);
        }
      }
    // Contrast around the mean over all channels (ColorJitter uses the grey
    // level; the difference is a slight tint).
    double mean = 0.0;
    for (float v : a) mean += v;
    mean /= static_cast<double>(a.size());
    float* dst = out.data() + n * c * plane;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t j = 0; j < plane; ++j) {
        float v = static_cast<float>(mean + contrast * (a[ch * plane + j] - mean));
        if (pixels) v = (std::clamp(v, 0.0f, 1.0f) - data->mean[ch]) / data->stddev[ch];
        dst[ch * plane + j] = v;
      }
  }
  return out;
}

std::vector<SpadeLayer> spade_prune(Graph& model, const Tensor& batch,
                                    const SpadeOptions& options) {
  if (!(options.sparsity >= 0.0 && options.sparsity < 1.0)) {
    throw Error("--sparsity: expected a number in [0, 1), got " + std::to_string(options.sparsity));
  }
  model.set_sparse_kernels("sparse");
  std::vector<SpadeLayer> out;
  for (const PrunableLayer& layer : prunable_layers(model, options.dense_first_last)) {
    const Gram h = layer_input_gram(model, layer.node, batch);
    Parameter& weight = model.parameter(layer.param);
    const Tensor dense = dense_value(weight);
    const Tensor keep = kept_mask(weight);
    SpadeLayer l;
    l.node = layer.node;
    l.rows = layer.shape[0];
    l.columns = dense.numel() / l.rows;
    std::vector<uint8_t> forced(static_cast<size_t>(dense.numel()));
    for (int64_t i = 0; i < dense.numel(); ++i) forced[static_cast<size_t>(i)] = keep[i] == 0.0f;
    const ObsResult r =
        obs_prune({dense.data(), static_cast<size_t>(dense.numel())}, l.rows, l.columns, h,
                  {.sparsity = options.sparsity, .dampening = options.dampening}, forced);
    l.pruned = r.pruned;
    l.sparsity = static_cast<double>(r.pruned) / static_cast<double>(dense.numel());
    l.reconstruction_error = r.reconstruction_error;
    if (r.pruned > 0 || weight.compressed() || weight.masked()) {
      Tensor mask = Tensor::empty(layer.shape);
      for (int64_t i = 0; i < mask.numel(); ++i) mask[i] = r.kept[static_cast<size_t>(i)];
      model.compress(layer.node, mask);
      Parameter& stored = model.parameter(layer.param);
      for (size_t k = 0; k < stored.dense_index.size(); ++k)
        stored.value[static_cast<int64_t>(k)] =
            r.weight[static_cast<size_t>(stored.dense_index[k])];
    }
    out.push_back(std::move(l));
  }
  return out;
}

void register_spade() {
  register_sample_probe("spade", [] { return std::make_unique<Spade>(); });
}

}  // namespace detail
}  // namespace sparsetrain

// The passes every attribution probe shares (sparsetrain/attribution.h).
#include "sparsetrain/attribution.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "sparsetrain/error.h"

namespace sparsetrain {

const char* class_score_name(ClassScore score) {
  switch (score) {
    case ClassScore::kLogit:
      return "logit";
    case ClassScore::kProbability:
      return "probability";
    case ClassScore::kLogProbability:
      return "log-probability";
  }
  return "?";
}

ClassScore parse_class_score(const std::string& name, const std::string& flag) {
  for (ClassScore s : {ClassScore::kLogit, ClassScore::kProbability, ClassScore::kLogProbability})
    if (name == class_score_name(s)) return s;
  throw Error(flag + ": unknown score '" + name +
              "' (expected logit, probability or log-probability)");
}

ScoreGradient class_score_gradient(Graph& graph, const Tensor& x, std::span<const int32_t> targets,
                                   ClassScore score) {
  if (x.rank() < 2 || x.dim(0) != static_cast<int64_t>(targets.size())) {
    throw Error("class_score_gradient: " + std::to_string(targets.size()) +
                " targets for inputs of shape " + x.shape_string());
  }
  const int64_t n = x.dim(0);
  const Tensor logits = graph.forward(x, ExecMode::kProbe);
  const int64_t k = logits.dim(1);
  ScoreGradient r;
  r.score.resize(static_cast<size_t>(n));
  r.probability.resize(static_cast<size_t>(n));
  r.predicted.resize(static_cast<size_t>(n));
  // d score / d logits, one row per sample.
  Tensor diff = Tensor::zeros({n, k});
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = targets[static_cast<size_t>(i)];
    if (t < 0 || t >= k) {
      graph.release();
      throw Error("target class " + std::to_string(t) + " is outside the model's " +
                  std::to_string(k) + " classes (0-" + std::to_string(k - 1) + ")");
    }
    const float* row = logits.data() + i * k;
    const int64_t best = std::max_element(row, row + k) - row;
    const float top = row[best];
    std::vector<double> p(static_cast<size_t>(k));  // softmax of the row
    double sum = 0;
    for (int64_t c = 0; c < k; ++c) sum += p[c] = std::exp(static_cast<double>(row[c] - top));
    for (double& v : p) v /= sum;
    r.predicted[i] = static_cast<int32_t>(best);
    r.probability[i] = static_cast<float>(p[t]);
    float* d = diff.data() + i * k;
    switch (score) {
      case ClassScore::kLogit:
        r.score[i] = row[t];
        d[t] = 1.0f;
        break;
      case ClassScore::kProbability:
        // d p_t / d z_c = p_t (1[c = t] - p_c)
        r.score[i] = static_cast<float>(p[t]);
        for (int64_t c = 0; c < k; ++c)
          d[c] = static_cast<float>(p[t] * ((c == t ? 1.0 : 0.0) - p[c]));
        break;
      case ClassScore::kLogProbability:
        // d log p_t / d z_c = 1[c = t] - p_c
        r.score[i] = static_cast<float>(static_cast<double>(row[t] - top) - std::log(sum));
        for (int64_t c = 0; c < k; ++c) d[c] = static_cast<float>((c == t ? 1.0 : 0.0) - p[c]);
        break;
    }
  }
  r.input_grad = graph.backward(diff, BackwardOptions{.param_grads = false, .input_grad = true});
  graph.release();
  return r;
}

Tensor class_logits(Graph& graph, const Tensor& x, int64_t batch) {
  if (batch <= 0) throw Error("class_logits: batch must be positive");
  const int64_t n = x.dim(0);
  const int64_t per = x.numel() / std::max<int64_t>(n, 1);
  Tensor out;
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t rows = std::min(batch, n - first);
    Shape shape = x.shape();
    shape[0] = rows;
    Tensor chunk = Tensor::empty(shape, x.layout());
    std::copy(x.data() + first * per, x.data() + (first + rows) * per, chunk.data());
    const Tensor logits = graph.forward(chunk, ExecMode::kInference);
    if (!out.defined()) out = Tensor::empty({n, logits.dim(1)});
    std::copy(logits.data(), logits.data() + logits.numel(), out.data() + first * logits.dim(1));
  }
  graph.release();
  return out;
}

Tensor dataset_images(const Dataset& data, std::span<const int64_t> indices) {
  const int64_t numel = data.image_numel();
  const int64_t plane = data.height * data.width;
  Tensor x =
      Tensor::empty({static_cast<int64_t>(indices.size()), data.channels, data.height, data.width},
                    Layout::kNCHW);
  for (size_t i = 0; i < indices.size(); ++i) {
    const int64_t index = indices[i];
    if (index < 0 || index >= data.size()) {
      throw Error("sample index " + std::to_string(index) + " is outside the " + data.name + " " +
                  "set's " + std::to_string(data.size()) + " samples (0-" +
                  std::to_string(data.size() - 1) + ")");
    }
    float* dst = x.data() + static_cast<int64_t>(i) * numel;
    if (!data.values.empty()) {
      std::copy_n(data.values.data() + index * numel, numel, dst);
      continue;
    }
    const uint8_t* src = data.pixels.data() + index * numel;
    for (int64_t c = 0; c < data.channels; ++c)
      for (int64_t j = 0; j < plane; ++j)
        dst[c * plane + j] =
            (static_cast<float>(src[c * plane + j]) / 255.0f - data.mean[c]) / data.stddev[c];
  }
  return x;
}

}  // namespace sparsetrain

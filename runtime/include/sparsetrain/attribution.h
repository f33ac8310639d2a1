// Attribution probes: what in an input makes a model give a class its score.
// They run their own passes on a graph in ExecMode::kProbe (running
// BatchNorm statistics, no dropout, no parameter, buffer or gradient of the
// graph changed; compressed layers on the sparse kernels) and ask the
// executor for the gradient with respect to the input. The probes are
// registered by name (runtime/src/probes/, one file a probe) and run from
// `sparsetrain probe NAME` or from C++ (make_sample_probe, or each probe's
// function directly).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/data.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// The score of the target class being explained.
enum class ClassScore : uint8_t {
  kLogit,           // the class's logit (the default of saliency and IG)
  kProbability,     // softmax probability (SIS's confidence)
  kLogProbability,  // log softmax
};
const char* class_score_name(ClassScore score);  // "logit" | "probability" | "log-probability"
// Throws Error naming `flag` and the accepted names on anything else.
ClassScore parse_class_score(const std::string& name, const std::string& flag = "--score");

struct ScoreGradient {
  std::vector<float> score;        // (N) the target's score
  std::vector<float> probability;  // (N) the target's softmax probability
  std::vector<int32_t> predicted;  // (N) the largest logit's class (the first, on ties)
  Tensor input_grad;               // the shape of x: d score[n] / d x[n]
};

// One kProbe forward and backward of `graph` on x ((N, C, H, W) or (N, F),
// plain): each sample's score of class targets[n] and its gradient with
// respect to that sample. Leaves the graph as it was, bit for bit, also
// between two training steps. Throws Error on a target outside the
// classes or a size mismatch.
ScoreGradient class_score_gradient(Graph& graph, const Tensor& x, std::span<const int32_t> targets,
                                   ClassScore score = ClassScore::kLogit);

// The logits (N, K) of x in inference mode, `batch` samples at a time.
Tensor class_logits(Graph& graph, const Tensor& x, int64_t batch = 256);

// The samples `indices` of `data` as the model sees them: (N, C, H, W),
// normalised as the loader does, never augmented. Throws Error naming
// the first index outside [0, data.size()).
Tensor dataset_images(const Dataset& data, std::span<const int64_t> indices);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

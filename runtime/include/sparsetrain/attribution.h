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

// --- sample probes: registered by name, run by `sparsetrain probe NAME` ----

// An option of a probe: `--name VALUE` on the command line.
struct ProbeOption {
  std::string name;           // without the dashes: "steps"
  std::string default_value;  // as text: "50"
  std::string help;
};

// What a sample probe runs on.
struct ProbeContext {
  Graph* graph = nullptr;         // the model; probes run probe passes on it and change nothing
  const Dataset* data = nullptr;  // the samples' dataset (normalisation, class names, more samples)
  std::vector<int64_t> indices;   // the samples: rows of *data
  std::vector<int32_t> targets;   // the class explained for each sample
  Tensor images;                  // dataset_images(*data, indices)
  // Every option of the probe's options(), given or default, as text.
  std::map<std::string, std::string> options;
  uint64_t seed = 0;
  // A new copy of the model (for probes that change one: spade); empty when
  // the caller has none, and such probes then say so.
  std::function<Graph()> model_copy;
};

// A picture of one sample: the sample's image beside a map over a dimmed
// copy of it.
struct ProbeMap {
  int64_t sample = 0;      // position in ProbeContext::indices
  std::string title;       // "saliency", "IG 50 steps", ...
  Tensor map;              // (H, W); undefined: `image` is shown alone, in its colours
  bool is_signed = false;  // diverging colours around 0; else 0 (dark) to the largest (bright)
  // An image to show under the map instead of the sample's own ((C, H, W),
  // normalised as the dataset's): SIS's reduced image. Empty: the sample.
  Tensor image;
};

struct ProbeReport {
  std::string json;            // the results, a JSON object: everything numeric, arrays included
  std::vector<ProbeMap> maps;  // the pictures
  std::string summary;         // a few lines for a terminal
};

class SampleProbe {
 public:
  virtual ~SampleProbe() = default;
  virtual std::vector<ProbeOption> options() const = 0;
  // Checks the values of context.options before a run (Error naming the
  // option); run() checks them too.
  virtual void check(const ProbeContext& context) const = 0;
  // Throws Error naming the option on a bad value (see ProbeContext::options).
  virtual ProbeReport run(const ProbeContext& context) = 0;
};

using SampleProbeFactory = std::function<std::unique_ptr<SampleProbe>()>;
// Adds a probe under `name`; throws Error when the name is taken.
void register_sample_probe(const std::string& name, SampleProbeFactory factory);
// A new probe of that name; throws Error naming it and listing the known ones.
std::unique_ptr<SampleProbe> make_sample_probe(const std::string& name);
std::vector<std::string> sample_probe_names();  // sorted

// Fills in the defaults of the probe's options over `given` and checks every
// given name is one of them (Error: "--NAME is not an option of probe P").
std::map<std::string, std::string> resolve_probe_options(
    const std::string& probe, const std::map<std::string, std::string>& given);

// Writes DIR/NAME.json (`header`, a JSON object naming the checkpoint,
// classes and options, with the samples and the report's results under
// "results"), DIR/NAME-<index>.png for each sample (its image beside its
// maps) and DIR/NAME-sheet.png (all samples, a row each). Atomic writes;
// returns the paths written.
std::vector<std::string> write_probe_report(const std::string& dir, const std::string& name,
                                            const std::string& header, const ProbeContext& context,
                                            const ProbeReport& report);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

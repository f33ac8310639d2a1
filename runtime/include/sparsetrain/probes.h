// Probes observe a graph through hooks only (and run their own passes in
// ExecMode::kProbe, which change nothing). Each is registered by name
// (runtime/src/probes/, one file a probe): `sparsetrain train --probe NAME`
// and TrainOptions::probes run it over the final evaluation, and apps make
// one with make_probe(name) or use its class directly.
//
// The first one, "activation-stats": activation statistics per node (mean,
// standard deviation, fraction of exact zeros, and dead units: channels or
// features that were zero for every sample).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/files.h"  // write_file_atomic
#include "sparsetrain/graph.h"
#include "sparsetrain/hooks.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// The interface the trainer runs a probe through.
class Probe {
 public:
  virtual ~Probe() = default;
  virtual const char* name() const = 0;
  // Starts observing `graph` (hooks on the nodes matching `pattern`) until
  // detach().
  virtual void attach(Graph& graph, const std::string& pattern = "*") = 0;
  virtual void detach() = 0;
  // Writes the results into `folder` (atomically; sparsetrain/files.h) and
  // returns the path of the file written. Throws Error naming the path.
  virtual std::string write(const std::string& folder) const = 0;
};

using ProbeFactory = std::function<std::unique_ptr<Probe>()>;
// Adds a probe under `name`; throws Error when the name is taken.
void register_probe(const std::string& name, ProbeFactory factory);
// A new probe of that name; throws Error naming it and listing the known ones.
std::unique_ptr<Probe> make_probe(const std::string& name);
std::vector<std::string> probe_names();  // sorted

struct ActivationStats {
  std::string node;
  std::string type;
  int64_t samples = 0;   // batch items seen
  int64_t elements = 0;  // activation values seen
  double mean = 0;
  double stddev = 0;
  double zero_fraction = 0;
  int64_t units = 0;       // channels (4-D) or features (2-D)
  int64_t dead_units = 0;  // units that were zero for every sample seen
};

class ActivationStatsProbe final : public Probe {
 public:
  ActivationStatsProbe() = default;
  const char* name() const override { return "activation-stats"; }
  // Starts collecting the outputs of the nodes matching `pattern` on every
  // forward pass until detach().
  void attach(Graph& graph, const std::string& pattern = "*") override;
  void detach() override;
  // folder/activation-stats.json.
  std::string write(const std::string& folder) const override;
  void reset();
  std::vector<ActivationStats> results() const;
  std::string to_json() const;
  // Writes to_json() to `path` atomically; throws Error naming the path.
  void write_json(const std::string& path) const;

 private:
  struct Accumulator {
    std::string node, type;
    int64_t samples = 0, elements = 0, zeros = 0;
    double sum = 0, sum_sq = 0;
    std::vector<char> alive;  // per unit: ever nonzero
  };
  void observe(const std::string& node, const std::string& type, const Tensor& t);
  std::vector<Accumulator> acc_;
  HookHandle handle_;
};

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

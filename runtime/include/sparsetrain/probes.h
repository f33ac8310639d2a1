// Probes observe a graph through hooks only. The first one: activation
// statistics per node (mean, standard deviation, fraction of exact zeros,
// and dead units: channels or features that were zero for every sample).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparsetrain/files.h"  // write_file_atomic
#include "sparsetrain/graph.h"
#include "sparsetrain/hooks.h"

namespace sparsetrain {

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

class ActivationStatsProbe {
 public:
  ActivationStatsProbe() = default;
  // Starts collecting the outputs of the nodes matching `pattern` on every
  // forward pass until detach().
  void attach(Graph& graph, const std::string& pattern = "*");
  void detach();
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


}  // namespace sparsetrain

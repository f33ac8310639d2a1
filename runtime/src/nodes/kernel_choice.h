// Sparse or dense kernels for a compressed layer (DESIGN.md "Choosing sparse
// or dense per layer"; the public side, the record and the rule, is
// sparsetrain/kernel_choices.h). A KernelChoiceBook belongs to one graph:
// its prunable nodes ask it the first time they meet a problem, it decides
// (timed, by the rule, or from a replayed record), remembers the decision for
// the graph's life and records it. Shared by the linear and conv2d nodes.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "sparsetrain/kernel_choices.h"

namespace sparsetrain::nodes {

// The two candidate steps of one layer, on buffers the closures own.
struct TimedSteps {
  std::function<void()> sparse;
  std::function<void()> dense;
};

class KernelChoiceBook {
 public:
  // Whether the sparse kernels run `problem` (layer, op, problem and the
  // descriptive fields set; `problem.kernels` the mode: "auto" or
  // "auto-fixed"). In order: a decision this book made or replayed for
  // (layer, problem) before; a replayed record; auto at a batch of at least
  // kKernelChoiceSharedMinBatch: the layer's decision for the same family at
  // another such batch; auto-fixed: the rule; auto: the timing of another
  // layer with the same problem in this book, else `prepare` builds the two
  // steps and they are timed. A new decision is recorded and logged
  // (kernels/common/log.h, LogLevel::kInfo).
  bool choose(KernelChoice problem, const std::function<TimedSteps()>& prepare);

  // Records to take instead of deciding, replacing earlier records and
  // decisions for the same layer and problem. Nodes ask on every forward,
  // so a replay takes effect at the next one.
  void replay(const std::vector<KernelChoice>& records);
  // The decisions used so far, in the order first used.
  std::vector<KernelChoice> made() const;
  void set_timing_hook(KernelTimingHook hook);
  void set_step(int64_t step) { step_ = step; }
  int64_t timings_run() const;

 private:
  using Key = std::pair<std::string, std::string>;  // (layer, problem)
  struct Timing {
    double sparse_ms = 0, dense_ms = 0;
  };
  Timing time_steps(const KernelChoice& problem, const std::function<TimedSteps()>& prepare);
  // Auto mode, a batch of at least kKernelChoiceSharedMinBatch: the layer's
  // decision (made here, else recorded) for the same family at another such
  // batch, or null.
  const KernelChoice* same_family(const KernelChoice& c) const;

  mutable std::mutex mutex_;          // timings of different layers never overlap
  std::map<Key, std::size_t> index_;  // -> made_
  std::vector<KernelChoice> made_;
  std::map<Key, KernelChoice> replay_;
  std::map<std::string, Timing> timed_;  // problem -> medians, shared among layers
  KernelTimingHook hook_;
  int64_t step_ = 0;
  int64_t timings_ = 0;
};

}  // namespace sparsetrain::nodes

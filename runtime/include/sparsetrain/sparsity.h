// Sparsity (DESIGN.md "Sparsity methods"): a run's sparsity schedule in
// steps and the controller that applies it around every step. Which weights
// to keep is sparsetrain/masks.h; when they change is the method's
// (sparsetrain/sparsity_method.h: static, AC/DC, gradual magnitude pruning,
// RigL, or an app's own); both headers are included here. The trainer
// drives a SparsityController around every step; an app with its own
// training loop can do the same.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/error.h"
#include "sparsetrain/masks.h"
#include "sparsetrain/sparsity_method.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

class Graph;
class Optimizer;
struct TrainOptions;

// The first step at or after an epoch (fractions allowed):
// round(epoch * steps_per_epoch).
int64_t epoch_to_step(double epoch, int64_t steps_per_epoch);

// A run's sparsity schedule in steps: the settings every method shares and
// the method with its plan. "At step s" means before the step with index s
// runs, i.e. after s steps have been taken; a phase that begins at step s is
// in force from that step on.
struct SparsitySchedule {
  std::string method_name = "static";  // as registered (sparsity_method_names)
  // The method with its plan (make_sparsity_schedule); null on a
  // default-constructed schedule, which is a dense run.
  std::shared_ptr<const SparsityMethod> method;
  Distribution distribution = Distribution::kUniform;
  float sparsity = 0.0f;        // the target; 0: a dense run
  int dense_first_last = -1;    // as TrainOptions::dense_first_last
  bool masked_storage = false;  // sparse phases hold masks instead of compressing
  int64_t steps_per_epoch = 1;
  int64_t total_steps = 0;

  bool active() const { return sparsity > 0.0f; }
  // The phase of the sparse layers: compressed, or masked with masked
  // storage.
  SparsityPhase sparse_phase() const {
    return masked_storage ? SparsityPhase::kMasked : SparsityPhase::kCompressed;
  }
  // The phase while step `step` runs.
  SparsityPhase phase_at(int64_t step) const;
  // One line for the run header, e.g. "acdc, global, target 0.900; dense
  // until epoch 1.5, compressed from 1.5 7.5 ..., decompressed from 4.5 ...".
  std::string describe() const;
  // The method as its class, to read its plan (e.g.
  // method_as<GmpMethod>().prunes_at(step)); throws Error when it is another.
  template <typename Method>
  const Method& method_as() const {
    const auto* m = dynamic_cast<const Method*>(method.get());
    if (m == nullptr) throw Error("SparsitySchedule: the method is '" + method_name + "'");
    return *m;
  }
};

// The schedule of a run from its options (defaults filled in, epochs
// converted to steps). Throws Error naming the option on a bad value,
// including phase boundaries that fall on the same step.
SparsitySchedule make_sparsity_schedule(const TrainOptions& options, int64_t steps_per_epoch);
// The checks of make_sparsity_schedule that need no step count (called by
// validate(TrainOptions)): the common options, the options of other methods
// refused, then SparsityMethod::validate.
void validate_sparsity_options(const TrainOptions& options);

// Something the controller did, for logs and metrics.
struct SparsityEvent {
  int64_t step = 0;
  std::string kind;  // "phase" (a new phase), or the method's: "prune" (gmp), "update" (rigl)
  SparsityPhase phase = SparsityPhase::kDense;
  double sparsity = 0;            // over the chosen layers, after the event
  std::vector<double> densities;  // per chosen layer, after the event
  double drop_fraction = 0;       // update: the fraction dropped and regrown
  int64_t regrown = 0;            // update: weights regrown over all layers
};

// Applies a schedule to a graph around the training steps, through its
// method's hooks (sparsetrain/sparsity_method.h) on the controller's own
// copy of the method:
//   start()                       once, right after initialisation
//   before_step(s)                transitions and pruning due at step s
//   forward, backward
//   after_backward(s)             (RigL reads the dense gradients of an update)
//   mask gradients, optimizer step, mask values
//   after_step(s)                 (RigL: drop, grow, compress)
// Every transition goes through Graph::compress / decompress / mask with the
// optimizer, and fires HookPoint::kPhaseChange with the new phase's name.
class SparsityController {
 public:
  // `optimizer` may be null (no state to carry). The graph and optimizer
  // must outlive the controller.
  SparsityController(SparsitySchedule schedule, Graph& graph, Optimizer* optimizer);

  const SparsitySchedule& schedule() const { return schedule_; }
  // The layers the schedule prunes (dense_first_last resolved).
  const std::vector<PrunableLayer>& layers() const { return layers_; }
  bool dense_first_last() const { return dense_first_last_; }
  SparsityPhase phase() const { return phase_; }

  // The method's masks that exist from the start (static: magnitude masks
  // at the target; rigl: random masks, ERK by default), compressed or
  // masked with masked storage.
  void start();
  // After a checkpoint taken after `steps` steps was loaded (its masks
  // restored with the parameters, in the state they were saved in): adopts
  // the schedule's phase at that point.
  void resume(int64_t steps);

  void before_step(int64_t step);
  void after_backward(int64_t step);
  void after_step(int64_t step);

  // Events since the last call, oldest first.
  std::vector<SparsityEvent> take_events();
  // Grows whenever masks may have changed (an event recorded, masks
  // applied): data-parallel training compares the ranks' masks then.
  int64_t mask_changes() const { return mask_changes_; }
  // Kept fraction of each chosen layer now.
  std::vector<double> densities();
  // Sparsity over the chosen layers now.
  double sparsity();

  // --- for the methods' hooks ----------------------------------------------
  Graph& graph() { return graph_; }
  Optimizer* optimizer() { return optimizer_; }
  // One 0/1 mask per layer (the weight's dense shape): each layer compressed
  // to it (`compressed`) or holding it as a mask, the optimizer state of
  // the kept entries carried over.
  void apply_masks(const std::vector<Tensor>& masks, bool compressed);
  // Enters `phase` at `step`: fires HookPoint::kPhaseChange and records a
  // "phase" event; nothing when already in it.
  void set_phase(SparsityPhase phase, int64_t step);
  // The phase a resumed run is in (SparsityMethod::resume): no hook, no
  // event.
  void restore_phase(SparsityPhase phase) { phase_ = phase; }
  // Records an event of `kind` at `step` with the phase, densities and
  // sparsity now; the method may fill in the rest of it.
  SparsityEvent& record(int64_t step, const std::string& kind);

 private:
  SparsitySchedule schedule_;
  std::unique_ptr<SparsityMethod> method_;  // the run's copy of schedule_.method
  Graph& graph_;
  Optimizer* optimizer_;
  bool dense_first_last_ = false;
  std::vector<PrunableLayer> layers_;
  SparsityPhase phase_ = SparsityPhase::kDense;
  std::vector<SparsityEvent> events_;
  int64_t mask_changes_ = 0;
};

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

// Sparsity methods: when masks change. Each is one class behind the
// SparsityMethod interface, registered by name: TrainOptions::sparsity_method
// (`sparsetrain train --sparsity-method NAME`) picks one, and the
// SparsityController (sparsetrain/sparsity.h) runs it around every step
// without knowing which it is. The built-ins are one file each in
// runtime/src/sparsity/methods/; an app adds its own with
// register_sparsity_method and no other change. Which weights to keep is
// sparsetrain/masks.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/masks.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

struct TrainOptions;
struct SparsitySchedule;
class SparsityController;

// The state the chosen layers are in while a step runs.
enum class SparsityPhase : uint8_t {
  kDense,         // before any pruning (or a dense run)
  kMasked,        // dense storage + masks, dense kernels (GMP ramp; masked storage)
  kCompressed,    // nonzeros only, sparse kernels where they are faster
  kDecompressed,  // AC/DC: dense training between compressed phases
};
// "dense" | "masked" | "compressed" | "decompressed": the name a kPhaseChange
// hook receives.
const char* phase_name(SparsityPhase phase);

// A sparsity method in two parts:
// - its plan: from the run's options, the steps at which it prunes,
//   compresses or updates (make_sparsity_schedule calls validate, then plan
//   on a fresh object, and keeps it const in SparsitySchedule::method);
// - its run: hooks the SparsityController calls on its own clone() of the
//   plan, which may keep state between them (RigL's gradients). The hooks
//   run only when the schedule is active (sparsity > 0); they change the
//   layers through the controller (apply_masks, set_phase, record; graph()
//   and optimizer() for anything else).
// "At step s" means before the step with index s runs.
class SparsityMethod {
 public:
  virtual ~SparsityMethod() = default;
  // A copy of the plan with fresh run state.
  virtual std::unique_ptr<SparsityMethod> clone() const = 0;

  // --- the plan -----------------------------------------------------------
  // The distribution when TrainOptions::distribution is empty.
  virtual Distribution default_distribution() const = 0;
  // Whether --sparsity 0 is an error ("needs a target"); false: a dense run.
  virtual bool needs_target() const { return true; }
  // The options only some methods read (--compress-epochs,
  // --decompress-epochs, --initial-sparsity, --prune-start-epoch,
  // --prune-end-epoch) that this one reads. A run that sets another of them
  // is refused with a message naming the methods that read it.
  virtual std::vector<std::string> option_flags() const { return {}; }
  // Checks of its own options beyond the common ones (validate(TrainOptions)
  // calls it); throws Error naming the option.
  virtual void validate(const TrainOptions& options) const {}
  // Turns its options into steps; `schedule` has every common field filled
  // in (its `method` not yet). Throws Error naming the option when the
  // epochs do not fit the steps (two phases on one step).
  virtual void plan(const TrainOptions& options, const SparsitySchedule& schedule) {}
  // The phase while step `step` runs, for an active schedule.
  virtual SparsityPhase phase_at(const SparsitySchedule& schedule, int64_t step) const = 0;
  // The run header after "<name>, <distribution>, target <s>", e.g.
  // "; dense until epoch 1.5 (step 150), compressed from epochs ...".
  virtual std::string describe(const SparsitySchedule& schedule) const = 0;

  // --- the run (SparsityController, in this order around each step) --------
  // Right after initialisation: masks that exist from the start.
  virtual void start(SparsityController& controller) {}
  // After a checkpoint taken after `steps` steps was loaded (masks restored
  // with the parameters): drops the run state and adopts the phase of that
  // point with controller.restore_phase. The default adopts phase_at(steps
  // - 1) when steps > 0 and keeps the phase start() set otherwise.
  virtual void resume(SparsityController& controller, int64_t steps);
  virtual void before_step(SparsityController& controller, int64_t step) {}
  // After backward, before the gradients are masked.
  virtual void after_backward(SparsityController& controller, int64_t step) {}
  // After the optimizer step and the values' masking.
  virtual void after_step(SparsityController& controller, int64_t step) {}
};

using SparsityMethodFactory = std::function<std::unique_ptr<SparsityMethod>()>;
// Adds a method under `name`; throws Error when the name is taken.
void register_sparsity_method(const std::string& name, SparsityMethodFactory factory);
// A new method of that name (no plan yet); throws Error naming
// --sparsity-method and listing the known ones.
std::unique_ptr<SparsityMethod> make_sparsity_method(const std::string& name);
// In registration order: the built-ins static, acdc, gmp, rigl, then an
// app's own.
std::vector<std::string> sparsity_method_names();

// --- the built-ins whose plans apps and tests read ----------------------------
// (static, masks at the target right after initialisation and fixed for the
// run, is runtime/src/sparsity/methods/static.cc alone.)

// AC/DC (Peste et al. 2021): a dense warm-up, then compressed and
// decompressed phases alternating, ending compressed. Default distribution
// global.
class AcdcMethod final : public SparsityMethod {
 public:
  std::unique_ptr<SparsityMethod> clone() const override;
  Distribution default_distribution() const override { return Distribution::kGlobal; }
  std::vector<std::string> option_flags() const override;
  void validate(const TrainOptions& options) const override;
  void plan(const TrainOptions& options, const SparsitySchedule& schedule) override;
  SparsityPhase phase_at(const SparsitySchedule& schedule, int64_t step) const override;
  std::string describe(const SparsitySchedule& schedule) const override;
  void resume(SparsityController& controller, int64_t steps) override;
  void before_step(SparsityController& controller, int64_t step) override;

  // Steps at which compressed / decompressed phases begin.
  const std::vector<int64_t>& compress_steps() const { return compress_steps_; }
  const std::vector<int64_t>& decompress_steps() const { return decompress_steps_; }

 private:
  std::vector<int64_t> compress_steps_, decompress_steps_;
};

// AC/DC's default phase starts for a run of `epochs` epochs: the paper's
// 200-epoch schedule (compressed from epochs 10, 50, 90, 130, 170,
// decompressed from 30, 70, 110, 150) scaled, i.e. 5, 25, 45, 65, 85% and
// 15, 35, 55, 75% of the run.
std::vector<double> acdc_default_compress_epochs(double epochs);
std::vector<double> acdc_default_decompress_epochs(double epochs);

// Gradual magnitude pruning (Zhu & Gupta 2017): masked while the target
// ramps up on the cubic schedule, compressed once it is met. Pruning at
// start_step() + k * every_steps() up to end_step() (= t0 + n dt), where the
// final sparsity is reached and the layers are compressed. Default
// distribution global.
class GmpMethod final : public SparsityMethod {
 public:
  std::unique_ptr<SparsityMethod> clone() const override;
  Distribution default_distribution() const override { return Distribution::kGlobal; }
  std::vector<std::string> option_flags() const override;
  void validate(const TrainOptions& options) const override;
  void plan(const TrainOptions& options, const SparsitySchedule& schedule) override;
  SparsityPhase phase_at(const SparsitySchedule& schedule, int64_t step) const override;
  std::string describe(const SparsitySchedule& schedule) const override;
  void resume(SparsityController& controller, int64_t steps) override;
  void before_step(SparsityController& controller, int64_t step) override;

  float initial_sparsity() const { return initial_sparsity_; }
  int64_t start_step() const { return start_step_; }
  int64_t every_steps() const { return every_steps_; }
  int64_t end_step() const { return end_step_; }
  // Whether the masks are recomputed at `step`, and the target then.
  bool prunes_at(int64_t step) const;
  double target(int64_t step) const;

 private:
  float initial_sparsity_ = 0.0f, final_sparsity_ = 0.0f;
  int64_t start_step_ = 0, every_steps_ = 100, end_step_ = 0;
};

// GMP's target at step t,
//   s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3 for t0 <= t <= t0 + n dt,
// s_i before t0 and s_f after.
double gmp_sparsity(int64_t step, double initial, double final_sparsity, int64_t start_step,
                    int64_t end_step);

// RigL (Evci et al. 2020): fixed sparsity from random masks at
// initialisation; at start_step() + k * every_steps() (k >= 1) before
// end_step() each layer drops its smallest stored weights and grows as many
// at the pruned positions with the largest dense gradient, the fraction
// drop_fraction / 2 (1 + cos(pi t / end_step)) of its stored weights.
// Default distribution ERK.
class RiglMethod final : public SparsityMethod {
 public:
  std::unique_ptr<SparsityMethod> clone() const override;
  Distribution default_distribution() const override { return Distribution::kErk; }
  std::vector<std::string> option_flags() const override;
  void validate(const TrainOptions& options) const override;
  void plan(const TrainOptions& options, const SparsitySchedule& schedule) override;
  SparsityPhase phase_at(const SparsitySchedule& schedule, int64_t step) const override;
  std::string describe(const SparsitySchedule& schedule) const override;
  void start(SparsityController& controller) override;
  void resume(SparsityController& controller, int64_t steps) override;
  void before_step(SparsityController& controller, int64_t step) override;
  void after_backward(SparsityController& controller, int64_t step) override;
  void after_step(SparsityController& controller, int64_t step) override;

  int64_t start_step() const { return start_step_; }
  int64_t every_steps() const { return every_steps_; }
  int64_t end_step() const { return end_step_; }
  uint64_t seed() const { return seed_; }  // of the initial masks
  // Whether the masks are updated on step `step`, and the fraction of each
  // layer's stored weights dropped and regrown then.
  bool updates_at(int64_t step) const;
  double drop_fraction_at(int64_t step) const;

 private:
  void begin_update(SparsityController& controller);
  void finish_update(SparsityController& controller, int64_t step);

  int64_t start_step_ = 0, every_steps_ = 100, end_step_ = 0;
  float drop_fraction_ = 0.3f;
  uint64_t seed_ = 0;
  // Run state: an update in progress and its dense gradients.
  bool updating_ = false;
  std::vector<Tensor> grads_;
};

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

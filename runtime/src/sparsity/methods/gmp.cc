// Gradual magnitude pruning (Zhu & Gupta 2017): masks by magnitude every dt
// steps while the target ramps up on the cubic schedule (masked: the pruned
// weights stay zero and are never chosen again), compressed once the final
// sparsity is met.
#include <algorithm>
#include <cstdio>

#include "sparsetrain/options.h"
#include "sparsetrain/sparsity.h"
#include "sparsity/methods/registry.h"
#include "sparsity/sparsity_internal.h"

namespace sparsetrain {
namespace {

// The default ramp, as fractions of the run.
constexpr double kGmpDefaultStart = 0.1;
constexpr double kGmpDefaultEnd = 0.6;

// The ramp's first and last epoch, defaults filled in.
std::pair<double, double> ramp_epochs(const TrainOptions& o) {
  const double epochs = static_cast<double>(o.epochs);
  return {o.prune_start_epoch != -1.0 ? o.prune_start_epoch : kGmpDefaultStart * epochs,
          o.prune_end_epoch != -1.0 ? o.prune_end_epoch : kGmpDefaultEnd * epochs};
}

}  // namespace

double gmp_sparsity(int64_t step, double initial, double final_sparsity, int64_t start_step,
                    int64_t end_step) {
  if (step < start_step) return initial;
  if (step >= end_step) return final_sparsity;
  const double progress =
      static_cast<double>(step - start_step) / static_cast<double>(end_step - start_step);
  const double remaining = 1.0 - progress;
  return final_sparsity + (initial - final_sparsity) * remaining * remaining * remaining;
}

std::unique_ptr<SparsityMethod> GmpMethod::clone() const {
  return std::make_unique<GmpMethod>(*this);
}

std::vector<std::string> GmpMethod::option_flags() const {
  return {"--initial-sparsity", "--prune-start-epoch", "--prune-end-epoch", "--prune-every-steps"};
}

void GmpMethod::validate(const TrainOptions& o) const {
  if (o.initial_sparsity != 0.0f &&
      !(o.initial_sparsity > 0.0f && o.initial_sparsity <= o.sparsity)) {
    throw Error("--initial-sparsity must be in [0, --sparsity] = [0, " +
                std::to_string(o.sparsity) + "], got " + std::to_string(o.initial_sparsity));
  }
  const auto [start, end] = ramp_epochs(o);
  detail::check_prune_window(start, end, /*allow_empty=*/true);
}

void GmpMethod::plan(const TrainOptions& o, const SparsitySchedule& s) {
  const auto [start, end] = ramp_epochs(o);
  initial_sparsity_ = o.initial_sparsity;
  final_sparsity_ = s.sparsity;
  every_steps_ = o.prune_every_steps;
  start_step_ = epoch_to_step(start, s.steps_per_epoch);
  if (start_step_ >= s.total_steps) {
    throw Error("--prune-start-epoch: pruning would begin at step " + std::to_string(start_step_) +
                ", after the run's last step (" + std::to_string(s.total_steps - 1) + ")");
  }
  // t0 + n dt: the last pruning step at or before the requested end (and
  // within the run).
  const int64_t last =
      std::clamp(epoch_to_step(end, s.steps_per_epoch), start_step_, s.total_steps - 1);
  end_step_ = start_step_ + (last - start_step_) / every_steps_ * every_steps_;
}

bool GmpMethod::prunes_at(int64_t step) const {
  return step >= start_step_ && step <= end_step_ && (step - start_step_) % every_steps_ == 0;
}

double GmpMethod::target(int64_t step) const {
  return gmp_sparsity(step, initial_sparsity_, final_sparsity_, start_step_, end_step_);
}

SparsityPhase GmpMethod::phase_at(const SparsitySchedule& s, int64_t step) const {
  if (step < start_step_) return SparsityPhase::kDense;
  if (step < end_step_) return SparsityPhase::kMasked;
  return s.sparse_phase();
}

std::string GmpMethod::describe(const SparsitySchedule& s) const {
  const double spe = static_cast<double>(s.steps_per_epoch);
  char tail[320];
  std::snprintf(tail, sizeof tail,
                "; %.3f -> %.3f (cubic) every %lld steps from epoch %g to %g (steps %lld-%lld), "
                "then compressed",
                static_cast<double>(initial_sparsity_), static_cast<double>(s.sparsity),
                static_cast<long long>(every_steps_), static_cast<double>(start_step_) / spe,
                static_cast<double>(end_step_) / spe, static_cast<long long>(start_step_),
                static_cast<long long>(end_step_));
  return tail;
}

// Before the first step the layers are dense.
void GmpMethod::resume(SparsityController& c, int64_t steps) {
  c.restore_phase(c.schedule().phase_at(steps - 1));
}

void GmpMethod::before_step(SparsityController& c, int64_t step) {
  if (!prunes_at(step)) return;
  const SparsitySchedule& s = c.schedule();
  const bool last = step == end_step_;
  const float sparsity = static_cast<float>(target(step));
  c.apply_masks(magnitude_masks(c.graph(), c.layers(), sparsity, s.distribution),
                last && !s.masked_storage);
  c.set_phase(last ? s.sparse_phase() : SparsityPhase::kMasked, step);
  c.record(step, "prune");
}

std::unique_ptr<SparsityMethod> detail::make_gmp_method() { return std::make_unique<GmpMethod>(); }

}  // namespace sparsetrain

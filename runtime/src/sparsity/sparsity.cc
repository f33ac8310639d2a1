// The SparsityController (sparsetrain/sparsity.h): runs the schedule's
// method around every step and gives it what it needs to change the layers.
// It names no method; those are methods/*.cc.
#include "sparsetrain/sparsity.h"

#include <cmath>

#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/optim.h"
#include "sparsity/sparsity_internal.h"

namespace sparsetrain {

SparsityController::SparsityController(SparsitySchedule schedule, Graph& graph,
                                       Optimizer* optimizer)
    : schedule_(std::move(schedule)), graph_(graph), optimizer_(optimizer) {
  dense_first_last_ = schedule_.dense_first_last < 0 ? auto_dense_first_last(graph_)
                                                     : schedule_.dense_first_last == 1;
  layers_ = prunable_layers(graph_, dense_first_last_);
  if (schedule_.active() && layers_.empty()) {
    throw Error(
        "--sparsity: the model has no prunable (conv or linear) layer to prune" +
        std::string(dense_first_last_ ? " besides the first and last (--dense-first-last)" : ""));
  }
  if (schedule_.method != nullptr) {
    method_ = schedule_.method->clone();
  } else if (schedule_.active()) {
    throw Error("SparsityController: the schedule has no method '" + schedule_.method_name +
                "' (make it with make_sparsity_schedule)");
  }
}

void SparsityController::start() {
  if (schedule_.active()) method_->start(*this);
}

void SparsityController::resume(int64_t steps) {
  events_.clear();
  if (schedule_.active()) method_->resume(*this, steps);
}

void SparsityController::before_step(int64_t step) {
  if (!schedule_.active()) return;
  graph_.set_step(step);
  method_->before_step(*this, step);
}

void SparsityController::after_backward(int64_t step) {
  if (schedule_.active()) method_->after_backward(*this, step);
}

void SparsityController::after_step(int64_t step) {
  if (schedule_.active()) method_->after_step(*this, step);
}

void SparsityController::apply_masks(const std::vector<Tensor>& masks, bool compressed) {
  SPARSETRAIN_ASSERT(masks.size() == layers_.size());
  ++mask_changes_;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const std::string& node = layers_[l].node;
    Parameter& p = graph_.parameter(layers_[l].param);
    if (compressed) {
      if (p.masked()) graph_.unmask(node);
      graph_.compress(node, masks[l], optimizer_);
    } else {
      if (p.compressed()) graph_.decompress(node, optimizer_);
      graph_.mask(node, masks[l]);
    }
  }
}

void SparsityController::set_phase(SparsityPhase phase, int64_t step) {
  if (phase == phase_) return;
  phase_ = phase;
  graph_.set_step(step);
  graph_.fire(HookPoint::kPhaseChange, phase_name(phase));
  record(step, "phase");
}

SparsityEvent& SparsityController::record(int64_t step, const std::string& kind) {
  SparsityEvent e;
  e.step = step;
  e.kind = kind;
  e.phase = phase_;
  e.densities = densities();
  int64_t kept = 0, total = 0;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const int64_t n = Tensor::count(layers_[l].shape);
    kept += std::llround(e.densities[l] * static_cast<double>(n));
    total += n;
  }
  e.sparsity = total > 0 ? 1.0 - static_cast<double>(kept) / static_cast<double>(total) : 0.0;
  events_.push_back(std::move(e));
  ++mask_changes_;
  return events_.back();
}

std::vector<SparsityEvent> SparsityController::take_events() {
  std::vector<SparsityEvent> out;
  out.swap(events_);
  return out;
}

std::vector<double> SparsityController::densities() {
  std::vector<double> out;
  out.reserve(layers_.size());
  for (const PrunableLayer& l : layers_) {
    const Parameter& p = graph_.parameter(l.param);
    out.push_back(static_cast<double>(detail::kept_count(p)) /
                  static_cast<double>(Tensor::count(l.shape)));
  }
  return out;
}

double SparsityController::sparsity() {
  int64_t kept = 0, total = 0;
  for (const PrunableLayer& l : layers_) {
    kept += detail::kept_count(graph_.parameter(l.param));
    total += Tensor::count(l.shape);
  }
  return total > 0 ? 1.0 - static_cast<double>(kept) / static_cast<double>(total) : 0.0;
}

void SparsityMethod::resume(SparsityController& controller, int64_t steps) {
  if (steps > 0) controller.restore_phase(controller.schedule().phase_at(steps - 1));
}

}  // namespace sparsetrain

// RigL (Evci et al. 2020): random masks at initialisation (ERK by default),
// then every dT steps each layer drops its smallest stored weights and grows
// as many at the pruned positions with the largest dense gradient, the
// fraction decaying on a cosine to zero at the end of the updates.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>

#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/options.h"
#include "sparsetrain/sparsity.h"
#include "sparsity/methods/registry.h"
#include "sparsity/sparsity_internal.h"

namespace sparsetrain {
namespace {

// The last mask update by default, as a fraction of the run.
constexpr double kRiglDefaultEnd = 0.75;

// The updates' first and last epoch, defaults filled in.
std::pair<double, double> update_epochs(const TrainOptions& o) {
  return {o.prune_start_epoch != -1.0 ? o.prune_start_epoch : 0.0,
          o.prune_end_epoch != -1.0 ? o.prune_end_epoch
                                    : kRiglDefaultEnd * static_cast<double>(o.epochs)};
}

}  // namespace

std::unique_ptr<SparsityMethod> RiglMethod::clone() const {
  auto copy = std::make_unique<RiglMethod>(*this);
  copy->updating_ = false;
  copy->grads_.clear();
  return copy;
}

std::vector<std::string> RiglMethod::option_flags() const {
  return {"--prune-start-epoch", "--prune-end-epoch", "--prune-every-steps", "--drop-fraction"};
}

void RiglMethod::validate(const TrainOptions& o) const {
  const auto [start, end] = update_epochs(o);
  detail::check_prune_window(start, end, /*allow_empty=*/false);
}

void RiglMethod::plan(const TrainOptions& o, const SparsitySchedule& s) {
  start_step_ =
      o.prune_start_epoch != -1.0 ? epoch_to_step(o.prune_start_epoch, s.steps_per_epoch) : 0;
  end_step_ = epoch_to_step(update_epochs(o).second, s.steps_per_epoch);
  every_steps_ = o.prune_every_steps;
  drop_fraction_ = o.drop_fraction;
  seed_ = o.seed;
}

bool RiglMethod::updates_at(int64_t step) const {
  return step > start_step_ && step < end_step_ && (step - start_step_) % every_steps_ == 0;
}

double RiglMethod::drop_fraction_at(int64_t step) const {
  if (end_step_ <= 0 || step >= end_step_) return 0.0;
  const double t = static_cast<double>(step) / static_cast<double>(end_step_);
  return 0.5 * static_cast<double>(drop_fraction_) * (1.0 + std::cos(std::numbers::pi * t));
}

SparsityPhase RiglMethod::phase_at(const SparsitySchedule& s, int64_t /*step*/) const {
  return s.sparse_phase();
}

std::string RiglMethod::describe(const SparsitySchedule& s) const {
  char tail[320];
  std::snprintf(tail, sizeof tail,
                "; drop/grow %.2f (cosine to 0) every %lld steps until epoch %g (step %lld)",
                static_cast<double>(drop_fraction_), static_cast<long long>(every_steps_),
                static_cast<double>(end_step_) / static_cast<double>(s.steps_per_epoch),
                static_cast<long long>(end_step_));
  return tail;
}

void RiglMethod::start(SparsityController& c) {
  const SparsitySchedule& s = c.schedule();
  c.apply_masks(random_masks(c.layers(), s.sparsity, s.distribution, seed_), !s.masked_storage);
  c.set_phase(s.phase_at(0), 0);
}

void RiglMethod::resume(SparsityController& c, int64_t steps) {
  updating_ = false;
  grads_.clear();
  SparsityMethod::resume(c, steps);
}

void RiglMethod::before_step(SparsityController& c, int64_t step) {
  if (updates_at(step)) begin_update(c);
}

void RiglMethod::after_backward(SparsityController& c, int64_t /*step*/) {
  if (!updating_) return;
  grads_.clear();
  for (const PrunableLayer& l : c.layers())
    grads_.push_back(to_layout(c.graph().parameter(l.param).grad, Layout::kPlain).clone());
}

void RiglMethod::after_step(SparsityController& c, int64_t step) {
  if (updating_) finish_update(c, step);
}

// The update step runs in the masked state: the dense kernels then give
// the gradient at the pruned positions too, while pruned weights stay zero
// so the step computes what the compressed one would. The optimizer state
// of the stored entries is scattered to their dense positions (zero
// elsewhere) so the step continues it.
void RiglMethod::begin_update(SparsityController& c) {
  updating_ = true;
  grads_.clear();
  if (c.schedule().masked_storage) return;
  Graph& graph = c.graph();
  Optimizer* optimizer = c.optimizer();
  for (const PrunableLayer& l : c.layers()) {
    Parameter& p = graph.parameter(l.param);
    if (!p.compressed()) continue;
    const std::vector<int64_t> index = p.dense_index;
    const Shape shape = p.dense_shape;
    const Tensor mask = detail::current_mask(p);
    if (optimizer != nullptr) {
      if (Optimizer::ParamState* state = optimizer->state_of(l.param)) {
        for (Tensor& slot : state->slot) {
          if (!slot.defined()) continue;
          SPARSETRAIN_ASSERT(slot.numel() == static_cast<int64_t>(index.size()));
          Tensor dense = Tensor::zeros(shape);
          for (std::size_t k = 0; k < index.size(); ++k)
            dense[index[k]] = slot[static_cast<int64_t>(k)];
          slot = dense;
        }
      }
    }
    graph.decompress(l.node);
    graph.mask(l.node, mask);
  }
}

// Drop and grow (Evci et al. 2020, sec. 3): each layer drops the k stored
// weights of smallest magnitude and grows k pruned positions (pruned before
// this update) with the largest dense-gradient magnitude, k = f * stored,
// so every layer keeps its count. Grown weights start at zero with zero
// optimizer state.
void RiglMethod::finish_update(SparsityController& c, int64_t step) {
  updating_ = false;
  Graph& graph = c.graph();
  Optimizer* optimizer = c.optimizer();
  const std::vector<PrunableLayer>& layers = c.layers();
  const double fraction = drop_fraction_at(step);
  int64_t regrown = 0;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const PrunableLayer& layer = layers[l];
    Parameter& p = graph.parameter(layer.param);
    SPARSETRAIN_ASSERT(p.masked() && l < grads_.size());
    const Tensor& old_mask = p.mask;
    const Tensor& w = p.value;
    const Tensor& g = grads_[l];
    const int64_t n = w.numel();
    // Keys over all positions: -|w| of the stored entries for dropping,
    // |g| of the pruned ones for growing; -inf elsewhere is never chosen
    // (k is at most the count of either).
    constexpr float kNever = -std::numeric_limits<float>::infinity();
    std::vector<float> drop_key(static_cast<std::size_t>(n)), grow_key(static_cast<std::size_t>(n));
    int64_t count = 0;
    for (int64_t i = 0; i < n; ++i) {
      const bool kept = old_mask[i] != 0.0f;
      count += kept;
      drop_key[static_cast<std::size_t>(i)] = kept ? -std::fabs(w[i]) : kNever;
      grow_key[static_cast<std::size_t>(i)] = kept ? kNever : std::fabs(g[i]);
    }
    const int64_t k =
        std::min<int64_t>(static_cast<int64_t>(fraction * static_cast<double>(count)), n - count);
    Tensor new_mask = old_mask.clone();
    std::vector<int64_t> changed;  // dropped and grown positions
    changed.reserve(static_cast<std::size_t>(2 * k));
    if (k > 0) {
      for (const int64_t i : detail::top_k(drop_key, k)) {
        new_mask[i] = 0.0f;
        changed.push_back(i);
      }
      for (const int64_t i : detail::top_k(grow_key, k)) {
        SPARSETRAIN_ASSERT(w[i] == 0.0f);
        new_mask[i] = 1.0f;
        changed.push_back(i);
      }
    }
    regrown += k;
    // Pruned entries carry zero optimizer state (their gradient is masked
    // and their value zero); dropped and grown ones start afresh too.
    if (optimizer != nullptr) {
      if (Optimizer::ParamState* state = optimizer->state_of(layer.param)) {
        for (Tensor& slot : state->slot)
          if (slot.defined())
            for (const int64_t i : changed) slot[i] = 0.0f;
      }
    }
    if (c.schedule().masked_storage) {
      graph.mask(layer.node, new_mask);
    } else {
      graph.unmask(layer.node);
      graph.compress(layer.node, new_mask, optimizer);
    }
  }
  grads_.clear();
  SparsityEvent& event = c.record(step, "update");
  event.drop_fraction = fraction;
  event.regrown = regrown;
}

std::unique_ptr<SparsityMethod> detail::make_rigl_method() {
  return std::make_unique<RiglMethod>();
}

}  // namespace sparsetrain

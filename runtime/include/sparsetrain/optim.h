// Optimizers (SGD with momentum / Nesterov, AdamW) and global gradient-norm
// clipping, with PyTorch semantics.
//
// An optimizer keeps its state (momentum buffer, Adam moments) per parameter
// name, created on the first step that parameter takes. The state has the
// shape of Parameter::value, so a compressed parameter whose value holds only
// its nonzeros has state for its nonzeros only. When a parameter's storage
// changes, the sparsity controller must tell the optimizer: reset_state()
// (decompression, AC/DC resets momentum) or gather_state() (compression keeps
// the state of the surviving entries).
//
// step() updates every trainable parameter with a defined gradient; buffers
// and parameters without a gradient (frozen ones) are skipped, and their
// state (including Adam's per-parameter step count) does not advance.
// Updates are element-wise, so results are bit-identical for any thread
// count.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/parameter.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

class Optimizer {
 public:
  // The state of one parameter: up to two tensors with the parameter's shape
  // and the number of updates it has taken since the state was created.
  struct ParamState {
    Tensor slot[2];
    int64_t steps = 0;
  };

  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // "sgd" or "adamw".
  virtual const char* kind() const = 0;
  // A one-line description for logs, e.g. "sgd(momentum=0.9, nesterov, wd=5e-4)".
  virtual std::string describe() const = 0;

  // One update with learning rate `lr` of every trainable parameter that has
  // a defined gradient. Throws Error when a parameter's stored state no
  // longer matches its value (storage changed without reset_state /
  // gather_state).
  void step(const std::vector<Parameter*>& params, float lr);
  // Zeroes every defined gradient (backward accumulates).
  static void zero_grad(const std::vector<Parameter*>& params);

  // Number of step() calls (restored from a checkpoint with set_step_count).
  int64_t step_count() const { return step_count_; }
  void set_step_count(int64_t steps) { step_count_ = steps; }

  // Drops the state of one parameter (no-op when it has none): its next
  // update starts as a first step (fresh momentum, Adam bias correction from
  // step 1).
  void reset_state(const std::string& param_name);
  void reset_all_state() { state_.clear(); }
  // Keeps the state of the flat positions `indices` only, in that order, as
  // tensors of shape {indices.size()}: the state of a parameter whose
  // storage becomes its nonzeros at those positions. Throws Error on an
  // index out of range. No-op when the parameter has no state.
  void gather_state(const std::string& param_name, const std::vector<int64_t>& indices);
  // The state of one parameter (tensors alias the optimizer's storage, so a
  // caller may, e.g., zero the momentum of pruned weights in place), or
  // nullptr when it has none.
  ParamState* state_of(const std::string& param_name);

  // State for checkpoints: "<param>.<slot>" with slot names of the subclass
  // ("momentum"; "exp_avg", "exp_avg_sq", "step"), sorted by name. The
  // tensors alias the optimizer's storage. A per-parameter step count is a
  // tensor of shape {1} (exact up to 2^24 steps; past that Adam's bias
  // correction is 1 in float anyway).
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Replaces the whole state by `tensors` (as produced by state_tensors)
  // after validating every name and shape against `params`. Throws Error
  // naming the offending tensor; the state is unchanged on error.
  void load_state_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                          const std::vector<Parameter*>& params);

 protected:
  Optimizer() = default;

  // Names of the state tensors (empty entries are unused slots) and whether
  // the per-parameter step count is part of the saved state.
  virtual std::vector<std::string> slot_names() const = 0;
  virtual bool saves_steps() const { return false; }
  // Updates one parameter; `state.steps` is already incremented, and the
  // slots are undefined on the first update after (re)creation.
  virtual void update(Parameter& p, float lr, ParamState& state) = 0;

 private:
  std::map<std::string, ParamState> state_;
  int64_t step_count_ = 0;
};

// Stochastic gradient descent as torch.optim.SGD (dampening 0):
//   d = g + wd * w                          (wd only where Parameter::decays())
//   buf = d on the first step, else momentum * buf + d
//   d = nesterov ? d + momentum * buf : buf
//   w -= lr * d
class SGD final : public Optimizer {
 public:
  // Throws Error on momentum outside [0, 1), negative weight decay or
  // Nesterov without momentum.
  explicit SGD(float momentum = 0.0f, bool nesterov = false, float weight_decay = 0.0f);

  const char* kind() const override { return "sgd"; }
  std::string describe() const override;
  float momentum() const { return momentum_; }
  bool nesterov() const { return nesterov_; }
  float weight_decay() const { return weight_decay_; }

 protected:
  std::vector<std::string> slot_names() const override;
  void update(Parameter& p, float lr, ParamState& state) override;

 private:
  float momentum_;
  bool nesterov_;
  float weight_decay_;
};

// Adam with decoupled weight decay as torch.optim.AdamW (Loshchilov & Hutter,
// "Decoupled Weight Decay Regularization", Algorithm 2), amsgrad off:
//   w *= 1 - lr * wd                        (only where Parameter::decays())
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// with t the parameter's own update count (from 1).
class AdamW final : public Optimizer {
 public:
  // Throws Error on betas outside [0, 1), eps <= 0 or negative weight decay.
  explicit AdamW(float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f,
                 float weight_decay = 1e-2f);

  const char* kind() const override { return "adamw"; }
  std::string describe() const override;
  float beta1() const { return beta1_; }
  float beta2() const { return beta2_; }
  float eps() const { return eps_; }
  float weight_decay() const { return weight_decay_; }

 protected:
  std::vector<std::string> slot_names() const override;
  bool saves_steps() const override { return true; }
  void update(Parameter& p, float lr, ParamState& state) override;

 private:
  float beta1_;
  float beta2_;
  float eps_;
  float weight_decay_;
};

// What a recipe or the command line selects.
struct OptimizerOptions {
  std::string kind = "sgd";  // sgd | adamw
  float momentum = 0.9f;     // sgd
  bool nesterov = false;     // sgd
  float weight_decay = 0.0f;
  float beta1 = 0.9f;  // adamw
  float beta2 = 0.999f;
  float eps = 1e-8f;
};

// Throws Error naming the option ("--optimizer: unknown optimizer 'foo' ...").
std::unique_ptr<Optimizer> make_optimizer(const OptimizerOptions& options);

// Scales the gradients of all trainable parameters so that their global L2
// norm (over all of them together, as torch.nn.utils.clip_grad_norm_) is at
// most max_norm: g *= max_norm / (norm + 1e-6) when norm > max_norm.
// Returns the norm before clipping. A non-finite norm is returned without
// scaling anything, so the caller can skip the step. The norm is summed in
// double in a fixed order: the same for any thread count. Throws Error when
// max_norm is not positive.
float clip_grad_norm(const std::vector<Parameter*>& params, float max_norm);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

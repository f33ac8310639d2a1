// Learning-rate schedules, evaluated at the global optimizer step (0 for the
// first step). Epoch-based rules use epoch = step / steps_per_epoch.
//
//   constant   base_lr
//   multistep  base_lr * gamma^k, k = number of milestones (epochs) <= epoch
//              (torch.optim.lr_scheduler.MultiStepLR stepped once per epoch)
//   cosine     per step from base_lr at the end of warm-up down to min_lr at
//              the last step (SGDR without restarts, Loshchilov & Hutter 2017,
//              eq. 5): min + (base - min) * (1 + cos(pi * t / T)) / 2, with
//              t = step - warmup_steps, T = total_steps - warmup_steps;
//              min_lr after the end.
//   onecycle   torch.optim.lr_scheduler.OneCycleLR (two phases, cosine
//              annealing): from base_lr / div_factor up to base_lr over the
//              first pct_start of all steps, then down to
//              base_lr / div_factor / final_div at the last step.
//
// Warm-up composes with every kind: during the first warmup_epochs epochs
// the value is multiplied by start + (1 - start) * (step + 1) / warmup_steps
// (start = warmup_start_factor), which reaches 1 on the last warm-up step and
// never gives a zero learning rate. Multistep milestones stay absolute
// epochs; cosine starts decaying when warm-up ends.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

struct LrScheduleOptions {
  std::string kind = "constant";  // constant | multistep | cosine | onecycle
  float base_lr = 0.1f;           // peak learning rate (onecycle's max_lr)
  int64_t steps_per_epoch = 1;
  int64_t total_epochs = 1;
  std::vector<int64_t> milestones;  // multistep: epochs, strictly increasing
  float gamma = 0.1f;               // multistep
  float min_lr = 0.0f;              // cosine
  int64_t warmup_epochs = 0;
  float warmup_start_factor = 0.0f;  // in [0, 1]
  float onecycle_pct_start = 0.3f;
  float onecycle_div_factor = 25.0f;
  float onecycle_final_div = 1e4f;
};

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  // Learning rate of the global optimizer step `step` (negative: as step 0).
  virtual float lr(int64_t step) const = 0;
  // One line for logs, e.g. "cosine(base_lr=0.1, min_lr=0, 200 epochs, warm-up 5)".
  virtual std::string describe() const = 0;
};

// Validates the options that matter for options.kind and builds the
// schedule. Throws Error naming the option, e.g. "--lr-schedule: unknown
// schedule 'foo' (expected constant, multistep, cosine, onecycle)".
std::unique_ptr<LrSchedule> make_lr_schedule(const LrScheduleOptions& options);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

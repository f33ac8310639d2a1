// Starting a run from a checkpoint, and retraining after pruning (Renda,
// Frankle and Carbin, "Comparing Rewinding and Fine-tuning in Neural
// Network Pruning", ICLR 2020): the pieces of Trainer behind
// TrainOptions::init_from, retrain, save_epochs and the lr schedule's span
// and offset.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "sparsetrain/schedule.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
class Checkpoint;
}

namespace sparsetrain::detail {

// Throws Error naming the flag when retraining or snapshot options do not
// fit together (--retrain without --init-from, --save-epochs without --out or
// past the run's end); each one's own range is its row's (options.h).
void validate_retrain_options(const TrainOptions& options);

// Loads options.init_from into a freshly initialised graph (masks fixed:
// compressed, or masked with sparse_storage "masked") and resolves
// options.retrain into the lr fields of `options` (and, for weight
// rewinding, resets the weights to the original run's snapshot under the
// same masks). Returns a line for the run log.
std::string apply_init_from(TrainOptions& options, Graph& graph, int64_t steps_per_epoch);

// The run's lr schedule: the options' schedule over lr_schedule_epochs (0:
// epochs), read lr_schedule_offset_epochs later.
std::unique_ptr<LrSchedule> make_run_lr_schedule(const TrainOptions& options,
                                                 int64_t steps_per_epoch);

// The checkpoint's metadata `key`; throws Error "<not_ours> (no '<key>'
// metadata)" when it has none, `not_ours` saying which file is not what
// (e.g. "run.safetensors: not a sparsetrain checkpoint").
const std::string& checkpoint_meta(const Checkpoint& ck, const char* key,
                                   const std::string& not_ours);

// What a checkpoint's metadata claims about its samples decides how large
// the model built for it is, so it is checked before anything is allocated:
// against the dataset's own geometry when the runtime knows the dataset, else
// against bounds no image dataset reaches.
// Throws Error naming `path` when they do not hold.
void check_model_claims(const std::string& path, const TrainOptions& o,
                        const std::array<int64_t, 3>& shape, int64_t classes);

// <run_dir>/epoch-<epoch>/checkpoint.safetensors
std::string snapshot_path(const std::string& run_dir, int64_t epoch);

}  // namespace sparsetrain::detail

// The pieces of Trainer behind TrainOptions::finetune (sparsetrain/transfer.h).
#pragma once

#include <string>

#include "sparsetrain/checkpoint.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/options.h"

namespace sparsetrain::detail {

// Throws Error naming the flag when the transfer settings do not fit the
// rest (fine-tuning without an upstream checkpoint, with a sparsity schedule
// or a retraining mode; --head outside fine-tuning).
void validate_transfer_options(const TrainOptions& options);

// Loads the upstream checkpoint `ck` (read from `path`) into a freshly
// initialised `graph` built for the new task, in `mode` (masks fixed, as
// TrainOptions::init_from), except the head, which keeps its new
// initialisation. Checks first that the upstream's input shape is the
// graph's. Returns what the head became, for the run log.
std::string start_finetune(const TrainOptions& options, Graph& graph, const Checkpoint& ck,
                           const std::string& path, SparseLoad mode);

}  // namespace sparsetrain::detail

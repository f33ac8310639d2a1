// Shared by the masks (masks.cc), the schedule and its validation
// (sparsity_schedule.cc), the controller (sparsity.cc) and the built-in
// methods (methods/*.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparsetrain/parameter.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain::detail {

// Throws Error "--sparsity must be in [0, 1), got X" for any other value.
void check_sparsity(float sparsity);

// The 0/1 mask a parameter holds now: its stored positions when
// compressed, its mask when masked, its nonzeros otherwise.
Tensor current_mask(const Parameter& p);
// The count of those positions.
int64_t kept_count(const Parameter& p);

// The positions of the `k` largest keys in position order, ties going to
// the lower position (radix select: RigL runs it on every update).
std::vector<int64_t> top_k(const std::vector<float>& keys, int64_t k);

// "1.5, 7.5, 13.5": steps as epochs, for the run header.
std::string format_epochs(const std::vector<int64_t>& steps, int64_t steps_per_epoch);
// "1,4.5,9": values as an option spells them, for error messages.
std::string format_list(const std::vector<double>& values);

// "a, b or c".
std::string join_or(const std::vector<std::string>& names);

// Throws Error naming --prune-start-epoch and --prune-end-epoch unless the
// window [start, end] (epochs, the method's defaults filled in) is in order;
// `allow_empty`: start == end passes.
void check_prune_window(double start, double end, bool allow_empty);

}  // namespace sparsetrain::detail

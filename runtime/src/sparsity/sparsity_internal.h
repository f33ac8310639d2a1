// Shared by the masks and controller (sparsity.cc) and the schedules
// (sparsity_schedule.cc).
#pragma once

namespace sparsetrain::detail {

// Throws Error "--sparsity must be in [0, 1), got X" for any other value.
void check_sparsity(float sparsity);

}  // namespace sparsetrain::detail

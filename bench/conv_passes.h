// The passes a convolution benchmark case runs, as a bit set, and their
// names in the case names: the kernels' vocabulary (fwd, bwd_data,
// bwd_weights), and step for all three. A benchmark imports them with
// `using namespace bench::passes;`.
#pragma once

namespace sparsetrain::bench::passes {

enum Pass : int { kFwd = 1, kBwdData = 2, kBwdWeights = 4, kStep = kFwd | kBwdData | kBwdWeights };

inline const char* pass_name(int passes) {
  switch (passes) {
    case kFwd:
      return "fwd";
    case kBwdData:
      return "bwd_data";
    case kBwdWeights:
      return "bwd_weights";
    default:
      return "step";
  }
}

// How many of the three passes `passes` holds.
inline int pass_count(int passes) {
  return ((passes & kFwd) != 0 ? 1 : 0) + ((passes & kBwdData) != 0 ? 1 : 0) +
         ((passes & kBwdWeights) != 0 ? 1 : 0);
}

}  // namespace sparsetrain::bench::passes

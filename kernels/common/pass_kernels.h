// A sparse op's micro-kernels by pass (forward, backward-data,
// backward-weights): one KernelList per pass, and the dispatcher's choice of
// one kernel from each.
#pragma once

#include "kernels/common/cpu.h"
#include "kernels/common/kernel_list.h"

namespace sparsetrain::kernels {

// One kernel per pass.
template <class Fwd, class BwdData, class BwdWeights>
struct PassKernels {
  const Fwd* fwd;
  const BwdData* bwd_data;
  const BwdWeights* bwd_weights;
};

// One list per pass, best ISA first, ref last.
template <class Fwd, class BwdData, class BwdWeights>
struct PassKernelLists {
  KernelList<Fwd> fwd;
  KernelList<BwdData> bwd_data;
  KernelList<BwdWeights> bwd_weights;

  // The first registered kernel of each pass whose ISA is <= `isa` and runs
  // on this CPU (KernelList::pick).
  PassKernels<Fwd, BwdData, BwdWeights> pick(Isa isa) const {
    return {&fwd.pick(isa), &bwd_data.pick(isa), &bwd_weights.pick(isa)};
  }
};

}  // namespace sparsetrain::kernels

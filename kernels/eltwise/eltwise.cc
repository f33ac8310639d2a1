// Element-wise dispatch: the list of implementations, most preferred first.
// Measured on ResNet-20 activations (2M values, one thread, us): oneDNN's
// eltwise/binary primitives run ReLU forward in 140 and Add in 270, the TBB
// loops in 165 and 300; ReLU backward takes 400-530 in oneDNN, 320-370 here.
// Within 15% either way, so the ops stay on TBB (no OpenMP region, no
// primitive or memory-object set-up per call) and oneDNN has no entry.
#include "kernels/eltwise/eltwise.h"

namespace sparsetrain::kernels {

uint64_t dropout_block_seed(uint64_t seed, int64_t block) {
  // splitmix64 finaliser of seed + (block + 1) * golden ratio: unrelated
  // seeds for neighbouring blocks.
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (static_cast<uint64_t>(block) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

const KernelList<EltwiseKernel>& eltwise_kernels() {
  // Copies of the constant-initialised entries, made on first use.
  static const EltwiseKernel kKernels[] = {kEltwiseTbb, kEltwiseRef};
  static const KernelList<EltwiseKernel> kList(kKernels);
  return kList;
}

}  // namespace sparsetrain::kernels

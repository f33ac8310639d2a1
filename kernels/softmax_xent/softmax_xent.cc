// Softmax cross-entropy dispatch: the list of implementations, most
// preferred first. Batch 128: 10 classes 4.8 us (ref 10), 1000 classes
// 228 us (ref 854).
#include "kernels/softmax_xent/softmax_xent.h"

#include "kernels/common/cpu.h"

namespace sparsetrain::kernels {
namespace {

constexpr SoftmaxXentKernel kKernels[] = {
    {"tbb", Isa::kAvx2, softmax_xent_tbb},
    {"ref", Isa::kRef, softmax_xent_ref},
};

constexpr KernelList<SoftmaxXentKernel> kList(kKernels);

}  // namespace

const KernelList<SoftmaxXentKernel>& softmax_xent_kernels() { return kList; }

}  // namespace sparsetrain::kernels

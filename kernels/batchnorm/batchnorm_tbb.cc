// BatchNorm2d over TBB for baseline x86-64 (SSE2): the loops of
// batchnorm_tbb_impl.h.
#include "kernels/batchnorm/batchnorm_tbb_impl.h"

namespace sparsetrain::kernels {
namespace {

bool supports_all(const BatchNormDesc&) { return true; }

}  // namespace

constinit const BatchNormKernel batchnorm_tbb_kernel =
    loops_kernel("tbb", Isa::kAvx2, supports_all);

}  // namespace sparsetrain::kernels

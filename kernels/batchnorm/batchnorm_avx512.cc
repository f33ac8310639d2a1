// BatchNorm2d over TBB for AVX-512 (this file gets the AVX-512 and FMA flags):
// the loops of batchnorm_tbb_impl.h, 16 floats per vector.
#include "kernels/batchnorm/batchnorm_tbb_impl.h"
#include "kernels/common/cpu.h"

namespace sparsetrain::kernels {
namespace {

bool supports_avx512(const BatchNormDesc&) { return best_isa() >= Isa::kAvx512; }

}  // namespace

constinit const BatchNormKernel batchnorm_avx512_kernel =
    loops_kernel("avx512", Isa::kAvx512, supports_avx512);

}  // namespace sparsetrain::kernels

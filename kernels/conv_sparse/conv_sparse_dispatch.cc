// The registry of sparse convolution micro-kernels (one list per pass, best
// ISA first, ref last) and the run-time choice among them.
#include <array>

#include "kernels/conv_sparse/conv_sparse.h"
#include "kernels/conv_sparse/conv_sparse_ukernels.h"

namespace sparsetrain::kernels {
namespace {

// Batch lanes per call (the batch block, tile_n). AVX-512 takes blocks of 64
// (4 vectors per position; smaller blocks measured 5-30% slower at batch
// 128: each tap then reads a smaller part of every position's lanes); the
// scalar kernels take any block, and 64 keeps their units like the SIMD ones.
constexpr int kRefTile = 64;

constexpr std::array kFwd = {
    ConvGatherKernel{"f32_conv_sparse_fwd_24x16__avx512", Isa::kAvx512, 64,
                     ukernel::f32_conv_gather_24x16__avx512},
    ConvGatherKernel{"f32_conv_sparse_fwd_12x8__avx2", Isa::kAvx2, 16,
                     ukernel::f32_conv_gather_12x8__avx2},
    ConvGatherKernel{"f32_conv_sparse_fwd__ref", Isa::kRef, kRefTile,
                     ukernel::f32_conv_gather__ref},
};

constexpr std::array kBwdData = {
    ConvGatherKernel{"f32_conv_sparse_bwd_data_24x16__avx512", Isa::kAvx512, 64,
                     ukernel::f32_conv_gather_24x16__avx512},
    ConvGatherKernel{"f32_conv_sparse_bwd_data_12x8__avx2", Isa::kAvx2, 16,
                     ukernel::f32_conv_gather_12x8__avx2},
    ConvGatherKernel{"f32_conv_sparse_bwd_data__ref", Isa::kRef, kRefTile,
                     ukernel::f32_conv_gather__ref},
};

constexpr std::array kBwdWeights = {
    ConvSddmmKernel{"f32_conv_sparse_bwd_weights_24x16__avx512", Isa::kAvx512, 64,
                    ukernel::f32_conv_sddmm_24x16__avx512},
    ConvSddmmKernel{"f32_conv_sparse_bwd_weights_6x8__avx2", Isa::kAvx2, 16,
                    ukernel::f32_conv_sddmm_6x8__avx2},
    ConvSddmmKernel{"f32_conv_sparse_bwd_weights__ref", Isa::kRef, kRefTile,
                    ukernel::f32_conv_sddmm__ref},
};

// The first entry whose ISA is at most `isa` and that this CPU runs. The ref
// entry closes every list, so there always is one.
template <class Kernel, std::size_t N>
const Kernel* pick(const std::array<Kernel, N>& list, Isa isa) {
  for (const Kernel& k : list) {
    if (k.isa <= isa && isa_supported(k.isa)) return &k;
  }
  return &list.back();
}

}  // namespace

std::span<const ConvGatherKernel> conv_sparse_fwd_kernels() { return kFwd; }
std::span<const ConvGatherKernel> conv_sparse_bwd_data_kernels() { return kBwdData; }
std::span<const ConvSddmmKernel> conv_sparse_bwd_weights_kernels() { return kBwdWeights; }

ConvSparseKernels conv_sparse_kernels(Isa isa) {
  return {pick(kFwd, isa), pick(kBwdData, isa), pick(kBwdWeights, isa)};
}

ConvSparseKernelNames conv_sparse_kernel_names(Isa isa) {
  const ConvSparseKernels k = conv_sparse_kernels(isa);
  return {k.fwd->name, k.bwd_data->name, k.bwd_weights->name};
}

}  // namespace sparsetrain::kernels

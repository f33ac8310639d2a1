// The registry of sparse convolution micro-kernels (one list per pass, best
// ISA first, ref last) and the run-time choice among them.
#include "kernels/conv_sparse/conv_sparse.h"
#include "kernels/conv_sparse/conv_sparse_ukernels.h"

namespace sparsetrain::kernels {
namespace {

// Batch lanes per call (the batch block, tile_n). AVX-512 takes blocks of 64
// (4 vectors per position; smaller blocks measured 5-30% slower at batch
// 128: each tap then reads a smaller part of every position's lanes); the
// scalar kernels take any block, and 64 keeps their units like the SIMD ones.
constexpr int kRefTile = 64;

constexpr ConvGatherKernel kFwd[] = {
    {"f32_conv_sparse_fwd_24x16__avx512", Isa::kAvx512, 64, ukernel::f32_conv_gather_24x16__avx512},
    {"f32_conv_sparse_fwd_12x8__avx2", Isa::kAvx2, 16, ukernel::f32_conv_gather_12x8__avx2},
    {"f32_conv_sparse_fwd__ref", Isa::kRef, kRefTile, ukernel::f32_conv_gather__ref},
};

constexpr ConvGatherKernel kBwdData[] = {
    {"f32_conv_sparse_bwd_data_24x16__avx512", Isa::kAvx512, 64,
     ukernel::f32_conv_gather_24x16__avx512},
    {"f32_conv_sparse_bwd_data_12x8__avx2", Isa::kAvx2, 16, ukernel::f32_conv_gather_12x8__avx2},
    {"f32_conv_sparse_bwd_data__ref", Isa::kRef, kRefTile, ukernel::f32_conv_gather__ref},
};

constexpr ConvSddmmKernel kBwdWeights[] = {
    {"f32_conv_sparse_bwd_weights_24x16__avx512", Isa::kAvx512, 64,
     ukernel::f32_conv_sddmm_24x16__avx512},
    {"f32_conv_sparse_bwd_weights_6x8__avx2", Isa::kAvx2, 16, ukernel::f32_conv_sddmm_6x8__avx2},
    {"f32_conv_sparse_bwd_weights__ref", Isa::kRef, kRefTile, ukernel::f32_conv_sddmm__ref},
};

constexpr ConvSparseKernelLists kLists{kFwd, kBwdData, kBwdWeights};

}  // namespace

const ConvSparseKernelLists& conv_sparse_kernel_lists() { return kLists; }

ConvSparseKernels conv_sparse_kernels(Isa isa) { return kLists.pick(isa); }

ConvSparseKernelNames conv_sparse_kernel_names(Isa isa) {
  const ConvSparseKernels k = conv_sparse_kernels(isa);
  return {k.fwd->name, k.bwd_data->name, k.bwd_weights->name};
}

}  // namespace sparsetrain::kernels

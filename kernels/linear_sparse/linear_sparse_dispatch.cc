// The registry of sparse linear micro-kernels (one list per op, best ISA
// first, ref last) and the run-time choice among them.
#include "kernels/linear_sparse/linear_sparse.h"
#include "kernels/linear_sparse/linear_sparse_ukernels.h"

namespace sparsetrain::kernels {
namespace {

// Batch columns per call: the scalar kernels take any tile; 64 keeps the
// packed panel of the dense operand the same size as for the SIMD kernels.
constexpr int kRefTile = 64;

constexpr SpmmKernel kFwd[] = {
    {"f32_spmm_fwd_4x16__avx512", Isa::kAvx512, 64, 16, ukernel::f32_spmm_4x16__avx512},
    {"f32_spmm_fwd_4x8__avx2", Isa::kAvx2, 32, 8, ukernel::f32_spmm_4x8__avx2},
    {"f32_spmm_fwd__ref", Isa::kRef, kRefTile, 1, ukernel::f32_spmm__ref},
};

constexpr SpmmKernel kBwdData[] = {
    {"f32_spmm_bwd_data_4x16__avx512", Isa::kAvx512, 64, 16, ukernel::f32_spmm_4x16__avx512},
    {"f32_spmm_bwd_data_4x8__avx2", Isa::kAvx2, 32, 8, ukernel::f32_spmm_4x8__avx2},
    {"f32_spmm_bwd_data__ref", Isa::kRef, kRefTile, 1, ukernel::f32_spmm__ref},
};

constexpr SddmmKernel kBwdWeights[] = {
    {"f32_sddmm_bwd_weights_4x16__avx512", Isa::kAvx512, 64, 16, ukernel::f32_sddmm_4x16__avx512},
    {"f32_sddmm_bwd_weights_4x8__avx2", Isa::kAvx2, 32, 8, ukernel::f32_sddmm_4x8__avx2},
    {"f32_sddmm_bwd_weights__ref", Isa::kRef, kRefTile, 1, ukernel::f32_sddmm__ref},
};

constexpr LinearSparseKernelLists kLists{kFwd, kBwdData, kBwdWeights};

}  // namespace

const LinearSparseKernelLists& linear_sparse_kernel_lists() { return kLists; }

LinearSparseKernels linear_sparse_kernels(Isa isa) { return kLists.pick(isa); }

LinearSparseKernels linear_sparse_default_kernels() { return linear_sparse_kernels(best_isa()); }

}  // namespace sparsetrain::kernels

// The registry of sparse linear micro-kernels (one list per op, best ISA
// first, ref last) and the run-time choice among them.
#include <array>

#include "kernels/linear_sparse/linear_sparse.h"
#include "kernels/linear_sparse/linear_sparse_ukernels.h"

namespace sparsetrain::kernels {
namespace {

// Batch columns per call: the scalar kernels take any tile; 64 keeps the
// packed panel of the dense operand the same size as for the SIMD kernels.
constexpr int kRefTile = 64;

constexpr std::array kFwd = {
    SpmmKernel{"f32_spmm_fwd_4x16__avx512", Isa::kAvx512, 64, 16, ukernel::f32_spmm_4x16__avx512},
    SpmmKernel{"f32_spmm_fwd_4x8__avx2", Isa::kAvx2, 32, 8, ukernel::f32_spmm_4x8__avx2},
    SpmmKernel{"f32_spmm_fwd__ref", Isa::kRef, kRefTile, 1, ukernel::f32_spmm__ref},
};

constexpr std::array kBwdData = {
    SpmmKernel{"f32_spmm_bwd_data_4x16__avx512", Isa::kAvx512, 64, 16,
               ukernel::f32_spmm_4x16__avx512},
    SpmmKernel{"f32_spmm_bwd_data_4x8__avx2", Isa::kAvx2, 32, 8, ukernel::f32_spmm_4x8__avx2},
    SpmmKernel{"f32_spmm_bwd_data__ref", Isa::kRef, kRefTile, 1, ukernel::f32_spmm__ref},
};

constexpr std::array kBwdWeights = {
    SddmmKernel{"f32_sddmm_bwd_weights_4x16__avx512", Isa::kAvx512, 64, 16,
                ukernel::f32_sddmm_4x16__avx512},
    SddmmKernel{"f32_sddmm_bwd_weights_4x8__avx2", Isa::kAvx2, 32, 8, ukernel::f32_sddmm_4x8__avx2},
    SddmmKernel{"f32_sddmm_bwd_weights__ref", Isa::kRef, kRefTile, 1, ukernel::f32_sddmm__ref},
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

std::span<const SpmmKernel> linear_sparse_fwd_kernels() { return kFwd; }
std::span<const SpmmKernel> linear_sparse_bwd_data_kernels() { return kBwdData; }
std::span<const SddmmKernel> linear_sparse_bwd_weights_kernels() { return kBwdWeights; }

LinearSparseKernels linear_sparse_kernels(Isa isa) {
  return {pick(kFwd, isa), pick(kBwdData, isa), pick(kBwdWeights, isa)};
}

LinearSparseKernels linear_sparse_default_kernels() { return linear_sparse_kernels(best_isa()); }

}  // namespace sparsetrain::kernels

// AVX-512 micro-kernels of the sparse convolution (16 floats per vector); the
// loops are in conv_sparse_tiles.h.
//
// Register tiles: the gathers keep up to 24 accumulators (positions x batch
// vectors: 24x16, 12x32, 8x48, 6x64 lanes), the SDDMM a diff_dst tile of up
// to 24 vectors plus 8 accumulators (32 registers; every input load folds
// into its FMA). The SDDMM reduces its accumulators across lanes once per
// tile and group of taps, so larger tiles mean fewer reductions and fewer
// reloads of diff_dst: 24 vectors (a 30-position row in 3 tiles of 10 at 32
// lanes instead of 4; in 5 of 6 at 64 lanes instead of 8) ran
// backward-weights 5-15% faster than 16 on 3x3 layers at 90-98% sparsity
// (2-core Zen 5, interleaved medians).

#include "kernels/common/simd_avx512.h"
#include "kernels/conv_sparse/conv_sparse_tiles.h"
#include "kernels/conv_sparse/conv_sparse_ukernels.h"

namespace sparsetrain::kernels::ukernel {
namespace {

using Avx512 = simd::Avx512;

}  // namespace

// Accumulators of a gather tile, and diff_dst vectors of an SDDMM tile.
constexpr int kGatherAcc = 24;
constexpr int kSddmmTile = 24;

void f32_conv_gather_24x16__avx512(const ConvGatherArgs& a) {
  if (a.n <= 16) return tiles::gather_vectors<Avx512, kGatherAcc, 1>(a);
  if (a.n <= 32) return tiles::gather_vectors<Avx512, kGatherAcc, 2>(a);
  if (a.n <= 48) return tiles::gather_vectors<Avx512, kGatherAcc, 3>(a);
  return tiles::gather_vectors<Avx512, kGatherAcc, 4>(a);
}

void f32_conv_sddmm_24x16__avx512(const ConvSddmmArgs& a) {
  if (a.n <= 16) return tiles::sddmm_vectors<Avx512, kSddmmTile, 1>(a);
  if (a.n <= 32) return tiles::sddmm_vectors<Avx512, kSddmmTile, 2>(a);
  if (a.n <= 48) return tiles::sddmm_vectors<Avx512, kSddmmTile, 3>(a);
  return tiles::sddmm_vectors<Avx512, kSddmmTile, 4>(a);
}

}  // namespace sparsetrain::kernels::ukernel

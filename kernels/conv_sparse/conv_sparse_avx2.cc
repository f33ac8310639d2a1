// AVX2 micro-kernels of the sparse convolution (8 floats per vector); the
// loops are in conv_sparse_tiles.h. With 16 registers the gathers keep up to
// 12 accumulators (12x8, 6x16 lanes), the SDDMM a diff_dst tile of up to 6
// vectors plus 8 accumulators.
#include "kernels/common/simd_avx2.h"
#include "kernels/conv_sparse/conv_sparse_tiles.h"
#include "kernels/conv_sparse/conv_sparse_ukernels.h"

namespace sparsetrain::kernels::ukernel {
namespace {

using Avx2 = simd::Avx2;

}  // namespace

constexpr int kGatherAcc = 12;
constexpr int kSddmmTile = 6;

void f32_conv_gather_12x8__avx2(const ConvGatherArgs& a) {
  if (a.n <= 8) return tiles::gather_vectors<Avx2, kGatherAcc, 1>(a);
  return tiles::gather_vectors<Avx2, kGatherAcc, 2>(a);
}

void f32_conv_sddmm_6x8__avx2(const ConvSddmmArgs& a) {
  if (a.n <= 8) return tiles::sddmm_vectors<Avx2, kSddmmTile, 1>(a);
  return tiles::sddmm_vectors<Avx2, kSddmmTile, 2>(a);
}

}  // namespace sparsetrain::kernels::ukernel

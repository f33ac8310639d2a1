// AVX2 micro-kernels of the sparse linear layer (8 floats per vector, 16
// vector registers); the loops are in linear_sparse_tiles.h. SpMM keeps an
// output row tile of up to 4 vectors (a batch tile of 32) in registers; SDDMM
// takes the nonzeros 8 at a time and reduces their 8 accumulators with the
// horizontal-add tree of the traits (add_sums8).
#include "kernels/common/simd_avx2.h"
#include "kernels/linear_sparse/linear_sparse_tiles.h"
#include "kernels/linear_sparse/linear_sparse_ukernels.h"

namespace sparsetrain::kernels::ukernel {
namespace {

struct LinearAvx2 : simd::Avx2 {
  // Not measured to pay here: no prefetch of diff_dst rows.
  static constexpr int64_t kPrefetchRows = 0;

  template <int NV>
  static void sddmm_nonzeros(const Vec (&g)[NV], const float* b, int64_t ldb, Mask last,
                             const uint16_t* col, float* diff_values, int64_t count) {
    linear_tiles::sddmm_groups8<LinearAvx2>(g, b, ldb, last, col, diff_values, count);
  }
};

}  // namespace

void f32_spmm_4x8__avx2(const SpmmArgs& a) { linear_tiles::spmm<LinearAvx2>(a); }

void f32_sddmm_4x8__avx2(const SddmmArgs& a) { linear_tiles::sddmm<LinearAvx2>(a); }

}  // namespace sparsetrain::kernels::ukernel

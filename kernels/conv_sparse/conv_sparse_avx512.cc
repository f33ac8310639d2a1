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

// GCC 12 reports its own _mm512_undefined_* values (self-initialised
// on purpose) as uninitialized once inlined (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "kernels/conv_sparse/conv_sparse_tiles.h"
#include "kernels/conv_sparse/conv_sparse_ukernels.h"

namespace sparsetrain::kernels::ukernel {
namespace {

struct Avx512 {
  using Vec = __m512;
  using Mask = __mmask16;
  static constexpr int kLanes = 16;

  static Mask mask(int64_t valid) {
    return valid >= kLanes ? static_cast<Mask>(0xFFFF) : static_cast<Mask>((1u << valid) - 1u);
  }
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec set1(float x) { return _mm512_set1_ps(x); }
  static Vec set1_bits(uint32_t bits) {
    return _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(bits)));
  }
  static Vec load(const float* p) { return _mm512_loadu_ps(p); }
  static Vec loadm(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
  static void storem(float* p, Mask m, Vec v) { _mm512_mask_storeu_ps(p, m, v); }
  static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
  static float hsum(Vec v) { return _mm512_reduce_add_ps(v); }

  // Lane sums of eight vectors by a transposing add tree: pairs interleaved
  // and added (unpack), then pairs of pairs (64-bit unpack), leaving in each
  // 128-bit group g the sums over group g of four vectors; then the groups
  // are folded (shuffle_f32x4 0x88 takes groups 0, 2 of both operands, 0xDD
  // groups 1, 3) and the halves added.
  static __m512 quad_group_sums(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    const __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd));
    const __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd));
    return _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
  }
  static void add_sums8(float* dst, const Vec (&acc)[8], int count) {
    const __m512 u = quad_group_sums(acc[0], acc[1], acc[2], acc[3]);
    const __m512 w = quad_group_sums(acc[4], acc[5], acc[6], acc[7]);
    // Groups (u0+u1, u2+u3, w0+w1, w2+w3), then reordered (0, 2, 1, 3) so
    // the two 256-bit halves add to (sums of acc[0..3], sums of acc[4..7]).
    const __m512 f =
        _mm512_add_ps(_mm512_shuffle_f32x4(u, w, 0x88), _mm512_shuffle_f32x4(u, w, 0xDD));
    const __m512 x = _mm512_shuffle_f32x4(f, f, 0xD8);
    const __m256 s = _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1));
    if (count == 8) {
      _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), s));
    } else {
      const __mmask8 m = static_cast<__mmask8>((1u << count) - 1u);
      _mm256_mask_storeu_ps(dst, m, _mm256_add_ps(_mm256_maskz_loadu_ps(m, dst), s));
    }
  }
};

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

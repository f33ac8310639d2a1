// Vector traits of AVX-512 (16 floats per vector) for the loops written once
// over an ISA (kernels/conv_sparse/conv_sparse_tiles.h,
// kernels/linear_sparse/linear_sparse_tiles.h). Include it only from files
// compiled for AVX-512 (*_avx512.cc): the traits have internal linkage, so
// every such file gets its own copy built with its own flags. The members are
// those of simd_avx2.h.
#pragma once

// GCC 12 reports its own _mm512_undefined_* values (self-initialised
// on purpose) as uninitialized once inlined (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

namespace sparsetrain::kernels::simd {
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
  static Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
  static Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
  static Vec maskz(Mask m, Vec v) { return _mm512_maskz_mov_ps(m, v); }
  // v where y > 0, else 0 (a ReLU's backward from its output y).
  static Vec keep_positive(Vec y, Vec v) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ), v);
  }
  // One 128-bit load of the four values, a lane permute broadcasting each.
  static void broadcast4(const float* p, Vec (&w)[4]) {
    const __m512 w4 = _mm512_castps128_ps512(_mm_loadu_ps(p));
    for (int i = 0; i < 4; ++i) w[i] = _mm512_permutexvar_ps(_mm512_set1_epi32(i), w4);
  }
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
}  // namespace sparsetrain::kernels::simd

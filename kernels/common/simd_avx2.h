// Vector traits of AVX2 (8 floats per vector) for the loops written once
// over an ISA (kernels/conv_sparse/conv_sparse_tiles.h,
// kernels/linear_sparse/linear_sparse_tiles.h). Include it only from files
// compiled for AVX2 (*_avx2.cc): the traits have internal linkage, so every
// such file gets its own copy built with its own flags.
//
// Traits: Vec, Mask, kLanes, mask(valid lanes), zero(), set1(x),
// set1_bits(bits) (the float with those bits in every lane), load(p),
// loadm(m, p) (lanes off the mask read as zero and never fault), store(p, v),
// storem(p, m, v), fma(a, b, c) = a * b + c, add(a, b), mul(a, b), sub(a, b),
// maskz(m, v) (lanes off the mask zeroed), hsum(v),
// add_sums8(dst, acc, count): dst[t] += hsum(acc[t]) for t < count, and
// broadcast4(p, w): w[i] = set1(p[i]) for i < 4.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace sparsetrain::kernels::simd {
namespace {

struct Avx2 {
  using Vec = __m256;
  using Mask = __m256i;
  static constexpr int kLanes = 8;

  static Mask mask(int64_t valid) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid < kLanes ? valid : kLanes)),
                              lanes);
  }
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec set1(float x) { return _mm256_set1_ps(x); }
  static Vec set1_bits(uint32_t bits) {
    return _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(bits)));
  }
  static Vec load(const float* p) { return _mm256_loadu_ps(p); }
  static Vec loadm(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
  static void storem(float* p, Mask m, Vec v) { _mm256_maskstore_ps(p, m, v); }
  static Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
  static Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
  static Vec sub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
  static Vec maskz(Mask m, Vec v) { return _mm256_and_ps(_mm256_castsi256_ps(m), v); }
  // v where y > 0, else 0 (a ReLU's backward from its output y).
  static Vec keep_positive(Vec y, Vec v) {
    return _mm256_and_ps(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ), v);
  }
  static void broadcast4(const float* p, Vec (&w)[4]) {
    for (int i = 0; i < 4; ++i) w[i] = _mm256_broadcast_ss(p + i);
  }
  static float hsum(Vec v) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
  }
  // Lane sums of eight vectors: horizontal adds leave, in each 128-bit half,
  // the half-sums of four vectors; the halves of the two quads are then
  // paired across (permute2f128) and added.
  static void add_sums8(float* dst, const Vec (&acc)[8], int count) {
    const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
    const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
    const __m256 s =
        _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
    const Mask m = mask(count);
    _mm256_maskstore_ps(dst, m, _mm256_add_ps(_mm256_maskload_ps(dst, m), s));
  }
};

}  // namespace
}  // namespace sparsetrain::kernels::simd

// AVX-512 micro-kernels of the sparse linear layer (16 floats per vector);
// the loops are in linear_sparse_tiles.h. SpMM keeps an output row tile of up
// to 4 vectors (a batch tile of 64) in registers. SDDMM takes the nonzeros in
// groups of 16 (then 8, then 4), each group's accumulators reduced to one
// vector of sums by a transposing add tree (unpack, 64-bit unpack, 128-bit
// lane shuffles): about three instructions per nonzero instead of a full
// horizontal sum each, and one vector read-modify-write of diff_values per
// group.
#include "kernels/common/simd_avx512.h"
#include "kernels/linear_sparse/linear_sparse_tiles.h"
#include "kernels/linear_sparse/linear_sparse_ukernels.h"

namespace sparsetrain::kernels::ukernel {
namespace {

constexpr int kLanes = 16;

// Transposing add trees: lane j of the result is the sum of the 16 lanes of
// v[j]. Pairs are interleaved and added (unpack), then pairs of pairs
// (64-bit unpack), then 128-bit groups (shuffle_f32x4: 0x88 picks groups
// (0, 2 | 0, 2) of its two operands, 0xDD picks (1, 3 | 1, 3)).

// Lane group L of the result: the sums over group L of v[0..3].
inline __m512 sum4_by_group(const __m512* v) {
  return simd::Avx512::quad_group_sums(v[0], v[1], v[2], v[3]);
}

// Groups (0+1, 2+3) of a, then of b.
inline __m512 fold_groups(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
}

template <int G>
struct LaneSums;

template <>
struct LaneSums<4> {
  static __m128 of(const __m512* v) {
    const __m512 u = sum4_by_group(v);
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u), _mm512_extractf32x8_ps(u, 1));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  }
};

template <>
struct LaneSums<8> {
  static __m256 of(const __m512* v) {
    const __m512 w = fold_groups(sum4_by_group(v), sum4_by_group(v + 4));
    // w holds (v0..3: groups 0+1, 2+3 | v4..7: groups 0+1, 2+3).
    const __m512 x = _mm512_shuffle_f32x4(w, w, 0xD8);
    return _mm256_add_ps(_mm512_castps512_ps256(x), _mm512_extractf32x8_ps(x, 1));
  }
};

template <>
struct LaneSums<16> {
  static __m512 of(const __m512* v) {
    const __m512 w0 = fold_groups(sum4_by_group(v), sum4_by_group(v + 4));
    const __m512 w1 = fold_groups(sum4_by_group(v + 8), sum4_by_group(v + 12));
    return fold_groups(w0, w1);
  }
};

// diff_values[0 .. count) += the dot products of the row tile g with the B
// rows of `count` nonzeros (count == G except for a row's last group of 4).
// The last vector of B is loaded under `last`: lanes past the batch are
// padding (of a kBlocked operand) that must not reach the sums.
template <int NV, int G>
inline void sddmm_group(const __m512 (&g)[NV], const char* b, int64_t row_bytes, __mmask16 last,
                        const uint16_t* col, float* diff_values, int count) {
  __m512 acc[G];
#pragma GCC unroll 4
  for (int q = 0; q < G / 4; ++q) {
    // One 64-bit load for four indices; a partial group reads only its own.
    uint64_t c4 = 0;
    if (count == G) {
      std::memcpy(&c4, col + 4 * q, sizeof(c4));
    } else {
      for (int i = 0; i < count; ++i) c4 |= static_cast<uint64_t>(col[i]) << (16 * i);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const int j = 4 * q + i;
      if (j >= count) {
        acc[j] = _mm512_setzero_ps();
        continue;
      }
      const auto* bj = reinterpret_cast<const float*>(
          b + static_cast<int64_t>((c4 >> (16 * i)) & 0xFFFF) * row_bytes);
      acc[j] = _mm512_mul_ps(g[NV - 1], _mm512_maskz_loadu_ps(last, bj + kLanes * (NV - 1)));
#pragma GCC unroll 4
      for (int v = 0; v < NV - 1; ++v)
        acc[j] = _mm512_fmadd_ps(g[v], _mm512_loadu_ps(bj + kLanes * v), acc[j]);
    }
  }
  if constexpr (G == 16) {
    _mm512_storeu_ps(diff_values,
                     _mm512_add_ps(_mm512_loadu_ps(diff_values), LaneSums<16>::of(acc)));
  } else if constexpr (G == 8) {
    _mm256_storeu_ps(diff_values,
                     _mm256_add_ps(_mm256_loadu_ps(diff_values), LaneSums<8>::of(acc)));
  } else {
    const __mmask8 m = static_cast<__mmask8>((1u << count) - 1u);
    _mm_mask_storeu_ps(diff_values, m,
                       _mm_add_ps(_mm_maskz_loadu_ps(m, diff_values), LaneSums<4>::of(acc)));
  }
}

struct LinearAvx512 : simd::Avx512 {
  // Each row also prefetches the diff_dst tile kPrefetchRows rows ahead. When
  // diff_dst is not in cache (another layer, or the dense baseline of the
  // benchmark, ran in between) the hardware prefetchers do not keep up with
  // these 256-byte rows, and every row then starts with a miss that its few
  // nonzeros (about 19 per panel at 95% sparsity on 768 inputs) cannot hide:
  // measured on 768 -> 3072, batch 256, with L3 flushed before each call, the
  // pass took 0.71 / 0.53 / 0.36 ms at 90 / 95 / 98% sparsity without, and
  // 0.51-0.57 / 0.34-0.37 / 0.18 ms with it (8 and 16 rows ahead alike, 2 and
  // 4 less). Prefetching the output rows of SpMM the same way gained nothing.
  static constexpr int64_t kPrefetchRows = 16;

  // Groups of 16, then 8, then 4 (the last one possibly partial).
  template <int NV>
  static void sddmm_nonzeros(const Vec (&g)[NV], const float* bf, int64_t ldb, Mask last,
                             const uint16_t* col, float* diff_values, int64_t count) {
    const char* b = reinterpret_cast<const char*>(bf);
    const int64_t row_bytes = ldb * static_cast<int64_t>(sizeof(float));
    int64_t k = 0;
    for (; k + 16 <= count; k += 16)
      sddmm_group<NV, 16>(g, b, row_bytes, last, col + k, diff_values + k, 16);
    if (k + 8 <= count) {
      sddmm_group<NV, 8>(g, b, row_bytes, last, col + k, diff_values + k, 8);
      k += 8;
    }
    if (k + 4 <= count) {
      sddmm_group<NV, 4>(g, b, row_bytes, last, col + k, diff_values + k, 4);
      k += 4;
    }
    if (k < count)
      sddmm_group<NV, 4>(g, b, row_bytes, last, col + k, diff_values + k,
                         static_cast<int>(count - k));
  }
};

}  // namespace

void f32_spmm_4x16__avx512(const SpmmArgs& a) { linear_tiles::spmm<LinearAvx512>(a); }

void f32_sddmm_4x16__avx512(const SddmmArgs& a) { linear_tiles::sddmm<LinearAvx512>(a); }

}  // namespace sparsetrain::kernels::ukernel

// AVX-512 micro-kernels of the sparse linear layer (16 floats per vector).
//
// Measured on the 2-core AMD EPYC (Zen 5) this was tuned on: a loop that
// streams one random 256-byte B row per nonzero through the FMA units runs at
// about 1.6 FMA per cycle when B sits in L1 and about 0.9 from L2 (the
// L2 -> L1 bandwidth), against 2 for dense code; in L1 it is bound by the
// loads (two per cycle, whatever their width) and by the FMA latency. Hence
// the panelled index (panels of B sized for L1), and in the kernels:
//
// SpMM (forward, backward-data): an output row tile of up to 4 vectors (a
// batch tile of 64) lives in registers while the row's nonzeros stream their
// B rows through the FMA units. Nonzeros are taken four at a time, their
// indices and values loaded together (NV + 1/2 loads per nonzero instead of
// NV + 2), and alternate groups of four feed two sets of accumulators so
// that eight independent FMA chains cover the FMA latency.
//
// SDDMM (backward-weights): the row's diff_dst tile stays in registers; the
// nonzeros go in groups of 16 (then 8, then 4), each one's dot product with
// its B row in its own accumulator, and the group's accumulators are reduced
// to one vector of sums by a transposing add tree (unpack, 64-bit unpack,
// 128-bit lane shuffles): about three instructions per nonzero instead of a
// full horizontal sum each, and one vector read-modify-write of diff_values
// per group.

// GCC 12 reports its own _mm512_undefined_* values (self-initialised
// on purpose) as uninitialized once inlined (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>
#include <cstring>

#include "kernels/linear_sparse/linear_sparse.h"
#include "kernels/linear_sparse/linear_sparse_ukernels.h"

namespace sparsetrain::kernels::ukernel {
namespace {

constexpr int kLanes = 16;

__mmask16 tail_mask(int64_t valid) {
  return valid >= kLanes ? static_cast<__mmask16>(0xFFFF)
                         : static_cast<__mmask16>((1u << valid) - 1u);
}

// --- SpMM --------------------------------------------------------------------

// acc[v] += w * b[16 v .. 16 v + 15] for the NV vectors of one B row.
template <int NV>
inline void fma_row(__m512 (&acc)[NV], __m512 w, const float* b) {
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) acc[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(b + kLanes * v), acc[v]);
}

// Four nonzeros: one 64-bit load brings their 16-bit column indices, one
// 128-bit load their values, and a lane permute broadcasts each value.
template <int NV>
struct Quad {
  const char* b;
  int64_t row_bytes;
  __m512i lane[4];

  const float* row(uint64_t c) const {
    return reinterpret_cast<const float*>(b + static_cast<int64_t>(c) * row_bytes);
  }
  void operator()(__m512 (&acc)[NV], const uint16_t* col, const float* val) const {
    uint64_t c4;
    std::memcpy(&c4, col, sizeof(c4));
    const __m512 w4 = _mm512_castps128_ps512(_mm_loadu_ps(val));
    fma_row(acc, _mm512_permutexvar_ps(lane[0], w4), row(c4 & 0xFFFF));
    fma_row(acc, _mm512_permutexvar_ps(lane[1], w4), row((c4 >> 16) & 0xFFFF));
    fma_row(acc, _mm512_permutexvar_ps(lane[2], w4), row((c4 >> 32) & 0xFFFF));
    fma_row(acc, _mm512_permutexvar_ps(lane[3], w4), row(c4 >> 48));
  }
};

// Rows [row_begin, row_end) of one panel. Two things bound this loop: loads
// (two per cycle whatever their width) and the FMA latency. Per nonzero it
// needs NV rows of B plus its column and value; taking nonzeros four at a
// time (Quad) brings that to NV + 1/2 loads. And each accumulator takes one
// FMA per nonzero, so with NV = 4 accumulators the FMA latency, not the two
// FMA pipes, would set the pace: alternate groups of four go to two sets of
// accumulators (8 independent chains), summed at the end of the row.
template <int NV, SpmmInit kInit>
void spmm_rows(const SpmmArgs& args) {
  const SpmmArgs a = args;  // a local copy: the stores to `out` cannot alias it
  const __mmask16 last = tail_mask(a.n - kLanes * (NV - 1));
  const Quad<NV> quad{
      reinterpret_cast<const char*>(a.b),
      a.ldb * static_cast<int64_t>(sizeof(float)),
      {_mm512_set1_epi32(0), _mm512_set1_epi32(1), _mm512_set1_epi32(2), _mm512_set1_epi32(3)}};
  const uint32_t* row_ptr = a.row_ptr;
  uint32_t k = row_ptr[a.row_begin];
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const uint32_t end = row_ptr[r + 1];
    // Nothing to add to a row that already holds its partial sum.
    if (kInit == SpmmInit::kAccumulate && end == k) continue;
    float* out = a.out + r * a.ldo;
    __m512 acc[NV], acc2[NV];
    const __m512 init = kInit == SpmmInit::kBias ? _mm512_set1_ps(a.bias[r]) : _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      acc[v] = init;
      acc2[v] = _mm512_setzero_ps();
    }

    const uint16_t* col = a.col + k;
    const float* val = a.values + k;
    const float* val_end = a.values + end;
    for (; val + 8 <= val_end; val += 8, col += 8) {
      quad(acc, col, val);
      quad(acc2, col + 4, val + 4);
    }
    if (val + 4 <= val_end) {
      quad(acc, col, val);
      val += 4;
      col += 4;
    }
    for (; val < val_end; ++val, ++col) fma_row(acc2, _mm512_set1_ps(*val), quad.row(*col));
    k = end;

#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[v] = _mm512_add_ps(acc[v], acc2[v]);
    // Added after the row's sum so the loads of `out` are off its FMA chain.
    if (kInit == SpmmInit::kAccumulate) {
#pragma GCC unroll 4
      for (int v = 0; v < NV - 1; ++v)
        acc[v] = _mm512_add_ps(acc[v], _mm512_loadu_ps(out + kLanes * v));
      acc[NV - 1] =
          _mm512_add_ps(acc[NV - 1], _mm512_maskz_loadu_ps(last, out + kLanes * (NV - 1)));
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) _mm512_storeu_ps(out + kLanes * v, acc[v]);
    _mm512_mask_storeu_ps(out + kLanes * (NV - 1), last, acc[NV - 1]);
  }
}

template <int NV>
void spmm_init(const SpmmArgs& a) {
  switch (a.init) {
    case SpmmInit::kZero:
      return spmm_rows<NV, SpmmInit::kZero>(a);
    case SpmmInit::kBias:
      return spmm_rows<NV, SpmmInit::kBias>(a);
    case SpmmInit::kAccumulate:
      return spmm_rows<NV, SpmmInit::kAccumulate>(a);
  }
}

// --- SDDMM -------------------------------------------------------------------

// Transposing add trees: lane j of the result is the sum of the 16 lanes of
// v[j]. Pairs are interleaved and added (unpack), then pairs of pairs
// (64-bit unpack), then 128-bit groups (shuffle_f32x4: 0x88 picks groups
// (0, 2 | 0, 2) of its two operands, 0xDD picks (1, 3 | 1, 3)).

// Lane group L of the result: the sums over group L of v[0..3].
inline __m512 sum4_by_group(const __m512* v) {
  const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(v[0], v[1]), _mm512_unpackhi_ps(v[0], v[1]));
  const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(v[2], v[3]), _mm512_unpackhi_ps(v[2], v[3]));
  const __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t1));
  const __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t1));
  return _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
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

// Rows [row_begin, row_end) of one panel: the row's diff_dst tile stays in
// registers; its nonzeros go in groups of 16, then 8, then 4 (the last one
// possibly partial), each group's accumulators reduced by a transposing add
// tree to one vector of sums (about three instructions per nonzero).
//
// Each row also prefetches the diff_dst tile kPrefetchRows rows ahead. When
// diff_dst is not in cache (another layer, or the dense baseline of the
// benchmark, ran in between) the hardware prefetchers do not keep up with
// these 256-byte rows, and every row then starts with a miss that its few
// nonzeros (about 19 per panel at 95% sparsity on 768 inputs) cannot hide:
// measured on 768 -> 3072, batch 256, with L3 flushed before each call, the
// pass took 0.71 / 0.53 / 0.36 ms at 90 / 95 / 98% sparsity without, and
// 0.51-0.57 / 0.34-0.37 / 0.18 ms with it (8 and 16 rows ahead alike, 2 and
// 4 less). Prefetching the output rows of SpMM the same way gained nothing.
constexpr int64_t kPrefetchRows = 16;

template <int NV>
void sddmm_rows(const SddmmArgs& a) {
  const __mmask16 last = tail_mask(a.n - kLanes * (NV - 1));
  const char* b = reinterpret_cast<const char*>(a.b);
  const int64_t row_bytes = a.ldb * static_cast<int64_t>(sizeof(float));
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const float* gr = a.a + r * a.lda;
    if (r + kPrefetchRows < a.row_end) {
      const float* next = gr + kPrefetchRows * a.lda;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v)
        _mm_prefetch(reinterpret_cast<const char*>(next + kLanes * v), _MM_HINT_T0);
    }
    __m512 g[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) g[v] = _mm512_loadu_ps(gr + kLanes * v);
    g[NV - 1] = _mm512_maskz_loadu_ps(last, gr + kLanes * (NV - 1));
    if (a.diff_bias != nullptr) {
      __m512 s = g[0];
#pragma GCC unroll 4
      for (int v = 1; v < NV; ++v) s = _mm512_add_ps(s, g[v]);
      a.diff_bias[r] += _mm512_reduce_add_ps(s);
    }
    uint32_t k = a.row_ptr[r];
    const uint32_t end = a.row_ptr[r + 1];
    for (; k + 16 <= end; k += 16)
      sddmm_group<NV, 16>(g, b, row_bytes, last, a.col + k, a.diff_values + k, 16);
    if (k + 8 <= end) {
      sddmm_group<NV, 8>(g, b, row_bytes, last, a.col + k, a.diff_values + k, 8);
      k += 8;
    }
    if (k + 4 <= end) {
      sddmm_group<NV, 4>(g, b, row_bytes, last, a.col + k, a.diff_values + k, 4);
      k += 4;
    }
    if (k < end)
      sddmm_group<NV, 4>(g, b, row_bytes, last, a.col + k, a.diff_values + k,
                         static_cast<int>(end - k));
  }
}

}  // namespace

void f32_spmm_4x16__avx512(const SpmmArgs& a) {
  if (a.n <= 16) return spmm_init<1>(a);
  if (a.n <= 32) return spmm_init<2>(a);
  if (a.n <= 48) return spmm_init<3>(a);
  return spmm_init<4>(a);
}

void f32_sddmm_4x16__avx512(const SddmmArgs& a) {
  if (a.n <= 16) return sddmm_rows<1>(a);
  if (a.n <= 32) return sddmm_rows<2>(a);
  if (a.n <= 48) return sddmm_rows<3>(a);
  return sddmm_rows<4>(a);
}

}  // namespace sparsetrain::kernels::ukernel

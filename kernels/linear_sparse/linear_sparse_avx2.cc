// AVX2 micro-kernels of the sparse linear layer (8 floats per vector, 16
// vector registers). Same structure as the AVX-512 file: SpMM keeps an output
// row tile of up to 4 vectors (a batch tile of 32) in registers, takes the
// nonzeros four at a time into two sets of accumulators; SDDMM takes 8
// nonzeros at a time and reduces their 8 accumulators with a horizontal-add
// tree.

// GCC 12 reports its own _mm*_undefined_* values (self-initialised
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

constexpr int kLanes = 8;

// All-ones in the first `valid` 32-bit lanes (masked loads and stores).
__m256i tail_mask(int64_t valid) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int v = valid >= kLanes ? kLanes : static_cast<int>(valid);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(v), lane);
}

// --- SpMM --------------------------------------------------------------------

// acc[v] += w * b[8 v .. 8 v + 7] for the NV vectors of one B row.
template <int NV>
inline void fma_row(__m256 (&acc)[NV], __m256 w, const float* b) {
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) acc[v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(b + kLanes * v), acc[v]);
}

// Four nonzeros, their 16-bit column indices from one 64-bit load.
template <int NV>
struct Quad {
  const char* b;
  int64_t row_bytes;

  const float* row(uint64_t c) const {
    return reinterpret_cast<const float*>(b + static_cast<int64_t>(c) * row_bytes);
  }
  void operator()(__m256 (&acc)[NV], const uint16_t* col, const float* val) const {
    uint64_t c4;
    std::memcpy(&c4, col, sizeof(c4));
    fma_row(acc, _mm256_broadcast_ss(val + 0), row(c4 & 0xFFFF));
    fma_row(acc, _mm256_broadcast_ss(val + 1), row((c4 >> 16) & 0xFFFF));
    fma_row(acc, _mm256_broadcast_ss(val + 2), row((c4 >> 32) & 0xFFFF));
    fma_row(acc, _mm256_broadcast_ss(val + 3), row(c4 >> 48));
  }
};

// Rows [row_begin, row_end) of one panel; alternate groups of four nonzeros
// go to two sets of accumulators so that the FMA latency is covered.
template <int NV, SpmmInit kInit>
void spmm_rows(const SpmmArgs& args) {
  const SpmmArgs a = args;  // a local copy: the stores to `out` cannot alias it
  const __m256i last = tail_mask(a.n - kLanes * (NV - 1));
  const Quad<NV> quad{reinterpret_cast<const char*>(a.b),
                      a.ldb * static_cast<int64_t>(sizeof(float))};
  const uint32_t* row_ptr = a.row_ptr;
  uint32_t k = row_ptr[a.row_begin];
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const uint32_t end = row_ptr[r + 1];
    // Nothing to add to a row that already holds its partial sum.
    if (kInit == SpmmInit::kAccumulate && end == k) continue;
    float* out = a.out + r * a.ldo;
    __m256 acc[NV], acc2[NV];
    const __m256 init = kInit == SpmmInit::kBias ? _mm256_set1_ps(a.bias[r]) : _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      acc[v] = init;
      acc2[v] = _mm256_setzero_ps();
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
    for (; val < val_end; ++val, ++col) fma_row(acc2, _mm256_broadcast_ss(val), quad.row(*col));
    k = end;

#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[v] = _mm256_add_ps(acc[v], acc2[v]);
    if (kInit == SpmmInit::kAccumulate) {
#pragma GCC unroll 4
      for (int v = 0; v < NV - 1; ++v)
        acc[v] = _mm256_add_ps(acc[v], _mm256_loadu_ps(out + kLanes * v));
      acc[NV - 1] = _mm256_add_ps(acc[NV - 1], _mm256_maskload_ps(out + kLanes * (NV - 1), last));
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) _mm256_storeu_ps(out + kLanes * v, acc[v]);
    _mm256_maskstore_ps(out + kLanes * (NV - 1), last, acc[NV - 1]);
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

// Lane j of the result: the sum of the 8 lanes of v[j].
inline __m256 transpose_sum8(const __m256* v) {
  const __m256 t0 = _mm256_hadd_ps(v[0], v[1]);
  const __m256 t1 = _mm256_hadd_ps(v[2], v[3]);
  const __m256 t2 = _mm256_hadd_ps(v[4], v[5]);
  const __m256 t3 = _mm256_hadd_ps(v[6], v[7]);
  // Half h of u0: the sums over half h of v[0..3]; likewise u1 for v[4..7].
  const __m256 u0 = _mm256_hadd_ps(t0, t1);
  const __m256 u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// The last vector of B is loaded under `last`: lanes past the batch are
// padding (of a kBlocked operand) that must not reach the sums.
template <int NV, bool kFull>
inline void sddmm_group8(const __m256* g, const float* b, int64_t ldb, __m256i last,
                         const uint16_t* col, float* diff_values, int count) {
  __m256 acc[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    if (!kFull && j >= count) {
      acc[j] = _mm256_setzero_ps();
      continue;
    }
    const float* bj = b + static_cast<int64_t>(col[j]) * ldb;
    acc[j] = _mm256_mul_ps(g[NV - 1], _mm256_maskload_ps(bj + kLanes * (NV - 1), last));
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v)
      acc[j] = _mm256_fmadd_ps(g[v], _mm256_loadu_ps(bj + kLanes * v), acc[j]);
  }
  const __m256 sums = transpose_sum8(acc);
  if (kFull) {
    _mm256_storeu_ps(diff_values, _mm256_add_ps(_mm256_loadu_ps(diff_values), sums));
  } else {
    const __m256i m = tail_mask(count);
    _mm256_maskstore_ps(diff_values, m, _mm256_add_ps(_mm256_maskload_ps(diff_values, m), sums));
  }
}

// Sum of the 8 lanes, in a fixed order.
inline float hsum(__m256 v) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

template <int NV>
void sddmm_rows(const SddmmArgs& a) {
  const __m256i last = tail_mask(a.n - kLanes * (NV - 1));
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const float* gr = a.a + r * a.lda;
    __m256 g[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) g[v] = _mm256_loadu_ps(gr + kLanes * v);
    g[NV - 1] = _mm256_maskload_ps(gr + kLanes * (NV - 1), last);
    if (a.diff_bias != nullptr) {
      __m256 s = g[0];
#pragma GCC unroll 4
      for (int v = 1; v < NV; ++v) s = _mm256_add_ps(s, g[v]);
      a.diff_bias[r] += hsum(s);
    }
    uint32_t k = a.row_ptr[r];
    const uint32_t end = a.row_ptr[r + 1];
    for (; k + 8 <= end; k += 8)
      sddmm_group8<NV, true>(g, a.b, a.ldb, last, a.col + k, a.diff_values + k, 8);
    if (k < end)
      sddmm_group8<NV, false>(g, a.b, a.ldb, last, a.col + k, a.diff_values + k,
                              static_cast<int>(end - k));
  }
}

}  // namespace

void f32_spmm_4x8__avx2(const SpmmArgs& a) {
  if (a.n <= 8) return spmm_init<1>(a);
  if (a.n <= 16) return spmm_init<2>(a);
  if (a.n <= 24) return spmm_init<3>(a);
  return spmm_init<4>(a);
}

void f32_sddmm_4x8__avx2(const SddmmArgs& a) {
  if (a.n <= 8) return sddmm_rows<1>(a);
  if (a.n <= 16) return sddmm_rows<2>(a);
  if (a.n <= 24) return sddmm_rows<3>(a);
  return sddmm_rows<4>(a);
}

}  // namespace sparsetrain::kernels::ukernel

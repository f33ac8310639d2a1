// The register-tiled loops of the SIMD sparse linear micro-kernels, written
// once over a vector-ISA traits type (kernels/common/simd_avx2.h lists the
// members). linear_sparse_avx2.cc and linear_sparse_avx512.cc instantiate
// them with their own traits, each compiled for its own ISA with internal
// linkage; what stays in those files is what differs: the SDDMM's reduction
// of a group of nonzeros, and the batch widths.
//
// Measured on the 2-core AMD EPYC (Zen 5) this was tuned on: a loop that
// streams one random 256-byte B row per nonzero through the FMA units runs at
// about 1.6 FMA per cycle when B sits in L1 and about 0.9 from L2 (the
// L2 -> L1 bandwidth), against 2 for dense code; in L1 it is bound by the
// loads (two per cycle, whatever their width) and by the FMA latency. Hence
// the panelled index (panels of B sized for L1), and in the kernels:
//
// SpMM (forward, backward-data): an output row tile of up to 4 vectors lives
// in registers while the row's nonzeros stream their B rows through the FMA
// units. Nonzeros are taken four at a time, their 16-bit indices in one
// 64-bit load (and, on AVX-512, their values in one 128-bit load broadcast
// by lane permutes), and alternate groups of four feed two sets of
// accumulators so that eight independent FMA chains cover the FMA latency.
//
// SDDMM (backward-weights): the row's diff_dst tile stays in registers; the
// ISA's traits take the row's nonzeros in groups (each one's dot product with
// its B row in its own accumulator) and reduce every group with a transposing
// add tree, one vector read-modify-write of diff_values per group.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/linear_sparse/linear_sparse.h"

namespace sparsetrain::kernels::ukernel::linear_tiles {
// Internal linkage: each ISA file compiles its own copy with its own flags.
namespace {

// --- SpMM --------------------------------------------------------------------

// acc[v] += w * b[lanes v ..] for the NV vectors of one B row.
template <class T, int NV>
inline void fma_row(typename T::Vec (&acc)[NV], typename T::Vec w, const float* b) {
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) acc[v] = T::fma(w, T::load(b + T::kLanes * v), acc[v]);
}

// Four nonzeros: one 64-bit load brings their 16-bit column indices.
template <class T, int NV>
struct Quad {
  const char* b;
  int64_t row_bytes;

  const float* row(uint64_t c) const {
    return reinterpret_cast<const float*>(b + static_cast<int64_t>(c) * row_bytes);
  }
  void operator()(typename T::Vec (&acc)[NV], const uint16_t* col, const float* val) const {
    uint64_t c4;
    std::memcpy(&c4, col, sizeof(c4));
    typename T::Vec w[4];
    T::broadcast4(val, w);
    fma_row<T>(acc, w[0], row(c4 & 0xFFFF));
    fma_row<T>(acc, w[1], row((c4 >> 16) & 0xFFFF));
    fma_row<T>(acc, w[2], row((c4 >> 32) & 0xFFFF));
    fma_row<T>(acc, w[3], row(c4 >> 48));
  }
};

// Rows [row_begin, row_end) of one panel. Per nonzero the loop needs NV rows
// of B plus its column and value; taking nonzeros four at a time (Quad)
// brings that to about NV + 1/2 loads. Each accumulator takes one FMA per
// nonzero, so with NV = 4 accumulators the FMA latency, not the two FMA
// pipes, would set the pace: alternate groups of four go to two sets of
// accumulators (8 independent chains), summed at the end of the row.
template <class T, int NV, SpmmInit kInit>
void spmm_rows(const SpmmArgs& args) {
  using Vec = typename T::Vec;
  const SpmmArgs a = args;  // a local copy: the stores to `out` cannot alias it
  const auto last = T::mask(a.n - T::kLanes * (NV - 1));
  const Quad<T, NV> quad{reinterpret_cast<const char*>(a.b),
                         a.ldb * static_cast<int64_t>(sizeof(float))};
  const uint32_t* row_ptr = a.row_ptr;
  uint32_t k = row_ptr[a.row_begin];
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const uint32_t end = row_ptr[r + 1];
    // Nothing to add to a row that already holds its partial sum.
    if (kInit == SpmmInit::kAccumulate && end == k) continue;
    float* out = a.out + r * a.ldo;
    Vec acc[NV], acc2[NV];
    const Vec init = kInit == SpmmInit::kBias ? T::set1(a.bias[r]) : T::zero();
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      acc[v] = init;
      acc2[v] = T::zero();
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
    for (; val < val_end; ++val, ++col) fma_row<T>(acc2, T::set1(*val), quad.row(*col));
    k = end;

#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[v] = T::add(acc[v], acc2[v]);
    // Added after the row's sum so the loads of `out` are off its FMA chain.
    if (kInit == SpmmInit::kAccumulate) {
#pragma GCC unroll 4
      for (int v = 0; v < NV - 1; ++v) acc[v] = T::add(acc[v], T::load(out + T::kLanes * v));
      acc[NV - 1] = T::add(acc[NV - 1], T::loadm(last, out + T::kLanes * (NV - 1)));
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) T::store(out + T::kLanes * v, acc[v]);
    T::storem(out + T::kLanes * (NV - 1), last, acc[NV - 1]);
  }
}

template <class T, int NV>
void spmm_init(const SpmmArgs& a) {
  switch (a.init) {
    case SpmmInit::kZero:
      return spmm_rows<T, NV, SpmmInit::kZero>(a);
    case SpmmInit::kBias:
      return spmm_rows<T, NV, SpmmInit::kBias>(a);
    case SpmmInit::kAccumulate:
      return spmm_rows<T, NV, SpmmInit::kAccumulate>(a);
  }
}

// A batch tile of up to 4 vectors, compiled for each count.
template <class T>
void spmm(const SpmmArgs& a) {
  if (a.n <= T::kLanes) return spmm_init<T, 1>(a);
  if (a.n <= 2 * T::kLanes) return spmm_init<T, 2>(a);
  if (a.n <= 3 * T::kLanes) return spmm_init<T, 3>(a);
  return spmm_init<T, 4>(a);
}

// --- SDDMM -------------------------------------------------------------------

// The B row of nonzero j: its first NV - 1 vectors in full, the last under
// `last` (lanes past the batch are padding of a kBlocked operand that must
// not reach the sums), dotted with the row tile g.
template <class T, int NV>
inline typename T::Vec dot_row(const typename T::Vec (&g)[NV], const float* bj,
                               typename T::Mask last) {
  typename T::Vec acc = T::mul(g[NV - 1], T::loadm(last, bj + T::kLanes * (NV - 1)));
#pragma GCC unroll 4
  for (int v = 0; v < NV - 1; ++v) acc = T::fma(g[v], T::load(bj + T::kLanes * v), acc);
  return acc;
}

// The row's nonzeros in groups of 8 (the last one partial), each group's
// accumulators reduced by T::add_sums8.
template <class T, int NV>
inline void sddmm_groups8(const typename T::Vec (&g)[NV], const float* b, int64_t ldb,
                          typename T::Mask last, const uint16_t* col, float* diff_values,
                          int64_t count) {
  typename T::Vec acc[8];
  int64_t k = 0;
  for (; k + 8 <= count; k += 8) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j)
      acc[j] = dot_row<T>(g, b + static_cast<int64_t>(col[k + j]) * ldb, last);
    T::add_sums8(diff_values + k, acc, 8);
  }
  if (k < count) {
    const int rest = static_cast<int>(count - k);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j)
      acc[j] =
          j < rest ? dot_row<T>(g, b + static_cast<int64_t>(col[k + j]) * ldb, last) : T::zero();
    T::add_sums8(diff_values + k, acc, rest);
  }
}

// Rows [row_begin, row_end) of one panel: the row's diff_dst tile in
// registers, its bias gradient, then T::sddmm_nonzeros over its nonzeros.
// With T::kPrefetchRows > 0 each row also prefetches the diff_dst tile that
// many rows ahead (see linear_sparse_avx512.cc for when that pays).
template <class T, int NV>
void sddmm_rows(const SddmmArgs& a) {
  using Vec = typename T::Vec;
  const auto last = T::mask(a.n - T::kLanes * (NV - 1));
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const float* gr = a.a + r * a.lda;
    if constexpr (T::kPrefetchRows > 0) {
      if (r + T::kPrefetchRows < a.row_end) {
        const float* next = gr + T::kPrefetchRows * a.lda;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v)
          _mm_prefetch(reinterpret_cast<const char*>(next + T::kLanes * v), _MM_HINT_T0);
      }
    }
    Vec g[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) g[v] = T::load(gr + T::kLanes * v);
    g[NV - 1] = T::loadm(last, gr + T::kLanes * (NV - 1));
    if (a.diff_bias != nullptr) {
      Vec s = g[0];
#pragma GCC unroll 4
      for (int v = 1; v < NV; ++v) s = T::add(s, g[v]);
      a.diff_bias[r] += T::hsum(s);
    }
    const uint32_t k = a.row_ptr[r];
    T::template sddmm_nonzeros<NV>(g, a.b, a.ldb, last, a.col + k, a.diff_values + k,
                                   static_cast<int64_t>(a.row_ptr[r + 1] - k));
  }
}

template <class T>
void sddmm(const SddmmArgs& a) {
  if (a.n <= T::kLanes) return sddmm_rows<T, 1>(a);
  if (a.n <= 2 * T::kLanes) return sddmm_rows<T, 2>(a);
  if (a.n <= 3 * T::kLanes) return sddmm_rows<T, 3>(a);
  return sddmm_rows<T, 4>(a);
}

}  // namespace
}  // namespace sparsetrain::kernels::ukernel::linear_tiles

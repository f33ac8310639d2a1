// The register-tiled loops of the SIMD sparse convolution kernels, written
// once over a vector-ISA traits type (conv_sparse_avx2.cc, conv_sparse_avx512.cc
// instantiate them with their own, file-local traits, so every instantiation
// is compiled for its own ISA and stays local to its file).
//
// Traits T: kernels/common/simd_avx2.h lists their members.
//
// Gather (forward, backward-data). For an index row r, a tile of P positions
// times V batch vectors lives in registers while r's taps stream by: per tap
// one 64-bit load (offset and value), a broadcast, and P * V multiply-adds,
// each with its input vector straight from memory. A line of positions is
// cut into tiles of nearly equal size (30 positions at most 12 per tile: 10,
// 10, 10, not 12, 12, 6), each size compiled separately, so no tile runs short
// of accumulators. Within a tile, the panels go in order and every row runs
// each panel, its sums reloaded from the output after the first. With the
// last batch vector full (kFull) every load folds into its FMA; otherwise the
// last vector is loaded under a lane mask.
//
// What bounds it (2-core Zen 5, AVX-512): two loads and two FMAs per cycle,
// and one load per FMA here. With its inputs in L1 a tile runs about 1.3 FMA
// per cycle (180 GFLOPS per core); on real layers each tap's strip comes from
// L2 (about 0.7 FMA per cycle) or, when the KH image rows of every channel
// outgrow L2 or their power-of-two strides crowd a few cache sets, from L3.
// Copying each tile's input window into a compact buffer, with panels sized
// for L1, was tried: the copies and the reloads of the partial sums cost what
// the L1 hits saved.
//
// SDDMM (backward-weights). The tile of diff_dst (P positions x V vectors)
// lives in registers; the taps go in groups of 8, each one's dot product with
// its input strip in its own accumulator (8 independent FMA chains), and each
// group's accumulators are summed across lanes together into 8 partial sums.
// (Sweeping whole lines per group of taps, one reduction per line instead of
// per tile, was slower: less reuse of each tile's inputs across rows.)
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/conv_sparse/conv_sparse_ukernels.h"

namespace sparsetrain::kernels::ukernel::tiles {
// Internal linkage: each ISA file compiles its own copy with its own flags.
namespace {

// One index row on one line, in one panel: its runs, and where its inputs sit.
struct Row {
  const float* in;
  int64_t base;  // input offset of position 0, the row's group included
  int64_t in_ps;
  const uint32_t* ptr;  // the row's run starts in this panel
  const ConvTaps* taps;
  const ConvLine* line;
};

// Row r in panel `panel`, its group's channels at input offset group_base.
inline Row make_row(const ConvTaps& t, const ConvLine& line, const float* in, int64_t group_base,
                    int64_t r, int64_t panel) {
  return {in,         line.in_base + group_base,
          line.in_ps, t.run_ptr + (r * t.panels + panel) * t.runs_per_panel,
          &t,         &line};
}

// Calls fn(r, group_base) for rows [begin, end), group_base the input offset
// of row r's group (one division per call, not per row).
template <class Fn>
inline void for_rows(int64_t begin, int64_t end, int64_t rows_per_group, int64_t group_stride,
                     Fn fn) {
  int64_t group = begin / rows_per_group;
  int64_t next = (group + 1) * rows_per_group;
  for (int64_t r = begin; r < end; ++r) {
    if (r == next) {
      ++group;
      next += rows_per_group;
    }
    fn(r, group * group_stride);
  }
}

// Whether the row has taps on the line in its panel.
inline bool has_taps(const Row& row) {
  for (int64_t s = 0; s < row.line->num_segs; ++s)
    if (row.ptr[row.line->segs[2 * s + 1]] > row.ptr[row.line->segs[2 * s]]) return true;
  return false;
}

// Tiles of nearly equal size, none larger than `most`: calls fn(q, size).
template <class Fn>
inline void for_tiles(int64_t positions, int most, Fn fn) {
  if (positions <= 0) return;
  const int64_t count = (positions + most - 1) / most;
  const int64_t size = positions / count, bigger = positions % count;
  int64_t q = 0;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t s = size + (t < bigger ? 1 : 0);
    fn(q, static_cast<int>(s));
    q += s;
  }
}

// --- gather ----------------------------------------------------------------------

// One index row of a gather in one panel: its inputs, where its outputs go,
// and whether they start from `init` (the first panel) or from what the
// previous panels (or the caller, in accumulate mode) left there.
template <class T>
struct GatherRow {
  Row row;
  float* out;
  int64_t out_ps;
  typename T::Mask last;  // lanes of the last batch vector
  typename T::Vec init;
  bool from_out;      // start from the sums a previous panel stored
  bool add_out;       // store out + sum (accumulate mode, one panel)
  const float* keep;  // null, or the row's ReLU output: store where > 0, else 0
  float* stats;       // null, or the row's lane sums (kStatLanes), then of squares
};

// The tile's outputs added to the row's lane sums, and their squares to its
// lane sums of squares (lanes off the last vector's mask left out): four
// chains of each, folded into one vector, one load and one store per sum.
template <class T, int P, int V, bool kFull>
inline void tile_sums(const typename T::Vec (&acc)[P][V], typename T::Mask last, float* stats) {
  using Vec = typename T::Vec;
  constexpr int kChains = 4;
  Vec s[kChains], q[kChains];
#pragma GCC unroll 4
  for (int c = 0; c < kChains; ++c) s[c] = q[c] = T::zero();
#pragma GCC unroll 32
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const Vec x = kFull || v < V - 1 ? acc[p][v] : T::maskz(last, acc[p][v]);
      const int c = (p * V + v) % kChains;
      s[c] = T::add(s[c], x);
      q[c] = T::fma(x, x, q[c]);
    }
  T::store(stats, T::add(T::load(stats), T::add(T::add(s[0], s[1]), T::add(s[2], s[3]))));
  T::store(stats + kStatLanes,
           T::add(T::load(stats + kStatLanes), T::add(T::add(q[0], q[1]), T::add(q[2], q[3]))));
}

// Positions [q, q + P) of one row in one panel.
template <class T, int P, int V, bool kFull>
void gather_tile(const GatherRow<T>& gr, int64_t q) {
  using Vec = typename T::Vec;
  constexpr int L = T::kLanes;
  const Row& row = gr.row;
  const ConvTaps& t = *row.taps;
  const ConvLine& line = *row.line;
  const typename T::Mask last = gr.last;
  Vec acc[P][V];
#pragma GCC unroll 32
  for (int p = 0; p < P; ++p) {
    const float* o = gr.out + (q + p) * gr.out_ps;
    if (gr.from_out) {
#pragma GCC unroll 4
      for (int v = 0; v < V - 1; ++v) acc[p][v] = T::load(o + L * v);
      acc[p][V - 1] = kFull ? T::load(o + L * (V - 1)) : T::loadm(last, o + L * (V - 1));
    } else {
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[p][v] = gr.init;
    }
  }
  const int64_t ps = row.in_ps;
  const int64_t at = row.base + q * ps;
  for (int64_t s = 0; s < line.num_segs; ++s) {
    const uint32_t end = row.ptr[line.segs[2 * s + 1]];
    for (uint32_t k = row.ptr[line.segs[2 * s]]; k < end; ++k) {
      // One 64-bit load brings the tap's offset (low half, little-endian)
      // and value (high half).
      uint64_t e;
      std::memcpy(&e, &t.tap[k], sizeof(e));
      const float* x = row.in + (at + static_cast<int32_t>(static_cast<uint32_t>(e)));
      const Vec w = T::set1_bits(static_cast<uint32_t>(e >> 32));
#pragma GCC unroll 32
      for (int p = 0; p < P; ++p) {
#pragma GCC unroll 4
        for (int v = 0; v < V - 1; ++v) acc[p][v] = T::fma(w, T::load(x + L * v), acc[p][v]);
        const float* xl = x + L * (V - 1);
        acc[p][V - 1] = T::fma(w, kFull ? T::load(xl) : T::loadm(last, xl), acc[p][V - 1]);
        // One add per position: left to itself the compiler keeps a register
        // (or a stack slot) for every multiple of the stride.
        x += ps;
        asm("" : "+r"(x));
      }
    }
  }
  if (gr.add_out) {
#pragma GCC unroll 32
    for (int p = 0; p < P; ++p) {
      const float* o = gr.out + (q + p) * gr.out_ps;
#pragma GCC unroll 4
      for (int v = 0; v < V - 1; ++v) acc[p][v] = T::add(T::load(o + L * v), acc[p][v]);
      acc[p][V - 1] =
          T::add(kFull ? T::load(o + L * (V - 1)) : T::loadm(last, o + L * (V - 1)), acc[p][V - 1]);
    }
  }
  if (gr.keep != nullptr) {
#pragma GCC unroll 32
    for (int p = 0; p < P; ++p) {
      const float* y = gr.keep + (q + p) * gr.out_ps;
#pragma GCC unroll 4
      for (int v = 0; v < V - 1; ++v) acc[p][v] = T::keep_positive(T::load(y + L * v), acc[p][v]);
      acc[p][V - 1] = T::keep_positive(
          kFull ? T::load(y + L * (V - 1)) : T::loadm(last, y + L * (V - 1)), acc[p][V - 1]);
    }
  }
#pragma GCC unroll 32
  for (int p = 0; p < P; ++p) {
    float* o = gr.out + (q + p) * gr.out_ps;
#pragma GCC unroll 4
    for (int v = 0; v < V - 1; ++v) T::store(o + L * v, acc[p][v]);
    if (kFull) {
      T::store(o + L * (V - 1), acc[p][V - 1]);
    } else {
      T::storem(o + L * (V - 1), last, acc[p][V - 1]);
    }
  }
  if (gr.stats != nullptr) tile_sums<T, P, V, kFull>(acc, last, gr.stats);
}

// table[P] = gather_tile<T, P, V, kFull> for P in [1, kMost].
template <class T, int V, bool kFull, int... Ps>
constexpr auto gather_table(std::integer_sequence<int, Ps...>) {
  using Fn = void (*)(const GatherRow<T>&, int64_t);
  return std::array<Fn, sizeof...(Ps) + 1>{nullptr, &gather_tile<T, Ps + 1, V, kFull>...};
}

// Tile by tile; within a tile, panel by panel, every row. (One call per row
// and tile: moving the row loop into the tile function, one call per tile,
// measured no faster here and made the SDDMM's slower.)
template <class T, int kMost, int V, bool kFull>
void gather_rows(const ConvGatherArgs& a) {
  static constexpr auto table = gather_table<T, V, kFull>(std::make_integer_sequence<int, kMost>());
  const typename T::Mask last = T::mask(a.n - T::kLanes * (V - 1));
  const bool accumulate = a.init == ConvSparseInit::kAccumulate;
  for_tiles(a.line.positions, kMost, [&](int64_t q, int size) {
    const auto tile = table[static_cast<std::size_t>(size)];
    for (int64_t p = 0; p < a.taps.panels; ++p) {
      for_rows(a.row_begin, a.row_end, a.rows_per_group, a.in_group_stride,
               [&](int64_t r, int64_t base) {
                 const GatherRow<T> gr{
                     make_row(a.taps, a.line, a.in, base, r, p),
                     a.out + r * a.out_rs + a.line.out_base,
                     a.line.out_ps,
                     last,
                     a.init == ConvSparseInit::kBias ? T::set1(a.bias[r]) : T::zero(),
                     p > 0,
                     accumulate,
                     a.keep != nullptr ? a.keep + r * a.out_rs + a.line.out_base : nullptr,
                     a.stats != nullptr && p == a.taps.panels - 1
                         ? a.stats + (r - a.row_begin) * kStatRowStride
                         : nullptr};
                 // A later panel with no taps here leaves the sums as they
                 // are (but the last one still forms their statistics).
                 if (p > 0 && gr.stats == nullptr && !has_taps(gr.row)) return;
                 tile(gr, q);
               });
    }
  });
}

// The kernel for n lanes: V = ceil(n / lanes) vectors, and tiles of at most
// kAcc / V positions (kAcc accumulators).
template <class T, int kAcc, int V>
void gather_vectors(const ConvGatherArgs& a) {
  if (a.n == static_cast<int64_t>(T::kLanes) * V) {
    gather_rows<T, kAcc / V, V, true>(a);
  } else {
    gather_rows<T, kAcc / V, V, false>(a);
  }
}

// --- SDDMM -------------------------------------------------------------------------

constexpr int kGroup = 8;

// One index row of an SDDMM in one panel: its inputs, its diff_dst, where
// its partial sums go, and whether to sum the bias gradient (first panel).
template <class T>
struct SddmmRow {
  Row row;
  const float* grad;
  int64_t grad_ps;
  typename T::Mask last;
  float* partial;
  float* bias;  // the row's bias partial sum, or null
};

// Positions [q, q + P) of one row: partial[k] += <grad tile, input strip of
// k> for every tap k of the row on the line in its panel; *bias += the grad
// tile's lanes.
template <class T, int P, int V, bool kFull>
void sddmm_tile(const SddmmRow<T>& sr, int64_t q) {
  using Vec = typename T::Vec;
  constexpr int L = T::kLanes;
  const Row& row = sr.row;
  const ConvTaps& t = *row.taps;
  const ConvLine& line = *row.line;
  const typename T::Mask last = sr.last;
  Vec g[P][V];
#pragma GCC unroll 32
  for (int p = 0; p < P; ++p) {
    const float* gp = sr.grad + (q + p) * sr.grad_ps;
#pragma GCC unroll 4
    for (int v = 0; v < V - 1; ++v) g[p][v] = T::load(gp + L * v);
    g[p][V - 1] = kFull ? T::load(gp + L * (V - 1)) : T::loadm(last, gp + L * (V - 1));
  }
  if (sr.bias != nullptr) {
    Vec b = T::zero();
#pragma GCC unroll 32
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) b = T::add(b, g[p][v]);
    *sr.bias += T::hsum(b);
  }
  const int64_t ps = row.in_ps;
  const int64_t at = row.base + q * ps;
  for (int64_t s = 0; s < line.num_segs; ++s) {
    const uint32_t end = row.ptr[line.segs[2 * s + 1]];
    for (uint32_t k = row.ptr[line.segs[2 * s]]; k < end; k += kGroup) {
      const int count =
          end - k < static_cast<uint32_t>(kGroup) ? static_cast<int>(end - k) : kGroup;
      // Tap by tap: each tap's P * V multiply-adds form one chain, and the
      // group's eight chains overlap. (Position-major order, the chains
      // interleaved explicitly, ran no faster.)
      Vec acc[kGroup];
#pragma GCC unroll 8
      for (int i = 0; i < kGroup; ++i) {
        acc[i] = T::zero();
        if (i >= count) continue;
        const float* x = row.in + (at + t.tap[k + i].off);
#pragma GCC unroll 32
        for (int p = 0; p < P; ++p) {
#pragma GCC unroll 4
          for (int v = 0; v < V - 1; ++v) acc[i] = T::fma(g[p][v], T::load(x + L * v), acc[i]);
          const float* xl = x + L * (V - 1);
          acc[i] = T::fma(g[p][V - 1], kFull ? T::load(xl) : T::loadm(last, xl), acc[i]);
          // One add per position, as in the gather: addressing x + p * ps
          // kept a register per multiple of the stride, and with the diff_dst
          // tile holding most vector registers the compiler spilled those to
          // the stack, a reload (a load on the ports the inputs need) for
          // every other position.
          x += ps;
          asm("" : "+r"(x));
        }
      }
      T::add_sums8(sr.partial + k, acc, count);
    }
  }
}

template <class T, int V, bool kFull, int... Ps>
constexpr auto sddmm_table(std::integer_sequence<int, Ps...>) {
  using Fn = void (*)(const SddmmRow<T>&, int64_t);
  return std::array<Fn, sizeof...(Ps) + 1>{nullptr, &sddmm_tile<T, Ps + 1, V, kFull>...};
}

// Tile by tile; within a tile, panel by panel, every row.
template <class T, int kMost, int V, bool kFull>
void sddmm_rows(const ConvSddmmArgs& a) {
  static constexpr auto table = sddmm_table<T, V, kFull>(std::make_integer_sequence<int, kMost>());
  const typename T::Mask last = T::mask(a.n - T::kLanes * (V - 1));
  for_tiles(a.line.positions, kMost, [&](int64_t q, int size) {
    const auto tile = table[static_cast<std::size_t>(size)];
    for (int64_t p = 0; p < a.taps.panels; ++p) {
      for_rows(a.row_begin, a.row_end, a.rows_per_group, a.in_group_stride,
               [&](int64_t r, int64_t base) {
                 const SddmmRow<T> sr{
                     make_row(a.taps, a.line, a.in, base, r, p),
                     a.grad + r * a.grad_rs + a.line.out_base,
                     a.line.out_ps,
                     last,
                     a.partial,
                     p == 0 && a.partial_bias != nullptr ? a.partial_bias + r : nullptr};
                 if (sr.bias == nullptr && !has_taps(sr.row)) return;
                 tile(sr, q);
               });
    }
  });
}

// The kernel for n lanes: V vectors, a diff_dst tile of at most kTile vectors.
template <class T, int kTile, int V>
void sddmm_vectors(const ConvSddmmArgs& a) {
  if (a.n == static_cast<int64_t>(T::kLanes) * V) {
    sddmm_rows<T, kTile / V, V, true>(a);
  } else {
    sddmm_rows<T, kTile / V, V, false>(a);
  }
}

}  // namespace
}  // namespace sparsetrain::kernels::ukernel::tiles

// The micro-kernels of the sparse convolution and their registry. Internal to
// kernels/ (the operator layer, the tests and the benchmarks include it); the
// public operators are in conv_sparse.h.
//
// A micro-kernel is single-threaded and runs one line of output positions of
// one batch block for a range of "rows" of the sparse index (output channels
// for forward and backward-weights, input channels for backward-data). The
// operator layer (conv_sparse_op.cc) cuts the output plane into such lines,
// turns the call's geometry into the tap offsets below, and runs the calls on
// TBB.
//
// Every pass is a gather over taps. Position q of a line (q in
// [0, positions)) of index row r reads, for each tap k of r in the line's
// runs, the batch vector at
//
//   in + line.in_base + (r / rows_per_group) * in_group_stride
//      + q * line.in_ps + tap[k].off                        (plus the lane)
//
// A line is cut so that the same runs are valid at all of its positions: an
// interior row (every kernel position inside the image), or a border column
// walked down the image, or a single corner position. In panel p its taps
// are the runs [run_ptr[(r * panels + p) * runs_per_panel + lo], ... + hi)
// for each (lo, hi) pair of `segs`, in order; the kernels never test a tap.
// A register tile takes the panels in order, every row running each panel
// before the next (so a panel's inputs are reused by all rows while they are
// in cache), its outputs summing across them.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/common/cpu.h"
#include "kernels/common/kernel_list.h"
#include "kernels/common/pass_kernels.h"
#include "kernels/conv_sparse/conv_sparse.h"

namespace sparsetrain::kernels {

// How a gather starts its accumulators.
enum class ConvSparseInit : uint8_t {
  kZero,        // out = sum
  kBias,        // out = bias[r] + sum
  kAccumulate,  // out = out + sum, the sum formed from zero first (so the
                // result has the bits of adding a separately computed sum);
                // needs taps.panels == 1 (the operator layer sees to it)
};

// One stored entry as the kernels read it, in the index's order: the offset
// of its input from the position's origin (within its group of channels,
// for the call's geometry) and its value (one 64-bit load brings both).
struct ConvTap {
  int32_t off;
  float value;
};

// The index of one pass (fwd or bwd order), with the call's tap offsets.
struct ConvTaps {
  const uint32_t* run_ptr;  // (rows * panels * runs_per_panel + 1) run starts
  int64_t panels;
  int64_t runs_per_panel;  // KH * KW
  const ConvTap* tap;      // (nnz)
};

// One line of positions with the same valid runs at every position.
struct ConvLine {
  const int32_t* segs;  // (num_segs, 2) run bounds [lo, hi) within a row
  int64_t num_segs;
  int64_t positions;
  int64_t in_base;   // input offset of position 0 (may be negative)
  int64_t in_ps;     // input floats between positions
  int64_t out_base;  // output offset of position 0 within a row
  int64_t out_ps;    // output floats between positions
};

// Batch statistics in a gather's epilogue (ConvGatherArgs::stats): per
// index row, kStatLanes lane sums of its final outputs, then kStatLanes of
// their squares (a kernel of fewer lanes leaves the rest), rows
// kStatRowStride floats apart.
constexpr int64_t kStatLanes = 16;
constexpr int64_t kStatRowStride = 128;

// out[r * out_rs + line.out_base + q * line.out_ps + l] (=, +=) the sum over
// the line's taps of r of value * input, for rows [row_begin, row_end),
// positions q of the line and lanes l in [0, n).
struct ConvGatherArgs {
  ConvTaps taps;
  ConvLine line;
  const float* in;
  int64_t in_group_stride;  // added per group of rows
  int64_t rows_per_group;
  float* out;
  int64_t out_rs;
  const float* bias;  // (rows), read when init == kBias
  int64_t row_begin;
  int64_t row_end;
  int64_t n;  // valid batch lanes, 1 <= n <= tile_n
  ConvSparseInit init;
  // Null, or laid out as `out` (same offsets): each output is stored where
  // this is > 0 and zeroed elsewhere, after any accumulate (a ReLU's
  // backward from its output, fused into backward-data). One panel only.
  const float* keep = nullptr;
  // Null, or (row_end - row_begin) blocks of kStatRowStride floats: for
  // row r the block at (r - row_begin) * kStatRowStride, to whose lane l the
  // kernel adds its final outputs (in its last panel) of lanes congruent to
  // l mod kStatLanes, and their squares to lane kStatLanes + l (a forward's
  // batch statistics, formed in its epilogue). kZero or kBias.
  float* stats = nullptr;
};

// partial[k] += sum over the line's positions q and lanes l of
// grad[r * grad_rs + line.out_base + q * line.out_ps + l] * input(k, q, l) for
// the line's taps k of rows [row_begin, row_end) (partial is indexed like
// taps.tap); partial_bias[r] += the sum of those grad lanes when not null.
struct ConvSddmmArgs {
  ConvTaps taps;
  ConvLine line;
  const float* in;
  int64_t in_group_stride;
  int64_t rows_per_group;
  const float* grad;  // diff_dst
  int64_t grad_rs;
  float* partial;
  float* partial_bias;
  int64_t row_begin;
  int64_t row_end;
  int64_t n;
};

using ConvGatherFn = void (*)(const ConvGatherArgs& args);
using ConvSddmmFn = void (*)(const ConvSddmmArgs& args);

// A registered micro-kernel. The name says pass, register tile and ISA:
// f32_conv_sparse_fwd_24x16__avx512 keeps 24 accumulators of 16 lanes in
// registers (24 positions of a 16-lane batch block, down to 6 positions of
// 64 lanes). tile_n is the batch block the operator hands it.
struct ConvGatherKernel {
  const char* name;
  Isa isa;
  int tile_n;
  ConvGatherFn fn;
};
struct ConvSddmmKernel {
  const char* name;
  Isa isa;
  int tile_n;
  ConvSddmmFn fn;
};

// One list per pass, best ISA first, ref last. Dispatch, tests and benchmarks
// all iterate these lists (conv_sparse_dispatch.cc).
using ConvSparseKernelLists = PassKernelLists<ConvGatherKernel, ConvGatherKernel, ConvSddmmKernel>;
const ConvSparseKernelLists& conv_sparse_kernel_lists();

// conv_sparse_kernel_lists().pick(isa).
using ConvSparseKernels = PassKernels<ConvGatherKernel, ConvGatherKernel, ConvSddmmKernel>;
ConvSparseKernels conv_sparse_kernels(Isa isa);

// The operators of conv_sparse.h with an explicit kernel (tests and benchmarks
// run every registered one).
void conv_sparse_forward_with(const ConvGatherKernel& kernel, float* dst, const float* src,
                              const ConvSparseWeights& w, const float* bias,
                              const Conv2dShape& shape);
bool conv_sparse_forward_stats_with(const ConvGatherKernel& kernel, float* dst, double* mean,
                                    double* var, const float* src, const ConvSparseWeights& w,
                                    const float* bias, const Conv2dShape& shape);
void conv_sparse_backward_data_with(const ConvGatherKernel& kernel, float* diff_src,
                                    const float* diff_dst, const ConvSparseWeights& w,
                                    const Conv2dShape& shape, bool accumulate,
                                    const float* relu_output = nullptr);
void conv_sparse_backward_weights_with(const ConvSddmmKernel& kernel, float* diff_values,
                                       float* diff_bias, const float* diff_dst, const float* src,
                                       const ConvSparseWeights& w, const Conv2dShape& shape);

namespace ukernel {

// ref: scalar loops, any batch block.
void f32_conv_gather__ref(const ConvGatherArgs& args);
void f32_conv_sddmm__ref(const ConvSddmmArgs& args);

// AVX2 (8 floats per vector): batch blocks of 16.
void f32_conv_gather_12x8__avx2(const ConvGatherArgs& args);
void f32_conv_sddmm_6x8__avx2(const ConvSddmmArgs& args);

// AVX-512 (16 floats per vector): batch blocks of up to 64.
void f32_conv_gather_24x16__avx512(const ConvGatherArgs& args);
void f32_conv_sddmm_24x16__avx512(const ConvSddmmArgs& args);

}  // namespace ukernel
}  // namespace sparsetrain::kernels

// Sparse 2-D convolution in fp32 with an unstructured-sparse weight:
// forward, backward-data and backward-weights.
//
// Activations are (C, H, W, N), the batch innermost (Layout::kCHWN): every
// stored weight of the forward pass multiplies a strip of whole batch vectors
// along an image row, and so does every stored weight of the backward-data
// pass over a transposed copy of the index. With the weight W of shape
// (O, C/G, KH, KW) (the dense convolution's OIHW, see kernels/conv2d) and only
// its stored entries kept, for an output channel o of group g(o):
//
//   forward           dst[o, y, x, n] = bias[o] + sum_{stored (o, c, i, j)}
//                         W[o, c, i, j] * src[g(o)*C/G + c, y*SH - PH + i, x*SW - PW + j, n]
//   backward-data     diff_src is the adjoint of that sum (zero where no tap reaches)
//   backward-weights  diff_W[o, c, i, j] += sum_{y, x, n} diff_dst[o, y, x, n] * src[...]
//                         at the stored entries only; diff_bias[o] += sum diff_dst[o]
//
// src is read as zero outside the image (zero padding). Any kernel size,
// stride, padding, groups (depthwise included) and batch size; the batch need
// not be a multiple of the vector width.
//
// Passes: forward and backward-data OVERWRITE dst / diff_src (backward-data
// can accumulate on request: diff_src + its sum, with the bits of adding a
// separately computed result); backward-weights ACCUMULATES (+=) into
// diff_values and diff_bias (the trainer zeroes gradients).
//
// The compressed weight (ConvSparseWeights): `values` holds the stored
// entries in the row-major (OIHW) order of their dense positions, so the
// parameter's dense_index is simply the sorted list of stored flat positions;
// the optimizer updates `values` in place and backward-weights writes its
// gradient in the same order. Whatever extra index the kernels want is
// derived from the positions when packing; the kernels read `values` itself
// on every call, so a change of `values` needs no refresh of anything else.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/common/cpu.h"
#include "kernels/conv2d/conv2d.h"

namespace sparsetrain::kernels {

struct ConvSparseWeights {
  // Geometry of the weight (the batch and the image size come with each call).
  int64_t out_channels = 0;  // O
  int64_t in_channels = 0;   // C (all groups)
  int64_t kernel_h = 0;      // KH
  int64_t kernel_w = 0;      // KW
  int64_t groups = 1;        // G
  int64_t nnz = 0;

  std::vector<uint32_t> position;  // (nnz) flat OIHW position, ascending
  std::vector<float> values;       // (nnz) in the order of `position`

  // Kernel-private index, built by the pack functions (see
  // conv_sparse_format.cc). Two orders of the stored entries, each naming
  // the entry's place in `values` (each call gathers the values it needs
  // into its own table, next to the tap offsets, so no copy of them is kept):
  //
  //   fwd: by output channel o, then panel of input channels, then kernel
  //        position (i, j), then input channel c ascending. Drives forward
  //        and backward-weights.
  //   bwd: by input channel c (all groups), then panel of output channels,
  //        then (i, j), then o ascending. Drives backward-data: each diff_src
  //        row gathers the taps that read it instead of scattering into it.
  //
  // A run is the entries of one (row, panel, i, j). Where a kernel position
  // falls into the padding its whole run is left out, so the kernels never
  // test a tap; a panel bounds the channels a register tile reads before the
  // next one (so they stay in L1). A tap index names a tap within one filter
  // (fwd) or within one input channel's group of filters (bwd); each pass
  // turns it into an address offset through a small table built from the
  // call's geometry.
  int64_t fwd_panel = 1;            // input channels per fwd panel
  int64_t fwd_panels = 1;           // panels per output channel
  std::vector<uint32_t> fwd_ptr;    // (O * fwd_panels * KH * KW + 1) run starts
  std::vector<uint32_t> fwd_entry;  // (nnz) fwd position -> index into values
  std::vector<uint32_t> fwd_tap;    // (nnz) (c * KH + i) * KW + j, c within the group
  int64_t bwd_panel = 1;            // output channels per bwd panel
  int64_t bwd_panels = 1;           // panels per input channel
  std::vector<uint32_t> bwd_ptr;    // (C * bwd_panels * KH * KW + 1) run starts
  std::vector<uint32_t> bwd_entry;  // (nnz) bwd position -> index into values
  std::vector<uint32_t> bwd_tap;    // (nnz) (o * KH + i) * KW + j, o within the group

  int64_t dense_size() const { return out_channels * (in_channels / groups) * kernel_h * kernel_w; }
  double density() const;
  // Bytes held by the index and the values (what replaces dense_size() * 4).
  int64_t bytes() const;
};

// Builds the compressed weight from a dense (O, C/G, KH, KW) weight and a mask
// of the same size: position p is stored when mask[p] != 0 (an explicit zero
// weight there stays a trainable entry). Throws sparsetrain::Error naming the
// problem on an invalid geometry (groups not dividing the channels) or more
// than 2^32 - 1 entries.
ConvSparseWeights conv_sparse_pack(const float* weights, const uint8_t* mask, int64_t out_channels,
                                   int64_t in_channels, int64_t kernel_h, int64_t kernel_w,
                                   int64_t groups);
// Keeps the positions with |weights| > threshold.
ConvSparseWeights conv_sparse_pack_threshold(const float* weights, int64_t out_channels,
                                             int64_t in_channels, int64_t kernel_h,
                                             int64_t kernel_w, int64_t groups, float threshold);
// Reloads the values at the stored positions from a dense weight (index
// unchanged).
void conv_sparse_refresh(ConvSparseWeights& w, const float* weights);
// per_nonzero (nnz, the order of `values`) scattered into a dense weight,
// zeros elsewhere; the dense weight; the 0/1 mask of stored positions.
void conv_sparse_scatter(const ConvSparseWeights& w, const float* per_nonzero, float* dense);
void conv_sparse_unpack(const ConvSparseWeights& w, float* weights);
void conv_sparse_mask(const ConvSparseWeights& w, uint8_t* mask);

// ---------------------------------------------------------------------------
// Operators. Activations in Layout::kCHWN: src (C, H, W, N), dst (O, OH, OW, N),
// their channel planes shape.src_plane_stride() and dst_plane_stride() floats
// apart (packed unless `shape` pads them; what lies between two planes is
// neither read nor written). `shape` gives batch, image size, stride and
// padding and must agree with the weight's geometry (checked with
// SPARSETRAIN_ASSERT). Work runs on TBB (as
// many threads as the arena allows); each output element is computed by one
// task in a fixed order, so results are bit-identical from run to run for a
// given thread count. `isa` picks the kernel variant (default: the best this
// CPU runs, capped by SPARSETRAIN_ISA). Never throw. The kernels address a
// group's channels with 32-bit offsets: C/G (and O/G) channels of one
// activation must span fewer than 2^31 floats (asserted).
// ---------------------------------------------------------------------------

void conv_sparse_forward(float* dst, const float* src, const ConvSparseWeights& w,
                         const float* bias,  // (O) or null
                         const Conv2dShape& shape, Isa isa = best_isa());

// conv_sparse_forward, and the batch statistics of every output channel over
// its N * OH * OW values, what a BatchNorm after the convolution would
// compute: mean and biased variance (O), from sums of the outputs and of
// their squares that the kernels add up lane by lane as they store them
// (in a fixed order: bit-identical from run to run and across thread
// counts). Returns false when the batch is empty, or when some channel's
// mean is so large against its spread that E[x^2] - E[x]^2 would lose
// accuracy (mean^2 > 64 variances): the caller then computes them itself.
// dst is the plain forward's either way.
bool conv_sparse_forward_stats(float* dst, double* mean, double* var, const float* src,
                               const ConvSparseWeights& w, const float* bias,
                               const Conv2dShape& shape, Isa isa = best_isa());

void conv_sparse_backward_data(float* diff_src,        // (C, H, W, N), overwritten or +=
                               const float* diff_dst,  // (O, OH, OW, N)
                               const ConvSparseWeights& w, const Conv2dShape& shape,
                               bool accumulate = false, Isa isa = best_isa());

// conv_sparse_backward_data, then the backward of a ReLU whose output
// relu_output (C, H, W, N), laid out as diff_src, is the convolution's input: diff_src is kept
// where relu_output > 0 and zeroed elsewhere, after the accumulate, in the same pass and with the
// bits of the two passes run one after the other. A null relu_output is plain
// conv_sparse_backward_data.
void conv_sparse_backward_data_relu(float* diff_src, const float* diff_dst,
                                    const ConvSparseWeights& w, const Conv2dShape& shape,
                                    bool accumulate, const float* relu_output,
                                    Isa isa = best_isa());

void conv_sparse_backward_weights(float* diff_values,     // (nnz), +=
                                  float* diff_bias,       // (O) or null, +=
                                  const float* diff_dst,  // (O, OH, OW, N)
                                  const float* src,       // (C, H, W, N)
                                  const ConvSparseWeights& w, const Conv2dShape& shape,
                                  Isa isa = best_isa());

// Names of the kernels each pass runs for `isa` (for `sparsetrain info` and
// benchmark labels), e.g. "f32_conv_sparse_fwd__avx512".
struct ConvSparseKernelNames {
  const char* fwd;
  const char* bwd_data;
  const char* bwd_weights;
};
ConvSparseKernelNames conv_sparse_kernel_names(Isa isa = best_isa());

}  // namespace sparsetrain::kernels

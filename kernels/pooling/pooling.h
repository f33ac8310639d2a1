// 2-D pooling over 4-D activations (N, C, H, W) in any activation layout:
// max pooling, average pooling (padding counts towards the divisor, PyTorch's
// count_include_pad = true), and global average pooling to (N, C).
//
// Windows are square, kernel x kernel with the same stride and zero padding
// on both axes; the output has
//   OH = (H + 2 * padding - kernel) / stride + 1   (and OW likewise).
// Callers guarantee kernel >= 1, stride >= 1, 0 <= padding <= kernel / 2 and
// OH, OW >= 1, so every window holds at least one real value; padded values
// never win a max.
//
// Max pooling saves nothing: backward recomputes each window's argmax from src
// (the first maximum in window order), so a max pool whose input is kept
// anyway (the output of a ReLU) costs no memory. In the ref and TBB kernels a
// NaN counts as larger than any number (it propagates, as in PyTorch);
// oneDNN's max skips NaNs.
//
// Backward OVERWRITES diff_src.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/common/kernel_list.h"
#include "sparsetrain/core/layout.h"

namespace sparsetrain::kernels {

struct PoolDesc {
  int64_t n = 0, c = 0, h = 0, w = 0;  // src, diff_src: (N, C, H, W)
  int64_t kernel = 2, stride = 2, padding = 0;
  Layout layout =
      Layout::kNCHW;  // of src, dst, diff_src, diff_dst: kNCHW (or kPlain), kNHWC, kCHWN

  int64_t out_h() const { return (h + 2 * padding - kernel) / stride + 1; }
  int64_t out_w() const { return (w + 2 * padding - kernel) / stride + 1; }
  int64_t src_numel() const { return n * c * h * w; }
  int64_t dst_numel() const { return n * c * out_h() * out_w(); }
};

// dst (N, C, OH, OW) = max over each window of src (N, C, H, W).
using MaxPoolForwardFn = void(float* dst, const float* src, const PoolDesc& desc);
// diff_src (N, C, H, W): diff_dst (N, C, OH, OW) routed to each window's argmax
// in src (N, C, H, W); overlapping windows add up.
using MaxPoolBackwardFn = void(float* diff_src, const float* diff_dst, const float* src,
                               const PoolDesc& desc);
// dst (N, C, OH, OW) = sum over each window of src / (kernel * kernel).
using AvgPoolForwardFn = void(float* dst, const float* src, const PoolDesc& desc);
// diff_src (N, C, H, W) = sum over the windows holding each value of
// diff_dst / (kernel * kernel).
using AvgPoolBackwardFn = void(float* diff_src, const float* diff_dst, const PoolDesc& desc);
// dst (N, C) plain = mean over H x W of src (N, C, H, W); kernel, stride and
// padding are ignored.
using GlobalAvgPoolForwardFn = void(float* dst, const float* src, const PoolDesc& desc);
// diff_src (N, C, H, W) = diff_dst (N, C) plain / (H * W), broadcast.
using GlobalAvgPoolBackwardFn = void(float* diff_src, const float* diff_dst, const PoolDesc& desc);

// One implementation of the op.
struct PoolKernel {
  const char* name;  // "dnnl", "tbb", "ref"
  Isa isa;           // kernels/common/kernel_list.h
  // Whether this implementation handles (and is meant for) `desc`.
  bool (*supports)(const PoolDesc& desc);
  MaxPoolForwardFn* max_forward;
  MaxPoolBackwardFn* max_backward;
  AvgPoolForwardFn* avg_forward;
  AvgPoolBackwardFn* avg_backward;
  GlobalAvgPoolForwardFn* global_avg_forward;
  GlobalAvgPoolBackwardFn* global_avg_backward;
};

// Every implementation, most preferred first; the scalar reference is last
// and supports everything. Nodes run pool_kernels().pick_for(desc) (the
// reference when SPARSETRAIN_ISA=ref); tests and benchmarks iterate it.
const KernelList<PoolKernel>& pool_kernels();

// --- implementations ------------------------------------------------------------
// Each declared by its pass's function type above.

// Scalar reference: plain loops over offset4, double sums.
MaxPoolForwardFn maxpool_forward_ref;
MaxPoolBackwardFn maxpool_backward_ref;
AvgPoolForwardFn avgpool_forward_ref;
AvgPoolBackwardFn avgpool_backward_ref;
GlobalAvgPoolForwardFn global_avgpool_forward_ref;
GlobalAvgPoolBackwardFn global_avgpool_backward_ref;

// Vectorisable C++ over TBB: rows of a plane (NCHW), or vectors over the
// innermost dimension (C in NHWC, N in CHWN).
MaxPoolForwardFn maxpool_forward_tbb;
MaxPoolBackwardFn maxpool_backward_tbb;
AvgPoolForwardFn avgpool_forward_tbb;
AvgPoolBackwardFn avgpool_backward_tbb;
GlobalAvgPoolForwardFn global_avgpool_forward_tbb;
GlobalAvgPoolBackwardFn global_avgpool_backward_tbb;

// oneDNN pooling_forward / pooling_backward primitives cached per problem,
// for NCHW and NHWC. Max backward reruns the training forward for oneDNN's
// workspace, since this op keeps no argmax between the passes. The "dnnl"
// entry of pool_kernels() pairs these with the TBB global average pool
// (faster than oneDNN's H x W pooling in every layout).
bool pool_dnnl_supports(const PoolDesc& desc);
MaxPoolForwardFn maxpool_forward_dnnl;
MaxPoolBackwardFn maxpool_backward_dnnl;
AvgPoolForwardFn avgpool_forward_dnnl;
AvgPoolBackwardFn avgpool_backward_dnnl;

}  // namespace sparsetrain::kernels

// Dense 2-D convolution in fp32: forward, backward-data, backward-weights.
//
// With G groups, each group g maps input channels [g*C/G, (g+1)*C/G) to
// output channels [g*O/G, (g+1)*O/G); G == C == O is depthwise. For an output
// channel o in group g(o):
//
//   dst[n, o, y, x] = bias[o] + sum_{c, i, j} weights[o, c, i, j]
//                                 * src[n, g(o)*C/G + c, y*SH - PH + i, x*SW - PW + j]
//
// with src read as zero outside the image (zero padding). Backward is the
// adjoint of that sum: diff_src gathers diff_dst through the same taps and
// diff_weights correlates diff_dst with src over the batch and the image.
//
// Buffers: activations are (N, C, H, W) logically and sit in memory as the
// `layout` argument says (kNCHW / kPlain, kNHWC or kCHWN); weights are always
// plain OIHW, (O, C/G, KH, KW).
//
// Passes: forward and backward-data OVERWRITE dst / diff_src;
// backward-weights ACCUMULATES (+=) into diff_weights and diff_bias (the
// trainer zeroes gradients). bias and diff_bias may be null (no bias).
//
// Variants: `ref` is plain scalar loops (the oracle of every test, and a
// fallback); `dnnl` runs oneDNN convolution primitives, created once per
// (shape, layout, pass, thread count) and cached, with weights reordered to
// and from the blocked format the primitive prefers. Kernels never throw.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/common/dense_impl.h"
#include "kernels/common/kernel_list.h"
#include "sparsetrain/core/layout.h"

namespace sparsetrain::kernels {

struct Conv2dShape {
  int64_t batch = 1;         // N
  int64_t in_channels = 1;   // C
  int64_t in_h = 1;          // H
  int64_t in_w = 1;          // W
  int64_t out_channels = 1;  // O
  int64_t kernel_h = 1;      // KH
  int64_t kernel_w = 1;      // KW
  int64_t stride_h = 1;      // SH
  int64_t stride_w = 1;      // SW
  int64_t pad_h = 0;         // PH, zero padding on both sides
  int64_t pad_w = 0;         // PW
  int64_t groups = 1;        // G; divides C and O
  // Floats from one channel plane of src (dst) to the next in the
  // batch-innermost layout (kCHWN), when more than a plane's H * W * N
  // (OH * OW * N): padded planes, whose power-of-two sizes no longer put
  // every channel's same position into the same cache sets. 0: packed.
  // Only the sparse kernels (conv_sparse.h) read these; the dense ones
  // take packed activations (0).
  int64_t src_plane = 0;
  int64_t dst_plane = 0;

  // A square kernel with the same stride and padding along both axes (all
  // the model zoo and the benchmarks use).
  static Conv2dShape make(int64_t batch, int64_t in_channels, int64_t in_h, int64_t in_w,
                          int64_t out_channels, int64_t kernel, int64_t stride, int64_t pad,
                          int64_t groups) {
    return {.batch = batch,
            .in_channels = in_channels,
            .in_h = in_h,
            .in_w = in_w,
            .out_channels = out_channels,
            .kernel_h = kernel,
            .kernel_w = kernel,
            .stride_h = stride,
            .stride_w = stride,
            .pad_h = pad,
            .pad_w = pad,
            .groups = groups};
  }

  int64_t out_h() const { return (in_h + 2 * pad_h - kernel_h) / stride_h + 1; }
  int64_t out_w() const { return (in_w + 2 * pad_w - kernel_w) / stride_w + 1; }
  Shape src_shape() const { return {batch, in_channels, in_h, in_w}; }
  Shape dst_shape() const { return {batch, out_channels, out_h(), out_w()}; }
  Shape weights_shape() const { return {out_channels, in_channels / groups, kernel_h, kernel_w}; }
  // Multiply-adds times two, per pass (the three passes cost the same).
  int64_t flops() const {
    return 2 * batch * out_channels * out_h() * out_w() * (in_channels / groups) * kernel_h *
           kernel_w;
  }
  // The planes' strides in kCHWN: src_plane (dst_plane), or packed.
  int64_t src_plane_stride() const { return src_plane > 0 ? src_plane : in_h * in_w * batch; }
  int64_t dst_plane_stride() const { return dst_plane > 0 ? dst_plane : out_h() * out_w() * batch; }
  // Positive sizes, groups dividing both channel counts, a non-empty output,
  // plane strides of 0 or at least a plane.
  bool valid() const;
};

// --- ref: scalar loops -------------------------------------------------------

void conv2d_forward_ref(float* dst,            // (N, O, OH, OW) in layout
                        const float* src,      // (N, C, H, W) in layout
                        const float* weights,  // (O, C/G, KH, KW)
                        const float* bias,     // (O) or null
                        const Conv2dShape& shape, Layout layout);
void conv2d_backward_data_ref(float* diff_src,        // (N, C, H, W) in layout, overwritten
                              const float* diff_dst,  // (N, O, OH, OW) in layout
                              const float* weights,   // (O, C/G, KH, KW)
                              const Conv2dShape& shape, Layout layout);
void conv2d_backward_weights_ref(float* diff_weights,    // (O, C/G, KH, KW), +=
                                 float* diff_bias,       // (O) or null, +=
                                 const float* diff_dst,  // (N, O, OH, OW) in layout
                                 const float* src,       // (N, C, H, W) in layout
                                 const Conv2dShape& shape, Layout layout);

// --- dnnl: oneDNN convolution primitives ---------------------------------------

void conv2d_forward_dnnl(float* dst, const float* src, const float* weights, const float* bias,
                         const Conv2dShape& shape, Layout layout);
void conv2d_backward_data_dnnl(float* diff_src, const float* diff_dst, const float* weights,
                               const Conv2dShape& shape, Layout layout);
void conv2d_backward_weights_dnnl(float* diff_weights, float* diff_bias, const float* diff_dst,
                                  const float* src, const Conv2dShape& shape, Layout layout);

// The oneDNN implementations chosen for the three passes (creating and caching
// the primitives if needed), e.g.
// "fwd=brg:avx512_core bwd_d=jit:avx512_core bwd_w=jit:avx512_core".
std::string conv2d_dnnl_impl_info(const Conv2dShape& shape, Layout layout);

// --- the list of dense variants: drives tests, benchmarks and layers alike ---

using Conv2dForwardFn = void (*)(float*, const float*, const float*, const float*,
                                 const Conv2dShape&, Layout);
using Conv2dBackwardDataFn = void (*)(float*, const float*, const float*, const Conv2dShape&,
                                      Layout);
using Conv2dBackwardWeightsFn = void (*)(float*, float*, const float*, const float*,
                                         const Conv2dShape&, Layout);

using Conv2dKernels = DenseKernels<Conv2dForwardFn, Conv2dBackwardDataFn, Conv2dBackwardWeightsFn>;

inline constexpr Conv2dKernels kConv2dDenseEntries[] = {
    {"dnnl", Isa::kRef, &conv2d_forward_dnnl, &conv2d_backward_data_dnnl,
     &conv2d_backward_weights_dnnl},
    {"ref", Isa::kRef, &conv2d_forward_ref, &conv2d_backward_data_ref,
     &conv2d_backward_weights_ref},
};
// oneDNN first, the scalar reference last.
inline constexpr KernelList<Conv2dKernels> kConv2dDenseKernels(kConv2dDenseEntries);

// The variant the runtime's dense conv2d nodes run (dense_pick).
inline const Conv2dKernels& conv2d_dense() { return dense_pick(kConv2dDenseKernels); }

}  // namespace sparsetrain::kernels

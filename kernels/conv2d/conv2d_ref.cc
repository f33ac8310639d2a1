// The scalar oracle: direct loops over the definition in conv2d.h, each output
// element gathered (never scattered) and summed in double precision so the
// reference is at least as accurate as any optimised variant.
#include <algorithm>
#include <vector>

#include "kernels/conv2d/conv2d.h"
#include "sparsetrain/core/error.h"

namespace sparsetrain::kernels {
namespace {

// What every pass reads of a (valid) shape: the activations' shapes, the
// channels per group, the output size, and where weights[o, c, i, j] (c
// within o's group) is.
struct RefDims {
  explicit RefDims(const Conv2dShape& s)
      : src_shape(s.src_shape()),
        dst_shape(s.dst_shape()),
        cg(s.in_channels / s.groups),
        og(s.out_channels / s.groups),
        oh_count(s.out_h()),
        ow_count(s.out_w()),
        kh(s.kernel_h),
        kw(s.kernel_w) {
    SPARSETRAIN_ASSERT(s.valid() && s.src_plane == 0 && s.dst_plane == 0);
  }
  int64_t weight(int64_t o, int64_t c, int64_t i, int64_t j) const {
    return ((o * cg + c) * kh + i) * kw + j;
  }

  Shape src_shape, dst_shape;
  int64_t cg, og, oh_count, ow_count, kh, kw;
};

// Calls f(i, j, ih, iw) for the taps (i, j) of output position (oh, ow) whose
// input (ih, iw) = (oh*SH - PH + i, ow*SW - PW + j) lies in the image, not in
// the padding; i, then j, ascending.
template <class F>
void for_taps_in_image(const Conv2dShape& s, int64_t oh, int64_t ow, F f) {
  for (int64_t i = 0; i < s.kernel_h; ++i) {
    const int64_t ih = oh * s.stride_h - s.pad_h + i;
    if (ih < 0 || ih >= s.in_h) continue;
    for (int64_t j = 0; j < s.kernel_w; ++j) {
      const int64_t iw = ow * s.stride_w - s.pad_w + j;
      if (iw < 0 || iw >= s.in_w) continue;
      f(i, j, ih, iw);
    }
  }
}

}  // namespace

bool Conv2dShape::valid() const {
  return batch >= 0 && in_channels > 0 && in_h > 0 && in_w > 0 && out_channels > 0 &&
         kernel_h > 0 && kernel_w > 0 && stride_h > 0 && stride_w > 0 && pad_h >= 0 && pad_w >= 0 &&
         groups > 0 && in_channels % groups == 0 && out_channels % groups == 0 &&
         in_h + 2 * pad_h >= kernel_h && in_w + 2 * pad_w >= kernel_w &&
         (src_plane == 0 || src_plane >= in_h * in_w * batch) &&
         (dst_plane == 0 || (out_h() > 0 && out_w() > 0 && dst_plane >= out_h() * out_w() * batch));
}

void conv2d_forward_ref(float* dst, const float* src, const float* weights, const float* bias,
                        const Conv2dShape& s, Layout layout) {
  const RefDims d(s);
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t o = 0; o < s.out_channels; ++o) {
      const int64_t c0 = o / d.og * d.cg;
      for (int64_t oh = 0; oh < d.oh_count; ++oh)
        for (int64_t ow = 0; ow < d.ow_count; ++ow) {
          double acc = bias != nullptr ? bias[o] : 0.0;
          for (int64_t c = 0; c < d.cg; ++c)
            for_taps_in_image(s, oh, ow, [&](int64_t i, int64_t j, int64_t ih, int64_t iw) {
              acc += static_cast<double>(weights[d.weight(o, c, i, j)]) *
                     src[offset4(layout, d.src_shape, n, c0 + c, ih, iw)];
            });
          dst[offset4(layout, d.dst_shape, n, o, oh, ow)] = static_cast<float>(acc);
        }
    }
}

void conv2d_backward_data_ref(float* diff_src, const float* diff_dst, const float* weights,
                              const Conv2dShape& s, Layout layout) {
  const RefDims d(s);
  // diff_src[n, c, ih, iw] = sum over the taps (o, i, j) with
  // ih = oh*SH - PH + i and iw = ow*SW - PW + j of weights[o, c, i, j] * diff_dst[n, o, oh, ow].
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t c_all = 0; c_all < s.in_channels; ++c_all) {
      const int64_t g = c_all / d.cg, c = c_all % d.cg;
      for (int64_t ih = 0; ih < s.in_h; ++ih)
        for (int64_t iw = 0; iw < s.in_w; ++iw) {
          double acc = 0.0;
          for (int64_t o = g * d.og; o < (g + 1) * d.og; ++o)
            for (int64_t i = 0; i < s.kernel_h; ++i) {
              const int64_t oh_scaled = ih + s.pad_h - i;
              if (oh_scaled < 0 || oh_scaled % s.stride_h != 0) continue;
              const int64_t oh = oh_scaled / s.stride_h;
              if (oh >= d.oh_count) continue;
              for (int64_t j = 0; j < s.kernel_w; ++j) {
                const int64_t ow_scaled = iw + s.pad_w - j;
                if (ow_scaled < 0 || ow_scaled % s.stride_w != 0) continue;
                const int64_t ow = ow_scaled / s.stride_w;
                if (ow >= d.ow_count) continue;
                acc += static_cast<double>(weights[d.weight(o, c, i, j)]) *
                       diff_dst[offset4(layout, d.dst_shape, n, o, oh, ow)];
              }
            }
          diff_src[offset4(layout, d.src_shape, n, c_all, ih, iw)] = static_cast<float>(acc);
        }
    }
}

void conv2d_backward_weights_ref(float* diff_weights, float* diff_bias, const float* diff_dst,
                                 const float* src, const Conv2dShape& s, Layout layout) {
  const RefDims d(s);
  for (int64_t o = 0; o < s.out_channels; ++o) {
    const int64_t c0 = o / d.og * d.cg;
    // Each tap's sum runs over (n, oh, ow) in order.
    std::vector<double> acc(static_cast<std::size_t>(d.kh * d.kw));
    for (int64_t c = 0; c < d.cg; ++c) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t oh = 0; oh < d.oh_count; ++oh)
          for (int64_t ow = 0; ow < d.ow_count; ++ow) {
            const double g = diff_dst[offset4(layout, d.dst_shape, n, o, oh, ow)];
            for_taps_in_image(s, oh, ow, [&](int64_t i, int64_t j, int64_t ih, int64_t iw) {
              acc[static_cast<std::size_t>(i * d.kw + j)] +=
                  g * src[offset4(layout, d.src_shape, n, c0 + c, ih, iw)];
            });
          }
      for (int64_t i = 0; i < s.kernel_h; ++i)
        for (int64_t j = 0; j < s.kernel_w; ++j)
          diff_weights[d.weight(o, c, i, j)] +=
              static_cast<float>(acc[static_cast<std::size_t>(i * d.kw + j)]);
    }
    if (diff_bias != nullptr) {
      double acc = 0.0;
      for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t oh = 0; oh < d.oh_count; ++oh)
          for (int64_t ow = 0; ow < d.ow_count; ++ow)
            acc += diff_dst[offset4(layout, d.dst_shape, n, o, oh, ow)];
      diff_bias[o] += static_cast<float>(acc);
    }
  }
}

}  // namespace sparsetrain::kernels

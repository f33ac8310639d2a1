// Scalar reference for pooling: the oracle of the tests. Plain loops over the
// logical index (n, c, h, w) through offset4, sums in double.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/pooling/pooling.h"

namespace sparsetrain::kernels {
namespace {

Shape src_shape(const PoolDesc& d) { return {d.n, d.c, d.h, d.w}; }
Shape dst_shape(const PoolDesc& d) { return {d.n, d.c, d.out_h(), d.out_w()}; }

// Offset in src of the argmax of window (n, c, oh, ow): the first maximum in
// window order, a NaN counting as larger than any number.
int64_t window_argmax(const float* src, const PoolDesc& d, int64_t n, int64_t c, int64_t oh,
                      int64_t ow) {
  const Shape s = src_shape(d);
  float best = -std::numeric_limits<float>::infinity();
  int64_t arg = -1;
  for (int64_t kh = 0; kh < d.kernel; ++kh)
    for (int64_t kw = 0; kw < d.kernel; ++kw) {
      const int64_t h = oh * d.stride - d.padding + kh, w = ow * d.stride - d.padding + kw;
      if (h < 0 || h >= d.h || w < 0 || w >= d.w) continue;
      const int64_t i = offset4(d.layout, s, n, c, h, w);
      if (arg < 0 || src[i] > best || (std::isnan(src[i]) && !std::isnan(best))) {
        best = src[i];
        arg = i;
      }
    }
  return arg;
}

// Calls f(n, c, oh, ow, offset in dst) for every output.
template <typename F>
void for_each_output(const PoolDesc& d, F&& f) {
  const Shape s = dst_shape(d);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t oh = 0; oh < s[2]; ++oh)
        for (int64_t ow = 0; ow < s[3]; ++ow) f(n, c, oh, ow, offset4(d.layout, s, n, c, oh, ow));
}

}  // namespace

void maxpool_forward_ref(float* dst, const float* src, const PoolDesc& d) {
  for_each_output(d, [&](int64_t n, int64_t c, int64_t oh, int64_t ow, int64_t o) {
    dst[o] = src[window_argmax(src, d, n, c, oh, ow)];
  });
}

void maxpool_backward_ref(float* diff_src, const float* diff_dst, const float* src,
                          const PoolDesc& d) {
  for (int64_t i = 0; i < d.src_numel(); ++i) diff_src[i] = 0.0f;
  for_each_output(d, [&](int64_t n, int64_t c, int64_t oh, int64_t ow, int64_t o) {
    diff_src[window_argmax(src, d, n, c, oh, ow)] += diff_dst[o];
  });
}

void avgpool_forward_ref(float* dst, const float* src, const PoolDesc& d) {
  const Shape s = src_shape(d);
  const double area = static_cast<double>(d.kernel * d.kernel);
  for_each_output(d, [&](int64_t n, int64_t c, int64_t oh, int64_t ow, int64_t o) {
    double sum = 0.0;
    for (int64_t kh = 0; kh < d.kernel; ++kh)
      for (int64_t kw = 0; kw < d.kernel; ++kw) {
        const int64_t h = oh * d.stride - d.padding + kh, w = ow * d.stride - d.padding + kw;
        if (h >= 0 && h < d.h && w >= 0 && w < d.w) sum += src[offset4(d.layout, s, n, c, h, w)];
      }
    dst[o] = static_cast<float>(sum / area);
  });
}

void avgpool_backward_ref(float* diff_src, const float* diff_dst, const PoolDesc& d) {
  const Shape s = src_shape(d);
  const int64_t numel = d.src_numel();
  std::vector<double> acc(static_cast<size_t>(numel), 0.0);
  const double area = static_cast<double>(d.kernel * d.kernel);
  for_each_output(d, [&](int64_t n, int64_t c, int64_t oh, int64_t ow, int64_t o) {
    for (int64_t kh = 0; kh < d.kernel; ++kh)
      for (int64_t kw = 0; kw < d.kernel; ++kw) {
        const int64_t h = oh * d.stride - d.padding + kh, w = ow * d.stride - d.padding + kw;
        if (h >= 0 && h < d.h && w >= 0 && w < d.w)
          acc[offset4(d.layout, s, n, c, h, w)] += diff_dst[o] / area;
      }
  });
  for (int64_t i = 0; i < numel; ++i) diff_src[i] = static_cast<float>(acc[i]);
}

void global_avgpool_forward_ref(float* dst, const float* src, const PoolDesc& d) {
  const Shape s = src_shape(d);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c) {
      double sum = 0.0;
      for (int64_t h = 0; h < d.h; ++h)
        for (int64_t w = 0; w < d.w; ++w) sum += src[offset4(d.layout, s, n, c, h, w)];
      dst[n * d.c + c] = static_cast<float>(sum / static_cast<double>(d.h * d.w));
    }
}

void global_avgpool_backward_ref(float* diff_src, const float* diff_dst, const PoolDesc& d) {
  const Shape s = src_shape(d);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t h = 0; h < d.h; ++h)
        for (int64_t w = 0; w < d.w; ++w)
          diff_src[offset4(d.layout, s, n, c, h, w)] = static_cast<float>(
              static_cast<double>(diff_dst[n * d.c + c]) / static_cast<double>(d.h * d.w));
}

}  // namespace sparsetrain::kernels

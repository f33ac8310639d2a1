// Pooling in vectorisable C++ over TBB.
//
// NCHW (spatial innermost): one task per block of (n, c) planes; forward runs
// over output rows, so the loop over OW vectorises with strided loads.
// NHWC and CHWN (one dimension innermost: C, respectively N): an element
// (o, h, w, i) sits at ((o * H + h) * W + w) * I + i, and every step of a
// window is a contiguous vector over i.
//
// Average backward gathers: each diff_src value (NHWC/CHWN) or row (NCHW)
// sums the diff_dst of the windows that hold it, then divides once. Max
// backward adds into a zeroed plane (windows may overlap), in parallel only
// over independent planes; with a vector dimension it finds each lane's
// maximum, then walks the window again adding diff_dst where a lane first
// meets it, so both walks are plain vector loops rather than a scatter.
// Inner loops carry `omp simd` so they vectorise at any -O level; no OpenMP
// thread runs here.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/pooling/pooling.h"

namespace sparsetrain::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The max-pool order: a NaN is larger than any number.
inline bool beats(float v, float best) { return (v > best) | ((v != v) & (best == best)); }
// The max-pool update: a larger value (or the first NaN) replaces the current one.
struct PickMax {
  float operator()(float best, float v) const { return beats(v, best) ? v : best; }
};
struct Add {
  float operator()(float a, float b) const { return a + b; }
};
struct Identity {
  float operator()(float x) const { return x; }
};
struct DivideBy {
  float divisor;
  float operator()(float x) const { return x / divisor; }
};

// Layouts with one dimension innermost: outer x H x W x inner.
struct InnerVector {
  int64_t outer, inner;
};

bool is_inner_vector(const PoolDesc& d, InnerVector* v) {
  switch (d.layout) {
    case Layout::kNHWC:
      *v = {d.n, d.c};
      return true;
    case Layout::kCHWN:
      *v = {d.c, d.n};
      return true;
    default:
      return false;
  }
}

// Where lane i of outer index o of an inner-vector layout sits in an (N, C)
// plain tensor (global pooling's dst): NHWC has o = n, i = c; CHWN has o = c,
// i = n.
int64_t nc_index(const PoolDesc& d, int64_t o, int64_t i) {
  return d.layout == Layout::kNHWC ? o * d.c + i : i * d.c + o;
}

// Outputs [lo, hi) along one axis whose window position `k` falls inside the
// input: 0 <= o * stride - padding + k < len.
inline void outputs_reaching(int64_t k, int64_t len, int64_t out_len, const PoolDesc& d,
                             int64_t& lo, int64_t& hi) {
  const int64_t first = d.padding - k;           // o * stride >= first
  const int64_t last = len - 1 + d.padding - k;  // o * stride <= last
  lo = first <= 0 ? 0 : (first + d.stride - 1) / d.stride;
  hi = last < 0 ? 0 : std::min(out_len, last / d.stride + 1);
  hi = std::max(hi, lo);
}

// Outputs [lo, hi) along one axis whose window holds input position x.
inline void windows_holding(int64_t x, int64_t out_len, const PoolDesc& d, int64_t& lo,
                            int64_t& hi) {
  const int64_t first = x + d.padding - d.kernel + 1;  // o * stride >= first
  lo = first <= 0 ? 0 : (first + d.stride - 1) / d.stride;
  hi = std::max(lo, std::min(out_len, (x + d.padding) / d.stride + 1));
}

// Window positions [lo, hi) along one axis that fall inside the input.
inline void window_inside(int64_t o, int64_t len, const PoolDesc& d, int64_t& lo, int64_t& hi) {
  const int64_t start = o * d.stride - d.padding;
  lo = std::max<int64_t>(0, -start);
  hi = std::min(d.kernel, len - start);
}

template <typename Body>
void parallel_range(int64_t count, Body&& body) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, count),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t i = r.begin(); i < r.end(); ++i) body(i);
                    });
}

// Global pooling, one (n, c) plane of H x W at a time: inner(o, I) for each
// outer index o of an inner-vector layout (I lanes innermost), else plane(p)
// for each plane p of a plain one.
template <class Inner, class Plane>
void for_global_planes(const PoolDesc& d, Inner inner, Plane plane) {
  InnerVector v;
  if (is_inner_vector(d, &v)) {
    parallel_range(v.outer, [&](int64_t o) { inner(o, v.inner); });
  } else {
    parallel_range(d.n * d.c, plane);
  }
}

// --- NCHW: planes ------------------------------------------------------------

// Forward over one plane: combine(acc, v) over each window into dst rows
// initialised to init, then finish(acc) per output.
template <typename Combine, typename Finish>
void plane_forward(float* dst, const float* src, const PoolDesc& d, float init, Combine combine,
                   Finish finish) {
  const int64_t OH = d.out_h(), OW = d.out_w();
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* row = dst + oh * OW;
    std::fill(row, row + OW, init);
    int64_t kh_lo, kh_hi;
    window_inside(oh, d.h, d, kh_lo, kh_hi);
    for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
      const float* in = src + (oh * d.stride - d.padding + kh) * d.w;
      for (int64_t kw = 0; kw < d.kernel; ++kw) {
        int64_t lo, hi;
        outputs_reaching(kw, d.w, OW, d, lo, hi);
        const int64_t shift = kw - d.padding;
#pragma omp simd
        for (int64_t ow = lo; ow < hi; ++ow) row[ow] = combine(row[ow], in[ow * d.stride + shift]);
      }
    }
#pragma omp simd
    for (int64_t ow = 0; ow < OW; ++ow) row[ow] = finish(row[ow]);
  }
}

// Offset within the plane of the argmax of window (oh, ow), in window order.
int64_t plane_argmax(const float* src, const PoolDesc& d, int64_t oh, int64_t ow) {
  int64_t kh_lo, kh_hi, kw_lo, kw_hi;
  window_inside(oh, d.h, d, kh_lo, kh_hi);
  window_inside(ow, d.w, d, kw_lo, kw_hi);
  const int64_t h0 = oh * d.stride - d.padding, w0 = ow * d.stride - d.padding;
  int64_t arg = (h0 + kh_lo) * d.w + w0 + kw_lo;
  float best = src[arg];
  for (int64_t kh = kh_lo; kh < kh_hi; ++kh)
    for (int64_t kw = kw_lo; kw < kw_hi; ++kw) {
      const int64_t i = (h0 + kh) * d.w + w0 + kw;
      if (beats(src[i], best)) {
        best = src[i];
        arg = i;
      }
    }
  return arg;
}

// --- NHWC / CHWN: vectors over the innermost dimension ----------------------

template <typename Combine, typename Finish>
void vector_forward(float* dst, const float* src, const PoolDesc& d, const InnerVector& v,
                    float init, Combine combine, Finish finish) {
  const int64_t OH = d.out_h(), OW = d.out_w(), I = v.inner;
  parallel_range(v.outer * OH, [&](int64_t row) {
    const int64_t o = row / OH, oh = row % OH;
    int64_t kh_lo, kh_hi;
    window_inside(oh, d.h, d, kh_lo, kh_hi);
    for (int64_t ow = 0; ow < OW; ++ow) {
      float* __restrict out = dst + (row * OW + ow) * I;
      std::fill(out, out + I, init);
      int64_t kw_lo, kw_hi;
      window_inside(ow, d.w, d, kw_lo, kw_hi);
      for (int64_t kh = kh_lo; kh < kh_hi; ++kh)
        for (int64_t kw = kw_lo; kw < kw_hi; ++kw) {
          const int64_t h = oh * d.stride - d.padding + kh, w = ow * d.stride - d.padding + kw;
          const float* __restrict in = src + ((o * d.h + h) * d.w + w) * I;
#pragma omp simd
          for (int64_t i = 0; i < I; ++i) out[i] = combine(out[i], in[i]);
        }
#pragma omp simd
      for (int64_t i = 0; i < I; ++i) out[i] = finish(out[i]);
    }
  });
}

}  // namespace

void maxpool_forward_tbb(float* dst, const float* src, const PoolDesc& d) {
  InnerVector v;
  if (is_inner_vector(d, &v)) {
    vector_forward(dst, src, d, v, kNegInf, PickMax{}, Identity{});
    return;
  }
  const int64_t in_plane = d.h * d.w, out_plane = d.out_h() * d.out_w();
  parallel_range(d.n * d.c, [&](int64_t p) {
    plane_forward(dst + p * out_plane, src + p * in_plane, d, kNegInf, PickMax{}, Identity{});
  });
}

void maxpool_backward_tbb(float* diff_src, const float* diff_dst, const float* src,
                          const PoolDesc& d) {
  const int64_t OH = d.out_h(), OW = d.out_w();
  InnerVector v;
  if (is_inner_vector(d, &v)) {
    // Per window: the maximum of each lane, then a second walk in window
    // order adds diff_dst where a lane first meets its maximum. Both walks
    // are plain vector loops over the lanes (no scatter).
    const int64_t I = v.inner, in_slice = d.h * d.w * I;
    parallel_range(v.outer, [&](int64_t o) {
      const float* s = src + o * in_slice;
      float* ds = diff_src + o * in_slice;
      std::fill(ds, ds + in_slice, 0.0f);
      std::vector<float> best_v(static_cast<size_t>(I));
      std::vector<float> taken_v(static_cast<size_t>(I));  // 1 once a lane met its maximum
      float* __restrict best = best_v.data();
      float* __restrict taken = taken_v.data();
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          int64_t kh_lo, kh_hi, kw_lo, kw_hi;
          window_inside(oh, d.h, d, kh_lo, kh_hi);
          window_inside(ow, d.w, d, kw_lo, kw_hi);
          const int64_t h0 = oh * d.stride - d.padding, w0 = ow * d.stride - d.padding;
          std::fill(best, best + I, kNegInf);
          for (int64_t kh = kh_lo; kh < kh_hi; ++kh)
            for (int64_t kw = kw_lo; kw < kw_hi; ++kw) {
              const float* __restrict in = s + ((h0 + kh) * d.w + w0 + kw) * I;
#pragma omp simd
              for (int64_t i = 0; i < I; ++i) best[i] = PickMax{}(best[i], in[i]);
            }
          const float* __restrict dy = diff_dst + ((o * OH + oh) * OW + ow) * I;
          std::fill(taken, taken + I, 0.0f);
          for (int64_t kh = kh_lo; kh < kh_hi; ++kh)
            for (int64_t kw = kw_lo; kw < kw_hi; ++kw) {
              const int64_t px = (h0 + kh) * d.w + w0 + kw;
              const float* __restrict in = s + px * I;
              float* __restrict g = ds + px * I;
#pragma omp simd
              for (int64_t i = 0; i < I; ++i) {
                const float v = in[i], b = best[i], t = taken[i], grad = dy[i];
                const bool is_max = (v == b) | ((v != v) & (b != b));
                const float first = ((t == 0.0f) & is_max) ? 1.0f : 0.0f;
                g[i] += first != 0.0f ? grad : 0.0f;
                taken[i] = t + first;
              }
            }
        }
    });
    return;
  }
  const int64_t in_plane = d.h * d.w, out_plane = OH * OW;
  parallel_range(d.n * d.c, [&](int64_t p) {
    const float* s = src + p * in_plane;
    const float* dy = diff_dst + p * out_plane;
    float* ds = diff_src + p * in_plane;
    std::fill(ds, ds + in_plane, 0.0f);
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) ds[plane_argmax(s, d, oh, ow)] += dy[oh * OW + ow];
  });
}

void avgpool_forward_tbb(float* dst, const float* src, const PoolDesc& d) {
  const DivideBy divide{static_cast<float>(d.kernel * d.kernel)};
  InnerVector v;
  if (is_inner_vector(d, &v)) {
    vector_forward(dst, src, d, v, 0.0f, Add{}, divide);
    return;
  }
  const int64_t in_plane = d.h * d.w, out_plane = d.out_h() * d.out_w();
  parallel_range(d.n * d.c, [&](int64_t p) {
    plane_forward(dst + p * out_plane, src + p * in_plane, d, 0.0f, Add{}, divide);
  });
}

void avgpool_backward_tbb(float* diff_src, const float* diff_dst, const PoolDesc& d) {
  const int64_t OH = d.out_h(), OW = d.out_w();
  const float area = static_cast<float>(d.kernel * d.kernel);
  // Windows holding each row and each column: [lo, hi) of oh, resp. ow.
  std::vector<int64_t> rows(static_cast<size_t>(2 * d.h));
  for (int64_t h = 0; h < d.h; ++h) windows_holding(h, OH, d, rows[2 * h], rows[2 * h + 1]);
  InnerVector v;
  if (is_inner_vector(d, &v)) {
    std::vector<int64_t> cols(static_cast<size_t>(2 * d.w));
    for (int64_t w = 0; w < d.w; ++w) windows_holding(w, OW, d, cols[2 * w], cols[2 * w + 1]);
    const int64_t I = v.inner;
    parallel_range(v.outer * d.h, [&](int64_t row) {
      const int64_t o = row / d.h, h = row % d.h;
      for (int64_t w = 0; w < d.w; ++w) {
        float* __restrict out = diff_src + (row * d.w + w) * I;
        std::fill(out, out + I, 0.0f);
        for (int64_t oh = rows[2 * h]; oh < rows[2 * h + 1]; ++oh)
          for (int64_t ow = cols[2 * w]; ow < cols[2 * w + 1]; ++ow) {
            const float* __restrict dy = diff_dst + ((o * OH + oh) * OW + ow) * I;
#pragma omp simd
            for (int64_t i = 0; i < I; ++i) out[i] += dy[i];
          }
#pragma omp simd
        for (int64_t i = 0; i < I; ++i) out[i] /= area;
      }
    });
    return;
  }
  // Each diff_src row sums, in (oh, kw) order, the diff_dst rows of the
  // windows holding it, then divides once.
  std::vector<int64_t> reach(static_cast<size_t>(2 * d.kernel));  // ow range per kw
  for (int64_t kw = 0; kw < d.kernel; ++kw)
    outputs_reaching(kw, d.w, OW, d, reach[2 * kw], reach[2 * kw + 1]);
  const int64_t in_plane = d.h * d.w, out_plane = OH * OW;
  parallel_range(d.n * d.c, [&](int64_t p) {
    const float* dy = diff_dst + p * out_plane;
    float* ds = diff_src + p * in_plane;
    for (int64_t h = 0; h < d.h; ++h) {
      float* __restrict row = ds + h * d.w;
      std::fill(row, row + d.w, 0.0f);
      for (int64_t oh = rows[2 * h]; oh < rows[2 * h + 1]; ++oh) {
        const float* __restrict g = dy + oh * OW;
        for (int64_t kw = 0; kw < d.kernel; ++kw) {
          const int64_t shift = kw - d.padding;
          for (int64_t ow = reach[2 * kw]; ow < reach[2 * kw + 1]; ++ow)
            row[ow * d.stride + shift] += g[ow];
        }
      }
#pragma omp simd
      for (int64_t w = 0; w < d.w; ++w) row[w] /= area;
    }
  });
}

void global_avgpool_forward_tbb(float* dst, const float* src, const PoolDesc& d) {
  const int64_t hw = d.h * d.w;
  const float count = static_cast<float>(hw);
  for_global_planes(
      d,
      [&](int64_t o, int64_t I) {
        std::vector<float> acc(static_cast<size_t>(I), 0.0f);
        const float* s = src + o * hw * I;
        float* __restrict a = acc.data();
        for (int64_t px = 0; px < hw; ++px) {
          const float* __restrict in = s + px * I;
#pragma omp simd
          for (int64_t i = 0; i < I; ++i) a[i] += in[i];
        }
        for (int64_t i = 0; i < I; ++i) dst[nc_index(d, o, i)] = acc[i] / count;
      },
      [&](int64_t p) {
        const float* s = src + p * hw;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < hw; ++i) sum += s[i];
        dst[p] = sum / count;
      });
}

void global_avgpool_backward_tbb(float* diff_src, const float* diff_dst, const PoolDesc& d) {
  const int64_t hw = d.h * d.w;
  const float count = static_cast<float>(hw);
  for_global_planes(
      d,
      [&](int64_t o, int64_t I) {
        std::vector<float> g(static_cast<size_t>(I));
        for (int64_t i = 0; i < I; ++i) g[i] = diff_dst[nc_index(d, o, i)] / count;
        float* ds = diff_src + o * hw * I;
        for (int64_t px = 0; px < hw; ++px) std::copy(g.begin(), g.end(), ds + px * I);
      },
      [&](int64_t p) {
        const float g = diff_dst[p] / count;
        std::fill(diff_src + p * hw, diff_src + (p + 1) * hw, g);
      });
}

}  // namespace sparsetrain::kernels

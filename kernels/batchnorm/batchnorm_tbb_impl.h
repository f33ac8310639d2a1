// BatchNorm2d in vectorisable C++ over TBB, compiled once per target: for
// baseline x86-64 by batchnorm_tbb.cc and for AVX-512 by batchnorm_avx512.cc
// (the loops are the same; the compiler vectorises them for the flags of
// the including file). Everything here has internal linkage, so the two
// copies never mix.
//
// The data are cut into segments, each a contiguous piece of one channel that
// fits in L1 (channel-planar layouts: a piece of an H*W plane in NCHW or of
// the H*W*N run in CHWN), or a block of pixels with all their channels
// (channel-last NHWC). Every pass walks the segments in memory order, in
// parallel, so src streams from memory twice in all (statistics, normalise)
// whatever the layout; a per-channel walk instead would stride through NCHW
// by C*H*W and, at power-of-two sizes, thrash a few L2 sets.
//
// Statistics per segment are exact two-pass ones (the second pass hits L1):
// the mean, and the sum of squared deviations from it, in float over kLanes
// independent partial sums. Segments are merged per channel in double and in
// a fixed order with Chan et al.'s pairwise update ("Updating formulae and a
// pairwise algorithm for computing sample variances", 1979):
//   n = na + nb,  delta = mean_b - mean_a,
//   mean = mean_a + delta * nb / n,  M2 = M2a + M2b + delta^2 * na * nb / n
// so there is no E[x^2] - E[x]^2 cancellation and no result depends on the
// thread count. Inner loops carry `omp simd` so they vectorise at any -O
// level (a float reduction is otherwise never reordered); no OpenMP thread
// runs here.
//
// A fused ReLU (desc.relu) clamps in the normalise pass, and backward masks
// diff_dst with relu_keeps(): both evaluate the one inline expression
// normalized(), so with or without FMA contraction the backward's mask is
// the forward's decision (tests/test_batchnorm.cc checks it bit for bit).
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/batchnorm/batchnorm.h"

namespace sparsetrain::kernels {
namespace {

constexpr int64_t kSegment = 1024;    // channel-planar: values per segment (4 KiB)
constexpr int64_t kPixelBlock = 128;  // channel-last: pixels per segment
constexpr int64_t kLanes = 16;        // independent float partial sums

// Mean and sum of squared deviations of one group of values.
struct Moments {
  double count = 0.0, mean = 0.0, m2 = 0.0;
};

// Chan et al.'s pairwise merge of b into a.
inline void merge(Moments& a, const Moments& b) {
  const double n = a.count + b.count;
  if (b.count == 0.0) return;
  const double delta = b.mean - a.mean;
  a.mean += delta * b.count / n;
  a.m2 += b.m2 + delta * delta * a.count * b.count / n;
  a.count = n;
}

// The forward output before the ReLU, and the ReLU's decision on it.
inline float normalized(float x, float m, float k, float b) { return (x - m) * k + b; }
inline float relu(float y) { return y < 0.0f ? 0.0f : y; }
// The gradient a fused ReLU lets through to the normalisation.
inline float relu_keeps(float dy, float x, float m, float k, float b) {
  return normalized(x, m, k, b) > 0.0f ? dy : 0.0f;
}

// --- channel-planar layouts ----------------------------------------------------

// Channel c is `runs` contiguous runs of `run_len` values starting at
// c * channel_stride + r * run_stride. A segment holds about kSegment values
// of one channel: a piece of one long run, or a group of short runs.
struct Planar {
  int64_t channels, runs, run_len, run_stride, channel_stride;
  int64_t group;   // runs per segment
  int64_t groups;  // ceil(runs / group)
  int64_t pieces;  // segments per run (1 when group > 1)

  int64_t segments() const { return groups * channels * pieces; }
  // Segment s in memory order: group-major, then channel, then piece.
  int64_t piece_of(int64_t s) const { return s % pieces; }
  int64_t channel_of(int64_t s) const { return s / pieces % channels; }
  int64_t group_of(int64_t s) const { return s / (pieces * channels); }
  // Its place in the per-channel order in which segments are merged.
  int64_t merge_slot(int64_t s) const {
    return (channel_of(s) * groups + group_of(s)) * pieces + piece_of(s);
  }
  int64_t per_channel() const { return groups * pieces; }
};

bool is_planar(const BatchNormDesc& d, Planar* p) {
  const int64_t hw = d.h * d.w;
  int64_t runs, run_len, run_stride, channel_stride;
  switch (d.layout) {
    case Layout::kNHWC:
      return false;
    case Layout::kCHWN:
      runs = 1, run_len = hw * d.n, run_stride = 0, channel_stride = d.plane_stride();
      break;
    default:  // kNCHW, kPlain
      runs = d.n, run_len = hw, run_stride = d.c * hw, channel_stride = hw;
      break;
  }
  const int64_t group = std::max<int64_t>(1, kSegment / std::max<int64_t>(run_len, 1));
  const int64_t pieces = group > 1 ? 1 : (run_len + kSegment - 1) / kSegment;
  *p = {d.c,
        runs,
        run_len,
        run_stride,
        channel_stride,
        group,
        (runs + group - 1) / group,
        std::max<int64_t>(pieces, 1)};
  return true;
}

// Calls body(offset, len) for each contiguous run of segment s.
template <typename Body>
inline void for_each_run(const Planar& p, int64_t s, Body&& body) {
  const int64_t c = p.channel_of(s), g = p.group_of(s);
  const int64_t first = p.piece_of(s) * kSegment;
  const int64_t len = std::min(kSegment, p.run_len - first);
  if (len <= 0) return;
  const int64_t end = std::min(p.runs, (g + 1) * p.group);
  for (int64_t r = g * p.group; r < end; ++r)
    body(c * p.channel_stride + r * p.run_stride + first, len);
}

// Sum over segment s of term(offset), in kLanes independent float partial
// sums so the adds pipeline.
template <typename Term>
inline float segment_sum(const Planar& p, int64_t s, Term term) {
  float acc[kLanes] = {};
  float tail = 0.0f;
  for_each_run(p, s, [&acc, &tail, &term](int64_t o, int64_t len) {
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes) {
#pragma omp simd
      for (int64_t l = 0; l < kLanes; ++l) acc[l] += term(o + i + l);
    }
    for (; i < len; ++i) tail += term(o + i);
  });
  for (int64_t l = 0; l < kLanes; ++l) tail += acc[l];
  return tail;
}

// segment_sum of two terms in one walk (each term's sums in the same order
// as segment_sum's, so the results are the same as two calls').
template <typename Pair>
inline void segment_sum2(const Planar& p, int64_t s, Pair terms, float* first, float* second) {
  float a[kLanes] = {}, b[kLanes] = {};
  float ta = 0.0f, tb = 0.0f;
  for_each_run(p, s, [&](int64_t o, int64_t len) {
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes) {
#pragma omp simd
      for (int64_t l = 0; l < kLanes; ++l) {
        float u, v;
        terms(o + i + l, u, v);
        a[l] += u;
        b[l] += v;
      }
    }
    for (; i < len; ++i) {
      float u, v;
      terms(o + i, u, v);
      ta += u;
      tb += v;
    }
  });
  for (int64_t l = 0; l < kLanes; ++l) {
    ta += a[l];
    tb += b[l];
  }
  *first = ta;
  *second = tb;
}

// Number of values in segment s.
inline int64_t segment_count(const Planar& p, int64_t s) {
  int64_t n = 0;
  for_each_run(p, s, [&n](int64_t, int64_t len) { n += len; });
  return n;
}

// Runs body(segment) for every segment, in parallel.
template <typename Body>
void for_each_segment(int64_t segments, Body&& body) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, segments),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t s = r.begin(); s < r.end(); ++s) body(s);
                    });
}

// Exact two-pass moments of segment s (the second pass hits L1); a zero
// count for an empty segment.
inline Moments segment_moments(const Planar& p, int64_t s, const float* src) {
  const int64_t count = segment_count(p, s);
  if (count == 0) return {};
  const double m =
      segment_sum(p, s, [src](int64_t i) { return src[i]; }) / static_cast<double>(count);
  const float mf = static_cast<float>(m);
  const float sq =
      segment_sum(p, s, [src, mf](int64_t i) { return (src[i] - mf) * (src[i] - mf); });
  // sum (x - mf)^2 = sum (x - m)^2 + count * (m - mf)^2
  const double m2 = std::max(0.0, sq - static_cast<double>(count) * (m - mf) * (m - mf));
  return {static_cast<double>(count), m, m2};
}

// Per-channel mean and biased variance of src: segment moments merged per
// channel in a fixed order.
void planar_statistics(const Planar& p, const float* src, double* mean, double* var) {
  std::vector<Moments> parts(static_cast<size_t>(p.segments()));
  for_each_segment(p.segments(),
                   [&](int64_t s) { parts[p.merge_slot(s)] = segment_moments(p, s, src); });
  for (int64_t c = 0; c < p.channels; ++c) {
    Moments total;
    for (int64_t k = 0; k < p.per_channel(); ++k) merge(total, parts[c * p.per_channel() + k]);
    mean[c] = total.mean;
    var[c] = total.count > 0 ? total.m2 / total.count : 0.0;
  }
}

// Over segment s: sum(g) and sum(g * (x - m)), g = dy, or with a fused ReLU
// dy where the forward output (x - m) * k + b was positive.
template <bool kRelu>
inline void segment_grad_sums(const Planar& p, int64_t s, const float* dy, const float* x, float m,
                              float k, float b, double* sum_g, double* sum_g_xc) {
  float a = 0.0f, q = 0.0f;
  segment_sum2(
      p, s,
      [dy, x, m, k, b](int64_t i, float& g, float& gx) {
        g = kRelu ? relu_keeps(dy[i], x[i], m, k, b) : dy[i];
        gx = g * (x[i] - m);
      },
      &a, &q);
  *sum_g = a;
  *sum_g_xc = q;
}

// Per-channel sum(g) and sum(g * (x - mean)), g as in segment_grad_sums.
template <bool kRelu>
void planar_grad_sums(const Planar& p, const float* dy, const float* x, const float* mean,
                      const float* scale, const float* shift, double* sum_dy, double* sum_dy_xc) {
  std::vector<double> parts(static_cast<size_t>(2 * p.segments()));
  for_each_segment(p.segments(), [&](int64_t s) {
    const int64_t c = p.channel_of(s);
    const int64_t slot = p.merge_slot(s);
    segment_grad_sums<kRelu>(p, s, dy, x, mean[c], kRelu ? scale[c] : 0.0f, kRelu ? shift[c] : 0.0f,
                             &parts[2 * slot], &parts[2 * slot + 1]);
  });
  for (int64_t c = 0; c < p.channels; ++c) {
    sum_dy[c] = sum_dy_xc[c] = 0.0;
    for (int64_t k = 0; k < p.per_channel(); ++k) {
      sum_dy[c] += parts[2 * (c * p.per_channel() + k)];
      sum_dy_xc[c] += parts[2 * (c * p.per_channel() + k) + 1];
    }
  }
}

// body(offset, len, channel) over every run of every segment, in parallel.
template <typename Body>
void planar_map(const Planar& p, Body&& body) {
  for_each_segment(p.segments(), [&](int64_t s) {
    const int64_t c = p.channel_of(s);
    for_each_run(p, s, [&](int64_t o, int64_t len) { body(o, len, c); });
  });
}

// --- channel-last layout (NHWC) ------------------------------------------------

int64_t pixel_blocks(const BatchNormDesc& d) {
  return (d.per_channel() + kPixelBlock - 1) / kPixelBlock;
}

// Runs body(first pixel, end pixel, block) for every block, in parallel.
template <typename Body>
void for_each_pixel_block(const BatchNormDesc& d, Body&& body) {
  const int64_t pixels = d.per_channel();
  for_each_segment(pixel_blocks(d), [&](int64_t b) {
    body(b * kPixelBlock, std::min(pixels, (b + 1) * kPixelBlock), b);
  });
}

// Per-channel mean and biased variance: per block two-pass moments (the
// block is in L1 for the second pass), merged in block order.
void channel_last_statistics(const BatchNormDesc& d, const float* src, double* mean, double* var) {
  const int64_t C = d.c, blocks = pixel_blocks(d), pixels = d.per_channel();
  // Per block and channel: the sum, and the squared deviations from the
  // float mean sum / count.
  std::vector<float> block_sum(static_cast<size_t>(blocks * C)), block_sq(block_sum.size()),
      block_mean(block_sum.size());
  for_each_pixel_block(d, [&](int64_t begin, int64_t end, int64_t b) {
    float* __restrict sum = block_sum.data() + b * C;
    float* __restrict sq = block_sq.data() + b * C;
    std::fill(sum, sum + C, 0.0f);
    std::fill(sq, sq + C, 0.0f);
    for (int64_t px = begin; px < end; ++px) {
      const float* __restrict x = src + px * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) sum[c] += x[c];
    }
    // The block's float mean per channel, the same sum / count the merge
    // below corrects for (one division per channel, not per value).
    float* __restrict mean = block_mean.data() + b * C;
    const float count = static_cast<float>(end - begin);
    for (int64_t c = 0; c < C; ++c) mean[c] = sum[c] / count;
    for (int64_t px = begin; px < end; ++px) {
      const float* __restrict x = src + px * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float dev = x[c] - mean[c];
        sq[c] += dev * dev;
      }
    }
  });
  for (int64_t c = 0; c < C; ++c) {
    Moments total;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t n = std::min(kPixelBlock, pixels - b * kPixelBlock);
      const float sum = block_sum[b * C + c];
      const double m = static_cast<double>(sum) / static_cast<double>(n);
      const double mf = sum / static_cast<float>(n);
      // sum (x - mf)^2 = sum (x - m)^2 + n * (m - mf)^2
      const double m2 =
          std::max(0.0, block_sq[b * C + c] - static_cast<double>(n) * (m - mf) * (m - mf));
      merge(total, {static_cast<double>(n), m, m2});
    }
    mean[c] = total.mean;
    var[c] = total.count > 0 ? total.m2 / total.count : 0.0;
  }
}

// Per-channel sum(g) and sum(g * (x - mean)) (g as in planar_grad_sums):
// float per block, double across blocks in block order.
template <bool kRelu>
void channel_last_grad_sums(const BatchNormDesc& d, const float* dy, const float* x,
                            const float* mean, const float* scale, const float* shift,
                            double* sum_dy, double* sum_dy_xc) {
  const int64_t C = d.c, blocks = pixel_blocks(d);
  std::vector<float> parts(static_cast<size_t>(2 * blocks * C));
  for_each_pixel_block(d, [&](int64_t begin, int64_t end, int64_t b) {
    float* __restrict a = parts.data() + 2 * b * C;
    float* __restrict q = a + C;
    std::fill(a, a + 2 * C, 0.0f);
    for (int64_t px = begin; px < end; ++px) {
      const float* __restrict g = dy + px * C;
      const float* __restrict v = x + px * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float gc = kRelu ? relu_keeps(g[c], v[c], mean[c], scale[c], shift[c]) : g[c];
        a[c] += gc;
        q[c] += gc * (v[c] - mean[c]);
      }
    }
  });
  std::fill(sum_dy, sum_dy + C, 0.0);
  std::fill(sum_dy_xc, sum_dy_xc + C, 0.0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t c = 0; c < C; ++c) {
      sum_dy[c] += parts[2 * b * C + c];
      sum_dy_xc[c] += parts[2 * b * C + C + c];
    }
}

// --- shared passes ----------------------------------------------------------------

// dst = (src - mean) * scale + shift per channel, plus the residual when
// one is given (r: the run's residual values, or null), clamped at 0 with
// kRelu.
template <bool kRelu>
inline void normalize_run(float* __restrict y, const float* __restrict x, const float* __restrict r,
                          int64_t len, float m, float k, float b) {
  if (r != nullptr) {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) {
      const float v = normalized(x[i], m, k, b) + r[i];
      y[i] = kRelu ? relu(v) : v;
    }
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    const float v = normalized(x[i], m, k, b);
    y[i] = kRelu ? relu(v) : v;
  }
}

// The element-wise passes (normalise, input gradient) in either layout:
// planar(offset, len, channel) on every run of a channel-planar layout, or
// pixel(px) on every pixel (all its channels) of a channel-last one; in
// parallel.
template <typename PlanarBody, typename PixelBody>
void map_layout(const BatchNormDesc& d, PlanarBody&& planar, PixelBody&& pixel) {
  Planar p;
  if (is_planar(d, &p)) {
    planar_map(p, planar);
    return;
  }
  for_each_pixel_block(d, [&](int64_t begin, int64_t end, int64_t) {
    for (int64_t px = begin; px < end; ++px) pixel(px);
  });
}

// residual: null, or added before the ReLU.
template <bool kRelu>
void normalize(float* dst, const float* src, const float* residual, const float* mean,
               const float* scale, const float* shift, const BatchNormDesc& d) {
  const auto out = [](float v) { return kRelu ? relu(v) : v; };
  const int64_t C = d.c;
  map_layout(
      d,
      [&](int64_t o, int64_t len, int64_t c) {
        normalize_run<kRelu>(dst + o, src + o, residual != nullptr ? residual + o : nullptr, len,
                             mean[c], scale[c], shift[c]);
      },
      [&](int64_t px) {
        float* __restrict y = dst + px * C;
        const float* __restrict x = src + px * C;
        if (residual != nullptr) {
          const float* __restrict r = residual + px * C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c)
            y[c] = out(normalized(x[c], mean[c], scale[c], shift[c]) + r[c]);
          return;
        }
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) y[c] = out(normalized(x[c], mean[c], scale[c], shift[c]));
      });
}

// diff_src = k * (g - mean_dy - (x - mean) * coef) per channel, g = dy or
// with kRelu the gradient relu_keeps() lets through (k is the forward's
// scale, shift its beta); with mean_dy = coef = 0 this is the
// inference-mode k * dy.
template <bool kRelu>
inline void input_gradient_run(float* __restrict dx, const float* __restrict dy,
                               const float* __restrict x, int64_t len, float m, float k, float b,
                               float mdy, float cf) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    const float g = kRelu ? relu_keeps(dy[i], x[i], m, k, b) : dy[i];
    dx[i] = k * (g - mdy - (x[i] - m) * cf);
  }
}

template <bool kRelu>
void input_gradient(float* diff_src, const float* diff_dst, const float* src, const float* mean,
                    const float* k, const float* shift, const float* mean_dy, const float* coef,
                    const BatchNormDesc& d) {
  const int64_t C = d.c;
  map_layout(
      d,
      [&](int64_t o, int64_t len, int64_t c) {
        input_gradient_run<kRelu>(diff_src + o, diff_dst + o, src + o, len, mean[c], k[c],
                                  kRelu ? shift[c] : 0.0f, mean_dy[c], coef[c]);
      },
      [&](int64_t px) {
        float* __restrict dx = diff_src + px * C;
        const float* __restrict dy = diff_dst + px * C;
        const float* __restrict x = src + px * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float g = kRelu ? relu_keeps(dy[c], x[c], mean[c], k[c], shift[c]) : dy[c];
          dx[c] = k[c] * (g - mean_dy[c] - (x[c] - mean[c]) * coef[c]);
        }
      });
}

void statistics(const BatchNormDesc& d, const float* src, double* mean, double* var) {
  Planar p;
  if (is_planar(d, &p)) {
    planar_statistics(p, src, mean, var);
  } else {
    channel_last_statistics(d, src, mean, var);
  }
}

// scale and shift are read only with kRelu.
template <bool kRelu>
void grad_sums(const BatchNormDesc& d, const float* dy, const float* x, const float* mean,
               const float* scale, const float* shift, double* sum_dy, double* sum_dy_xc) {
  Planar p;
  if (is_planar(d, &p)) {
    planar_grad_sums<kRelu>(p, dy, x, mean, scale, shift, sum_dy, sum_dy_xc);
  } else {
    channel_last_grad_sums<kRelu>(d, dy, x, mean, scale, shift, sum_dy, sum_dy_xc);
  }
}

// --- one contiguous run per channel (CHWN) ---------------------------------------
// When every channel is one run of values (CHWN: H*W*N of them) and there are
// enough channels to share among the threads, one task per channel runs both
// passes back to back, so the second finds the channel in L2 instead of
// streaming it from memory again (ResNet-20's 128x16x32x32 BatchNorm, data
// cold as in a training step: bench/bench_batchnorm). Same segments, sums and
// merge order as the passes above, so the results are bit-identical to theirs.
bool channel_contiguous(const BatchNormDesc& d, Planar* p) {
  return is_planar(d, p) && p->runs == 1 &&
         p->channels >= 2 * static_cast<int64_t>(tbb::this_task_arena::max_concurrency());
}

template <typename Body>
void for_each_channel(int64_t channels, Body&& body) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, channels, 1),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t c = r.begin(); c < r.end(); ++c) body(c);
                    });
}

template <bool kRelu>
void contiguous_forward_training(const Planar& p, float* dst, float* mean, float* rstd,
                                 const float* src, const float* residual, const float* gamma,
                                 const float* beta, float eps) {
  for_each_channel(p.channels, [&](int64_t c) {
    Moments total;
    for (int64_t k = 0; k < p.pieces; ++k) merge(total, segment_moments(p, c * p.pieces + k, src));
    const double var = total.count > 0 ? total.m2 / total.count : 0.0;
    mean[c] = static_cast<float>(total.mean);
    rstd[c] = static_cast<float>(1.0 / std::sqrt(var + eps));
    const int64_t o = c * p.channel_stride;
    normalize_run<kRelu>(dst + o, src + o, residual != nullptr ? residual + o : nullptr, p.run_len,
                         mean[c], gamma[c] * rstd[c], beta[c]);
  });
}

template <bool kRelu>
void contiguous_backward(const Planar& p, float* diff_src, float* diff_gamma, float* diff_beta,
                         const float* diff_dst, const float* src, const float* gamma,
                         const float* beta, const float* mean, const float* rstd) {
  const double count = static_cast<double>(p.run_len);
  for_each_channel(p.channels, [&](int64_t c) {
    const float k = gamma[c] * rstd[c];  // the forward's scale
    const float b = kRelu ? beta[c] : 0.0f;
    double sum_dy = 0.0, sum_dy_xc = 0.0;
    for (int64_t piece = 0; piece < p.pieces; ++piece) {
      double a = 0.0, q = 0.0;
      segment_grad_sums<kRelu>(p, c * p.pieces + piece, diff_dst, src, mean[c], kRelu ? k : 0.0f, b,
                               &a, &q);
      sum_dy += a;
      sum_dy_xc += q;
    }
    diff_beta[c] += static_cast<float>(sum_dy);
    diff_gamma[c] += static_cast<float>(sum_dy_xc * rstd[c]);
    if (diff_src == nullptr) return;
    const float mean_dy = static_cast<float>(sum_dy / count);
    const float coef = static_cast<float>(sum_dy_xc / count * rstd[c] * rstd[c]);
    const int64_t o = c * p.channel_stride;
    input_gradient_run<kRelu>(diff_src + o, diff_dst + o, src + o, p.run_len, mean[c], k, b,
                              mean_dy, coef);
  });
}

// --- the op --------------------------------------------------------------------

void forward_training_given(float* dst, float* mean, float* rstd, const float* src,
                            const float* residual, const float* gamma, const float* beta,
                            const double* batch_mean, const double* batch_var,
                            const BatchNormDesc& d);

// residual: null, or added before the ReLU (forward_training_add).
void forward_training_add(float* dst, float* mean, float* rstd, const float* src,
                          const float* residual, const float* gamma, const float* beta,
                          const BatchNormDesc& d) {
  if (Planar p; channel_contiguous(d, &p)) {
    if (d.relu) {
      contiguous_forward_training<true>(p, dst, mean, rstd, src, residual, gamma, beta, d.eps);
    } else {
      contiguous_forward_training<false>(p, dst, mean, rstd, src, residual, gamma, beta, d.eps);
    }
    return;
  }
  const auto C = static_cast<size_t>(d.c);
  std::vector<double> m(C), var(C);
  statistics(d, src, m.data(), var.data());
  forward_training_given(dst, mean, rstd, src, residual, gamma, beta, m.data(), var.data(), d);
}

// The normalising pass alone, the statistics given (in memory order over
// the segments: src is read once, from wherever the convolution left it).
void forward_training_given(float* dst, float* mean, float* rstd, const float* src,
                            const float* residual, const float* gamma, const float* beta,
                            const double* batch_mean, const double* batch_var,
                            const BatchNormDesc& d) {
  const auto C = static_cast<size_t>(d.c);
  std::vector<float> scale(C);
  for (size_t c = 0; c < C; ++c) {
    mean[c] = static_cast<float>(batch_mean[c]);
    rstd[c] = static_cast<float>(1.0 / std::sqrt(batch_var[c] + d.eps));
    scale[c] = gamma[c] * rstd[c];
  }
  if (d.relu) {
    normalize<true>(dst, src, residual, mean, scale.data(), beta, d);
  } else {
    normalize<false>(dst, src, residual, mean, scale.data(), beta, d);
  }
}

void forward_training(float* dst, float* mean, float* rstd, const float* src, const float* gamma,
                      const float* beta, const BatchNormDesc& d) {
  forward_training_add(dst, mean, rstd, src, nullptr, gamma, beta, d);
}

void backward(float* diff_src, float* diff_gamma, float* diff_beta, const float* diff_dst,
              const float* src, const float* gamma, const float* beta, const float* mean,
              const float* rstd, const BatchNormDesc& d) {
  // diff_src = k * (dy - mean(dy) - (x - m) * coef), k = gamma * rstd,
  // coef = rstd^2 * mean(dy * (x - m)); dy masked by a fused ReLU.
  if (Planar p; channel_contiguous(d, &p)) {
    if (d.relu) {
      contiguous_backward<true>(p, diff_src, diff_gamma, diff_beta, diff_dst, src, gamma, beta,
                                mean, rstd);
    } else {
      contiguous_backward<false>(p, diff_src, diff_gamma, diff_beta, diff_dst, src, gamma, beta,
                                 mean, rstd);
    }
    return;
  }
  const auto C = static_cast<size_t>(d.c);
  const double count = static_cast<double>(d.per_channel());
  std::vector<float> k(C), mean_dy(C), coef(C);
  for (size_t c = 0; c < C; ++c) k[c] = gamma[c] * rstd[c];  // the forward's scale
  std::vector<double> sum_dy(C), sum_dy_xc(C);
  if (d.relu) {
    grad_sums<true>(d, diff_dst, src, mean, k.data(), beta, sum_dy.data(), sum_dy_xc.data());
  } else {
    grad_sums<false>(d, diff_dst, src, mean, nullptr, nullptr, sum_dy.data(), sum_dy_xc.data());
  }
  for (size_t c = 0; c < C; ++c) {
    diff_beta[c] += static_cast<float>(sum_dy[c]);
    diff_gamma[c] += static_cast<float>(sum_dy_xc[c] * rstd[c]);
    mean_dy[c] = static_cast<float>(sum_dy[c] / count);
    coef[c] = static_cast<float>(sum_dy_xc[c] / count * rstd[c] * rstd[c]);
  }
  if (diff_src == nullptr) return;
  if (d.relu) {
    input_gradient<true>(diff_src, diff_dst, src, mean, k.data(), beta, mean_dy.data(), coef.data(),
                         d);
  } else {
    input_gradient<false>(diff_src, diff_dst, src, mean, k.data(), nullptr, mean_dy.data(),
                          coef.data(), d);
  }
}

void forward_inference(float* dst, const float* src, const float* gamma, const float* beta,
                       const float* mean, const float* var, const BatchNormDesc& d) {
  std::vector<float> scale(static_cast<size_t>(d.c));
  for (int64_t c = 0; c < d.c; ++c)
    scale[c] = static_cast<float>(gamma[c] / std::sqrt(static_cast<double>(var[c]) + d.eps));
  normalize<false>(dst, src, nullptr, mean, scale.data(), beta, d);
}

void backward_inference(float* diff_src, float* diff_gamma, float* diff_beta, const float* diff_dst,
                        const float* src, const float* gamma, const float* mean, const float* var,
                        const BatchNormDesc& d) {
  const auto C = static_cast<size_t>(d.c);
  std::vector<double> sum_dy(C), sum_dy_xc(C);
  grad_sums<false>(d, diff_dst, src, mean, nullptr, nullptr, sum_dy.data(), sum_dy_xc.data());
  std::vector<float> k(C), zero(C, 0.0f);
  for (size_t c = 0; c < C; ++c) {
    const double r = 1.0 / std::sqrt(static_cast<double>(var[c]) + d.eps);
    diff_beta[c] += static_cast<float>(sum_dy[c]);
    diff_gamma[c] += static_cast<float>(sum_dy_xc[c] * r);
    k[c] = static_cast<float>(gamma[c] * r);
  }
  if (diff_src == nullptr) return;
  input_gradient<false>(diff_src, diff_dst, src, mean, k.data(), nullptr, zero.data(), zero.data(),
                        d);
}

// This target's entry of batchnorm_kernels(): the loops above.
constexpr BatchNormKernel loops_kernel(const char* name, Isa isa,
                                       bool (*supports)(const BatchNormDesc&)) {
  return {name,
          isa,
          supports,
          forward_training,
          backward,
          forward_inference,
          backward_inference,
          forward_training_add,
          forward_training_given};
}

}  // namespace
}  // namespace sparsetrain::kernels

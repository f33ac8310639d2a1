// Element-wise ops as vectorisable loops over TBB blocks. Inner loops carry
// `omp simd` so they vectorise at any -O level; no OpenMP thread runs here.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/eltwise/eltwise.h"
#include "sparsetrain/core/rng.h"

namespace sparsetrain::kernels {
namespace {

// Values per task: large enough to amortise scheduling (64 KiB of floats),
// a multiple of 64 so that dropout tasks own whole mask words.
constexpr int64_t kGrain = 16384;

// Runs body(begin, end) over [0, count) in blocks of kGrain, in parallel.
template <typename Body>
void parallel_blocks(int64_t count, Body&& body) {
  if (count <= kGrain) {
    if (count > 0) body(int64_t{0}, count);
    return;
  }
  const int64_t blocks = (count + kGrain - 1) / kGrain;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, blocks),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      body(r.begin() * kGrain, std::min(count, r.end() * kGrain));
                    });
}

// dst[i] = op(src[i]) over [0, count), in parallel blocks, vectorised.
template <typename Op>
void map_values(float* dst, const float* src, int64_t count, Op op) {
  parallel_blocks(count, [&](int64_t begin, int64_t end) {
    float* __restrict y = dst;
    const float* __restrict x = src;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) y[i] = op(x[i]);
  });
}

// dst[i] = op(a[i], b[i]) over [0, count), in parallel blocks, vectorised.
template <typename Op>
void map_values(float* dst, const float* a, const float* b, int64_t count, Op op) {
  parallel_blocks(count, [&](int64_t begin, int64_t end) {
    float* __restrict y = dst;
    const float* __restrict x0 = a;
    const float* __restrict x1 = b;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) y[i] = op(x0[i], x1[i]);
  });
}

// y = x * (kept ? scale : 0) over the values [begin, end) (begin % 64 == 0).
// Each nibble of the mask selects a row of 4 factors (0 or scale), so the
// inner loop is a plain vector multiply.
void masked_scale(float* __restrict y, const float* __restrict x, const uint64_t* mask,
                  int64_t begin, int64_t end, float scale) {
  alignas(64) float factors[16][4];
  for (int nibble = 0; nibble < 16; ++nibble)
    for (int j = 0; j < 4; ++j) factors[nibble][j] = (nibble >> j) & 1 ? scale : 0.0f;
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    const unsigned nibble = static_cast<unsigned>(mask[i / 64] >> (i % 64)) & 15u;
    const float* __restrict f = factors[nibble];
#pragma omp simd
    for (int j = 0; j < 4; ++j) y[i + j] = x[i + j] * f[j];
  }
  for (; i < end; ++i) y[i] = x[i] * ((mask[i / 64] >> (i % 64)) & 1 ? scale : 0.0f);
}

void relu_forward_tbb(float* dst, const float* src, int64_t count) {
  map_values(dst, src, count, [](float x) { return x < 0.0f ? 0.0f : x; });
}

void relu_backward_tbb(float* diff_src, const float* diff_dst, const float* dst, int64_t count) {
  // Both loaded unconditionally, which keeps the loop branch-free.
  map_values(diff_src, diff_dst, dst, count, [](float g, float y) { return y > 0.0f ? g : 0.0f; });
}

void add_forward_tbb(float* dst, const float* a, const float* b, int64_t count) {
  map_values(dst, a, b, count, [](float x0, float x1) { return x0 + x1; });
}

void add_backward_tbb(float* diff_a, float* diff_b, const float* diff_dst, int64_t count) {
  parallel_blocks(count, [&](int64_t begin, int64_t end) {
    const size_t bytes = static_cast<size_t>(end - begin) * sizeof(float);
    if (diff_a != nullptr) std::memcpy(diff_a + begin, diff_dst + begin, bytes);
    if (diff_b != nullptr) std::memcpy(diff_b + begin, diff_dst + begin, bytes);
  });
}

void add_relu_forward_tbb(float* dst, const float* a, const float* b, int64_t count) {
  map_values(dst, a, b, count, [](float x0, float x1) {
    const float v = x0 + x1;
    return v < 0.0f ? 0.0f : v;
  });
}

void dropout_mask_tbb(uint64_t* mask, int64_t count, float p, uint64_t seed) {
  // half >= p * 2^32 for an integer half  <=>  half >= ceil(p * 2^32)
  const uint64_t threshold =
      static_cast<uint64_t>(std::ceil(static_cast<double>(p) * 4294967296.0));
  constexpr int64_t kWordsPerBlock = kDropoutBlockValues / 64;
  const int64_t words = dropout_mask_words(count);
  const int64_t blocks = (count + kDropoutBlockValues - 1) / kDropoutBlockValues;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, blocks),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t b = r.begin(); b < r.end(); ++b) {
                        Rng rng(dropout_block_seed(seed, b));
                        const int64_t end = std::min(words, (b + 1) * kWordsPerBlock);
                        for (int64_t w = b * kWordsPerBlock; w < end; ++w) {
                          uint64_t bits = 0;
                          for (int k = 0; k < 32; ++k) {
                            const uint64_t draw = rng.next();
                            bits |= uint64_t{(draw & 0xffffffffULL) >= threshold} << (2 * k);
                            bits |= uint64_t{(draw >> 32) >= threshold} << (2 * k + 1);
                          }
                          mask[w] = bits;
                        }
                      }
                    });
  if (count % 64 != 0) mask[words - 1] &= (uint64_t{1} << (count % 64)) - 1;
}

void dropout_forward_tbb(float* dst, const float* src, const uint64_t* mask, int64_t count,
                         float p) {
  const float scale = 1.0f / (1.0f - p);
  parallel_blocks(
      count, [&](int64_t begin, int64_t end) { masked_scale(dst, src, mask, begin, end, scale); });
}

void dropout_backward_tbb(float* diff_src, const float* diff_dst, const uint64_t* mask,
                          int64_t count, float p) {
  const float scale = 1.0f / (1.0f - p);
  parallel_blocks(count, [&](int64_t begin, int64_t end) {
    masked_scale(diff_src, diff_dst, mask, begin, end, scale);
  });
}

}  // namespace

constinit const EltwiseKernel kEltwiseTbb = {"tbb",
                                             Isa::kAvx2,
                                             relu_forward_tbb,
                                             relu_backward_tbb,
                                             add_forward_tbb,
                                             add_backward_tbb,
                                             add_relu_forward_tbb,
                                             dropout_mask_tbb,
                                             dropout_forward_tbb,
                                             dropout_backward_tbb};

}  // namespace sparsetrain::kernels

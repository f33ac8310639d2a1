// Scalar reference for the element-wise ops: the oracle of the tests.
#include "kernels/eltwise/eltwise.h"
#include "sparsetrain/core/rng.h"

namespace sparsetrain::kernels {
namespace {

void relu_forward_ref(float* dst, const float* src, int64_t count) {
  for (int64_t i = 0; i < count; ++i) dst[i] = src[i] < 0.0f ? 0.0f : src[i];
}

void relu_backward_ref(float* diff_src, const float* diff_dst, const float* dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) diff_src[i] = dst[i] > 0.0f ? diff_dst[i] : 0.0f;
}

void add_forward_ref(float* dst, const float* a, const float* b, int64_t count) {
  for (int64_t i = 0; i < count; ++i) dst[i] = a[i] + b[i];
}

void add_backward_ref(float* diff_a, float* diff_b, const float* diff_dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    if (diff_a != nullptr) diff_a[i] = diff_dst[i];
    if (diff_b != nullptr) diff_b[i] = diff_dst[i];
  }
}

void add_relu_forward_ref(float* dst, const float* a, const float* b, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const float y = a[i] + b[i];
    dst[i] = y < 0.0f ? 0.0f : y;
  }
}

void dropout_mask_ref(uint64_t* mask, int64_t count, float p, uint64_t seed) {
  const double threshold = static_cast<double>(p) * 4294967296.0;  // p * 2^32
  for (int64_t w = 0; w < dropout_mask_words(count); ++w) mask[w] = 0;
  Rng rng;
  uint64_t draw = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (i % kDropoutBlockValues == 0) rng.reseed(dropout_block_seed(seed, i / kDropoutBlockValues));
    if (i % 2 == 0) draw = rng.next();
    const uint64_t half = i % 2 == 0 ? (draw & 0xffffffffULL) : (draw >> 32);
    if (static_cast<double>(half) >= threshold) mask[i / 64] |= uint64_t{1} << (i % 64);
  }
}

void dropout_forward_ref(float* dst, const float* src, const uint64_t* mask, int64_t count,
                         float p) {
  const float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < count; ++i)
    dst[i] = src[i] * ((mask[i / 64] >> (i % 64)) & 1 ? scale : 0.0f);
}

void dropout_backward_ref(float* diff_src, const float* diff_dst, const uint64_t* mask,
                          int64_t count, float p) {
  const float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < count; ++i)
    diff_src[i] = diff_dst[i] * ((mask[i / 64] >> (i % 64)) & 1 ? scale : 0.0f);
}

}  // namespace

constinit const EltwiseKernel kEltwiseRef = {"ref",
                                             Isa::kRef,
                                             relu_forward_ref,
                                             relu_backward_ref,
                                             add_forward_ref,
                                             add_backward_ref,
                                             add_relu_forward_ref,
                                             dropout_mask_ref,
                                             dropout_forward_ref,
                                             dropout_backward_ref};

}  // namespace sparsetrain::kernels

// Element-wise ops: ReLU, Add, Dropout. Every operand of one call has the same
// shape and the same memory layout, so these kernels see only a flat count of
// values and work unchanged for NCHW, NHWC, CHWN, (N, F) or (F, N) data.
//
// Backward OVERWRITES diff_src (there are no weights).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/common/kernel_list.h"

namespace sparsetrain::kernels {

// --- ReLU ---------------------------------------------------------------------
// dst (count) = max(src, 0); a NaN stays NaN (the trainer must see it).
using ReluForwardFn = void (*)(float* dst, const float* src, int64_t count);
// diff_src (count) = dst > 0 ? diff_dst : 0, from the saved OUTPUT dst, so
// backward keeps one tensor alive (dst) rather than src.
using ReluBackwardFn = void (*)(float* diff_src, const float* diff_dst, const float* dst,
                                int64_t count);

// --- Add ----------------------------------------------------------------------
// dst (count) = a + b
using AddForwardFn = void (*)(float* dst, const float* a, const float* b, int64_t count);
// diff_a = diff_b = diff_dst (count); either output may be null.
using AddBackwardFn = void (*)(float* diff_a, float* diff_b, const float* diff_dst, int64_t count);
// Add with a ReLU after it, in one pass: dst (count) = max(a + b, 0), bit for
// bit relu_forward(add_forward(a, b)). The ReLU's backward runs apart, from
// this output.
using AddReluForwardFn = void (*)(float* dst, const float* a, const float* b, int64_t count);

// --- Dropout (inverted) ---------------------------------------------------------
// Bit i of mask[i / 64] is 1 where value i is kept. The mask is a pure
// function of (count, p, seed), identical in every implementation: values
// are grouped in blocks of kDropoutBlockValues, block b draws from
// Rng(dropout_block_seed(seed, b)), and each 64-bit draw decides two values
// (low half first), keeping a value when its 32-bit half is >= p * 2^32.
inline constexpr int64_t kDropoutBlockValues = 4096;
inline int64_t dropout_mask_words(int64_t count) { return (count + 63) / 64; }
uint64_t dropout_block_seed(uint64_t seed, int64_t block);
// mask (dropout_mask_words(count)); p in [0, 1).
using DropoutMaskFn = void (*)(uint64_t* mask, int64_t count, float p, uint64_t seed);
// dst (count) = src * (kept ? scale : 0), scale = 1.0f / (1.0f - p) in float;
// like PyTorch, a dropped NaN stays NaN.
using DropoutForwardFn = void (*)(float* dst, const float* src, const uint64_t* mask, int64_t count,
                                  float p);
// diff_src (count) = diff_dst * (kept ? scale : 0)
using DropoutBackwardFn = void (*)(float* diff_src, const float* diff_dst, const uint64_t* mask,
                                   int64_t count, float p);

// One implementation of the ops.
struct EltwiseKernel {
  const char* name;  // "tbb", "ref"
  Isa isa;           // kernels/common/kernel_list.h
  ReluForwardFn relu_forward;
  ReluBackwardFn relu_backward;
  AddForwardFn add_forward;
  AddBackwardFn add_backward;
  AddReluForwardFn add_relu_forward;
  DropoutMaskFn dropout_mask;
  DropoutForwardFn dropout_forward;
  DropoutBackwardFn dropout_backward;
};

// Every implementation, most preferred first; the scalar reference is last.
// Nodes run eltwise_kernels().pick() (the reference when SPARSETRAIN_ISA=ref);
// tests and benchmarks iterate it.
const KernelList<EltwiseKernel>& eltwise_kernels();

// --- implementations ------------------------------------------------------------
// Scalar reference: one plain loop each (eltwise_ref.cc).
extern const EltwiseKernel kEltwiseRef;
// Vectorisable loops over TBB blocks (eltwise_tbb.cc; oneDNN's eltwise and
// binary primitives are within 15% on these memory-bound loops; see
// eltwise.cc).
extern const EltwiseKernel kEltwiseTbb;

}  // namespace sparsetrain::kernels

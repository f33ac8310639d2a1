// Reorders between activation layouts: every one is a batch of 2-D
// transposes (tensor.h's to_layout calls these). Tiled, SSE where the
// target has it, parallel over TBB above a few tens of thousands of values.
#pragma once

#include <cstdint>

#include "sparsetrain/core/layout.h"

namespace sparsetrain::kernels {

// A batch of 2-D transposes: dst[b][j][i] = src[b][i][j] for i < rows,
// j < cols, with row and batch strides in floats. Every reorder between the
// activation layouts is one of these, since H and W stay adjacent and in
// order in all of them: with S = H * W,
//   NCHW (N, C, S)  NHWC (N, S, C)  CHWN (C, S, N),
// and a 2-D (N, F) plain <-> (F, N) kCN is a single transpose.
struct TransposeDesc {
  int64_t batch = 1, rows = 0, cols = 0;
  int64_t src_batch = 0, src_row = 0;
  int64_t dst_batch = 0, dst_row = 0;
};

void transpose_batched(const float* src, float* dst, const TransposeDesc& t);

// The transposes that take a 4-D (N, C, H, W) tensor from one activation
// layout to another (NCHW-like, NHWC or CHWN, all distinct); `from` and `to`
// must be such layouts and differ.
TransposeDesc layout_transpose_4d(int64_t n, int64_t c, int64_t h, int64_t w, Layout from,
                                  Layout to);

}  // namespace sparsetrain::kernels

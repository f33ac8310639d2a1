// Shapes and memory layouts: the vocabulary kernels and runtime share (the
// runtime's Tensor carries a Shape and a Layout; kernels take raw pointers
// with them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

using Shape = std::vector<int64_t>;

enum class Layout : uint8_t {
  kPlain,  // row-major in the order of the shape (any rank): NC, OIHW, vectors
  kNCHW,   // 4-D activations, plain row-major (same memory order as kPlain)
  kNHWC,   // 4-D activations, channels innermost
  kCN,     // 2-D features x batch (batch innermost), for sparse linear kernels
  kCHWN,   // 4-D activations with the batch innermost, for sparse conv kernels
};

const char* layout_name(Layout layout);

// "(2, 3, 4)".
std::string shape_to_string(const Shape& shape);

// 4-D activations: index of (n, c, h, w) in memory for the given layout.
inline int64_t offset4(Layout layout, const Shape& s, int64_t n, int64_t c, int64_t h, int64_t w) {
  const int64_t N = s[0], C = s[1], H = s[2], W = s[3];
  switch (layout) {
    case Layout::kNHWC:
      return ((n * H + h) * W + w) * C + c;
    case Layout::kCHWN:
      return ((c * H + h) * W + w) * N + n;
    default:
      return ((n * C + c) * H + h) * W + w;
  }
}

// The channel planes' stride the executor gives the kCHWN activations it
// pads: a plane of N * H * W floats whose size is a multiple of 4 KiB (CIFAR's
// powers of two) puts the same position of every channel into the same
// cache sets; one more cache line per plane (16 floats) spreads them over
// consecutive sets. Other planes are left packed (the plane itself).
inline int64_t chwn_padded_plane(int64_t n, int64_t h, int64_t w) {
  const int64_t plane = n * h * w;
  return plane > 0 && plane % 1024 == 0 ? plane + 16 : plane;
}

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

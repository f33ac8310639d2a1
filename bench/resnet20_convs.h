// The convolutions of sparsetrain's ResNet-20 for CIFAR-10 (graphs/models.cc;
// He et al. 2016, sec. 4.2), shared by the convolution benchmarks.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/conv2d/conv2d.h"

namespace sparsetrain::bench {

struct ResNet20Conv {
  const char* stage;  // stem, s1, s2down, s2, s3down, s3, proj
  int64_t in_channels, out_channels, side, kernel, stride, padding;
  int count;  // how many convolutions of this shape one ResNet-20 has

  kernels::Conv2dShape shape(int64_t batch) const {
    return kernels::Conv2dShape::make(batch, in_channels, side, side, out_channels, kernel, stride,
                                      padding, 1);
  }
  // "s2down_16to32_32x32_s2", "proj_16to32_1x1_s2": stage, channels, then
  // the image side (the kernel for 1x1 convolutions) and the stride.
  std::string name() const {
    const std::string extent =
        kernel == 1 ? "1x1" : std::to_string(side) + "x" + std::to_string(side);
    return std::string(stage) + "_" + std::to_string(in_channels) + "to" +
           std::to_string(out_channels) + "_" + extent +
           (stride == 1 ? "" : "_s" + std::to_string(stride));
  }
};

// A 3x3 stem, then three stages of three basic blocks (two 3x3 convolutions
// each) at 16, 32 and 64 channels; the first convolution of stages 2 and 3
// has stride 2, and those two blocks' shortcuts are 1x1 stride-2 projections.
inline constexpr ResNet20Conv kResNet20Convs[] = {
    {"stem", 3, 16, 32, 3, 1, 1, 1},    {"s1", 16, 16, 32, 3, 1, 1, 6},
    {"s2down", 16, 32, 32, 3, 2, 1, 1}, {"s2", 32, 32, 16, 3, 1, 1, 5},
    {"s3down", 32, 64, 16, 3, 2, 1, 1}, {"s3", 64, 64, 8, 3, 1, 1, 5},
    {"proj", 16, 32, 32, 1, 2, 0, 1},   {"proj", 32, 64, 16, 1, 2, 0, 1},
};

}  // namespace sparsetrain::bench

// The pieces of the spade probe (spade.cc) that the tests call directly:
// a sample's augmentations and the layer-by-layer pruning of a model copy
// into that sample's trace (Moakhar et al. 2023, "SPADE: Sparsity-Guided
// Debugging for Deep Neural Networks", sec. 3).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparsetrain/data.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain::detail {

struct SpadeOptions {
  double sparsity = 0.8;         // per pruned layer, in [0, 1)
  int64_t augmentations = 256;   // the batch the layers are fitted on, the sample included
  bool dense_first_last = true;  // leave the first and the last prunable layer as they are
  double dampening = 0.01;       // ObsOptions::dampening
};

// One pruned layer of a trace.
struct SpadeLayer {
  std::string node;
  int64_t rows = 0;                   // output channels or features
  int64_t columns = 0;                // C*KH*KW or input features
  int64_t pruned = 0;                 // zeros of its mask (those of the source model included)
  double sparsity = 0.0;              // pruned / (rows * columns)
  double reconstruction_error = 0.0;  // ||W X - W' X||^2 / ||W X||^2 on the batch
};

// `count` copies of `image` ((1, C, H, W) or (C, H, W), normalised as
// `data` says), the first the image itself, the others each a random
// resized crop (area 0.5 to 1 of the image, aspect ratio 3/4 to 4/3,
// bilinear back to H x W), mirrored with probability 1/2 when the image
// has 3 channels (digits are not mirror images of digits, so grey images
// are never flipped), and with brightness and contrast each scaled by a
// factor in [0.8, 1.2]. The jitter is applied to pixels in [0, 1]
// (clamped) when `data` has the per-channel mean and stddev, else to the
// values as they are. (count, C, H, W), kNCHW; drawn from `seed`.
Tensor spade_augmentations(const Tensor& image, int64_t count, const Dataset* data, uint64_t seed);

// Turns `model` into the trace of `batch`: its prunable layers (conv2d with
// groups 1 and linear; without the first and last when
// options.dense_first_last) in node order, each fitted by obs_prune on the
// inputs it gets from the layers already pruned (layer_input_gram, inference
// mode), then compressed to its mask with the compensated values, so the
// trace runs on the sparse kernels (the model's kernels are set to "sparse").
// Weights the model has already pruned stay pruned. A dense layer that
// loses no weight (sparsity 0) is left dense and untouched. Throws Error
// naming --sparsity when options.sparsity is outside [0, 1).
std::vector<SpadeLayer> spade_prune(Graph& model, const Tensor& batch, const SpadeOptions& options);

}  // namespace sparsetrain::detail

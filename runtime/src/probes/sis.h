// Sufficient input subsets (SIS; Carter et al. 2019, "What made you do
// this? Understanding black-box decisions with sufficient input subsets")
// and the overinterpretation test (Carter et al. 2021, "Overinterpretation
// reveals image classification model pathologies"), callable from C++
// without the probe registry. The probe "sis" (sis.cc) is built on these.
//
// Pixels: a pixel is position j = y * W + x of an (C, H, W) image, masked or
// present across all its channels at once. A masked pixel takes the value 0
// in every channel of the normalised image, which is Dataset::mean: the
// per-channel mean of the training images that the loader normalises with,
// x = (pixel / 255 - mean[c]) / stddev[c] (Carter et al. mask with the mean
// pixel too).
// Confidence: the softmax probability of the target class.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sparsetrain/attribution.h"
#include "sparsetrain/data.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain::detail {

// The order in which backward selection removed one image's pixels, and the
// target's confidence along it: with the first removed[s] pixels of `order`
// masked, the confidence was confidence[s]. removed starts at 0 (the whole
// image) and ends at H * W (every pixel masked), ascending.
struct BackwardSelection {
  std::vector<int32_t> order;     // (H * W) pixel indices, the first removed first
  std::vector<int64_t> removed;   // (S)
  std::vector<float> confidence;  // (S)
};

// Batched gradient backward selection of every sample of x ((N, C, H, W),
// normalised) for class targets[n]: each iteration is one probe pass
// (forward and input gradient) over up to `batch` samples at once, and
// removes from each sample the `remove_per_iter` present pixels whose
// removal the gradient predicts to lower the confidence least. Throws Error
// naming --remove-per-iter or --batch when below 1, and on input that is not
// an image.
std::vector<BackwardSelection> backward_selection(Graph& graph, const Tensor& x,
                                                  std::span<const int32_t> targets,
                                                  int64_t remove_per_iter, int64_t batch = 64);

// Exact backward selection: each step tries the removal of every present
// pixel (forward passes of `batch` images) and removes the remove_per_iter
// pixels whose removal on their own leaves the highest confidence. With
// remove_per_iter 1 it is Carter et al. 2019's backward selection, at
// H * W (H * W + 1) / 2 forward images per sample; with r, about
// H * W (H * W / r + 1) / 2. Throws Error as backward_selection does.
std::vector<BackwardSelection> exact_backward_selection(Graph& graph, const Tensor& x,
                                                        std::span<const int32_t> targets,
                                                        int64_t remove_per_iter = 1,
                                                        int64_t batch = 64);

struct SufficientSubset {
  // Pixels in the SIS; -1 when the whole image's confidence is below the
  // threshold (no SIS at this threshold; pixels then empty).
  int64_t size = -1;
  // The last `size` pixels of the order, as removed: the least important first.
  std::vector<int32_t> pixels;
  float full_confidence = 0;  // the whole image
  float confidence = 0;       // the SIS alone, every other pixel masked (0 when there is none)
  // The SIS without pixels[0], its least important pixel: below the
  // threshold by construction. NaN when size <= 0.
  float confidence_without_first = 0;
};

// The SIS of each sample: the smallest suffix of selections[n].order (the
// pixels removed last) whose confidence on its own, every other pixel
// masked, reaches `threshold` (Carter et al. 2019, section 3). The
// confidences recorded by the selection point to the last removal step that
// still reaches it; every suffix length from there to the next step is then
// evaluated by forward passes (class_logits), so that the SIS reaches the
// threshold and the SIS without pixels[0] does not, both exactly as a
// forward pass sees them. With one pixel per step (remove_per_iter 1) it is
// the smallest suffix of the order there is; with more, the smallest within
// the last step that reaches the threshold.
// Throws Error naming --threshold outside (0, 1].
std::vector<SufficientSubset> find_sis(Graph& graph, const Tensor& x,
                                       std::span<const int32_t> targets,
                                       std::span<const BackwardSelection> selections,
                                       double threshold, int64_t batch = 64);

// Image `n` of x ((N, C, H, W)) with only `kept` pixels present, every other
// pixel masked: (1, C, H, W).
Tensor keep_pixels(const Tensor& x, int64_t n, std::span<const int32_t> kept);

// One row of the overinterpretation table: the images reduced to a fraction
// of their pixels (or whole), evaluated against their labels.
struct ReducedImagesRow {
  std::string pixels;          // "all", "backward selection", "random"
  double accuracy = 0;         // against the labels
  double mean_confidence = 0;  // the mean of the top softmax probability
  double agreement = 0;        // the fraction predicting the whole image's class
};

struct Overinterpretation {
  int64_t images = 0;                  // evaluated: the first min(images, data.size()) of the set
  double keep = 0;                     // the fraction asked for
  int64_t kept_pixels = 0;             // per image: max(1, round(keep * H * W))
  std::vector<ReducedImagesRow> rows;  // all, backward selection, random
};

// The overinterpretation test (Carter et al. 2021): for each of the first
// `images` images of `data`, backward selection (batched gradient, or with
// `exact` the exact one) for the class the model predicts on the whole
// image; the image reduced to the kept_pixels pixels removed last, and to
// as many pixels drawn at random (one generator seeded by `seed`, drawn
// image after image), each evaluated against the labels. Chunks of `batch`
// images keep the memory bounded. Throws Error naming --keep outside
// (0, 1] or --images below 1.
Overinterpretation overinterpretation(Graph& graph, const Dataset& data, int64_t images,
                                      double keep, int64_t remove_per_iter, bool exact,
                                      int64_t batch, uint64_t seed);

}  // namespace sparsetrain::detail

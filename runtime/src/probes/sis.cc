// sis: sufficient input subsets (Carter et al. 2019) by batched gradient
// backward selection, and the overinterpretation test (Carter et al. 2021).
//
// Backward selection removes pixels from an image, least important first,
// until none is left; the SIS of a threshold t is the smallest suffix of
// that removal order (the pixels removed last) that on its own, every
// other pixel masked, still gives the target class a softmax probability of
// at least t (Carter et al. 2019; the 2019 paper removes one feature at a
// time by trying each, which is exact_backward_selection here with one
// pixel a step). Carter et al. 2021 make it affordable for large images by
// ranking the pixels with the gradient of the confidence with respect to a
// pixel mask and removing many per step: that is backward_selection. The
// gradient is a first-order guess at what masking a whole pixel does; the
// exact ranking is the reference to check it against (tests/test_sis.cc
// does, on a model where the two must agree). See sis.h for the masking
// convention.
#include "probes/sis.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "probes/sample_probes.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"

namespace sparsetrain {
namespace detail {
namespace {

// A masked pixel's value in every channel: the dataset's channel mean,
// which the loader's normalisation maps to 0.
constexpr float kMaskedValue = 0.0f;

struct ImageGeometry {
  int64_t channels = 0, height = 0, width = 0;
  int64_t pixels = 0;  // H * W
  int64_t numel = 0;   // C * H * W
};

ImageGeometry image_geometry(const Tensor& x, size_t targets) {
  if (!x.defined() || x.rank() != 4) {
    throw Error("sis: the model's input is not an image: expected (N, C, H, W), got " +
                (x.defined() ? x.shape_string() : std::string("no input")));
  }
  if (x.dim(0) != static_cast<int64_t>(targets)) {
    throw Error("sis: " + std::to_string(targets) + " targets for " + std::to_string(x.dim(0)) +
                " images");
  }
  ImageGeometry g;
  g.channels = x.dim(1);
  g.height = x.dim(2);
  g.width = x.dim(3);
  g.pixels = g.height * g.width;
  g.numel = g.channels * g.pixels;
  return g;
}

void check_remove_per_iter(int64_t remove_per_iter) {
  if (remove_per_iter < 1) {
    throw Error(
        "--remove-per-iter: expected a whole number of at least 1 (pixels removed per "
        "step), got " +
        std::to_string(remove_per_iter));
  }
}

void check_batch(int64_t batch) {
  if (batch < 1)
    throw Error("--batch: expected a whole number of at least 1, got " + std::to_string(batch));
}

void check_threshold(double threshold) {
  if (!(threshold > 0.0 && threshold <= 1.0)) {
    std::ostringstream s;
    s << "--threshold: expected a confidence in (0, 1], got " << threshold;
    throw Error(s.str());
  }
}

// dst (C, H * W) = src with the pixels where present[j] is 0 masked.
void mask_image(const float* src, const uint8_t* present, const ImageGeometry& g, float* dst) {
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t j = 0; j < g.pixels; ++j)
      dst[c * g.pixels + j] = present[j] ? src[c * g.pixels + j] : kMaskedValue;
}

// Softmax probability of class t from a row of k logits.
float probability_of(const float* row, int64_t k, int32_t t) {
  const float top = *std::max_element(row, row + k);
  double sum = 0;
  for (int64_t c = 0; c < k; ++c) sum += std::exp(static_cast<double>(row[c] - top));
  return static_cast<float>(std::exp(static_cast<double>(row[t] - top)) / sum);
}

void check_target(int32_t t, int64_t k) {
  if (t < 0 || t >= k) {
    throw Error("target class " + std::to_string(t) + " is outside the model's " +
                std::to_string(k) + " classes (0-" + std::to_string(k - 1) + ")");
  }
}

// The confidence of image m of `images` ((M, C, H, W)) in class targets[m],
// from inference forward passes of `batch` images.
std::vector<float> confidences(Graph& graph, const Tensor& images, std::span<const int32_t> targets,
                               int64_t batch) {
  const Tensor logits = class_logits(graph, images, batch);  // (M, K)
  const int64_t k = logits.dim(1);
  std::vector<float> out(targets.size());
  for (size_t m = 0; m < targets.size(); ++m) {
    check_target(targets[m], k);
    out[m] = probability_of(logits.data() + static_cast<int64_t>(m) * k, k, targets[m]);
  }
  return out;
}

// Image n of x with the first `removed` pixels of `order` masked, written to dst.
void suffix_image(const Tensor& x, int64_t n, const ImageGeometry& g,
                  std::span<const int32_t> order, int64_t removed, std::vector<uint8_t>& present,
                  float* dst) {
  present.assign(static_cast<size_t>(g.pixels), 1);
  for (int64_t i = 0; i < removed; ++i) present[static_cast<size_t>(order[i])] = 0;
  mask_image(x.data() + n * g.numel, present.data(), g, dst);
}

// The SIS of image n (see find_sis). The recorded confidences come from probe
// passes and are only a guide: every confidence the answer rests on is
// evaluated again here, by class_logits, so that the SIS reaches the
// threshold and the SIS without its first pixel does not, both exactly as a
// forward pass sees them.
SufficientSubset sis_of(Graph& graph, const Tensor& x, int64_t n, int32_t target,
                        const BackwardSelection& sel, double threshold, int64_t batch,
                        const ImageGeometry& g) {
  const int64_t p = g.pixels;
  const std::vector<int64_t>& at = sel.removed;  // (S) ascending, 0 ... P
  const int64_t steps = static_cast<int64_t>(at.size());
  if (static_cast<int64_t>(sel.order.size()) != p || steps < 2 || at.front() != 0 ||
      at.back() != p) {
    throw Error("sis: a backward selection of " + std::to_string(sel.order.size()) +
                " pixels does not fit an image of " + std::to_string(p) + " pixels");
  }
  std::vector<float> exact(static_cast<size_t>(p + 1), std::numeric_limits<float>::quiet_NaN());
  std::vector<uint8_t> present;
  // Confidences with the first k pixels of the order removed, k in [lo, hi].
  auto evaluate = [&](int64_t lo, int64_t hi) {
    std::vector<int64_t> ks;
    for (int64_t k = lo; k <= hi; ++k)
      if (std::isnan(exact[static_cast<size_t>(k)])) ks.push_back(k);
    if (ks.empty()) return;
    const int64_t m = static_cast<int64_t>(ks.size());
    Tensor images = Tensor::empty({m, g.channels, g.height, g.width}, Layout::kNCHW);
    for (int64_t i = 0; i < m; ++i)
      suffix_image(x, n, g, sel.order, ks[i], present, images.data() + i * g.numel);
    const std::vector<int32_t> targets(static_cast<size_t>(m), target);
    const std::vector<float> conf = confidences(graph, images, targets, batch);
    for (int64_t i = 0; i < m; ++i) exact[static_cast<size_t>(ks[i])] = conf[i];
  };
  auto reaches = [&](int64_t k) { return exact[static_cast<size_t>(k)] >= threshold; };

  SufficientSubset r;
  evaluate(0, 0);
  r.full_confidence = exact[0];
  if (!reaches(0)) {
    r.confidence = 0;
    r.confidence_without_first = std::numeric_limits<float>::quiet_NaN();
    return r;  // no SIS at this threshold
  }
  // The last recorded step that still reaches the threshold: the SIS is
  // looked for between it and the next step, one pixel at a time.
  int64_t s = 0;
  for (int64_t i = 0; i < steps; ++i)
    if (sel.confidence[static_cast<size_t>(i)] >= threshold) s = i;
  int64_t k = -1;
  for (;;) {
    const int64_t lo = at[static_cast<size_t>(s)];
    const int64_t hi = s + 1 < steps ? at[static_cast<size_t>(s + 1)] : lo;
    evaluate(lo, hi);
    k = -1;
    for (int64_t j = hi; j >= lo; --j)
      if (reaches(j)) {
        k = j;
        break;
      }
    // The guide was off where the recorded and the evaluated confidence
    // straddle the threshold: move one step back (nothing here reaches it;
    // lo > 0, as k = 0 reaches it) or on (its end still reaches it). Each
    // move keeps the evaluated neighbour that decided it, so it never
    // reverses.
    if (k < 0) {
      --s;
    } else if (k == hi && hi < p) {
      ++s;
    } else {
      break;
    }
  }
  r.size = p - k;
  r.pixels.assign(sel.order.begin() + k, sel.order.end());
  r.confidence = exact[static_cast<size_t>(k)];
  r.confidence_without_first =
      k < p ? exact[static_cast<size_t>(k + 1)] : std::numeric_limits<float>::quiet_NaN();
  return r;
}

}  // namespace

std::vector<BackwardSelection> backward_selection(Graph& graph, const Tensor& x,
                                                  std::span<const int32_t> targets,
                                                  int64_t remove_per_iter, int64_t batch) {
  check_remove_per_iter(remove_per_iter);
  check_batch(batch);
  const ImageGeometry g = image_geometry(x, targets.size());
  const int64_t n = x.dim(0), p = g.pixels;
  std::vector<BackwardSelection> out(static_cast<size_t>(n));
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t rows = std::min(batch, n - first);
    const std::span<const int32_t> chunk_targets =
        targets.subspan(static_cast<size_t>(first), static_cast<size_t>(rows));
    std::vector<uint8_t> present(static_cast<size_t>(rows * p), 1);  // (rows, P) the mask m
    Tensor xm = Tensor::empty({rows, g.channels, g.height, g.width}, Layout::kNCHW);
    std::vector<std::pair<float, int32_t>> ranked;  // (d conf / d m_j, j) of present pixels
    // Every sample of the chunk loses the same number of pixels per step.
    for (int64_t removed = 0;;) {
      for (int64_t i = 0; i < rows; ++i)
        mask_image(x.data() + (first + i) * g.numel, present.data() + i * p, g,
                   xm.data() + i * g.numel);
      const ScoreGradient sg =
          class_score_gradient(graph, xm, chunk_targets, ClassScore::kProbability);
      for (int64_t i = 0; i < rows; ++i) {
        BackwardSelection& sel = out[static_cast<size_t>(first + i)];
        sel.removed.push_back(removed);
        sel.confidence.push_back(sg.score[static_cast<size_t>(i)]);
      }
      if (removed == p) break;
      const int64_t take = std::min(remove_per_iter, p - removed);
      for (int64_t i = 0; i < rows; ++i) {
        const float* xi = x.data() + (first + i) * g.numel;    // (C, P)
        const float* gi = sg.input_grad.data() + i * g.numel;  // (C, P) d conf / d x_m
        uint8_t* mi = present.data() + i * p;                  // (P)
        ranked.clear();
        for (int64_t j = 0; j < p; ++j) {
          if (!mi[j]) continue;
          // x_m = m x + (1 - m) mean, so d conf / d m_j = sum_c d conf / d x_m[c, j] (x[c, j] -
          // mean).
          double d = 0;
          for (int64_t c = 0; c < g.channels; ++c)
            d += static_cast<double>(gi[c * p + j]) * (xi[c * p + j] - kMaskedValue);
          ranked.emplace_back(static_cast<float>(d), static_cast<int32_t>(j));
        }
        // Masking pixel j takes m_j from 1 to 0, which to first order changes
        // the confidence by -d conf / d m_j: the pixels whose removal lowers
        // the confidence least (or raises it most) have the smallest signed
        // derivative. Ties go to the lower index.
        std::partial_sort(ranked.begin(), ranked.begin() + take, ranked.end());
        BackwardSelection& sel = out[static_cast<size_t>(first + i)];
        for (int64_t t = 0; t < take; ++t) {
          sel.order.push_back(ranked[static_cast<size_t>(t)].second);
          mi[ranked[static_cast<size_t>(t)].second] = 0;
        }
      }
      removed += take;
    }
  }
  return out;
}

std::vector<BackwardSelection> exact_backward_selection(Graph& graph, const Tensor& x,
                                                        std::span<const int32_t> targets,
                                                        int64_t remove_per_iter, int64_t batch) {
  check_remove_per_iter(remove_per_iter);
  check_batch(batch);
  const ImageGeometry g = image_geometry(x, targets.size());
  const int64_t n = x.dim(0), p = g.pixels;
  std::vector<BackwardSelection> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    BackwardSelection& sel = out[static_cast<size_t>(i)];
    const float* xi = x.data() + i * g.numel;
    const int32_t target = targets[static_cast<size_t>(i)];
    std::vector<uint8_t> present(static_cast<size_t>(p), 1);
    std::vector<std::pair<float, int32_t>> ranked;  // (-confidence without pixel j, j)
    for (int64_t removed = 0;;) {
      // Image 0 is the current state; image 1 + t has candidate[t] masked too.
      std::vector<int32_t> candidate;
      for (int64_t j = 0; j < p; ++j)
        if (present[static_cast<size_t>(j)]) candidate.push_back(static_cast<int32_t>(j));
      const int64_t m = static_cast<int64_t>(candidate.size());
      Tensor tries = Tensor::empty({1 + m, g.channels, g.height, g.width}, Layout::kNCHW);
      mask_image(xi, present.data(), g, tries.data());
      for (int64_t t = 0; t < m; ++t) {
        float* dst = tries.data() + (1 + t) * g.numel;
        std::copy_n(tries.data(), g.numel, dst);
        for (int64_t c = 0; c < g.channels; ++c) dst[c * p + candidate[t]] = kMaskedValue;
      }
      const std::vector<int32_t> target_of(static_cast<size_t>(1 + m), target);
      const std::vector<float> conf = confidences(graph, tries, target_of, batch);
      sel.removed.push_back(removed);
      sel.confidence.push_back(conf[0]);
      if (removed == p) break;
      // The pixels whose removal on its own leaves the highest confidence,
      // ties to the lower index.
      ranked.clear();
      for (int64_t t = 0; t < m; ++t) ranked.emplace_back(-conf[1 + t], candidate[t]);
      const int64_t take = std::min(remove_per_iter, m);
      std::partial_sort(ranked.begin(), ranked.begin() + take, ranked.end());
      for (int64_t t = 0; t < take; ++t) {
        sel.order.push_back(ranked[static_cast<size_t>(t)].second);
        present[static_cast<size_t>(ranked[static_cast<size_t>(t)].second)] = 0;
      }
      removed += take;
    }
  }
  return out;
}

std::vector<SufficientSubset> find_sis(Graph& graph, const Tensor& x,
                                       std::span<const int32_t> targets,
                                       std::span<const BackwardSelection> selections,
                                       double threshold, int64_t batch) {
  check_threshold(threshold);
  check_batch(batch);
  const ImageGeometry g = image_geometry(x, targets.size());
  if (selections.size() != targets.size()) {
    throw Error("sis: " + std::to_string(selections.size()) + " backward selections for " +
                std::to_string(targets.size()) + " images");
  }
  std::vector<SufficientSubset> out;
  for (size_t i = 0; i < targets.size(); ++i)
    out.push_back(
        sis_of(graph, x, static_cast<int64_t>(i), targets[i], selections[i], threshold, batch, g));
  return out;
}

Tensor keep_pixels(const Tensor& x, int64_t n, std::span<const int32_t> kept) {
  const ImageGeometry g = image_geometry(x, static_cast<size_t>(x.defined() ? x.dim(0) : 0));
  std::vector<uint8_t> present(static_cast<size_t>(g.pixels), 0);
  for (int32_t j : kept) {
    if (j < 0 || j >= g.pixels)
      throw Error("sis: pixel " + std::to_string(j) + " is outside the image");
    present[static_cast<size_t>(j)] = 1;
  }
  Tensor out = Tensor::empty({1, g.channels, g.height, g.width}, Layout::kNCHW);
  mask_image(x.data() + n * g.numel, present.data(), g, out.data());
  return out;
}

Overinterpretation overinterpretation(Graph& graph, const Dataset& data, int64_t images,
                                      double keep, int64_t remove_per_iter, bool exact,
                                      int64_t batch, uint64_t seed) {
  if (!(keep > 0.0 && keep <= 1.0)) {
    std::ostringstream s;
    s << "--keep: expected the fraction of pixels kept, in (0, 1], got " << keep;
    throw Error(s.str());
  }
  if (images < 1) throw Error("--images: expected at least 1 image, got " + std::to_string(images));
  check_remove_per_iter(remove_per_iter);
  check_batch(batch);
  Overinterpretation r;
  r.images = std::min(images, data.size());
  r.keep = keep;
  const int64_t p = data.height * data.width;
  r.kept_pixels = std::clamp<int64_t>(std::llround(keep * static_cast<double>(p)), 1, p);
  enum Row { kAll, kSelected, kRandom, kRows };
  const char* const names[kRows] = {"all", "backward selection", "random"};
  double correct[kRows] = {}, confidence[kRows] = {}, agree[kRows] = {};
  Rng rng(seed);  // drawn image after image: the same subsets whatever the batch
  std::vector<int32_t> shuffled(static_cast<size_t>(p));
  for (int64_t first = 0; first < r.images; first += batch) {
    const int64_t rows = std::min(batch, r.images - first);
    std::vector<int64_t> indices(static_cast<size_t>(rows));
    std::iota(indices.begin(), indices.end(), first);
    const Tensor x = dataset_images(data, indices);  // (rows, C, H, W)
    const ImageGeometry g = image_geometry(x, static_cast<size_t>(rows));
    Tensor reduced[kRows] = {x, Tensor::empty(x.shape(), Layout::kNCHW),
                             Tensor::empty(x.shape(), Layout::kNCHW)};
    const Tensor whole_logits = class_logits(graph, x, batch);  // (rows, K)
    const int64_t k = whole_logits.dim(1);
    std::vector<int32_t> predicted(static_cast<size_t>(rows));
    for (int64_t i = 0; i < rows; ++i) {
      const float* row = whole_logits.data() + i * k;
      predicted[i] = static_cast<int32_t>(std::max_element(row, row + k) - row);
    }
    // Backward selection for the class the model predicts (Carter et al.
    // 2021 explain the model's decision, right or wrong).
    const std::vector<BackwardSelection> sel =
        exact ? exact_backward_selection(graph, x, predicted, remove_per_iter, batch)
              : backward_selection(graph, x, predicted, remove_per_iter, batch);
    for (int64_t i = 0; i < rows; ++i) {
      const std::vector<int32_t>& order = sel[static_cast<size_t>(i)].order;
      const std::span<const int32_t> last(order.data() + (p - r.kept_pixels),
                                          static_cast<size_t>(r.kept_pixels));
      std::copy_n(keep_pixels(x, i, last).data(), g.numel, reduced[kSelected].data() + i * g.numel);
      std::iota(shuffled.begin(), shuffled.end(), 0);
      for (int64_t j = 0; j < r.kept_pixels; ++j)
        std::swap(shuffled[j], shuffled[j + static_cast<int64_t>(rng.below(p - j))]);
      const std::span<const int32_t> drawn(shuffled.data(), static_cast<size_t>(r.kept_pixels));
      std::copy_n(keep_pixels(x, i, drawn).data(), g.numel, reduced[kRandom].data() + i * g.numel);
    }
    for (int row_kind = 0; row_kind < kRows; ++row_kind) {
      const Tensor logits =
          row_kind == kAll ? whole_logits : class_logits(graph, reduced[row_kind], batch);
      for (int64_t i = 0; i < rows; ++i) {
        const float* row = logits.data() + i * k;
        const int32_t top = static_cast<int32_t>(std::max_element(row, row + k) - row);
        correct[row_kind] += top == data.labels[static_cast<size_t>(first + i)];
        agree[row_kind] += top == predicted[static_cast<size_t>(i)];
        confidence[row_kind] += probability_of(row, k, top);
      }
    }
  }
  const double count = static_cast<double>(r.images);
  for (int row_kind = 0; row_kind < kRows; ++row_kind)
    r.rows.push_back({.pixels = names[row_kind],
                      .accuracy = correct[row_kind] / count,
                      .mean_confidence = confidence[row_kind] / count,
                      .agreement = agree[row_kind] / count});
  return r;
}

namespace {

using json = nlohmann::json;

// NaN (no such confidence) as JSON null.
json number_or_null(float v) { return std::isnan(v) ? json(nullptr) : json(v); }

class Sis final : public SampleProbe {
 public:
  std::vector<ProbeOption> options() const override {
    return {
        {"threshold", "0.99",
         "the confidence (target's softmax probability) the SIS must keep, in (0, 1]"},
        {"remove-per-iter", "10",
         "pixels removed per backward-selection step (one probe pass each, or with --exact a "
         "forward image per remaining pixel); 1 is the finest"},
        {"exact", "false",
         "true: rank the pixels by trying the removal of each remaining one (a forward image "
         "per remaining pixel and step) instead of by the gradient; with --remove-per-iter 1, "
         "the backward selection of Carter et al. 2019"},
        {"keep", "0", "overinterpretation test: the fraction of pixels kept (e.g. 0.05); 0 = off"},
        {"images", "100", "overinterpretation test: the first N images of the dataset"},
        {"batch", "64", "images per forward or probe pass"}};
  }

  void check(const ProbeContext& c) const override {
    read_threshold(c);
    option_choice(c, "exact", {"false", "true"});
    option_integer(c, "remove-per-iter", 1, std::numeric_limits<int32_t>::max());
    option_number(c, "keep", 0.0, 1.0);
    option_integer(c, "images", 1, std::numeric_limits<int32_t>::max());
    option_integer(c, "batch", 1, std::numeric_limits<int32_t>::max());
  }

  ProbeReport run(const ProbeContext& c) override {
    const double threshold = read_threshold(c);
    const bool exact = option_choice(c, "exact", {"false", "true"}) == "true";
    const int64_t remove_per_iter =
        option_integer(c, "remove-per-iter", 1, std::numeric_limits<int32_t>::max());
    const double keep = option_number(c, "keep", 0.0, 1.0);
    const int64_t images = option_integer(c, "images", 1, std::numeric_limits<int32_t>::max());
    const int64_t batch = option_integer(c, "batch", 1, std::numeric_limits<int32_t>::max());
    if (c.graph == nullptr || c.data == nullptr) throw Error("sis: no model or no dataset");

    ProbeReport r;
    json samples = json::array();
    std::ostringstream summary;
    json shape = json::array();
    if (!c.indices.empty()) {
      const ImageGeometry g = image_geometry(c.images, c.targets.size());
      shape = {g.channels, g.height, g.width};
      const Tensor logits = class_logits(*c.graph, c.images, batch);  // (N, K)
      const int64_t k = logits.dim(1);
      const std::vector<BackwardSelection> sel =
          exact ? exact_backward_selection(*c.graph, c.images, c.targets, remove_per_iter, batch)
                : backward_selection(*c.graph, c.images, c.targets, remove_per_iter, batch);
      const std::vector<SufficientSubset> sis =
          find_sis(*c.graph, c.images, c.targets, sel, threshold, batch);
      for (size_t i = 0; i < c.indices.size(); ++i) {
        const float* row = logits.data() + static_cast<int64_t>(i) * k;
        const int32_t predicted = static_cast<int32_t>(std::max_element(row, row + k) - row);
        const SufficientSubset& s = sis[i];
        samples.push_back(
            {{"index", c.indices[i]},
             {"label", c.data->labels[static_cast<size_t>(c.indices[i])]},
             {"target", c.targets[i]},
             {"predicted", predicted},
             {"confidence", s.full_confidence},
             {"order", sel[i].order},
             {"order_removed", sel[i].removed},
             {"order_confidence", sel[i].confidence},
             {"sis", s.pixels},
             {"sis_size", s.size},
             {"sis_fraction",
              s.size < 0 ? json(nullptr)
                         : json(static_cast<double>(s.size) / static_cast<double>(g.pixels))},
             {"sis_confidence", s.size < 0 ? json(nullptr) : json(s.confidence)},
             {"sis_confidence_without_first", number_or_null(s.confidence_without_first)}});
        add_maps(r, c, static_cast<int64_t>(i), g, sel[i], s);
        summary << "sample " << c.indices[i] << " (label " << c.data->labels[c.indices[i]]
                << ", target " << c.targets[i] << ", predicted " << predicted << "): confidence "
                << s.full_confidence;
        if (s.size < 0)
          summary << ", no SIS (below the threshold " << threshold << ")\n";
        else
          summary << ", SIS of " << s.size << " pixels (" << 100.0 * s.size / g.pixels
                  << "%) keeps " << s.confidence << " >= " << threshold << "\n";
      }
    }
    json result = {{"threshold", threshold},
                   {"exact", exact},
                   {"remove_per_iter", remove_per_iter},
                   {"masked_pixel", "the dataset mean (0 in every normalised channel)"},
                   {"image_shape", shape},
                   {"samples", samples}};
    if (keep > 0) {
      const Overinterpretation o = overinterpretation(*c.graph, *c.data, images, keep,
                                                      remove_per_iter, exact, batch, c.seed);
      json rows = json::array();
      for (const ReducedImagesRow& row : o.rows)
        rows.push_back({{"pixels", row.pixels},
                        {"accuracy", row.accuracy},
                        {"mean_confidence", row.mean_confidence},
                        {"agreement", row.agreement}});
      result["overinterpretation"] = {{"images", o.images},
                                      {"keep", o.keep},
                                      {"kept_pixels", o.kept_pixels},
                                      {"target", "predicted"},
                                      {"rows", rows}};
      summary << "overinterpretation, the first " << o.images << " images reduced to "
              << o.kept_pixels << " pixels (" << 100.0 * o.keep << "%):\n";
      for (const ReducedImagesRow& row : o.rows)
        summary << "  " << row.pixels << ": accuracy " << row.accuracy << ", mean confidence "
                << row.mean_confidence << ", agrees with the whole image " << row.agreement << "\n";
    }
    r.json = result.dump();
    r.summary = summary.str();
    return r;
  }

 private:
  static double read_threshold(const ProbeContext& c) {
    const auto it = c.options.find("threshold");
    if (it == c.options.end()) throw Error("probe option --threshold is missing");
    double v = 0;
    try {
      v = option_number(c, "threshold", 0.0, 1.0);
    } catch (const Error&) {
      v = 0;
    }
    if (!(v > 0)) {
      throw Error("--threshold: expected a confidence in (0, 1], got '" + it->second + "'");
    }
    return v;
  }

  // The removal rank (later = brighter) and the SIS over its reduced image.
  static void add_maps(ProbeReport& r, const ProbeContext& c, int64_t i, const ImageGeometry& g,
                       const BackwardSelection& sel, const SufficientSubset& s) {
    Tensor rank = Tensor::zeros({g.height, g.width});
    for (size_t t = 0; t < sel.order.size(); ++t) rank[sel.order[t]] = static_cast<float>(t + 1);
    r.maps.push_back(
        {.sample = i, .title = "removal order", .map = rank, .is_signed = false, .image = {}});
    // The SIS as the model saw it: its pixels, the rest at the mean.
    Tensor reduced;
    if (s.size >= 0)
      reduced = keep_pixels(c.images, i, s.pixels).reshaped({g.channels, g.height, g.width});
    Tensor none = Tensor::zeros({g.height, g.width});  // no SIS: a blank map over the image
    r.maps.push_back({.sample = i,
                      .title = s.size < 0 ? "sis: none at the threshold"
                                          : "sis (" + std::to_string(s.size) + " pixels)",
                      .map = s.size < 0 ? none : Tensor(),
                      .is_signed = false,
                      .image = reduced});
  }
};

}  // namespace

void register_sis() {
  register_sample_probe("sis", [] { return std::make_unique<Sis>(); });
}

}  // namespace detail
}  // namespace sparsetrain

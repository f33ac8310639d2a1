// Image corruptions in the style of CIFAR-10-C (Hendrycks & Dietterich
// 2019, "Benchmarking neural network robustness to common corruptions and
// perturbations"), with the CIFAR-10 parameters of their five severities,
// and the uniform noise of Liebenwein et al. 2021 (per channel scaled). Images are (n, C, H, W)
// floats in [0, 1]; every random draw is a function of (seed, corruption,
// severity, sample index).

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "sparsetrain/compare.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"

namespace sparsetrain {

namespace {

// Severity 1..5 parameters (CIFAR-10-C's).
constexpr std::array<double, 5> kGaussianSigma = {0.04, 0.06, 0.08, 0.09, 0.10};
constexpr std::array<double, 5> kDefocusRadius = {0.3, 0.4, 0.5, 1.0, 1.5};
constexpr std::array<double, 5> kDefocusAlias = {0.4, 0.5, 0.6, 0.2, 0.1};
constexpr std::array<double, 5> kContrast = {0.75, 0.5, 0.4, 0.3, 0.15};
constexpr std::array<double, 5> kBrightness = {0.05, 0.1, 0.15, 0.2, 0.3};
constexpr std::array<double, 5> kPixelate = {0.95, 0.9, 0.85, 0.75, 0.65};

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Rng image_rng(uint64_t seed, uint64_t what, int severity, int64_t index) {
  return Rng(
      mix(mix(mix(seed, what), static_cast<uint64_t>(severity)), static_cast<uint64_t>(index)));
}

float clip01(double v) { return static_cast<float>(std::clamp(v, 0.0, 1.0)); }

// Reflect-101 border (as OpenCV's filter2D default): -1 -> 1, n -> n - 2.
int64_t reflect(int64_t i, int64_t n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

// The aliased disk of radius r on a 17x17 grid, blurred by a 3x3 Gaussian
// of sigma `alias`, normalised: the defocus kernel.
std::vector<double> defocus_kernel(double radius, double alias, int& size) {
  constexpr int kHalf = 8, kN = 2 * kHalf + 1;
  std::vector<double> disk(kN * kN, 0.0);
  double sum = 0.0;
  for (int y = -kHalf; y <= kHalf; ++y)
    for (int x = -kHalf; x <= kHalf; ++x)
      if (x * x + y * y <= radius * radius) sum += disk[(y + kHalf) * kN + x + kHalf] = 1.0;
  for (double& v : disk) v /= sum;
  const double g[3] = {std::exp(-1.0 / (2 * alias * alias)), 1.0,
                       std::exp(-1.0 / (2 * alias * alias))};
  const double gs = g[0] + g[1] + g[2];
  std::vector<double> blurred(kN * kN, 0.0);
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) {
      double acc = 0.0;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int yy = y + dy, xx = x + dx;
          if (yy < 0 || xx < 0 || yy >= kN || xx >= kN) continue;
          acc += g[dy + 1] * g[dx + 1] / (gs * gs) * disk[yy * kN + xx];
        }
      blurred[y * kN + x] = acc;
    }
  size = kN;
  return blurred;
}

void defocus(float* img, int64_t c, int64_t h, int64_t w, int severity) {
  int size = 0;
  const std::vector<double> k =
      defocus_kernel(kDefocusRadius[severity - 1], kDefocusAlias[severity - 1], size);
  const int half = size / 2;
  // Only the kernel's nonzero taps.
  struct Tap {
    int dy, dx;
    double w;
  };
  std::vector<Tap> taps;
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      if (k[y * size + x] > 1e-12) taps.push_back({y - half, x - half, k[y * size + x]});
  std::vector<float> plane(static_cast<std::size_t>(h * w));
  for (int64_t ch = 0; ch < c; ++ch) {
    float* p = img + ch * h * w;
    std::copy(p, p + h * w, plane.begin());
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        double acc = 0.0;
        for (const Tap& t : taps)
          acc += t.w * plane[reflect(y + t.dy, h) * w + reflect(x + t.dx, w)];
        p[y * w + x] = clip01(acc);
      }
  }
}

// Area (box) resampling of one plane from (h, w) to (oh, ow).
std::vector<float> box_resample(const float* src, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  std::vector<float> out(static_cast<std::size_t>(oh * ow));
  const double sy = static_cast<double>(h) / oh, sx = static_cast<double>(w) / ow;
  for (int64_t oy = 0; oy < oh; ++oy) {
    const double y0 = oy * sy, y1 = (oy + 1) * sy;
    for (int64_t ox = 0; ox < ow; ++ox) {
      const double x0 = ox * sx, x1 = (ox + 1) * sx;
      double acc = 0.0, area = 0.0;
      for (int64_t y = static_cast<int64_t>(y0); y < h && y < y1; ++y) {
        const double wy = std::min<double>(y + 1, y1) - std::max<double>(y, y0);
        for (int64_t x = static_cast<int64_t>(x0); x < w && x < x1; ++x) {
          const double wx = std::min<double>(x + 1, x1) - std::max<double>(x, x0);
          acc += wy * wx * src[y * w + x];
          area += wy * wx;
        }
      }
      out[oy * ow + ox] = static_cast<float>(acc / area);
    }
  }
  return out;
}

void pixelate(float* img, int64_t c, int64_t h, int64_t w, int severity) {
  const double f = kPixelate[severity - 1];
  const int64_t sh = std::max<int64_t>(1, static_cast<int64_t>(h * f));
  const int64_t sw = std::max<int64_t>(1, static_cast<int64_t>(w * f));
  for (int64_t ch = 0; ch < c; ++ch) {
    float* p = img + ch * h * w;
    const std::vector<float> small = box_resample(p, h, w, sh, sw);
    const std::vector<float> back = box_resample(small.data(), sh, sw, h, w);
    std::copy(back.begin(), back.end(), p);
  }
}

void contrast(float* img, int64_t c, int64_t hw, int severity) {
  const double f = kContrast[severity - 1];
  for (int64_t ch = 0; ch < c; ++ch) {
    float* p = img + ch * hw;
    double mean = 0.0;
    for (int64_t i = 0; i < hw; ++i) mean += p[i];
    mean /= static_cast<double>(hw);
    for (int64_t i = 0; i < hw; ++i) p[i] = clip01((p[i] - mean) * f + mean);
  }
}

// HSV's value raised by `add` with hue and saturation kept: RGB scales
// with V (grey images: the value itself).
void brightness(float* img, int64_t c, int64_t hw, int severity) {
  const double add = kBrightness[severity - 1];
  for (int64_t i = 0; i < hw; ++i) {
    double v = 0.0;
    for (int64_t ch = 0; ch < c; ++ch) v = std::max(v, static_cast<double>(img[ch * hw + i]));
    const double nv = std::min(1.0, v + add);
    for (int64_t ch = 0; ch < c; ++ch) {
      float& p = img[ch * hw + i];
      p = v > 0.0 ? clip01(p * nv / v) : clip01(nv);
    }
  }
}

}  // namespace

std::vector<std::string> corruption_names() {
  return {"gaussian-noise", "defocus-blur", "contrast", "brightness", "pixelate"};
}

void corrupt_images(std::span<float> images, int64_t channels, int64_t height, int64_t width,
                    const std::string& corruption, int severity, uint64_t seed, int64_t first) {
  const std::vector<std::string> names = corruption_names();
  const auto at = std::find(names.begin(), names.end(), corruption);
  if (at == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw Error("unknown corruption '" + corruption + "' (known: " + list + ")");
  }
  if (severity < 0 || severity > 5)
    throw Error("corruption severity must be in [0, 5], got " + std::to_string(severity));
  const int64_t numel = channels * height * width;
  if (numel <= 0 || images.size() % static_cast<std::size_t>(numel) != 0)
    throw Error("corrupt_images: the buffer is not a whole number of images");
  if (severity == 0) return;
  const int64_t n = static_cast<int64_t>(images.size()) / numel;
  const uint64_t what = static_cast<uint64_t>(at - names.begin()) + 1;
  for (int64_t i = 0; i < n; ++i) {
    float* img = images.data() + i * numel;
    switch (what) {
      case 1: {
        Rng rng = image_rng(seed, what, severity, first + i);
        const double sigma = kGaussianSigma[severity - 1];
        for (int64_t j = 0; j < numel; ++j) img[j] = clip01(img[j] + sigma * rng.normal());
        break;
      }
      case 2:
        defocus(img, channels, height, width, severity);
        break;
      case 3:
        contrast(img, channels, height * width, severity);
        break;
      case 4:
        brightness(img, channels, height * width, severity);
        break;
      default:
        pixelate(img, channels, height, width, severity);
        break;
    }
  }
}

void add_uniform_noise(std::span<float> images, int64_t image_numel, double amplitude,
                       uint64_t seed, int64_t first, std::span<const float> channel_scale) {
  if (!(amplitude >= 0.0) || !std::isfinite(amplitude))
    throw Error("noise amplitude must be a number >= 0");
  if (image_numel <= 0 || images.size() % static_cast<std::size_t>(image_numel) != 0)
    throw Error("add_uniform_noise: the buffer is not a whole number of images");
  const int64_t channels = channel_scale.empty() ? 1 : static_cast<int64_t>(channel_scale.size());
  if (image_numel % channels != 0)
    throw Error("add_uniform_noise: the image size is not a whole number of channel planes");
  if (amplitude == 0.0) return;
  const int64_t plane = image_numel / channels;
  const int64_t n = static_cast<int64_t>(images.size()) / image_numel;
  const auto level = static_cast<int>(std::lround(amplitude * 1e6));
  for (int64_t i = 0; i < n; ++i) {
    Rng rng = image_rng(seed, 100, level, first + i);
    float* img = images.data() + i * image_numel;
    for (int64_t c = 0; c < channels; ++c) {
      const double a = amplitude * (channel_scale.empty() ? 1.0 : channel_scale[c]);
      for (int64_t j = c * plane; j < (c + 1) * plane; ++j)
        img[j] = clip01(img[j] + a * (2.0 * rng.uniform() - 1.0));
    }
  }
}

}  // namespace sparsetrain

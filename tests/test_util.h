// Seeded test data and comparisons on plain float vectors, shared by the
// kernel test files: small integers (so fp32 sums are exact whatever the
// summation order), normal or uniform values, and AssertionResults that
// report the first difference.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "sparsetrain/rng.h"

namespace sparsetrain::testing {

// `n` integers drawn uniformly from [lo, hi], continuing the stream of `rng`.
inline std::vector<float> small_ints(int64_t n, int lo, int hi, Rng& rng) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = static_cast<float>(lo + static_cast<int>(rng.below(hi - lo + 1)));
  return v;
}

// Integers in [-kMaxInt, kMaxInt]: every product and partial sum in the dense
// kernel tests stays far below 2^24, so any summation order gives the exact
// result.
constexpr int kMaxInt = 2;

// `count` integers in [-kMaxInt, kMaxInt] from their own stream.
inline std::vector<float> small_ints(int64_t count, uint64_t seed) {
  Rng rng(seed);
  return small_ints(count, -kMaxInt, kMaxInt, rng);
}

// `count` standard normal values from their own stream (tensor_fill.h has
// the same for a Tensor of a given shape).
inline std::vector<float> normals(int64_t count, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = rng.normal();
  return v;
}

// Bit-for-bit equality: the number of elements that differ, with the first
// difference described.
inline ::testing::AssertionResult same_values(const std::vector<float>& got,
                                              const std::vector<float>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  }
  int64_t bad = 0;
  std::size_t first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] != want[i]) {
      if (bad == 0) first = i;
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << got.size() << " values differ; first at " << first << ": got "
         << got[first] << ", want " << want[first];
}

// --- the sparse kernel tests ---------------------------------------------------

// Small integers (exact sums) or floats in [-1, 1] (compared with a tolerance).
enum class Values { kFloat, kExact };

// `count` values of `kind`, integers in [-max_int, max_int] when exact.
inline std::vector<float> random_values(int64_t count, Values kind, int max_int,
                                        std::mt19937& rng) {
  std::vector<float> v(static_cast<std::size_t>(count));
  if (kind == Values::kExact) {
    std::uniform_int_distribution<int> dist(-max_int, max_int);
    for (float& x : v) x = static_cast<float>(dist(rng));
  } else {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (float& x : v) x = dist(rng);
  }
  return v;
}

inline std::vector<float> abs_of(const std::vector<float>& v) {
  std::vector<float> a(v.size());
  std::transform(v.begin(), v.end(), a.begin(), [](float x) { return std::fabs(x); });
  return a;
}

// The tolerance of the float comparisons, relative to the sum of the
// magnitudes of the terms (Highway's "c * eps * magnitude").
constexpr float kRelTolerance = 64 * std::numeric_limits<float>::epsilon();

// Element-wise: exact equality when `tolerance_scale` is null, else
// |got - want| <= kRelTolerance * (scale + 1) with scale the sum of |terms|.
// Stops at the first element out of tolerance.
inline ::testing::AssertionResult close(const std::vector<float>& got,
                                        const std::vector<float>& want,
                                        const std::vector<float>* tolerance_scale) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  }
  for (std::size_t k = 0; k < got.size(); ++k) {
    const float tol = tolerance_scale ? kRelTolerance * ((*tolerance_scale)[k] + 1.0f) : 0.0f;
    const bool ok = tolerance_scale ? std::fabs(got[k] - want[k]) <= tol : got[k] == want[k];
    if (!ok) {
      return ::testing::AssertionFailure() << "element " << k << ": got " << got[k] << ", want "
                                           << want[k] << " (tolerance " << tol << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// Channel planes apart (padded kCHWN activations): `packed` holds
// `channels` planes of `plane` floats back to back; the result has them
// `stride` floats apart, `fill` in between.
inline std::vector<float> spread_planes(const std::vector<float>& packed, int64_t channels,
                                        int64_t plane, int64_t stride, float fill) {
  std::vector<float> out(static_cast<std::size_t>(channels * stride), fill);
  for (int64_t c = 0; c < channels; ++c)
    std::copy_n(packed.begin() + c * plane, plane, out.begin() + c * stride);
  return out;
}

// `got` (planes `stride` apart) holds `want` (packed) bit for bit in its
// planes and `fill` everywhere between them.
inline ::testing::AssertionResult same_planes(const std::vector<float>& got,
                                              const std::vector<float>& want, int64_t channels,
                                              int64_t plane, int64_t stride, float fill) {
  int64_t differ = 0, between = 0;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t k = 0; k < stride; ++k) {
      const float g = got[static_cast<std::size_t>(c * stride + k)];
      if (k >= plane) {
        between += std::memcmp(&g, &fill, sizeof g) != 0;
      } else {
        const float w = want[static_cast<std::size_t>(c * plane + k)];
        differ += std::memcmp(&g, &w, sizeof g) != 0;
      }
    }
  if (differ == 0 && between == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << differ << " values differ, " << between << " written between the planes";
}

}  // namespace sparsetrain::testing

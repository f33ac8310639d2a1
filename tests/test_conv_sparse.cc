// Tests of the sparse convolution kernels (kernels/conv_sparse): the compressed
// format and its round trips, every registered micro-kernel against the dense
// scalar convolution (kernels/conv2d ref on the unpacked weight, in the same
// kCHWN layout) on swept shapes and densities, exactly on small integers and
// within a magnitude-scaled tolerance on floats, bit-identical reruns at one
// and two threads, backward-data accumulation, backward-weights accumulation
// at the stored entries only, and the registry.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/common/cpu.h"
#include "kernels/common/threads.h"
#include "kernels/conv2d/conv2d.h"
#include "kernels/conv_sparse/conv_sparse.h"
#include "kernels/conv_sparse/conv_sparse_ukernels.h"
#include "sparsetrain/error.h"
#include "sparsetrain/tensor.h"
#include "tests/test_util.h"

namespace sparsetrain::kernels {
namespace {

using testing::abs_of;
using testing::close;
using testing::random_values;
using testing::Values;

// --- problem set-up ----------------------------------------------------------

// In exact mode every input is a small integer: every partial sum is an
// integer far below 2^24, so any summation order gives the same float (and
// the double-precision dense reference the same value).
constexpr int kExactWeightMax = 3;
constexpr int kExactActivationMax = 4;
// Outputs are followed by a guard band that must come back untouched.
constexpr std::size_t kGuard = 64;
constexpr float kSentinel = 12345.0f;
// What overwritten outputs hold before a pass.
constexpr float kGarbage = -7.0f;

struct Case {
  int64_t c, o, h, w, kh, kw, sh, sw, ph, pw, groups, n;
  double density;

  Conv2dShape shape() const {
    Conv2dShape s;
    s.batch = n;
    s.in_channels = c;
    s.in_h = h;
    s.in_w = w;
    s.out_channels = o;
    s.kernel_h = kh;
    s.kernel_w = kw;
    s.stride_h = sh;
    s.stride_w = sw;
    s.pad_h = ph;
    s.pad_w = pw;
    s.groups = groups;
    return s;
  }
  std::string str() const {
    return "C=" + std::to_string(c) + " O=" + std::to_string(o) + " G=" + std::to_string(groups) +
           " " + std::to_string(h) + "x" + std::to_string(w) + " k" + std::to_string(kh) + "x" +
           std::to_string(kw) + " s" + std::to_string(sh) + "x" + std::to_string(sw) + " p" +
           std::to_string(ph) + "x" + std::to_string(pw) + " N=" + std::to_string(n) +
           " density=" + std::to_string(density);
  }
};

struct Problem {
  Case cs;
  Conv2dShape shape;
  ConvSparseWeights w;
  std::vector<float> dense_w;   // (O, C/G, KH, KW), pruned positions zero
  std::vector<uint8_t> mask;    // (O, C/G, KH, KW)
  std::vector<float> src;       // (C, H, W, N)
  std::vector<float> diff_dst;  // (O, OH, OW, N)
  std::vector<float> bias;      // (O)

  int64_t src_size() const { return cs.c * cs.h * cs.w * cs.n; }
  int64_t dst_size() const { return cs.o * shape.out_h() * shape.out_w() * cs.n; }
};

Problem make_problem(const Case& cs, Values kind, uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p;
  p.cs = cs;
  p.shape = cs.shape();
  EXPECT_TRUE(p.shape.valid()) << cs.str();
  const int64_t wsize = cs.o * (cs.c / cs.groups) * cs.kh * cs.kw;
  const std::vector<float> weights = random_values(wsize, kind, kExactWeightMax, rng);
  p.mask.resize(static_cast<std::size_t>(wsize));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (uint8_t& m : p.mask) m = u(rng) < cs.density ? 1 : 0;
  p.w = conv_sparse_pack(weights.data(), p.mask.data(), cs.o, cs.c, cs.kh, cs.kw, cs.groups);
  p.dense_w.resize(weights.size());
  for (std::size_t k = 0; k < weights.size(); ++k) p.dense_w[k] = p.mask[k] ? weights[k] : 0.0f;
  p.src = random_values(p.src_size(), kind, kExactActivationMax, rng);
  p.diff_dst = random_values(p.dst_size(), kind, kExactActivationMax, rng);
  p.bias = random_values(cs.o, kind, kExactActivationMax, rng);
  return p;
}

// --- results -------------------------------------------------------------------

struct Outputs {
  std::vector<float> dst, diff_src, diff_values, diff_bias;
};

// The dense scalar convolution on the unpacked weight; the weight gradient is
// read at the stored positions.
Outputs run_dense(const Problem& p) {
  Outputs r;
  r.dst.assign(static_cast<std::size_t>(p.dst_size()), kGarbage);
  r.diff_src.assign(static_cast<std::size_t>(p.src_size()), kGarbage);
  conv2d_forward_ref(r.dst.data(), p.src.data(), p.dense_w.data(), p.bias.data(), p.shape,
                     Layout::kCHWN);
  conv2d_backward_data_ref(r.diff_src.data(), p.diff_dst.data(), p.dense_w.data(), p.shape,
                           Layout::kCHWN);
  std::vector<float> dw(p.dense_w.size(), 0.0f);
  r.diff_bias.assign(static_cast<std::size_t>(p.cs.o), 0.0f);
  conv2d_backward_weights_ref(dw.data(), r.diff_bias.data(), p.diff_dst.data(), p.src.data(),
                              p.shape, Layout::kCHWN);
  r.diff_values.resize(static_cast<std::size_t>(p.w.nnz));
  for (std::size_t k = 0; k < r.diff_values.size(); ++k) r.diff_values[k] = dw[p.w.position[k]];
  return r;
}

// The dense result on |inputs|: the sum of |terms| of every output, to scale
// the tolerances.
Outputs magnitudes(const Problem& p) {
  Problem a = p;
  a.dense_w = abs_of(p.dense_w);
  a.src = abs_of(p.src);
  a.diff_dst = abs_of(p.diff_dst);
  a.bias = abs_of(p.bias);
  return run_dense(a);
}

std::vector<float> guarded(int64_t count, float fill) {
  std::vector<float> v(static_cast<std::size_t>(count) + kGuard, kSentinel);
  std::fill(v.begin(), v.end() - kGuard, fill);
  return v;
}

void unguard(std::vector<float>& v, const std::string& what) {
  for (std::size_t k = v.size() - kGuard; k < v.size(); ++k) {
    if (v[k] != kSentinel) {
      ADD_FAILURE() << what << " wrote past its end";
      break;
    }
  }
  v.resize(v.size() - kGuard);
}

struct Kernels {
  const ConvGatherKernel* fwd = nullptr;
  const ConvGatherKernel* bwd_data = nullptr;
  const ConvSddmmKernel* bwd_weights = nullptr;
};

Outputs run_sparse(const Problem& p, const Kernels& k) {
  Outputs r;
  r.dst = guarded(p.dst_size(), kGarbage);
  r.diff_src = guarded(p.src_size(), kGarbage);
  r.diff_values = guarded(p.w.nnz, 0.0f);
  r.diff_bias = guarded(p.cs.o, 0.0f);
  conv_sparse_forward_with(*k.fwd, r.dst.data(), p.src.data(), p.w, p.bias.data(), p.shape);
  conv_sparse_backward_data_with(*k.bwd_data, r.diff_src.data(), p.diff_dst.data(), p.w, p.shape,
                                 false);
  conv_sparse_backward_weights_with(*k.bwd_weights, r.diff_values.data(), r.diff_bias.data(),
                                    p.diff_dst.data(), p.src.data(), p.w, p.shape);
  unguard(r.dst, std::string("forward ") + k.fwd->name);
  unguard(r.diff_src, std::string("backward-data ") + k.bwd_data->name);
  unguard(r.diff_values, std::string("backward-weights ") + k.bwd_weights->name);
  unguard(r.diff_bias, std::string("backward-weights (bias) ") + k.bwd_weights->name);
  return r;
}

void expect_match(const Outputs& got, const Outputs& want, const Outputs* scale,
                  const std::string& what) {
  EXPECT_TRUE(close(got.dst, want.dst, scale ? &scale->dst : nullptr)) << what << " forward";
  EXPECT_TRUE(close(got.diff_src, want.diff_src, scale ? &scale->diff_src : nullptr))
      << what << " backward-data";
  EXPECT_TRUE(close(got.diff_values, want.diff_values, scale ? &scale->diff_values : nullptr))
      << what << " backward-weights";
  EXPECT_TRUE(close(got.diff_bias, want.diff_bias, scale ? &scale->diff_bias : nullptr))
      << what << " backward-weights (bias)";
}

// --- the swept shapes ------------------------------------------------------------

// Every (kernel, stride, padding) combination, with the image size, batch,
// channel counts, groups and density cycling through their lists so that
// each value meets several kernels and strides. Sizes stay small enough for
// the dense scalar reference (and the sanitizers).
std::vector<Case> sweep_cases() {
  constexpr int64_t kKernels[] = {1, 3, 5, 7};
  constexpr int64_t kStrides[] = {1, 2};
  constexpr int64_t kPads[] = {0, 1, 2, 3};
  constexpr int64_t kBatches[] = {1, 5, 16, 17, 32};
  constexpr double kDensities[] = {0.0, 0.5, 0.9, 0.99, 1.0};
  // (C, O) for groups 1; depthwise uses C = O = the first; two groups the
  // pair rounded to even.
  constexpr int64_t kChannels[][2] = {{3, 5}, {16, 16}, {17, 15}, {1, 17}, {15, 33}, {32, 7}};
  std::vector<Case> cases;
  int idx = 0;
  for (int64_t k : kKernels)
    for (int64_t s : kStrides)
      for (int64_t p : kPads) {
        if (p > k) continue;  // padding beyond the kernel: see the explicit cases below
        Case c{};
        c.kh = c.kw = k;
        c.sh = c.sw = s;
        c.ph = c.pw = p;
        // Odd image sizes from 5 to 23, smaller for the larger kernels.
        const int64_t base = k >= 5 ? 7 : 9;
        c.h = base + 2 * (idx % 3);
        c.w = base + 2 * ((idx + 1) % 4) + (k == 1 ? 10 : 0);
        c.n = kBatches[idx % 5];
        c.density = kDensities[(idx * 3 + idx / 5) % 5];
        const int64_t* ch = kChannels[idx % 6];
        const int kind = idx % 3;
        const int64_t shrink = k >= 5 ? 3 : 1;
        if (kind == 0) {  // depthwise
          c.c = c.o = c.groups = std::max<int64_t>(ch[0], 2);
        } else if (kind == 1) {
          c.c = std::max<int64_t>(ch[0] / shrink, 1);
          c.o = std::max<int64_t>(ch[1] / shrink, 1);
          c.groups = 1;
        } else {
          c.c = 2 * std::max<int64_t>(ch[0] / (2 * shrink), 1);
          c.o = 2 * std::max<int64_t>(ch[1] / (2 * shrink), 1);
          c.groups = 2;
        }
        cases.push_back(c);
        ++idx;
      }
  // Explicit corners: wide rows (several register tiles and a remainder),
  // batches over one block, non-square kernels and mixed strides, padding
  // wider than the kernel (positions that read only zeros), an image the
  // size of the kernel, and a stride larger than the kernel (input columns
  // no tap reaches in backward-data).
  //          c   o   h   w  kh kw sh sw ph pw  g   n  density
  cases.push_back({16, 17, 5, 41, 1, 1, 1, 1, 0, 0, 1, 33, 0.9});
  cases.push_back({9, 8, 6, 37, 3, 3, 1, 1, 1, 1, 1, 70, 0.5});
  cases.push_back({8, 8, 7, 29, 3, 3, 2, 2, 1, 1, 1, 17, 0.9});
  cases.push_back({6, 4, 9, 11, 3, 5, 1, 2, 1, 2, 1, 5, 0.5});
  cases.push_back({5, 6, 8, 7, 5, 1, 2, 1, 2, 0, 1, 16, 0.9});
  cases.push_back({4, 3, 5, 6, 1, 1, 1, 1, 3, 2, 1, 5, 1.0});
  cases.push_back({4, 4, 7, 7, 7, 7, 1, 1, 0, 0, 4, 17, 1.0});
  cases.push_back({7, 5, 9, 10, 1, 1, 3, 3, 0, 0, 1, 16, 1.0});
  cases.push_back({6, 6, 9, 9, 3, 3, 2, 2, 1, 1, 3, 32, 0.5});
  cases.push_back({48, 48, 6, 6, 3, 3, 1, 1, 1, 1, 48, 130, 0.9});
  // Full-width register tiles of the AVX-512 kernels: 24 interior positions
  // of a 32-lane batch (two tiles of 12 positions x 2 vectors), and 12 of a
  // 64-lane batch (two of 6 x 4).
  cases.push_back({8, 8, 4, 26, 3, 3, 1, 1, 1, 1, 1, 32, 0.9});
  cases.push_back({8, 8, 4, 14, 3, 3, 1, 1, 1, 1, 1, 64, 0.5});
  return cases;
}

// The dense reference results, computed once per case and value kind and
// shared by the per-ISA test instances.
struct Reference {
  Problem p;
  Outputs want;
  Outputs scale;  // magnitudes (float mode only)
};

const Reference& reference(std::size_t index, Values kind) {
  static std::mutex mutex;
  static std::map<std::pair<std::size_t, int>, Reference> cache;
  static const std::vector<Case> cases = sweep_cases();
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(index, static_cast<int>(kind));
  auto it = cache.find(key);
  if (it == cache.end()) {
    Reference r;
    r.p = make_problem(cases[index], kind, static_cast<uint32_t>(1000 + index));
    r.want = run_dense(r.p);
    if (kind == Values::kFloat) r.scale = magnitudes(r.p);
    it = cache.emplace(key, std::move(r)).first;
  }
  return it->second;
}

// --- the format ------------------------------------------------------------------

Problem format_problem(int64_t groups, double density, uint32_t seed) {
  Case c{12, 8, 6, 6, 3, 2, 1, 1, 1, 1, groups, 1, density};
  return make_problem(c, Values::kFloat, seed);
}

TEST(ConvSparseFormat, PositionsAscendAndValuesFollowThem) {
  const Problem p = format_problem(1, 0.3, 1);
  const ConvSparseWeights& w = p.w;
  EXPECT_EQ(w.out_channels, 8);
  EXPECT_EQ(w.in_channels, 12);
  EXPECT_EQ(w.dense_size(), 8 * 12 * 3 * 2);
  ASSERT_EQ(w.position.size(), static_cast<std::size_t>(w.nnz));
  ASSERT_EQ(w.values.size(), static_cast<std::size_t>(w.nnz));
  EXPECT_EQ(w.nnz, std::count(p.mask.begin(), p.mask.end(), 1));
  EXPECT_TRUE(std::is_sorted(w.position.begin(), w.position.end()));
  EXPECT_EQ(std::adjacent_find(w.position.begin(), w.position.end()), w.position.end());
  for (std::size_t k = 0; k < w.position.size(); ++k) {
    EXPECT_EQ(p.mask[w.position[k]], 1);
    EXPECT_EQ(w.values[k], p.dense_w[w.position[k]]);
  }
  EXPECT_NEAR(w.density(), static_cast<double>(w.nnz) / static_cast<double>(w.dense_size()), 1e-12);
}

TEST(ConvSparseFormat, KernelOrdersArePermutations) {
  for (int64_t groups : {1, 2, 4}) {
    const Problem p = format_problem(groups, 0.4, 2);
    const ConvSparseWeights& w = p.w;
    const auto n = static_cast<std::size_t>(w.nnz);
    std::vector<uint32_t> identity(n);
    std::iota(identity.begin(), identity.end(), 0u);
    for (const std::vector<uint32_t>* perm : {&w.fwd_entry, &w.bwd_entry}) {
      std::vector<uint32_t> sorted = *perm;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(sorted, identity);
    }
    EXPECT_EQ(w.fwd_ptr.back(), static_cast<uint32_t>(w.nnz));
    EXPECT_EQ(w.bwd_ptr.back(), static_cast<uint32_t>(w.nnz));
    EXPECT_TRUE(std::is_sorted(w.fwd_ptr.begin(), w.fwd_ptr.end()));
    EXPECT_TRUE(std::is_sorted(w.bwd_ptr.begin(), w.bwd_ptr.end()));
    const int64_t khw = w.kernel_h * w.kernel_w;
    const int64_t cg = w.in_channels / groups, og = w.out_channels / groups;
    // Each fwd run (o, panel, i, j) holds the entries of filter o at kernel
    // position (i, j) whose input channel is in the panel, by ascending
    // channel; the tap index names the entry's (c, i, j).
    ASSERT_EQ(w.fwd_ptr.size(), static_cast<std::size_t>(w.out_channels * w.fwd_panels * khw + 1));
    ASSERT_EQ(w.bwd_ptr.size(), static_cast<std::size_t>(w.in_channels * w.bwd_panels * khw + 1));
    EXPECT_EQ(w.fwd_panels, (cg + w.fwd_panel - 1) / w.fwd_panel);
    EXPECT_EQ(w.bwd_panels, (og + w.bwd_panel - 1) / w.bwd_panel);
    for (int64_t o = 0; o < w.out_channels; ++o)
      for (int64_t p = 0; p < w.fwd_panels; ++p)
        for (int64_t ij = 0; ij < khw; ++ij) {
          const int64_t run = (o * w.fwd_panels + p) * khw + ij;
          int64_t last_c = -1;
          for (uint32_t k = w.fwd_ptr[run]; k < w.fwd_ptr[run + 1]; ++k) {
            const uint32_t pos = w.position[w.fwd_entry[k]];
            EXPECT_EQ(pos / (cg * khw), o);
            EXPECT_EQ(pos % (cg * khw), w.fwd_tap[k]);
            EXPECT_EQ(pos % khw, ij);
            const int64_t c = pos % (cg * khw) / khw;
            EXPECT_EQ(c / w.fwd_panel, p);
            EXPECT_GT(c, last_c);
            last_c = c;
          }
        }
    // Each bwd run (c, panel, i, j) holds the entries reading input channel
    // c through kernel position (i, j) from the panel's output channels, by
    // ascending o.
    for (int64_t c = 0; c < w.in_channels; ++c)
      for (int64_t p = 0; p < w.bwd_panels; ++p)
        for (int64_t ij = 0; ij < khw; ++ij) {
          const int64_t run = (c * w.bwd_panels + p) * khw + ij;
          int64_t last_o = -1;
          for (uint32_t k = w.bwd_ptr[run]; k < w.bwd_ptr[run + 1]; ++k) {
            const uint32_t pos = w.position[w.bwd_entry[k]];
            const int64_t o = pos / (cg * khw);
            EXPECT_EQ(o / og * cg + pos % (cg * khw) / khw, c);
            EXPECT_EQ(pos % khw, ij);
            EXPECT_EQ((o % og) / w.bwd_panel, p);
            EXPECT_EQ(w.bwd_tap[k], (o % og) * khw + ij);
            EXPECT_GT(o, last_o);
            last_o = o;
          }
        }
  }
}

TEST(ConvSparseFormat, UnpackMaskAndScatterRoundTrip) {
  for (double density : {0.0, 0.5, 1.0}) {
    const Problem p = format_problem(2, density, 3);
    const auto size = static_cast<std::size_t>(p.w.dense_size());
    std::vector<float> dense(size, kGarbage);
    conv_sparse_unpack(p.w, dense.data());
    EXPECT_EQ(dense, p.dense_w);
    std::vector<uint8_t> mask(size, 7);
    conv_sparse_mask(p.w, mask.data());
    EXPECT_EQ(mask, p.mask);
    // Packing the unpacked weight under the mask gives the same entries.
    const ConvSparseWeights again =
        conv_sparse_pack(dense.data(), mask.data(), p.w.out_channels, p.w.in_channels, p.w.kernel_h,
                         p.w.kernel_w, p.w.groups);
    EXPECT_EQ(again.position, p.w.position);
    EXPECT_EQ(again.values, p.w.values);
    // A per-entry array lands at the stored positions, zeros elsewhere.
    std::vector<float> per(static_cast<std::size_t>(p.w.nnz));
    std::iota(per.begin(), per.end(), 1.0f);
    conv_sparse_scatter(p.w, per.data(), dense.data());
    for (std::size_t q = 0, k = 0; q < size; ++q) {
      if (mask[q]) {
        EXPECT_EQ(dense[q], per[k++]);
      } else {
        EXPECT_EQ(dense[q], 0.0f);
      }
    }
  }
}

TEST(ConvSparseFormat, RefreshReloadsValuesAndKeepsTheIndex) {
  Problem p = format_problem(1, 0.5, 4);
  std::mt19937 rng(5);
  const std::vector<float> other = random_values(p.w.dense_size(), Values::kFloat, 0, rng);
  const std::vector<uint32_t> position = p.w.position, fwd_tap = p.w.fwd_tap;
  const std::vector<uint32_t> fwd_entry = p.w.fwd_entry, bwd_entry = p.w.bwd_entry;
  const uint32_t* storage = p.w.position.data();
  conv_sparse_refresh(p.w, other.data());
  EXPECT_EQ(p.w.position, position);
  EXPECT_EQ(p.w.position.data(), storage);
  EXPECT_EQ(p.w.fwd_tap, fwd_tap);
  EXPECT_EQ(p.w.fwd_entry, fwd_entry);
  EXPECT_EQ(p.w.bwd_entry, bwd_entry);
  for (std::size_t k = 0; k < position.size(); ++k) EXPECT_EQ(p.w.values[k], other[position[k]]);
}

// An in-place update of `values` (what an optimizer does) reaches every pass
// with no other call: doubling the values doubles forward and backward-data
// exactly (a power-of-two scale of every product).
TEST(ConvSparseFormat, PassesReadTheCurrentValues) {
  for (Isa isa : {Isa::kRef, best_isa()}) {
    Problem p = format_problem(2, 0.5, 7);
    std::vector<float> dst(static_cast<std::size_t>(p.dst_size()), kGarbage);
    std::vector<float> diff_src(static_cast<std::size_t>(p.src_size()), kGarbage);
    conv_sparse_forward(dst.data(), p.src.data(), p.w, nullptr, p.shape, isa);
    conv_sparse_backward_data(diff_src.data(), p.diff_dst.data(), p.w, p.shape, false, isa);
    for (float& v : p.w.values) v *= 2.0f;
    std::vector<float> dst2(dst.size(), kGarbage), diff_src2(diff_src.size(), kGarbage);
    conv_sparse_forward(dst2.data(), p.src.data(), p.w, nullptr, p.shape, isa);
    conv_sparse_backward_data(diff_src2.data(), p.diff_dst.data(), p.w, p.shape, false, isa);
    for (std::size_t k = 0; k < dst.size(); ++k) ASSERT_EQ(dst2[k], 2.0f * dst[k]) << k;
    for (std::size_t k = 0; k < diff_src.size(); ++k)
      ASSERT_EQ(diff_src2[k], 2.0f * diff_src[k]) << k;
  }
}

TEST(ConvSparseFormat, ThresholdAndExplicitZeros) {
  const std::vector<float> weights = {0.5f, -2.0f, 0.0f, 1.0f, -1.0f, 3.0f, 0.0f, 0.25f};
  // (O=2, C=2, 1x2), two groups: each filter sees one channel.
  const ConvSparseWeights w = conv_sparse_pack_threshold(weights.data(), 2, 2, 1, 2, 1, 0.9f);
  EXPECT_EQ(w.nnz, 4);
  EXPECT_EQ(w.position, (std::vector<uint32_t>{1, 3, 4, 5}));
  EXPECT_EQ(conv_sparse_pack_threshold(weights.data(), 2, 2, 1, 2, 1, 0.0f).nnz, 6);
  EXPECT_THROW(conv_sparse_pack_threshold(weights.data(), 2, 2, 1, 2, 1, -1.0f), Error);
  const std::vector<uint8_t> all(weights.size(), 1);
  EXPECT_EQ(conv_sparse_pack(weights.data(), all.data(), 2, 2, 1, 2, 1).nnz, 8);
}

TEST(ConvSparseFormat, BadGeometryThrowsNamingIt) {
  const std::vector<float> weights(64, 1.0f);
  const std::vector<uint8_t> mask(64, 1);
  try {
    conv_sparse_pack(weights.data(), mask.data(), 4, 6, 1, 1, 4);
    ADD_FAILURE() << "groups not dividing the channels must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("groups"), std::string::npos) << e.what();
  }
  EXPECT_THROW(conv_sparse_pack(weights.data(), mask.data(), 4, 4, 0, 1, 1), Error);
  EXPECT_THROW(conv_sparse_pack(weights.data(), mask.data(), 4, 4, 1, 1, 0), Error);
}

TEST(ConvSparseFormat, MemoryGrowsWithTheEntries) {
  Case c{64, 64, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1.0};
  const Problem dense = make_problem(c, Values::kFloat, 6);
  c.density = 0.05;
  const Problem sparse = make_problem(c, Values::kFloat, 6);
  EXPECT_LT(sparse.w.bytes() * 5, dense.w.bytes());
  EXPECT_LT(sparse.w.bytes(), dense.w.dense_size() * static_cast<int64_t>(sizeof(float)));
  // Per stored entry: its position and value, and an entry and a tap index
  // in each of the two kernel orders (no copies of the values); plus the run
  // starts.
  const int64_t runs = static_cast<int64_t>(sparse.w.fwd_ptr.size() + sparse.w.bwd_ptr.size());
  EXPECT_EQ(sparse.w.bytes(), 24 * sparse.w.nnz + 4 * runs);
}

// --- every registered kernel against the dense convolution -----------------------

Kernels kernels_of(Isa isa) {
  Kernels k;
  for (const ConvGatherKernel& x : conv_sparse_kernel_lists().fwd)
    if (x.isa == isa && !k.fwd) k.fwd = &x;
  for (const ConvGatherKernel& x : conv_sparse_kernel_lists().bwd_data)
    if (x.isa == isa && !k.bwd_data) k.bwd_data = &x;
  for (const ConvSddmmKernel& x : conv_sparse_kernel_lists().bwd_weights)
    if (x.isa == isa && !k.bwd_weights) k.bwd_weights = &x;
  return k;
}

// Every registered kernel of one ISA, each pass's list walked in parallel (a
// list may hold several kernels of one ISA; the shorter lists repeat their
// last).
std::vector<Kernels> all_kernels_of(Isa isa) {
  std::vector<const ConvGatherKernel*> fwd, bwd_data;
  std::vector<const ConvSddmmKernel*> bwd_weights;
  for (const ConvGatherKernel& x : conv_sparse_kernel_lists().fwd)
    if (x.isa == isa) fwd.push_back(&x);
  for (const ConvGatherKernel& x : conv_sparse_kernel_lists().bwd_data)
    if (x.isa == isa) bwd_data.push_back(&x);
  for (const ConvSddmmKernel& x : conv_sparse_kernel_lists().bwd_weights)
    if (x.isa == isa) bwd_weights.push_back(&x);
  std::vector<Kernels> out;
  const std::size_t count = std::max({fwd.size(), bwd_data.size(), bwd_weights.size()});
  for (std::size_t i = 0; i < count && !fwd.empty() && !bwd_data.empty() && !bwd_weights.empty();
       ++i) {
    out.push_back({fwd[std::min(i, fwd.size() - 1)], bwd_data[std::min(i, bwd_data.size() - 1)],
                   bwd_weights[std::min(i, bwd_weights.size() - 1)]});
  }
  return out;
}

class ConvSparseKernelTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << "this CPU lacks " << isa_name(GetParam());
    kernels_ = kernels_of(GetParam());
    ASSERT_NE(kernels_.fwd, nullptr);
    ASSERT_NE(kernels_.bwd_data, nullptr);
    ASSERT_NE(kernels_.bwd_weights, nullptr);
  }
  Kernels kernels_;
};

void sweep(Isa isa, Values kind) {
  const std::size_t count = sweep_cases().size();
  const Kernels ref = kernels_of(Isa::kRef);
  for (const Kernels& k : all_kernels_of(isa)) {
    for (std::size_t i = 0; i < count; ++i) {
      const Reference& r = reference(i, kind);
      const std::string what = r.p.cs.str() + " nnz=" + std::to_string(r.p.w.nnz) + " " +
                               k.fwd->name + " / " + k.bwd_data->name + " / " + k.bwd_weights->name;
      const Outputs got = run_sparse(r.p, k);
      if (kind == Values::kExact) {
        expect_match(got, r.want, nullptr, what + " vs dense");
        if (isa != Isa::kRef) expect_match(got, run_sparse(r.p, ref), nullptr, what + " vs ref");
      } else {
        expect_match(got, r.want, &r.scale, what + " vs dense");
      }
      if (::testing::Test::HasFailure()) return;  // one report, not hundreds
    }
  }
}

TEST_P(ConvSparseKernelTest, ExactOnSmallIntegers) { sweep(GetParam(), Values::kExact); }

TEST_P(ConvSparseKernelTest, CloseOnFloats) { sweep(GetParam(), Values::kFloat); }

// Reruns give the same bits, at one thread and at two (each thread count
// deterministic on its own, and the work split never depends on it).
TEST_P(ConvSparseKernelTest, RerunsAreBitIdenticalAtOneAndTwoThreads) {
  const Case cases[] = {{24, 20, 11, 13, 3, 3, 1, 1, 1, 1, 1, 37, 0.3},
                        {16, 32, 12, 12, 3, 3, 2, 2, 1, 1, 1, 20, 0.5},
                        {20, 20, 9, 9, 3, 3, 1, 1, 1, 1, 20, 33, 0.7}};
  const int before = num_threads();
  for (const Case& c : cases) {
    const Problem p = make_problem(c, Values::kFloat, 7);
    std::vector<Outputs> firsts;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const Outputs first = run_sparse(p, kernels_);
      for (int rerun = 0; rerun < 2; ++rerun)
        expect_match(run_sparse(p, kernels_), first, nullptr,
                     c.str() + " rerun at " + std::to_string(threads) + " threads");
      firsts.push_back(first);
    }
    expect_match(firsts[1], firsts[0], nullptr, c.str() + " one thread vs two");
  }
  set_num_threads(before);
}

TEST_P(ConvSparseKernelTest, BackwardDataCanAccumulate) {
  for (const Case& c : {Case{9, 10, 7, 9, 3, 3, 1, 1, 1, 1, 1, 19, 0.5},
                        Case{8, 6, 9, 8, 3, 3, 2, 2, 1, 1, 2, 16, 0.7},
                        Case{5, 5, 6, 7, 1, 1, 2, 2, 0, 0, 1, 3, 1.0}}) {
    const Problem p = make_problem(c, Values::kExact, 9);
    std::vector<float> diff_src = guarded(p.src_size(), 2.0f);
    conv_sparse_backward_data_with(*kernels_.bwd_data, diff_src.data(), p.diff_dst.data(), p.w,
                                   p.shape, true);
    unguard(diff_src, "backward-data (accumulate)");
    std::vector<float> want = run_dense(p).diff_src;
    for (float& x : want) x += 2.0f;
    EXPECT_TRUE(close(diff_src, want, nullptr)) << c.str();
  }
}

// Accumulating gives the bits of computing the sum alone and adding it (the
// executor relies on this: a conv adds into its input's gradient in place
// unless a hook watches it, and the result must not depend on the hook),
// with one panel of output channels and with several.
TEST_P(ConvSparseKernelTest, BackwardDataAccumulatesLikeASeparateAdd) {
  for (const Case& c : {Case{9, 10, 7, 9, 3, 3, 1, 1, 1, 1, 1, 19, 0.5},
                        Case{16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, 21, 0.1},
                        Case{8, 6, 9, 8, 3, 3, 2, 2, 1, 1, 2, 16, 0.7}}) {
    const Problem p = make_problem(c, Values::kFloat, 11);
    std::mt19937 rng(5);
    const std::vector<float> before = random_values(p.src_size(), Values::kFloat, 0, rng);
    std::vector<float> alone = guarded(p.src_size(), 0.0f);
    conv_sparse_backward_data_with(*kernels_.bwd_data, alone.data(), p.diff_dst.data(), p.w,
                                   p.shape, false);
    std::vector<float> summed = guarded(p.src_size(), 0.0f);
    std::copy(before.begin(), before.end(), summed.begin());
    conv_sparse_backward_data_with(*kernels_.bwd_data, summed.data(), p.diff_dst.data(), p.w,
                                   p.shape, true);
    unguard(summed, "backward-data (accumulate)");
    int64_t differ = 0;
    for (int64_t k = 0; k < p.src_size(); ++k) {
      const float want = before[static_cast<std::size_t>(k)] + alone[static_cast<std::size_t>(k)];
      if (std::memcmp(&want, &summed[static_cast<std::size_t>(k)], sizeof(float)) != 0) ++differ;
    }
    EXPECT_EQ(differ, 0) << c.str() << " (" << p.w.bwd_panels << " panels)";
  }
}

// A ReLU's backward fused into backward-data (relu_output): the bits of
// backward-data (alone or accumulating) followed by the ReLU's own backward
// (keep where the ReLU's output is > 0), with one panel and with several.
TEST_P(ConvSparseKernelTest, BackwardDataAppliesAReluLikeItsOwnPass) {
  for (const Case& c : {Case{9, 10, 7, 9, 3, 3, 1, 1, 1, 1, 1, 19, 0.5},
                        Case{16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, 21, 0.1},
                        Case{8, 6, 9, 8, 3, 3, 2, 2, 1, 1, 2, 16, 0.7}}) {
    const Problem p = make_problem(c, Values::kFloat, 23);
    std::mt19937 rng(7);
    const std::vector<float> before = random_values(p.src_size(), Values::kFloat, 0, rng);
    // The ReLU's output: zero at about half the positions, positive elsewhere.
    std::vector<float> relu_out = random_values(p.src_size(), Values::kFloat, 0, rng);
    for (float& y : relu_out) y = y > 0.0f ? y : 0.0f;
    for (const bool accumulate : {false, true}) {
      std::vector<float> want = guarded(p.src_size(), 0.0f);
      if (accumulate) std::copy(before.begin(), before.end(), want.begin());
      conv_sparse_backward_data_with(*kernels_.bwd_data, want.data(), p.diff_dst.data(), p.w,
                                     p.shape, accumulate);
      for (int64_t k = 0; k < p.src_size(); ++k)
        if (!(relu_out[static_cast<std::size_t>(k)] > 0.0f)) want[static_cast<std::size_t>(k)] = 0;
      std::vector<float> got = guarded(p.src_size(), 0.0f);
      if (accumulate) std::copy(before.begin(), before.end(), got.begin());
      conv_sparse_backward_data_with(*kernels_.bwd_data, got.data(), p.diff_dst.data(), p.w,
                                     p.shape, accumulate, relu_out.data());
      unguard(got, "backward-data (ReLU)");
      int64_t differ = 0, zeroed = 0;
      for (int64_t k = 0; k < p.src_size(); ++k) {
        const auto i = static_cast<std::size_t>(k);
        if (std::memcmp(&want[i], &got[i], sizeof(float)) != 0) ++differ;
        zeroed += !(relu_out[i] > 0.0f);
      }
      EXPECT_EQ(differ, 0) << c.str() << " accumulate " << accumulate << " (" << p.w.bwd_panels
                           << " panels)";
      EXPECT_GT(zeroed, 0);
      EXPECT_LT(zeroed, p.src_size());
    }
  }
}

// The forward's batch statistics (conv_sparse_forward_stats): the output is
// the plain forward's bit for bit, and the mean and biased variance of each
// output channel match a two-pass double computation over that output, the
// same bits at one thread and at two; with one panel and several, partial
// batch vectors, a bias, groups and strides; none when the mean dwarfs the
// spread.
TEST_P(ConvSparseKernelTest, ForwardFormsTheBatchStatisticsOfItsOutput) {
  const int before = num_threads();
  for (const Case& c : {Case{16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, 21, 0.1},
                        Case{40, 12, 7, 9, 3, 3, 1, 1, 1, 1, 1, 70, 0.2},
                        Case{8, 6, 9, 8, 3, 3, 2, 2, 1, 1, 2, 16, 0.7}}) {
    const Problem p = make_problem(c, Values::kFloat, 31);
    for (const bool bias : {false, true}) {
      SCOPED_TRACE(c.str() + (bias ? " bias" : "") + " (" + std::to_string(p.w.fwd_panels) +
                   " panels)");
      const float* b = bias ? p.bias.data() : nullptr;
      std::vector<float> plain = guarded(p.dst_size(), 0.0f);
      conv_sparse_forward_with(*kernels_.fwd, plain.data(), p.src.data(), p.w, b, p.shape);
      std::vector<std::vector<double>> means, vars;
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        std::vector<float> dst = guarded(p.dst_size(), kGarbage);
        std::vector<double> mean(static_cast<std::size_t>(c.o), -1.0), var(mean);
        ASSERT_TRUE(conv_sparse_forward_stats_with(*kernels_.fwd, dst.data(), mean.data(),
                                                   var.data(), p.src.data(), p.w, b, p.shape));
        unguard(dst, "forward (statistics)");
        EXPECT_EQ(std::memcmp(dst.data(), plain.data(), dst.size() * sizeof(float)), 0);
        means.push_back(mean);
        vars.push_back(var);
      }
      EXPECT_EQ(means[0], means[1]) << "one thread vs two";
      EXPECT_EQ(vars[0], vars[1]) << "one thread vs two";
      const int64_t per_channel = p.dst_size() / c.o;
      for (int64_t o = 0; o < c.o; ++o) {
        const float* y = plain.data() + o * per_channel;
        double m = 0.0, q = 0.0;
        for (int64_t k = 0; k < per_channel; ++k) m += y[k];
        m /= static_cast<double>(per_channel);
        for (int64_t k = 0; k < per_channel; ++k) q += (y[k] - m) * (y[k] - m);
        const double v = q / static_cast<double>(per_channel);
        const auto i = static_cast<std::size_t>(o);
        EXPECT_NEAR(means[0][i], m, 1e-6 * (std::abs(m) + std::sqrt(v))) << "channel " << o;
        EXPECT_NEAR(vars[0][i], v, 1e-5 * v) << "channel " << o;
      }
    }
  }
  set_num_threads(before);
  // A mean far above the spread (a large bias): E[x^2] - E[x]^2 would lose
  // the variance, so no statistics are handed on; the output stays right.
  const Case c{16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, 21, 0.1};
  const Problem p = make_problem(c, Values::kFloat, 37);
  std::vector<float> bias(p.bias.size(), 1000.0f);
  std::vector<float> plain(static_cast<std::size_t>(p.dst_size())), dst(plain.size());
  std::vector<double> mean(static_cast<std::size_t>(c.o)), var(mean.size());
  conv_sparse_forward_with(*kernels_.fwd, plain.data(), p.src.data(), p.w, bias.data(), p.shape);
  EXPECT_FALSE(conv_sparse_forward_stats_with(*kernels_.fwd, dst.data(), mean.data(), var.data(),
                                              p.src.data(), p.w, bias.data(), p.shape));
  EXPECT_EQ(dst, plain);
}

// Padded channel planes (Conv2dShape::src_plane, dst_plane): every pass
// gives the packed layout's bits at every element, reads nothing between
// the planes (a sentinel there would change the sums) and writes nothing
// there; with one panel and several (backward-data's accumulate-and-ReLU
// path through a buffer), groups, strides and partial batch vectors.
TEST_P(ConvSparseKernelTest, PaddedChannelPlanesGiveThePackedResults) {
  for (const Case& c : {Case{9, 10, 7, 9, 3, 3, 1, 1, 1, 1, 1, 19, 0.5},
                        Case{16, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, 21, 0.1},
                        Case{8, 6, 9, 8, 3, 3, 2, 2, 1, 1, 2, 16, 0.7},
                        Case{4, 8, 6, 6, 1, 1, 1, 1, 0, 0, 1, 64, 1.0}}) {
    const Problem p = make_problem(c, Values::kFloat, 41);
    std::mt19937 rng(9);
    std::vector<float> relu_out = random_values(p.src_size(), Values::kFloat, 0, rng);
    for (float& y : relu_out) y = y > 0.0f ? y : 0.0f;
    const std::vector<float> before = random_values(p.src_size(), Values::kFloat, 0, rng);
    const int64_t src_plane = p.src_size() / c.c, dst_plane = p.dst_size() / c.o;
    for (const auto& [src_pad, dst_pad] : {std::pair<int64_t, int64_t>{16, 16}, {5, 23}}) {
      SCOPED_TRACE(c.str() + " padded by " + std::to_string(src_pad) + " / " +
                   std::to_string(dst_pad) + " (" + std::to_string(p.w.bwd_panels) +
                   " backward-data panels)");
      Conv2dShape padded = p.shape;
      padded.src_plane = src_plane + src_pad;
      padded.dst_plane = dst_plane + dst_pad;
      ASSERT_TRUE(padded.valid());
      const auto spread = [](const std::vector<float>& packed, int64_t channels, int64_t plane,
                             int64_t stride) {
        return testing::spread_planes(packed, channels, plane, stride, kSentinel);
      };
      const auto expect_same = [](const std::vector<float>& got, const std::vector<float>& want,
                                  int64_t channels, int64_t plane, int64_t stride,
                                  const char* what) {
        EXPECT_TRUE(testing::same_planes(got, want, channels, plane, stride, kSentinel)) << what;
      };
      const std::vector<float> src = spread(p.src, c.c, src_plane, padded.src_plane);
      const std::vector<float> diff_dst = spread(p.diff_dst, c.o, dst_plane, padded.dst_plane);

      std::vector<float> want(static_cast<std::size_t>(p.dst_size()));
      std::vector<double> mean(static_cast<std::size_t>(c.o)), var(mean), mean_p(mean), var_p(mean);
      const bool stats =
          conv_sparse_forward_stats_with(*kernels_.fwd, want.data(), mean.data(), var.data(),
                                         p.src.data(), p.w, p.bias.data(), p.shape);
      std::vector<float> dst = spread(want, c.o, dst_plane, padded.dst_plane);
      std::fill(dst.begin(), dst.end(), kSentinel);
      for (int64_t o = 0; o < c.o; ++o)
        std::fill_n(dst.begin() + o * padded.dst_plane, dst_plane, kGarbage);
      EXPECT_EQ(
          conv_sparse_forward_stats_with(*kernels_.fwd, dst.data(), mean_p.data(), var_p.data(),
                                         src.data(), p.w, p.bias.data(), padded),
          stats);
      expect_same(dst, want, c.o, dst_plane, padded.dst_plane, "forward");
      EXPECT_EQ(mean_p, mean);
      EXPECT_EQ(var_p, var);

      for (const bool accumulate : {false, true}) {
        std::vector<float> grad = before;
        conv_sparse_backward_data_with(*kernels_.bwd_data, grad.data(), p.diff_dst.data(), p.w,
                                       p.shape, accumulate, accumulate ? relu_out.data() : nullptr);
        std::vector<float> got = spread(before, c.c, src_plane, padded.src_plane);
        const std::vector<float> relu = spread(relu_out, c.c, src_plane, padded.src_plane);
        conv_sparse_backward_data_with(*kernels_.bwd_data, got.data(), diff_dst.data(), p.w, padded,
                                       accumulate, accumulate ? relu.data() : nullptr);
        expect_same(got, grad, c.c, src_plane, padded.src_plane,
                    accumulate ? "backward-data (accumulate, ReLU)" : "backward-data");
      }

      std::vector<float> dv(static_cast<std::size_t>(p.w.nnz), 0.0f), db(mean.size(), 0.0f);
      std::vector<float> dv_p(dv), db_p(db);
      conv_sparse_backward_weights_with(*kernels_.bwd_weights, dv.data(), db.data(),
                                        p.diff_dst.data(), p.src.data(), p.w, p.shape);
      conv_sparse_backward_weights_with(*kernels_.bwd_weights, dv_p.data(), db_p.data(),
                                        diff_dst.data(), src.data(), p.w, padded);
      EXPECT_EQ(std::memcmp(dv.data(), dv_p.data(), dv.size() * sizeof(float)), 0)
          << "backward-weights";
      EXPECT_EQ(std::memcmp(db.data(), db_p.data(), db.size() * sizeof(float)), 0)
          << "backward-weights (bias)";
    }
  }
}

TEST_P(ConvSparseKernelTest, BackwardWeightsAccumulatesAtTheStoredEntriesOnly) {
  const Case c{10, 12, 8, 9, 3, 3, 1, 1, 1, 1, 1, 21, 0.3};
  const Problem p = make_problem(c, Values::kExact, 13);
  std::vector<float> diff_values = guarded(p.w.nnz, 1.5f);
  std::vector<float> diff_bias = guarded(c.o, -0.5f);
  for (int pass = 0; pass < 2; ++pass)
    conv_sparse_backward_weights_with(*kernels_.bwd_weights, diff_values.data(), diff_bias.data(),
                                      p.diff_dst.data(), p.src.data(), p.w, p.shape);
  unguard(diff_values, "backward-weights");
  unguard(diff_bias, "backward-weights (bias)");
  const Outputs once = run_dense(p);
  for (std::size_t k = 0; k < diff_values.size(); ++k)
    ASSERT_EQ(diff_values[k], 1.5f + 2 * once.diff_values[k]) << k;
  for (std::size_t o = 0; o < diff_bias.size(); ++o)
    ASSERT_EQ(diff_bias[o], -0.5f + 2 * once.diff_bias[o]) << o;
}

TEST_P(ConvSparseKernelTest, NullBiasAndNullBiasGradient) {
  const Case c{7, 9, 6, 6, 3, 3, 1, 1, 1, 1, 1, 18, 0.5};
  Problem p = make_problem(c, Values::kExact, 17);
  std::vector<float> dst = guarded(p.dst_size(), kGarbage);
  conv_sparse_forward_with(*kernels_.fwd, dst.data(), p.src.data(), p.w, nullptr, p.shape);
  unguard(dst, "forward");
  std::fill(p.bias.begin(), p.bias.end(), 0.0f);
  EXPECT_TRUE(close(dst, run_dense(p).dst, nullptr));
  std::vector<float> diff_values(static_cast<std::size_t>(p.w.nnz), 0.0f);
  conv_sparse_backward_weights_with(*kernels_.bwd_weights, diff_values.data(), nullptr,
                                    p.diff_dst.data(), p.src.data(), p.w, p.shape);
  EXPECT_TRUE(close(diff_values, run_dense(p).diff_values, nullptr));
}

TEST_P(ConvSparseKernelTest, EmptyBatchTouchesNothing) {
  const Case c{4, 4, 5, 5, 3, 3, 1, 1, 1, 1, 1, 0, 1.0};
  const Problem p = make_problem(c, Values::kExact, 19);
  std::vector<float> values(static_cast<std::size_t>(p.w.nnz), 3.0f), bias(4, 3.0f);
  conv_sparse_forward_with(*kernels_.fwd, nullptr, nullptr, p.w, p.bias.data(), p.shape);
  conv_sparse_backward_data_with(*kernels_.bwd_data, nullptr, nullptr, p.w, p.shape, false);
  conv_sparse_backward_weights_with(*kernels_.bwd_weights, values.data(), bias.data(), nullptr,
                                    nullptr, p.w, p.shape);
  for (float v : values) EXPECT_EQ(v, 3.0f);
  for (float v : bias) EXPECT_EQ(v, 3.0f);
}

INSTANTIATE_TEST_SUITE_P(Isa, ConvSparseKernelTest,
                         ::testing::Values(Isa::kRef, Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(isa_name(info.param));
                         });

// --- the public operators and the registry ------------------------------------------

TEST(ConvSparseOperators, IsaArgumentPicksTheVariant) {
  const Case c{6, 7, 7, 8, 3, 3, 1, 1, 1, 1, 1, 9, 0.5};
  const Problem p = make_problem(c, Values::kExact, 23);
  const Outputs want = run_dense(p);
  for (Isa isa : {Isa::kRef, Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    std::vector<float> dst(static_cast<std::size_t>(p.dst_size()));
    std::vector<float> diff_src(static_cast<std::size_t>(p.src_size()));
    std::vector<float> diff_values(static_cast<std::size_t>(p.w.nnz), 0.0f);
    std::vector<float> diff_bias(static_cast<std::size_t>(c.o), 0.0f);
    conv_sparse_forward(dst.data(), p.src.data(), p.w, p.bias.data(), p.shape, isa);
    conv_sparse_backward_data(diff_src.data(), p.diff_dst.data(), p.w, p.shape, false, isa);
    conv_sparse_backward_weights(diff_values.data(), diff_bias.data(), p.diff_dst.data(),
                                 p.src.data(), p.w, p.shape, isa);
    EXPECT_TRUE(close(dst, want.dst, nullptr)) << isa_name(isa);
    EXPECT_TRUE(close(diff_src, want.diff_src, nullptr)) << isa_name(isa);
    EXPECT_TRUE(close(diff_values, want.diff_values, nullptr)) << isa_name(isa);
    EXPECT_TRUE(close(diff_bias, want.diff_bias, nullptr)) << isa_name(isa);
    const ConvSparseKernelNames names = conv_sparse_kernel_names(isa);
    const std::string suffix = std::string("__") + isa_name(isa);
    for (const char* name : {names.fwd, names.bwd_data, names.bwd_weights})
      EXPECT_NE(std::string(name).find(suffix), std::string::npos) << name;
  }
}

TEST(ConvSparseRegistry, ListsEndWithRefAndNamesSayTheIsa) {
  const auto check = [](const auto& list, const char* pass) {
    ASSERT_FALSE(list.empty());
    EXPECT_EQ(list.reference().isa, Isa::kRef);
    for (std::size_t k = 0; k < list.size(); ++k) {
      const std::string name = list[k].name;
      EXPECT_EQ(name.rfind(std::string("f32_conv_sparse_") + pass, 0), 0u) << name;
      EXPECT_NE(name.find(std::string("__") + isa_name(list[k].isa)), std::string::npos) << name;
      EXPECT_GT(list[k].tile_n, 0) << name;
      if (k > 0) {
        EXPECT_LE(list[k].isa, list[k - 1].isa) << "best ISA first: " << name;
      }
    }
  };
  check(conv_sparse_kernel_lists().fwd, "fwd");
  check(conv_sparse_kernel_lists().bwd_data, "bwd_data");
  check(conv_sparse_kernel_lists().bwd_weights, "bwd_weights");
}

TEST(ConvSparseRegistry, PicksTheBestKernelAtMostTheRequestedIsa) {
  const ConvSparseKernels r = conv_sparse_kernels(Isa::kRef);
  EXPECT_EQ(r.fwd->isa, Isa::kRef);
  EXPECT_EQ(r.bwd_data->isa, Isa::kRef);
  EXPECT_EQ(r.bwd_weights->isa, Isa::kRef);
  const Isa best = cpu_isa(cpu_info());
  const ConvSparseKernels k = conv_sparse_kernels(best);
  EXPECT_EQ(k.fwd->isa, best);
  EXPECT_EQ(k.bwd_data->isa, best);
  EXPECT_EQ(k.bwd_weights->isa, best);
  EXPECT_STREQ(conv_sparse_kernel_names(best).fwd, k.fwd->name);
}

}  // namespace
}  // namespace sparsetrain::kernels

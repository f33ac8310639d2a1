// Tests of the sparse linear kernels (kernels/linear_sparse): the compressed
// format, the oracle against plain dense loops, every registered micro-kernel
// against the oracle on swept shapes and densities, bit-identical reruns,
// value refresh, backward-weights accumulation at the nonzeros only, and the
// SPARSETRAIN_ISA switch.
#include <gtest/gtest.h>
#include <oneapi/tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kernels/common/cpu.h"
#include "kernels/linear_sparse/linear_sparse.h"
#include "nodes/kernel_tensors.h"
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

constexpr int64_t kBatches[] = {1, 15, 16, 17, 64, 255, 256};
constexpr int64_t kSizes[] = {1, 7, 16, 17, 33, 100};
// Fractions of nonzeros: empty, very sparse (empty rows and segments), the
// sparsities that matter (90%, 99%), and nearly dense to full.
constexpr double kDensities[] = {0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0};
// In exact mode every input is a small integer, so every partial sum is an
// integer far below 2^24 and any summation order gives the same float.
constexpr int kExactWeightMax = 3;
constexpr int kExactActivationMax = 4;

// Each position kept with probability `density` (all of them at 1, none at 0).
std::vector<uint8_t> random_mask(int64_t out, int64_t in, double density, std::mt19937& rng) {
  std::vector<uint8_t> m(static_cast<std::size_t>(out * in));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (uint8_t& x : m) x = u(rng) < density ? 1 : 0;
  return m;
}

struct Problem {
  int64_t out = 0, in = 0, batch = 0;
  LinearSparseWeights w;
  std::vector<float> dense_w;   // (O, I) with the pruned positions zeroed
  std::vector<float> src;       // (I, N)
  std::vector<float> diff_dst;  // (O, N)
  std::vector<float> bias;      // (O)
};

Problem make_problem(int64_t out, int64_t in, int64_t batch, double density, Values kind,
                     uint32_t seed, const LinearSparseOptions& options = {}) {
  std::mt19937 rng(seed);
  Problem p;
  p.out = out;
  p.in = in;
  p.batch = batch;
  const std::vector<float> weights = random_values(out * in, kind, kExactWeightMax, rng);
  const std::vector<uint8_t> mask = random_mask(out, in, density, rng);
  p.w = linear_sparse_pack(weights.data(), mask.data(), out, in, options);
  p.dense_w.resize(static_cast<std::size_t>(out * in));
  for (std::size_t k = 0; k < p.dense_w.size(); ++k) p.dense_w[k] = mask[k] ? weights[k] : 0.0f;
  p.src = random_values(in * batch, kind, kExactActivationMax, rng);
  p.diff_dst = random_values(out * batch, kind, kExactActivationMax, rng);
  p.bias = random_values(out, kind, kExactActivationMax, rng);
  return p;
}

LinearSparseWeights abs_of(const LinearSparseWeights& w) {
  LinearSparseWeights a = w;
  for (float& x : a.values) x = std::fabs(x);
  linear_sparse_sync_transposed(a);
  return a;
}

// --- plain dense computations from the densified weight ------------------------

std::vector<float> dense_forward(const Problem& p) {
  std::vector<float> dst(static_cast<std::size_t>(p.out * p.batch));
  for (int64_t o = 0; o < p.out; ++o)
    for (int64_t n = 0; n < p.batch; ++n) {
      float s = p.bias[o];
      for (int64_t i = 0; i < p.in; ++i) s += p.dense_w[o * p.in + i] * p.src[i * p.batch + n];
      dst[o * p.batch + n] = s;
    }
  return dst;
}

std::vector<float> dense_backward_data(const Problem& p) {
  std::vector<float> diff_src(static_cast<std::size_t>(p.in * p.batch));
  for (int64_t i = 0; i < p.in; ++i)
    for (int64_t n = 0; n < p.batch; ++n) {
      float s = 0.0f;
      for (int64_t o = 0; o < p.out; ++o)
        s += p.dense_w[o * p.in + i] * p.diff_dst[o * p.batch + n];
      diff_src[i * p.batch + n] = s;
    }
  return diff_src;
}

// The full dense weight gradient (O, I); compared at the nonzeros only.
std::vector<float> dense_backward_weights(const Problem& p) {
  std::vector<float> dw(static_cast<std::size_t>(p.out * p.in));
  for (int64_t o = 0; o < p.out; ++o)
    for (int64_t i = 0; i < p.in; ++i) {
      float s = 0.0f;
      for (int64_t n = 0; n < p.batch; ++n)
        s += p.diff_dst[o * p.batch + n] * p.src[i * p.batch + n];
      dw[o * p.in + i] = s;
    }
  return dw;
}

// --- running the three passes ----------------------------------------------------

struct Outputs {
  std::vector<float> dst, diff_src, diff_values, diff_bias;
};

struct Kernels {
  const SpmmKernel* fwd = nullptr;
  const SpmmKernel* bwd_data = nullptr;
  const SddmmKernel* bwd_weights = nullptr;
};

Outputs run_oracle(const Problem& p) {
  Outputs r;
  r.dst.assign(static_cast<std::size_t>(p.out * p.batch), -7.0f);
  r.diff_src.assign(static_cast<std::size_t>(p.in * p.batch), -7.0f);
  r.diff_values.assign(static_cast<std::size_t>(p.w.nnz), 0.0f);
  r.diff_bias.assign(static_cast<std::size_t>(p.out), 0.0f);
  linear_sparse_forward_oracle(r.dst.data(), p.src.data(), p.w, p.bias.data(), p.batch);
  linear_sparse_backward_data_oracle(r.diff_src.data(), p.diff_dst.data(), p.w, p.batch);
  linear_sparse_backward_weights_oracle(r.diff_values.data(), r.diff_bias.data(), p.diff_dst.data(),
                                        p.src.data(), p.w, p.batch);
  return r;
}

// Outputs start as garbage (overwritten passes) or zero (accumulated ones),
// each followed by a guard band that must come back untouched.
constexpr std::size_t kGuard = 64;
constexpr float kSentinel = 12345.0f;

std::vector<float> guarded(int64_t count, float fill) {
  std::vector<float> v(static_cast<std::size_t>(count) + kGuard, kSentinel);
  std::fill(v.begin(), v.end() - kGuard, fill);
  return v;
}

// Checks and strips the guard band.
void unguard(std::vector<float>& v, const char* what) {
  for (std::size_t k = v.size() - kGuard; k < v.size(); ++k)
    EXPECT_EQ(v[k], kSentinel) << what << " wrote past its end";
  v.resize(v.size() - kGuard);
}

Outputs run_plain(const Problem& p, const Kernels& k) {
  Outputs r;
  r.dst = guarded(p.out * p.batch, -7.0f);
  r.diff_src = guarded(p.in * p.batch, -7.0f);
  r.diff_values = guarded(p.w.nnz, 0.0f);
  r.diff_bias = guarded(p.out, 0.0f);
  linear_sparse_forward(r.dst.data(), p.src.data(), p.w, p.bias.data(), p.batch,
                        BatchLayout::kPlain, k.fwd);
  linear_sparse_backward_data(r.diff_src.data(), p.diff_dst.data(), p.w, p.batch,
                              BatchLayout::kPlain, false, k.bwd_data);
  linear_sparse_backward_weights(r.diff_values.data(), r.diff_bias.data(), p.diff_dst.data(),
                                 p.src.data(), p.w, p.batch, BatchLayout::kPlain, k.bwd_weights);
  unguard(r.dst, "forward");
  unguard(r.diff_src, "backward-data");
  unguard(r.diff_values, "backward-weights");
  unguard(r.diff_bias, "backward-weights (bias)");
  return r;
}

// Calls fn(index) for every padding position of a kBlocked (features, batch)
// buffer: the columns past the batch in its last block.
template <class Fn>
void for_each_padding(int64_t features, int64_t batch, Fn fn) {
  const int64_t width = linear_sparse_block_width(batch);
  const int64_t blocks =
      linear_sparse_blocked_size(features, batch) / std::max<int64_t>(features * width, 1);
  for (int64_t t = 0; t < blocks; ++t)
    for (int64_t f = 0; f < features; ++f)
      for (int64_t j = std::max<int64_t>(batch - t * width, 0); j < width; ++j)
        fn(static_cast<std::size_t>((t * features + f) * width + j));
}

// Inputs in the kBlocked layout with NaN in their padding (which must never
// reach a result); outputs pre-filled with the sentinel, whose padding must
// come back untouched.
std::vector<float> blocked_input(const std::vector<float>& plain, int64_t features, int64_t batch) {
  std::vector<float> b(
      static_cast<std::size_t>(linear_sparse_blocked_size(features, batch)) + kGuard, kSentinel);
  linear_sparse_to_blocked(b.data(), plain.data(), features, batch);
  for_each_padding(features, batch,
                   [&](std::size_t i) { b[i] = std::numeric_limits<float>::quiet_NaN(); });
  return b;
}

std::vector<float> blocked_output(int64_t features, int64_t batch) {
  return std::vector<float>(
      static_cast<std::size_t>(linear_sparse_blocked_size(features, batch)) + kGuard, kSentinel);
}

std::vector<float> unblock_output(std::vector<float>& b, int64_t features, int64_t batch,
                                  const char* what) {
  for_each_padding(features, batch, [&](std::size_t i) {
    EXPECT_EQ(b[i], kSentinel) << what << " wrote into the padding";
  });
  unguard(b, what);
  std::vector<float> plain(static_cast<std::size_t>(features * batch));
  linear_sparse_from_blocked(plain.data(), b.data(), features, batch);
  return plain;
}

Outputs run_blocked(const Problem& p, const Kernels& k) {
  const std::vector<float> src = blocked_input(p.src, p.in, p.batch);
  const std::vector<float> diff_dst = blocked_input(p.diff_dst, p.out, p.batch);
  std::vector<float> dst = blocked_output(p.out, p.batch);
  std::vector<float> diff_src = blocked_output(p.in, p.batch);
  Outputs r;
  r.diff_values = guarded(p.w.nnz, 0.0f);
  r.diff_bias = guarded(p.out, 0.0f);
  linear_sparse_forward(dst.data(), src.data(), p.w, p.bias.data(), p.batch, BatchLayout::kBlocked,
                        k.fwd);
  linear_sparse_backward_data(diff_src.data(), diff_dst.data(), p.w, p.batch, BatchLayout::kBlocked,
                              false, k.bwd_data);
  linear_sparse_backward_weights(r.diff_values.data(), r.diff_bias.data(), diff_dst.data(),
                                 src.data(), p.w, p.batch, BatchLayout::kBlocked, k.bwd_weights);
  r.dst = unblock_output(dst, p.out, p.batch, "forward");
  r.diff_src = unblock_output(diff_src, p.in, p.batch, "backward-data");
  unguard(r.diff_values, "backward-weights");
  unguard(r.diff_bias, "backward-weights (bias)");
  return r;
}

Outputs run_kernels(const Problem& p, const Kernels& k, BatchLayout layout = BatchLayout::kPlain) {
  return layout == BatchLayout::kPlain ? run_plain(p, k) : run_blocked(p, k);
}

// The oracle on |inputs|: the per-element sum of |terms|, to scale tolerances.
Outputs magnitudes(const Problem& p) {
  Problem a = p;
  a.w = abs_of(p.w);
  a.src = abs_of(p.src);
  a.diff_dst = abs_of(p.diff_dst);
  a.bias = abs_of(p.bias);
  return run_oracle(a);
}

void expect_outputs_match(const Outputs& got, const Outputs& want, const Outputs* scale,
                          const std::string& what) {
  EXPECT_TRUE(close(got.dst, want.dst, scale ? &scale->dst : nullptr)) << what << " forward";
  EXPECT_TRUE(close(got.diff_src, want.diff_src, scale ? &scale->diff_src : nullptr))
      << what << " backward-data";
  EXPECT_TRUE(close(got.diff_values, want.diff_values, scale ? &scale->diff_values : nullptr))
      << what << " backward-weights";
  EXPECT_TRUE(close(got.diff_bias, want.diff_bias, scale ? &scale->diff_bias : nullptr))
      << what << " backward-weights (bias)";
}

std::string describe(const Problem& p, double density, const char* panels) {
  return "O=" + std::to_string(p.out) + " I=" + std::to_string(p.in) +
         " N=" + std::to_string(p.batch) + " density=" + std::to_string(density) +
         " nnz=" + std::to_string(p.w.nnz) + " panels=" + panels;
}

// Small forced panels put several panel seams inside even the smallest shapes.
const LinearSparseOptions kAutoPanels{};
const LinearSparseOptions kSmallPanels{5, 7};

// --- the format ------------------------------------------------------------------

TEST(LinearSparseFormat, IndexIsConsistentAndRoundTrips) {
  for (const LinearSparseOptions& options : {kAutoPanels, kSmallPanels}) {
    const Problem p = make_problem(37, 53, 1, 0.3, Values::kFloat, 1, options);
    const LinearSparseWeights& w = p.w;
    for (const SparsePanels* s : {&w.fwd, &w.bwd}) {
      ASSERT_EQ(s->ptr.size(), static_cast<std::size_t>(s->num_panels * s->rows + 1));
      EXPECT_EQ(s->ptr.front(), 0u);
      EXPECT_EQ(s->ptr.back(), static_cast<uint32_t>(w.nnz));
      EXPECT_TRUE(std::is_sorted(s->ptr.begin(), s->ptr.end()));
      for (int64_t q = 0; q < s->num_panels; ++q)
        for (int64_t r = 0; r < s->rows; ++r)
          for (uint32_t k = s->row_ptr(q)[r]; k < s->row_ptr(q)[r + 1]; ++k) {
            EXPECT_LT(s->col[k], s->panel_width(q));
            if (k > s->row_ptr(q)[r]) {
              EXPECT_LT(s->col[k - 1], s->col[k]);
            }
          }
    }
    std::vector<uint32_t> perm = w.bwd_perm;
    std::sort(perm.begin(), perm.end());
    std::vector<uint32_t> identity(perm.size());
    std::iota(identity.begin(), identity.end(), 0u);
    EXPECT_EQ(perm, identity);
    for (std::size_t k = 0; k < w.bwd_values.size(); ++k)
      EXPECT_EQ(w.bwd_values[k], w.values[w.bwd_perm[k]]);

    std::vector<float> dense(p.dense_w.size());
    linear_sparse_unpack(w, dense.data());
    EXPECT_EQ(dense, p.dense_w);
    std::vector<uint8_t> mask(dense.size());
    linear_sparse_mask(w, mask.data());
    EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), w.nnz);
  }
}

TEST(LinearSparseFormat, SmallPanelsAreHonoured) {
  const Problem p = make_problem(20, 30, 1, 0.5, Values::kFloat, 2, kSmallPanels);
  EXPECT_EQ(p.w.fwd.panel_cols, 5);
  EXPECT_EQ(p.w.fwd.num_panels, 6);
  EXPECT_EQ(p.w.bwd.panel_cols, 7);
  EXPECT_EQ(p.w.bwd.num_panels, 3);
}

TEST(LinearSparseFormat, ThresholdKeepsLargerMagnitudes) {
  const std::vector<float> weights = {0.5f, -2.0f, 0.0f, 1.0f, -1.0f, 3.0f};
  const LinearSparseWeights w = linear_sparse_pack_threshold(weights.data(), 2, 3, 0.9f);
  EXPECT_EQ(w.nnz, 4);
  std::vector<float> dense(6);
  linear_sparse_unpack(w, dense.data());
  EXPECT_EQ(dense, (std::vector<float>{0.0f, -2.0f, 0.0f, 1.0f, -1.0f, 3.0f}));
  // Threshold 0 keeps exactly the nonzeros.
  EXPECT_EQ(linear_sparse_pack_threshold(weights.data(), 2, 3, 0.0f).nnz, 5);
}

TEST(LinearSparseFormat, ExplicitZeroUnderTheMaskStaysANonzero) {
  const std::vector<float> weights = {0.0f, 1.0f};
  const std::vector<uint8_t> mask = {1, 1};
  EXPECT_EQ(linear_sparse_pack(weights.data(), mask.data(), 1, 2).nnz, 2);
}

TEST(LinearSparseFormat, TensorFrontEndsValidateShapes) {
  const Tensor weights = Tensor::full({3, 4}, 1.0f);
  EXPECT_THROW(linear_sparse_pack(weights, Tensor::full({4, 3}, 1.0f)), Error);
  EXPECT_THROW(linear_sparse_pack_threshold(Tensor::full({12}, 1.0f), 0.0f), Error);
  EXPECT_THROW(linear_sparse_pack_threshold(weights, -1.0f), Error);
  Tensor mask = Tensor::zeros({3, 4});
  mask[5] = 1.0f;
  const LinearSparseWeights w = linear_sparse_pack(weights, mask);
  EXPECT_EQ(w.nnz, 1);
  EXPECT_EQ(linear_sparse_unpack(w)[5], 1.0f);
  EXPECT_EQ(linear_sparse_unpack(w)[4], 0.0f);
}

TEST(LinearSparseFormat, MemoryGrowsWithTheNonzeros) {
  const Problem dense = make_problem(64, 64, 1, 1.0, Values::kFloat, 3);
  const Problem sparse = make_problem(64, 64, 1, 0.05, Values::kFloat, 3);
  EXPECT_LT(sparse.w.bytes() * 5, dense.w.bytes());
}

TEST(LinearSparseLayout, BlockWidthsAndRoundTrip) {
  EXPECT_EQ(linear_sparse_block_width(1), 16);
  EXPECT_EQ(linear_sparse_block_width(16), 16);
  EXPECT_EQ(linear_sparse_block_width(17), 32);
  EXPECT_EQ(linear_sparse_block_width(48), 48);
  EXPECT_EQ(linear_sparse_block_width(64), 64);
  EXPECT_EQ(linear_sparse_block_width(255), 64);
  EXPECT_EQ(linear_sparse_blocked_size(3, 65), 3 * 128);
  std::mt19937 rng(41);
  for (int64_t batch : kBatches) {
    const int64_t features = 7;
    const std::vector<float> plain = random_values(features * batch, Values::kFloat, 0, rng);
    std::vector<float> blocked(
        static_cast<std::size_t>(linear_sparse_blocked_size(features, batch)));
    linear_sparse_to_blocked(blocked.data(), plain.data(), features, batch);
    std::vector<float> back(plain.size());
    linear_sparse_from_blocked(back.data(), blocked.data(), features, batch);
    EXPECT_EQ(back, plain) << "batch " << batch;
    // Column n of feature f sits in block n / W, row f, column n % W.
    const int64_t width = linear_sparse_block_width(batch);
    const int64_t n = batch - 1, f = features - 1;
    EXPECT_EQ(blocked[static_cast<std::size_t>(((n / width) * features + f) * width + n % width)],
              plain[static_cast<std::size_t>(f * batch + n)]);
    // A batch of whole vectors up to 64 is one block: the same as plain.
    if (batch % 16 == 0 && batch <= 64) {
      EXPECT_EQ(blocked, plain);
    }
  }
}

// --- the oracle against plain dense loops ------------------------------------------

TEST(LinearSparseOracle, MatchesDenseComputation) {
  for (Values kind : {Values::kExact, Values::kFloat}) {
    for (double density : kDensities) {
      for (const LinearSparseOptions& options : {kAutoPanels, kSmallPanels}) {
        const Problem p = make_problem(33, 17, 15, density, kind, 11, options);
        const Outputs o = run_oracle(p);
        const Outputs scale = magnitudes(p);
        const bool exact = kind == Values::kExact;
        const std::string what = describe(p, density, options.fwd_panel_cols ? "small" : "auto");
        EXPECT_TRUE(close(o.dst, dense_forward(p), exact ? nullptr : &scale.dst)) << what;
        EXPECT_TRUE(close(o.diff_src, dense_backward_data(p), exact ? nullptr : &scale.diff_src))
            << what;
        // The SDDMM result, scattered, equals the dense gradient at the nonzeros.
        std::vector<float> got(p.dense_w.size()), want = dense_backward_weights(p);
        linear_sparse_scatter(p.w, o.diff_values.data(), got.data());
        std::vector<uint8_t> mask(p.dense_w.size());
        linear_sparse_mask(p.w, mask.data());
        for (std::size_t k = 0; k < want.size(); ++k) {
          if (!mask[k]) want[k] = 0.0f;
        }
        std::vector<float> scale_dense(p.dense_w.size());
        linear_sparse_scatter(p.w, scale.diff_values.data(), scale_dense.data());
        EXPECT_TRUE(close(got, want, exact ? nullptr : &scale_dense)) << what;
        std::vector<float> bias_grad(static_cast<std::size_t>(p.out), 0.0f);
        for (int64_t r = 0; r < p.out; ++r)
          for (int64_t n = 0; n < p.batch; ++n) bias_grad[r] += p.diff_dst[r * p.batch + n];
        EXPECT_TRUE(close(o.diff_bias, bias_grad, exact ? nullptr : &scale.diff_bias)) << what;
      }
    }
  }
}

// --- every registered kernel against the oracle ---------------------------------------

// One test instance per ISA; the kernels of that ISA from each op's list.
class LinearSparseKernelTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam())) GTEST_SKIP() << "this CPU lacks " << isa_name(GetParam());
    for (const SpmmKernel& k : linear_sparse_kernel_lists().fwd)
      if (k.isa == GetParam()) kernels_.fwd = &k;
    for (const SpmmKernel& k : linear_sparse_kernel_lists().bwd_data)
      if (k.isa == GetParam()) kernels_.bwd_data = &k;
    for (const SddmmKernel& k : linear_sparse_kernel_lists().bwd_weights)
      if (k.isa == GetParam()) kernels_.bwd_weights = &k;
    ASSERT_NE(kernels_.fwd, nullptr);
    ASSERT_NE(kernels_.bwd_data, nullptr);
    ASSERT_NE(kernels_.bwd_weights, nullptr);
  }
  Kernels kernels_;
};

void sweep(const Kernels& kernels, Values kind, int64_t batch, BatchLayout layout) {
  uint32_t seed = 100;
  for (int64_t out : kSizes)
    for (int64_t in : kSizes)
      for (double density : kDensities)
        for (const LinearSparseOptions& options : {kAutoPanels, kSmallPanels}) {
          const Problem p = make_problem(out, in, batch, density, kind, ++seed, options);
          const Outputs want = run_oracle(p);
          const Outputs got = run_kernels(p, kernels, layout);
          const std::string what = describe(p, density, options.fwd_panel_cols ? "small" : "auto") +
                                   (layout == BatchLayout::kBlocked ? " blocked" : " plain");
          if (kind == Values::kExact) {
            expect_outputs_match(got, want, nullptr, what);
          } else {
            const Outputs scale = magnitudes(p);
            expect_outputs_match(got, want, &scale, what);
          }
          if (::testing::Test::HasFailure()) return;  // one report, not thousands
        }
}

TEST_P(LinearSparseKernelTest, ExactOnSmallIntegers) {
  for (int64_t batch : kBatches) sweep(kernels_, Values::kExact, batch, BatchLayout::kPlain);
}

TEST_P(LinearSparseKernelTest, CloseOnFloats) {
  for (int64_t batch : kBatches) sweep(kernels_, Values::kFloat, batch, BatchLayout::kPlain);
}

TEST_P(LinearSparseKernelTest, BlockedLayoutExactOnSmallIntegers) {
  for (int64_t batch : kBatches) sweep(kernels_, Values::kExact, batch, BatchLayout::kBlocked);
}

TEST_P(LinearSparseKernelTest, LargerShapesWithAutomaticPanels) {
  // Large enough for several panels, batch tiles and row chunks per thread.
  for (double density : {0.02, 0.1, 0.5}) {
    const Problem p = make_problem(300, 700, 130, density, Values::kExact, 7);
    const Outputs want = run_oracle(p);
    expect_outputs_match(run_kernels(p, kernels_), want, nullptr, describe(p, density, "auto"));
    expect_outputs_match(run_kernels(p, kernels_, BatchLayout::kBlocked), want, nullptr,
                         describe(p, density, "auto") + " blocked");
  }
}

TEST_P(LinearSparseKernelTest, SidesWiderThanSixteenBitColumns) {
  // More than 65536 columns in either direction: several panels, each with
  // 16-bit local columns.
  for (const auto& [out, in] : {std::pair<int64_t, int64_t>{3, 70000}, {70000, 3}}) {
    const Problem p = make_problem(out, in, 17, 0.01, Values::kExact, 43);
    EXPECT_GE(out > in ? p.w.bwd.num_panels : p.w.fwd.num_panels, 2);
    expect_outputs_match(run_kernels(p, kernels_), run_oracle(p), nullptr,
                         describe(p, 0.01, "auto"));
  }
}

TEST_P(LinearSparseKernelTest, UnevenRowsStillMatch) {
  // The first rows hold every nonzero: the row chunks, balanced by nonzeros,
  // are then very unequal in rows.
  std::mt19937 rng(47);
  const int64_t out = 200, in = 300, batch = 70;
  std::vector<uint8_t> mask(static_cast<std::size_t>(out * in), 0);
  std::fill(mask.begin(), mask.begin() + 10 * in, uint8_t{1});
  Problem p;
  p.out = out;
  p.in = in;
  p.batch = batch;
  p.dense_w = random_values(out * in, Values::kExact, kExactWeightMax, rng);
  p.w = linear_sparse_pack(p.dense_w.data(), mask.data(), out, in);
  for (std::size_t k = 0; k < mask.size(); ++k)
    if (!mask[k]) p.dense_w[k] = 0.0f;
  p.src = random_values(in * batch, Values::kExact, kExactActivationMax, rng);
  p.diff_dst = random_values(out * batch, Values::kExact, kExactActivationMax, rng);
  p.bias = random_values(out, Values::kExact, kExactActivationMax, rng);
  const oneapi::tbb::global_control two(oneapi::tbb::global_control::max_allowed_parallelism, 2);
  const Outputs want = run_oracle(p);
  expect_outputs_match(run_kernels(p, kernels_), want, nullptr, "uneven rows");
  expect_outputs_match(run_kernels(p, kernels_, BatchLayout::kBlocked), want, nullptr,
                       "uneven rows, blocked");
  EXPECT_TRUE(close(want.dst, dense_forward(p), nullptr));
}

TEST_P(LinearSparseKernelTest, RerunsAreBitIdentical) {
  const Problem p = make_problem(250, 190, 77, 0.1, Values::kFloat, 5);
  const oneapi::tbb::global_control two(oneapi::tbb::global_control::max_allowed_parallelism, 2);
  for (BatchLayout layout : {BatchLayout::kPlain, BatchLayout::kBlocked}) {
    const Outputs first = run_kernels(p, kernels_, layout);
    for (int rerun = 0; rerun < 3; ++rerun)
      expect_outputs_match(run_kernels(p, kernels_, layout), first, nullptr, "rerun");
    // The work split does not depend on the thread count either.
    const oneapi::tbb::global_control one(oneapi::tbb::global_control::max_allowed_parallelism, 1);
    expect_outputs_match(run_kernels(p, kernels_, layout), first, nullptr, "one thread");
  }
}

TEST_P(LinearSparseKernelTest, BackwardDataCanAccumulate) {
  const Problem p = make_problem(40, 30, 33, 0.5, Values::kExact, 9, kSmallPanels);
  std::vector<float> diff_src(static_cast<std::size_t>(p.in * p.batch), 2.0f);
  linear_sparse_backward_data(diff_src.data(), p.diff_dst.data(), p.w, p.batch, BatchLayout::kPlain,
                              true, kernels_.bwd_data);
  std::vector<float> want = dense_backward_data(p);
  for (float& x : want) x += 2.0f;
  EXPECT_TRUE(close(diff_src, want, nullptr));
}

TEST_P(LinearSparseKernelTest, BackwardWeightsAccumulatesAtTheNonzerosOnly) {
  const Problem p = make_problem(45, 38, 70, 0.3, Values::kExact, 13, kSmallPanels);
  const std::size_t nnz = static_cast<std::size_t>(p.w.nnz);
  // Guards after the nnz gradients and the O bias gradients must stay put.
  std::vector<float> diff_values(nnz + kGuard, kSentinel);
  std::vector<float> diff_bias(static_cast<std::size_t>(p.out) + kGuard, kSentinel);
  std::fill(diff_values.begin(), diff_values.begin() + nnz, 1.5f);
  std::fill(diff_bias.begin(), diff_bias.begin() + p.out, -0.5f);
  for (int pass = 0; pass < 2; ++pass)
    linear_sparse_backward_weights(diff_values.data(), diff_bias.data(), p.diff_dst.data(),
                                   p.src.data(), p.w, p.batch, BatchLayout::kPlain,
                                   kernels_.bwd_weights);
  const Outputs once = run_oracle(p);
  for (std::size_t k = 0; k < nnz; ++k) ASSERT_EQ(diff_values[k], 1.5f + 2 * once.diff_values[k]);
  for (std::size_t k = nnz; k < diff_values.size(); ++k) ASSERT_EQ(diff_values[k], kSentinel);
  for (int64_t o = 0; o < p.out; ++o) ASSERT_EQ(diff_bias[o], -0.5f + 2 * once.diff_bias[o]);
  for (std::size_t k = p.out; k < diff_bias.size(); ++k) ASSERT_EQ(diff_bias[k], kSentinel);
}

TEST_P(LinearSparseKernelTest, NullBiasAndNullBiasGradient) {
  Problem p = make_problem(21, 19, 40, 0.5, Values::kExact, 17);
  std::vector<float> dst(static_cast<std::size_t>(p.out * p.batch));
  linear_sparse_forward(dst.data(), p.src.data(), p.w, nullptr, p.batch, BatchLayout::kPlain,
                        kernels_.fwd);
  std::fill(p.bias.begin(), p.bias.end(), 0.0f);
  EXPECT_TRUE(close(dst, dense_forward(p), nullptr));
  std::vector<float> diff_values(static_cast<std::size_t>(p.w.nnz), 0.0f);
  linear_sparse_backward_weights(diff_values.data(), nullptr, p.diff_dst.data(), p.src.data(), p.w,
                                 p.batch, BatchLayout::kPlain, kernels_.bwd_weights);
  EXPECT_TRUE(close(diff_values, run_oracle(p).diff_values, nullptr));
}

TEST_P(LinearSparseKernelTest, AllZeroWeightAndEmptyShapes) {
  // density 0: forward gives the bias, backward-data zeros, no weight gradient.
  const Problem p = make_problem(16, 17, 17, 0.0, Values::kExact, 19);
  ASSERT_EQ(p.w.nnz, 0);
  const Outputs got = run_kernels(p, kernels_);
  for (int64_t o = 0; o < p.out; ++o)
    for (int64_t n = 0; n < p.batch; ++n) ASSERT_EQ(got.dst[o * p.batch + n], p.bias[o]);
  for (float x : got.diff_src) ASSERT_EQ(x, 0.0f);
  EXPECT_TRUE(close(got.diff_bias, run_oracle(p).diff_bias, nullptr));
  // No input features: forward is the bias alone.
  const Problem no_in = make_problem(5, 0, 9, 1.0, Values::kExact, 23);
  const Outputs got_no_in = run_kernels(no_in, kernels_);
  for (int64_t o = 0; o < no_in.out; ++o) ASSERT_EQ(got_no_in.dst[o * no_in.batch], no_in.bias[o]);
  // No outputs, or an empty batch: nothing to do, nothing touched.
  const Problem no_out = make_problem(0, 6, 9, 1.0, Values::kExact, 29);
  const Outputs got_no_out = run_kernels(no_out, kernels_);
  for (float x : got_no_out.diff_src) ASSERT_EQ(x, 0.0f);
  const Problem no_batch = make_problem(6, 6, 0, 1.0, Values::kExact, 31);
  run_kernels(no_batch, kernels_);
}

TEST_P(LinearSparseKernelTest, RefreshReplacesValuesWithoutRebuildingTheIndex) {
  std::mt19937 rng(37);
  const int64_t out = 50, in = 70, batch = 40;
  const std::vector<uint8_t> mask = random_mask(out, in, 0.2, rng);
  const std::vector<float> w1 = random_values(out * in, Values::kExact, kExactWeightMax, rng);
  const std::vector<float> w2 = random_values(out * in, Values::kExact, kExactWeightMax, rng);
  LinearSparseWeights w = linear_sparse_pack(w1.data(), mask.data(), out, in, kSmallPanels);
  const LinearSparseWeights fresh =
      linear_sparse_pack(w2.data(), mask.data(), out, in, kSmallPanels);
  const std::vector<uint16_t> col = w.fwd.col;
  const std::vector<uint16_t> bwd_col = w.bwd.col;
  const uint16_t* col_storage = w.fwd.col.data();
  linear_sparse_refresh(w, w2.data());
  EXPECT_EQ(w.fwd.col, col);
  EXPECT_EQ(w.bwd.col, bwd_col);
  EXPECT_EQ(w.fwd.col.data(), col_storage);
  EXPECT_EQ(w.values, fresh.values);
  EXPECT_EQ(w.bwd_values, fresh.bwd_values);

  // An in-place update of the values (what an optimizer does) reaches
  // backward-data after sync_transposed.
  for (float& v : w.values) v *= 2.0f;
  linear_sparse_sync_transposed(w);
  const std::vector<float> src = random_values(in * batch, Values::kExact, 4, rng);
  const std::vector<float> dd = random_values(out * batch, Values::kExact, 4, rng);
  std::vector<float> got(static_cast<std::size_t>(in * batch));
  std::vector<float> want(got.size());
  linear_sparse_backward_data(got.data(), dd.data(), w, batch, BatchLayout::kPlain, false,
                              kernels_.bwd_data);
  linear_sparse_backward_data(want.data(), dd.data(), fresh, batch, BatchLayout::kPlain, false,
                              kernels_.bwd_data);
  for (float& x : want) x *= 2.0f;
  EXPECT_TRUE(close(got, want, nullptr));
}

INSTANTIATE_TEST_SUITE_P(Isa, LinearSparseKernelTest,
                         ::testing::Values(Isa::kRef, Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(isa_name(info.param));
                         });

// --- the registry and the ISA switch -----------------------------------------------------

TEST(LinearSparseRegistry, ListsEndWithRefAndNamesSayTheIsa) {
  const auto check = [](const auto& list) {
    ASSERT_FALSE(list.empty());
    EXPECT_EQ(list.reference().isa, Isa::kRef);
    for (std::size_t k = 0; k < list.size(); ++k) {
      const std::string name = list[k].name;
      EXPECT_NE(name.find(std::string("__") + isa_name(list[k].isa)), std::string::npos) << name;
      EXPECT_GT(list[k].tile_n, 0) << name;
      EXPECT_GT(list[k].vec, 0) << name;
      if (k > 0) {
        EXPECT_LE(list[k].isa, list[k - 1].isa) << "best ISA first: " << name;
      }
    }
  };
  check(linear_sparse_kernel_lists().fwd);
  check(linear_sparse_kernel_lists().bwd_data);
  check(linear_sparse_kernel_lists().bwd_weights);
}

TEST(LinearSparseRegistry, PicksTheBestKernelAtMostTheRequestedIsa) {
  EXPECT_EQ(linear_sparse_kernels(Isa::kRef).fwd->isa, Isa::kRef);
  EXPECT_EQ(linear_sparse_kernels(Isa::kRef).bwd_weights->isa, Isa::kRef);
  const Isa best = cpu_isa(cpu_info());
  const LinearSparseKernels k = linear_sparse_kernels(best);
  EXPECT_EQ(k.fwd->isa, best);
  EXPECT_EQ(k.bwd_data->isa, best);
  EXPECT_EQ(k.bwd_weights->isa, best);
}

CpuInfo fake_cpu(Isa isa) {
  CpuInfo cpu;
  cpu.model = "Test CPU";
  if (isa >= Isa::kAvx2) cpu.avx = cpu.avx2 = cpu.fma = cpu.f16c = cpu.bmi2 = true;
  if (isa >= Isa::kAvx512)
    cpu.avx512f = cpu.avx512cd = cpu.avx512bw = cpu.avx512dq = cpu.avx512vl = true;
  return cpu;
}

std::string error_of(const char* value, const CpuInfo& cpu) {
  try {
    resolve_isa(value, cpu);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Isa, ParsesSparsetrainIsa) {
  const CpuInfo avx512 = fake_cpu(Isa::kAvx512);
  const CpuInfo avx2 = fake_cpu(Isa::kAvx2);
  const CpuInfo plain = fake_cpu(Isa::kRef);
  EXPECT_EQ(resolve_isa(nullptr, avx512), Isa::kAvx512);
  EXPECT_EQ(resolve_isa("", avx2), Isa::kAvx2);
  EXPECT_EQ(resolve_isa(nullptr, plain), Isa::kRef);
  EXPECT_EQ(resolve_isa("ref", avx512), Isa::kRef);
  EXPECT_EQ(resolve_isa("avx2", avx512), Isa::kAvx2);
  EXPECT_EQ(resolve_isa("avx512", avx512), Isa::kAvx512);
  EXPECT_EQ(resolve_isa("avx2", avx2), Isa::kAvx2);

  // Unknown value: names the variable, the value and the accepted spellings.
  const std::string unknown = error_of("AVX-512", avx512);
  EXPECT_NE(unknown.find("SPARSETRAIN_ISA"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("AVX-512"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("ref, avx2, avx512"), std::string::npos) << unknown;
  // An ISA the CPU lacks: names the variable and what the CPU supports.
  const std::string lacking = error_of("avx512", avx2);
  EXPECT_NE(lacking.find("SPARSETRAIN_ISA"), std::string::npos) << lacking;
  EXPECT_NE(lacking.find("at most avx2"), std::string::npos) << lacking;
  EXPECT_NE(error_of("avx2", plain).find("SPARSETRAIN_ISA"), std::string::npos);
}

TEST(Isa, NamesAndFeatureRules) {
  EXPECT_STREQ(isa_name(Isa::kRef), "ref");
  EXPECT_STREQ(isa_name(Isa::kAvx2), "avx2");
  EXPECT_STREQ(isa_name(Isa::kAvx512), "avx512");
  CpuInfo no_fma = fake_cpu(Isa::kAvx2);
  no_fma.fma = false;
  EXPECT_FALSE(isa_supported(Isa::kAvx2, no_fma));
  CpuInfo no_vl = fake_cpu(Isa::kAvx512);
  no_vl.avx512vl = false;
  EXPECT_FALSE(isa_supported(Isa::kAvx512, no_vl));
  EXPECT_EQ(cpu_isa(no_vl), Isa::kAvx2);
  EXPECT_TRUE(isa_supported(Isa::kRef, fake_cpu(Isa::kRef)));
}

// Sets SPARSETRAIN_ISA for one scope and restores the previous value.
class ScopedIsaEnv {
 public:
  explicit ScopedIsaEnv(const char* value) {
    if (const char* old = std::getenv("SPARSETRAIN_ISA")) old_ = old;
    setenv("SPARSETRAIN_ISA", value, 1);
  }
  ~ScopedIsaEnv() {
    if (old_)
      setenv("SPARSETRAIN_ISA", old_->c_str(), 1);
    else
      unsetenv("SPARSETRAIN_ISA");
  }

 private:
  std::optional<std::string> old_;
};

TEST(Isa, EnvironmentDrivesTheDispatcher) {
  {
    const ScopedIsaEnv env("ref");
    EXPECT_EQ(active_isa(), Isa::kRef);
    EXPECT_EQ(best_isa(), Isa::kRef);
    EXPECT_EQ(linear_sparse_default_kernels().fwd->isa, Isa::kRef);
  }
  {
    const ScopedIsaEnv env("definitely-not-an-isa");
    EXPECT_THROW(active_isa(), Error);
    // The kernels' path never throws: it reports once and uses the CPU's best.
    EXPECT_EQ(best_isa(), cpu_isa(cpu_info()));
  }
  if (isa_supported(Isa::kAvx2)) {
    const ScopedIsaEnv env("avx2");
    EXPECT_EQ(linear_sparse_default_kernels().bwd_weights->isa, Isa::kAvx2);
  }
}

TEST(Isa, DetectsThisCpuConsistently) {
  const CpuInfo& cpu = cpu_info();
  EXPECT_FALSE(cpu.vendor.empty());
  // Feature implications every real CPU satisfies.
  if (cpu.avx512f) {
    EXPECT_TRUE(cpu.avx2);
  }
  if (cpu.avx2) {
    EXPECT_TRUE(cpu.avx);
  }
  EXPECT_TRUE(isa_supported(cpu_isa(cpu)));
}

}  // namespace
}  // namespace sparsetrain::kernels

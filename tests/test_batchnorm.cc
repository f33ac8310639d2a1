// BatchNorm2d: every kernel against the scalar reference on swept shapes and
// layouts, the running-statistics update, and the node (finite-difference
// gradients in training and evaluation mode, parameters, bad shapes).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/batchnorm/batchnorm.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"
#include "tests/test_util.h"

namespace sparsetrain {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();
constexpr Layout kLayouts[] = {Layout::kNCHW, Layout::kNHWC, Layout::kCHWN};

using testing::small_ints;

// |got - ref| <= c * eps * max(|ref|, scale) element-wise.
void expect_close(const std::vector<float>& ref, const std::vector<float>& got, double c,
                  double scale, const std::string& what) {
  ASSERT_EQ(ref.size(), got.size());
  int reported = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double tol = c * kEps * std::max<double>(std::abs(ref[i]), scale);
    if (!(std::abs(static_cast<double>(got[i]) - ref[i]) <= tol) && reported++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", reference " << ref[i]
                    << " (tolerance " << tol << ")";
    }
  }
}

// ---------------------------------------------------------------------------
// Kernels against the reference.

struct BnProblem {
  kernels::BatchNormDesc desc;
  std::vector<float> src, diff_dst, gamma, beta, run_mean, run_var;
};

BnProblem make_problem(int64_t n, int64_t c, int64_t h, int64_t w, Layout layout, uint64_t seed) {
  Rng rng(seed);
  BnProblem p;
  p.desc = {n, c, h, w, layout, 1e-5f};
  const int64_t numel = p.desc.numel();
  // Small integers: sums are exact in float, so only the divisions, square
  // roots and the products with non-integers round.
  p.src = small_ints(numel, -4, 4, rng);
  p.diff_dst = small_ints(numel, -3, 3, rng);
  p.gamma = small_ints(c, -2, 2, rng);
  for (float& g : p.gamma) g = g * 0.5f + (g == 0 ? 0.25f : 0.0f);
  p.beta = small_ints(c, -2, 2, rng);
  p.run_mean = small_ints(c, -2, 2, rng);
  p.run_var = small_ints(c, 1, 4, rng);
  // A constant channel (variance 0) exercises the eps path.
  if (c > 2) {
    const Shape s = {n, c, h, w};
    for (int64_t in = 0; in < n; ++in)
      for (int64_t ih = 0; ih < h; ++ih)
        for (int64_t iw = 0; iw < w; ++iw) p.src[offset4(layout, s, in, 2, ih, iw)] = 3.0f;
  }
  return p;
}

// Sum over each channel of |diff_dst * xhat|: the scale of the rounding error
// of diff_gamma (a sum of that many products).
std::vector<double> abs_dgamma_terms(const BnProblem& p, const std::vector<float>& mean,
                                     const std::vector<float>& rstd) {
  const auto& d = p.desc;
  const Shape s = {d.n, d.c, d.h, d.w};
  std::vector<double> out(static_cast<size_t>(d.c), 0.0);
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t c = 0; c < d.c; ++c)
      for (int64_t h = 0; h < d.h; ++h)
        for (int64_t w = 0; w < d.w; ++w) {
          const int64_t i = offset4(d.layout, s, n, c, h, w);
          out[c] += std::abs(p.diff_dst[i] * (p.src[i] - mean[c]) * rstd[c]);
        }
  return out;
}

void check_kernel(const kernels::BatchNormKernel& k, const BnProblem& p) {
  const auto& d = p.desc;
  const auto& ref = kernels::batchnorm_kernels().reference();
  const int64_t numel = d.numel();
  const auto C = static_cast<size_t>(d.c);
  const std::string tag = std::string(k.name) + " " + std::to_string(d.n) + "x" +
                          std::to_string(d.c) + "x" + std::to_string(d.h) + "x" +
                          std::to_string(d.w) + " " + layout_name(d.layout);
  SCOPED_TRACE(tag);

  // Forward, training.
  std::vector<float> dst_ref(numel), mean_ref(C), rstd_ref(C);
  std::vector<float> dst(numel, -7.0f), mean(C, -7.0f), rstd(C, -7.0f);
  ref.forward_training(dst_ref.data(), mean_ref.data(), rstd_ref.data(), p.src.data(),
                       p.gamma.data(), p.beta.data(), d);
  k.forward_training(dst.data(), mean.data(), rstd.data(), p.src.data(), p.gamma.data(),
                     p.beta.data(), d);
  // Our kernels sum in float per chunk and in double across chunks; oneDNN
  // sums everything in float, and its variance is off by up to ~6e-5
  // relative at 8192 values per channel (measured against double).
  const bool float_statistics = std::string(k.name).starts_with("dnnl");
  const double c_stats =
      float_statistics ? 4096 : 32 + 2 * std::sqrt(static_cast<double>(d.per_channel()));
  expect_close(mean_ref, mean, c_stats, 1, "mean");
  expect_close(rstd_ref, rstd, c_stats, 0, "rstd");
  expect_close(dst_ref, dst, c_stats, 1, "dst");

  // Backward, batch statistics (from the reference's saved statistics);
  // parameter gradients accumulate onto a non-zero start.
  std::vector<float> dsrc_ref(numel), dsrc(numel, -7.0f);
  std::vector<float> dg_ref(C, 1.0f), db_ref(C, 1.0f), dg(C, 1.0f), db(C, 1.0f);
  ref.backward(dsrc_ref.data(), dg_ref.data(), db_ref.data(), p.diff_dst.data(), p.src.data(),
               p.gamma.data(), p.beta.data(), mean_ref.data(), rstd_ref.data(), d);
  k.backward(dsrc.data(), dg.data(), db.data(), p.diff_dst.data(), p.src.data(), p.gamma.data(),
             p.beta.data(), mean_ref.data(), rstd_ref.data(), d);
  // diff_src is a difference of terms of size |gamma * rstd * diff_dst|.
  double max_dy = 1.0;
  for (float v : p.diff_dst) max_dy = std::max<double>(max_dy, std::abs(v));
  double scale = 0.0;
  for (size_t c = 0; c < C; ++c)
    scale = std::max<double>(scale, std::abs(p.gamma[c] * rstd_ref[c]) * max_dy);
  expect_close(dsrc_ref, dsrc, float_statistics ? c_stats : 16, std::max(scale, 1.0), "diff_src");
  EXPECT_EQ(db_ref, db) << "diff_beta: a sum of small integers must be exact";
  const std::vector<double> terms = abs_dgamma_terms(p, mean_ref, rstd_ref);
  for (size_t c = 0; c < C; ++c)
    EXPECT_NEAR(dg[c], dg_ref[c], (float_statistics ? 64 : 8) * kEps * (terms[c] + 1.0))
        << "diff_gamma[" << c << "]";

  // diff_src may be null: only the parameter gradients.
  std::vector<float> dg2(C, 1.0f), db2(C, 1.0f);
  k.backward(nullptr, dg2.data(), db2.data(), p.diff_dst.data(), p.src.data(), p.gamma.data(),
             p.beta.data(), mean_ref.data(), rstd_ref.data(), d);
  EXPECT_EQ(db2, db);
  EXPECT_EQ(dg2, dg);

  // Forward and backward with fixed (running) statistics.
  std::vector<float> inf_ref(numel), inf(numel, -7.0f);
  ref.forward_inference(inf_ref.data(), p.src.data(), p.gamma.data(), p.beta.data(),
                        p.run_mean.data(), p.run_var.data(), d);
  k.forward_inference(inf.data(), p.src.data(), p.gamma.data(), p.beta.data(), p.run_mean.data(),
                      p.run_var.data(), d);
  expect_close(inf_ref, inf, 8, 1, "inference dst");
  std::vector<float> idsrc_ref(numel), idsrc(numel, -7.0f);
  std::vector<float> idg_ref(C, 0.0f), idb_ref(C, 0.0f), idg(C, 0.0f), idb(C, 0.0f);
  ref.backward_inference(idsrc_ref.data(), idg_ref.data(), idb_ref.data(), p.diff_dst.data(),
                         p.src.data(), p.gamma.data(), p.run_mean.data(), p.run_var.data(), d);
  k.backward_inference(idsrc.data(), idg.data(), idb.data(), p.diff_dst.data(), p.src.data(),
                       p.gamma.data(), p.run_mean.data(), p.run_var.data(), d);
  expect_close(idsrc_ref, idsrc, 4, 1, "inference diff_src");
  EXPECT_EQ(idb_ref, idb);
  for (size_t c = 0; c < C; ++c) {
    const double r = 1.0 / std::sqrt(p.run_var[c] + 1e-5);
    EXPECT_NEAR(idg[c], idg_ref[c], 8 * kEps * (std::abs(idg_ref[c]) + r * 4 * 3 * d.per_channel()))
        << "inference diff_gamma[" << c << "]";
  }

  // Run twice: bit for bit the same (no race, no thread-count dependence).
  std::vector<float> dst2(numel), mean2(C), rstd2(C), dsrc2(numel), dg3(C, 1.0f), db3(C, 1.0f);
  k.forward_training(dst2.data(), mean2.data(), rstd2.data(), p.src.data(), p.gamma.data(),
                     p.beta.data(), d);
  k.backward(dsrc2.data(), dg3.data(), db3.data(), p.diff_dst.data(), p.src.data(), p.gamma.data(),
             p.beta.data(), mean_ref.data(), rstd_ref.data(), d);
  EXPECT_EQ(dst2, dst);
  EXPECT_EQ(mean2, mean);
  EXPECT_EQ(rstd2, rstd);
  EXPECT_EQ(dsrc2, dsrc);
  EXPECT_EQ(dg3, dg);
}

TEST(BatchNormKernels, MatchReferenceOnSweptShapes) {
  const int64_t batches[] = {1, 5, 17, 128};
  const int64_t channels[] = {1, 3, 16, 17};
  const int64_t spatial[][2] = {{1, 1}, {3, 5}, {9, 7}};
  uint64_t seed = 1;
  for (int64_t n : batches)
    for (int64_t c : channels)
      for (const auto& hw : spatial)
        for (Layout layout : kLayouts) {
          if (n * hw[0] * hw[1] < 2) continue;  // one value per channel: no variance
          const BnProblem p = make_problem(n, c, hw[0], hw[1], layout, seed++);
          for (const auto& k : kernels::batchnorm_kernels())
            if (k.supports(p.desc) && std::string(k.name) != "ref") check_kernel(k, p);
        }
}

TEST(BatchNormKernels, MatchReferenceOnResNet20Shapes) {
  const int64_t shapes[][4] = {{128, 16, 32, 32}, {128, 32, 16, 16}, {128, 64, 8, 8}};
  uint64_t seed = 100;
  for (const auto& s : shapes)
    for (Layout layout : kLayouts) {
      const BnProblem p = make_problem(s[0], s[1], s[2], s[3], layout, seed++);
      for (const auto& k : kernels::batchnorm_kernels())
        if (k.supports(p.desc) && std::string(k.name) != "ref") check_kernel(k, p);
    }
}

// The oneDNN functions are only selected for NHWC (their NCHW path is slow)
// but must still be right everywhere, for benchmarks that call them directly.
TEST(BatchNormKernels, DnnlIsRightInEveryLayout) {
  const kernels::BatchNormKernel dnnl = {"dnnl-direct",
                                         kernels::Isa::kRef,
                                         nullptr,
                                         kernels::batchnorm_forward_training_dnnl,
                                         kernels::batchnorm_backward_dnnl,
                                         kernels::batchnorm_forward_inference_dnnl,
                                         kernels::batchnorm_backward_inference_dnnl,
                                         nullptr,
                                         nullptr};
  uint64_t seed = 200;
  for (Layout layout : kLayouts) check_kernel(dnnl, make_problem(5, 3, 9, 7, layout, seed++));
}

// A fused ReLU (desc.relu) in every kernel that accepts it: against the
// reference with the same fusion, and bit for bit against the same kernel
// unfused followed by ReLU (what the executor relies on: fusing must not
// change a training run).
void check_fused_relu(const kernels::BatchNormKernel& k, BnProblem p) {
  p.desc.relu = false;
  p.beta[0] = 0.0f;
  const kernels::BatchNormDesc plain = p.desc;
  kernels::BatchNormDesc fused = plain;
  fused.relu = true;
  if (!k.supports(fused)) return;
  const int64_t numel = plain.numel();
  const auto C = static_cast<size_t>(plain.c);
  SCOPED_TRACE(std::string(k.name) + " fused ReLU " + std::to_string(plain.n) + "x" +
               std::to_string(plain.c) + "x" + std::to_string(plain.h) + "x" +
               std::to_string(plain.w) + " " + layout_name(plain.layout));
  // Unfused, then ReLU with the eltwise rule (keep where dst > 0).
  std::vector<float> y(numel), mean(C), rstd(C);
  k.forward_training(y.data(), mean.data(), rstd.data(), p.src.data(), p.gamma.data(),
                     p.beta.data(), plain);
  std::vector<float> relu_y(numel), masked_dy(numel);
  int64_t kept = 0;
  for (int64_t i = 0; i < numel; ++i) {
    relu_y[i] = y[i] < 0.0f ? 0.0f : y[i];
    masked_dy[i] = y[i] > 0.0f ? p.diff_dst[i] : 0.0f;
    kept += y[i] > 0.0f;
  }
  std::vector<float> dx(numel), dg(C, 1.0f), db(C, 1.0f);
  k.backward(dx.data(), dg.data(), db.data(), masked_dy.data(), p.src.data(), p.gamma.data(),
             p.beta.data(), mean.data(), rstd.data(), plain);

  std::vector<float> fy(numel, -7.0f), fmean(C), frstd(C);
  k.forward_training(fy.data(), fmean.data(), frstd.data(), p.src.data(), p.gamma.data(),
                     p.beta.data(), fused);
  EXPECT_EQ(fy, relu_y);
  EXPECT_EQ(fmean, mean);
  EXPECT_EQ(frstd, rstd);
  std::vector<float> fdx(numel, -7.0f), fdg(C, 1.0f), fdb(C, 1.0f);
  k.backward(fdx.data(), fdg.data(), fdb.data(), p.diff_dst.data(), p.src.data(), p.gamma.data(),
             p.beta.data(), mean.data(), rstd.data(), fused);
  EXPECT_EQ(fdx, dx);
  EXPECT_EQ(fdg, dg);
  EXPECT_EQ(fdb, db);
  std::vector<float> fdg2(C, 1.0f), fdb2(C, 1.0f);
  k.backward(nullptr, fdg2.data(), fdb2.data(), p.diff_dst.data(), p.src.data(), p.gamma.data(),
             p.beta.data(), mean.data(), rstd.data(), fused);
  EXPECT_EQ(fdg2, dg);
  EXPECT_EQ(fdb2, db);
  // Both sides of the ReLU occur (the test would not see a wrong mask else):
  // channel 0 is centred (beta 0 below) and not constant.
  if (plain.per_channel() >= 16) {
    EXPECT_GT(kept, 0);
    EXPECT_LT(kept, numel);
  }

  // Against the reference, fused too.
  const auto& ref = kernels::batchnorm_kernels().reference();
  std::vector<float> ry(numel), rmean(C), rrstd(C);
  ref.forward_training(ry.data(), rmean.data(), rrstd.data(), p.src.data(), p.gamma.data(),
                       p.beta.data(), fused);
  const double c_stats = 32 + 2 * std::sqrt(static_cast<double>(plain.per_channel()));
  expect_close(ry, fy, c_stats, 1, "fused dst");
  std::vector<float> rdx(numel), rdg(C, 1.0f), rdb(C, 1.0f);
  ref.backward(rdx.data(), rdg.data(), rdb.data(), p.diff_dst.data(), p.src.data(), p.gamma.data(),
               p.beta.data(), mean.data(), rstd.data(), fused);
  double max_k = 1.0;
  for (size_t c = 0; c < C; ++c) max_k = std::max<double>(max_k, std::abs(p.gamma[c] * rstd[c]));
  expect_close(rdx, fdx, 16, 3 * max_k, "fused diff_src");
  EXPECT_EQ(rdb, fdb) << "diff_beta: a sum of small integers must be exact";
}

TEST(BatchNormKernels, FusedReluMatchesUnfusedAndReferenceInEveryLayout) {
  const int64_t batches[] = {2, 5, 17, 128};
  const int64_t channels[] = {1, 3, 16, 17};
  const int64_t spatial[][2] = {{1, 1}, {3, 5}, {9, 7}};
  uint64_t seed = 300;
  int fused_kernels = 0;
  for (int64_t n : batches)
    for (int64_t c : channels)
      for (const auto& hw : spatial)
        for (Layout layout : kLayouts) {
          const BnProblem p = make_problem(n, c, hw[0], hw[1], layout, seed++);
          for (const auto& k : kernels::batchnorm_kernels()) {
            kernels::BatchNormDesc fused = p.desc;
            fused.relu = true;
            fused_kernels += k.supports(fused);
            check_fused_relu(k, p);
          }
        }
  EXPECT_GT(fused_kernels, 0);
  // oneDNN's primitives here do not fuse, and say so.
  kernels::BatchNormDesc nhwc = {128, 16, 32, 32, Layout::kNHWC, 1e-5f, true};
  EXPECT_FALSE(kernels::batchnorm_dnnl_supports(nhwc));
  EXPECT_STRNE(kernels::batchnorm_kernels().pick_for(nhwc).name, "dnnl");
}

TEST(BatchNormKernels, FusedReluOnResNet20Shapes) {
  const int64_t shapes[][4] = {{128, 16, 32, 32}, {128, 32, 16, 16}, {128, 64, 8, 8}};
  uint64_t seed = 400;
  for (const auto& s : shapes)
    for (Layout layout : kLayouts) {
      const BnProblem p = make_problem(s[0], s[1], s[2], s[3], layout, seed++);
      for (const auto& k : kernels::batchnorm_kernels())
        if (std::string(k.name) != "ref") check_fused_relu(k, p);
    }
}

// A fused residual sum (desc.residual, forward_training_add), with and
// without the ReLU after it, in every kernel that accepts it: bit for bit
// against the same kernel's plain forward followed by the Add and the ReLU
// (what the executor's BatchNorm + Add + ReLU fusion relies on), and against
// the reference.
void check_fused_residual(const kernels::BatchNormKernel& k, const BnProblem& p, bool relu) {
  kernels::BatchNormDesc plain = p.desc;
  plain.relu = false;
  kernels::BatchNormDesc fused = plain;
  fused.residual = true;
  fused.relu = relu;
  if (!k.supports(fused)) return;
  ASSERT_NE(k.forward_training_add, nullptr) << k.name;
  const int64_t numel = plain.numel();
  const auto C = static_cast<size_t>(plain.c);
  SCOPED_TRACE(std::string(k.name) + " fused residual" + (relu ? " + ReLU " : " ") +
               std::to_string(plain.n) + "x" + std::to_string(plain.c) + "x" +
               std::to_string(plain.h) + "x" + std::to_string(plain.w) + " " +
               layout_name(plain.layout));
  Rng rng(numel + 7);
  std::vector<float> residual = testing::small_ints(numel, -3, 3, rng);
  for (float& r : residual) r *= 0.75f;
  std::vector<float> y(numel), mean(C), rstd(C);
  k.forward_training(y.data(), mean.data(), rstd.data(), p.src.data(), p.gamma.data(),
                     p.beta.data(), plain);
  std::vector<float> want(numel);
  int64_t kept = 0;
  for (int64_t i = 0; i < numel; ++i) {
    const float v = y[i] + residual[i];
    want[i] = relu && v < 0.0f ? 0.0f : v;
    kept += v > 0.0f;
  }
  std::vector<float> fy(numel, -7.0f), fmean(C), frstd(C);
  k.forward_training_add(fy.data(), fmean.data(), frstd.data(), p.src.data(), residual.data(),
                         p.gamma.data(), p.beta.data(), fused);
  EXPECT_EQ(fy, want);
  EXPECT_EQ(fmean, mean);
  EXPECT_EQ(frstd, rstd);
  if (relu && plain.per_channel() >= 16) {
    EXPECT_GT(kept, 0);
    EXPECT_LT(kept, numel);
  }
  const auto& ref = kernels::batchnorm_kernels().reference();
  std::vector<float> ry(numel), rmean(C), rrstd(C);
  ref.forward_training_add(ry.data(), rmean.data(), rrstd.data(), p.src.data(), residual.data(),
                           p.gamma.data(), p.beta.data(), fused);
  const double c_stats = 32 + 2 * std::sqrt(static_cast<double>(plain.per_channel()));
  expect_close(ry, fy, c_stats, 3, "fused residual dst");
}

TEST(BatchNormKernels, FusedResidualMatchesUnfusedAndReferenceInEveryLayout) {
  const int64_t shapes[][4] = {{2, 1, 1, 1}, {5, 3, 3, 5}, {17, 16, 9, 7}, {128, 17, 3, 5}};
  uint64_t seed = 700;
  int fused_kernels = 0;
  for (const auto& s : shapes)
    for (Layout layout : kLayouts) {
      const BnProblem p = make_problem(s[0], s[1], s[2], s[3], layout, seed++);
      for (const auto& k : kernels::batchnorm_kernels()) {
        kernels::BatchNormDesc fused = p.desc;
        fused.residual = true;
        fused_kernels += k.supports(fused);
        check_fused_residual(k, p, false);
        check_fused_residual(k, p, true);
      }
    }
  EXPECT_GT(fused_kernels, 0);
  kernels::BatchNormDesc nhwc = {128, 16, 32, 32, Layout::kNHWC, 1e-5f};
  nhwc.residual = true;
  EXPECT_FALSE(kernels::batchnorm_dnnl_supports(nhwc));
  EXPECT_STRNE(kernels::batchnorm_kernels().pick_for(nhwc).name, "dnnl");
}

TEST(BatchNormKernels, FusedResidualOnResNet20Shapes) {
  const int64_t shapes[][4] = {{128, 16, 32, 32}, {128, 64, 8, 8}};
  uint64_t seed = 800;
  for (const auto& s : shapes) {
    const BnProblem p = make_problem(s[0], s[1], s[2], s[3], Layout::kCHWN, seed++);
    for (const auto& k : kernels::batchnorm_kernels())
      if (std::string(k.name) != "ref") check_fused_residual(k, p, true);
  }
}

// Statistics given (forward_training_given, what a sparse convolution's
// epilogue hands on): the kernel normalises with them, with and without a
// residual and a ReLU, as the reference does after computing them itself,
// and reports them as its mean and rstd.
TEST(BatchNormKernels, GivenStatisticsNormaliseLikeComputedOnes) {
  const int64_t shapes[][4] = {{2, 1, 1, 1}, {5, 3, 3, 5}, {17, 16, 9, 7}, {128, 16, 8, 8}};
  uint64_t seed = 900;
  int given_kernels = 0;
  for (const auto& s : shapes)
    for (Layout layout : kLayouts) {
      const BnProblem p = make_problem(s[0], s[1], s[2], s[3], layout, seed++);
      const kernels::BatchNormDesc& d = p.desc;
      const auto C = static_cast<size_t>(d.c);
      const Shape shape = {d.n, d.c, d.h, d.w};
      std::vector<double> mean(C, 0.0), var(C, 0.0);
      for (int64_t c = 0; c < d.c; ++c) {
        std::vector<double> v;
        for (int64_t n = 0; n < d.n; ++n)
          for (int64_t h = 0; h < d.h; ++h)
            for (int64_t w = 0; w < d.w; ++w)
              v.push_back(p.src[offset4(layout, shape, n, c, h, w)]);
        for (double x : v) mean[c] += x / static_cast<double>(v.size());
        for (double x : v) var[c] += (x - mean[c]) * (x - mean[c]) / static_cast<double>(v.size());
      }
      Rng rng(seed);
      std::vector<float> residual = testing::small_ints(d.numel(), -3, 3, rng);
      for (const auto& k : kernels::batchnorm_kernels()) {
        if (k.forward_training_given == nullptr || !k.supports(d)) continue;
        ++given_kernels;
        for (const bool add : {false, true})
          for (const bool relu : {false, true}) {
            kernels::BatchNormDesc fd = d;
            fd.residual = add;
            fd.relu = relu;
            SCOPED_TRACE(std::string(k.name) + " " + layout_name(layout) + " " +
                         std::to_string(d.per_channel()) + " per channel" +
                         (add ? " + residual" : "") + (relu ? " + ReLU" : ""));
            const float* r = add ? residual.data() : nullptr;
            std::vector<float> want(d.numel()), wmean(C), wrstd(C);
            kernels::batchnorm_kernels().reference().forward_training_add(
                want.data(), wmean.data(), wrstd.data(), p.src.data(), r, p.gamma.data(),
                p.beta.data(), fd);
            std::vector<float> got(d.numel(), -7.0f), gmean(C), grstd(C);
            k.forward_training_given(got.data(), gmean.data(), grstd.data(), p.src.data(), r,
                                     p.gamma.data(), p.beta.data(), mean.data(), var.data(), fd);
            for (size_t c = 0; c < C; ++c) {
              EXPECT_EQ(gmean[c], static_cast<float>(mean[c]));
              EXPECT_EQ(grstd[c], static_cast<float>(1.0 / std::sqrt(var[c] + d.eps)));
            }
            expect_close(want, got, 64, 3, "dst");
          }
      }
    }
  EXPECT_GT(given_kernels, 0);
}

// Padded channel planes in kCHWN (BatchNormDesc::plane): every pass of every
// kernel that takes them gives its packed results bit for bit, reads nothing
// between the planes (a sentinel there would change the sums) and writes
// nothing there.
TEST(BatchNormKernels, PaddedChannelPlanesGiveThePackedResults) {
  constexpr float kBetween = 9999.0f;
  const int64_t shapes[][4] = {{5, 3, 3, 5}, {17, 16, 9, 7}, {128, 16, 8, 8}};
  uint64_t seed = 1300;
  int padded_kernels = 0;
  for (const auto& s : shapes) {
    const BnProblem p = make_problem(s[0], s[1], s[2], s[3], Layout::kCHWN, seed++);
    const int64_t plane = p.desc.per_channel(), C = p.desc.c;
    const auto size = static_cast<std::size_t>(C);
    Rng rng(seed);
    const std::vector<float> residual = testing::small_ints(p.desc.numel(), -3, 3, rng);
    std::vector<double> bmean(size), bvar(size);
    for (std::size_t c = 0; c < size; ++c) {
      bmean[c] = 0.25 * static_cast<double>(c);
      bvar[c] = 1.0 + static_cast<double>(c);
    }
    for (const int64_t pad : {int64_t{16}, int64_t{5}}) {
      kernels::BatchNormDesc padded = p.desc;
      padded.plane = plane + pad;
      const auto spread = [&](const std::vector<float>& v) {
        return testing::spread_planes(v, C, plane, padded.plane, kBetween);
      };
      const auto same = [&](const std::vector<float>& got, const std::vector<float>& want) {
        return testing::same_planes(got, want, C, plane, padded.plane, kBetween);
      };
      const std::vector<float> src = spread(p.src), dy = spread(p.diff_dst), res = spread(residual);
      for (const auto& k : kernels::batchnorm_kernels()) {
        if (!k.supports(padded)) continue;
        ++padded_kernels;
        for (const bool relu : {false, true}) {
          kernels::BatchNormDesc d = p.desc, dp = padded;
          d.relu = dp.relu = relu;
          SCOPED_TRACE(std::string(k.name) + " " + std::to_string(s[0]) + "x" + std::to_string(C) +
                       "x" + std::to_string(s[2]) + "x" + std::to_string(s[3]) + " padded by " +
                       std::to_string(pad) + (relu ? " + ReLU" : ""));
          std::vector<float> want(p.desc.numel()), mean(size), rstd(size);
          std::vector<float> got = spread(want), gmean(size), grstd(size);
          k.forward_training(want.data(), mean.data(), rstd.data(), p.src.data(), p.gamma.data(),
                             p.beta.data(), d);
          k.forward_training(got.data(), gmean.data(), grstd.data(), src.data(), p.gamma.data(),
                             p.beta.data(), dp);
          EXPECT_TRUE(same(got, want)) << "forward";
          EXPECT_EQ(gmean, mean);
          EXPECT_EQ(grstd, rstd);

          std::vector<float> dx(p.desc.numel()), dg(size, 1.0f), db(size, 1.0f);
          std::vector<float> gdx = spread(dx), gdg(dg), gdb(db);
          k.backward(dx.data(), dg.data(), db.data(), p.diff_dst.data(), p.src.data(),
                     p.gamma.data(), p.beta.data(), mean.data(), rstd.data(), d);
          k.backward(gdx.data(), gdg.data(), gdb.data(), dy.data(), src.data(), p.gamma.data(),
                     p.beta.data(), mean.data(), rstd.data(), dp);
          EXPECT_TRUE(same(gdx, dx)) << "backward";
          EXPECT_EQ(gdg, dg);
          EXPECT_EQ(gdb, db);

          if (k.forward_training_add != nullptr) {
            d.residual = dp.residual = true;
            k.forward_training_add(want.data(), mean.data(), rstd.data(), p.src.data(),
                                   residual.data(), p.gamma.data(), p.beta.data(), d);
            got = spread(want);
            k.forward_training_add(got.data(), gmean.data(), grstd.data(), src.data(), res.data(),
                                   p.gamma.data(), p.beta.data(), dp);
            EXPECT_TRUE(same(got, want)) << "forward with the residual";
            EXPECT_EQ(gmean, mean);
          }
          if (k.forward_training_given != nullptr) {
            k.forward_training_given(want.data(), mean.data(), rstd.data(), p.src.data(),
                                     d.residual ? residual.data() : nullptr, p.gamma.data(),
                                     p.beta.data(), bmean.data(), bvar.data(), d);
            got = spread(want);
            k.forward_training_given(got.data(), gmean.data(), grstd.data(), src.data(),
                                     dp.residual ? res.data() : nullptr, p.gamma.data(),
                                     p.beta.data(), bmean.data(), bvar.data(), dp);
            EXPECT_TRUE(same(got, want)) << "forward with given statistics";
          }
        }
        std::vector<float> want(p.desc.numel());
        std::vector<float> got = spread(want);
        k.forward_inference(want.data(), p.src.data(), p.gamma.data(), p.beta.data(),
                            p.run_mean.data(), p.run_var.data(), p.desc);
        k.forward_inference(got.data(), src.data(), p.gamma.data(), p.beta.data(),
                            p.run_mean.data(), p.run_var.data(), padded);
        EXPECT_TRUE(same(got, want)) << k.name << " inference forward";
        std::vector<float> dg(size, 0.0f), db(size, 0.0f), gdg(dg), gdb(db);
        got = spread(want);
        k.backward_inference(want.data(), dg.data(), db.data(), p.diff_dst.data(), p.src.data(),
                             p.gamma.data(), p.run_mean.data(), p.run_var.data(), p.desc);
        k.backward_inference(got.data(), gdg.data(), gdb.data(), dy.data(), src.data(),
                             p.gamma.data(), p.run_mean.data(), p.run_var.data(), padded);
        EXPECT_TRUE(same(got, want)) << k.name << " inference backward";
        EXPECT_EQ(gdg, dg);
        EXPECT_EQ(gdb, db);
      }
    }
  }
  // ref, TBB and (on an AVX-512 machine) its AVX-512 build; never oneDNN.
  EXPECT_GE(padded_kernels, 2 * 2 * 3);
}

TEST(BatchNormKernels, StatisticsStayAccurateWithALargeOffset) {
  // mean 1000, standard deviation ~1: E[x^2] - E[x]^2 in float would lose
  // every digit of the variance.
  const kernels::BatchNormDesc d = {64, 2, 8, 8, Layout::kNCHW, 1e-5f};
  Rng rng(7);
  std::vector<float> src(static_cast<size_t>(d.numel()));
  for (float& x : src) x = 1000.0f + rng.normal();
  const std::vector<float> gamma = {1.0f, 1.0f}, beta = {0.0f, 0.0f};
  std::vector<float> dst_ref(src.size()), mean_ref(2), rstd_ref(2);
  kernels::batchnorm_kernels().reference().forward_training(
      dst_ref.data(), mean_ref.data(), rstd_ref.data(), src.data(), gamma.data(), beta.data(), d);
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
    kernels::BatchNormDesc dl = d;
    dl.layout = layout;
    std::vector<float> s = src;
    if (layout == Layout::kNHWC) {
      const Tensor t = to_layout(Tensor::from({d.n, d.c, d.h, d.w}, src, Layout::kNCHW), layout);
      s.assign(t.data(), t.data() + t.numel());
    }
    for (const auto& k : kernels::batchnorm_kernels()) {
      if (!k.supports(dl)) continue;
      std::vector<float> dst(src.size()), mean(2), rstd(2);
      k.forward_training(dst.data(), mean.data(), rstd.data(), s.data(), gamma.data(), beta.data(),
                         dl);
      for (int c = 0; c < 2; ++c) {
        EXPECT_NEAR(mean[c], mean_ref[c], 4 * kEps * 1000) << k.name;
        EXPECT_NEAR(rstd[c], rstd_ref[c], 1e-3 * rstd_ref[c])
            << k.name << " " << layout_name(layout);
      }
    }
  }
}

TEST(BatchNormKernels, RunningStatisticsFollowPyTorch) {
  // Channel 0 of {1, 2, 3, 4}: mean 2.5, biased variance 1.25, unbiased 5/3.
  const float mean[] = {2.5f, -1.0f};
  const float eps = 1e-5f;
  const float rstd[] = {static_cast<float>(1.0 / std::sqrt(1.25 + eps)),
                        static_cast<float>(1.0 / std::sqrt(0.5 + eps))};
  float running_mean[] = {0.0f, 1.0f};
  float running_var[] = {1.0f, 2.0f};
  kernels::batchnorm_update_running_stats(running_mean, running_var, mean, rstd, 2, 4, 0.1f, eps);
  EXPECT_NEAR(running_mean[0], 0.9f * 0.0f + 0.1f * 2.5f, 1e-6);
  EXPECT_NEAR(running_var[0], 0.9f * 1.0f + 0.1f * (5.0f / 3.0f), 1e-6);
  EXPECT_NEAR(running_mean[1], 0.9f * 1.0f + 0.1f * -1.0f, 1e-6);
  EXPECT_NEAR(running_var[1], 0.9f * 2.0f + 0.1f * (0.5f * 4.0f / 3.0f), 1e-6);
}

// ---------------------------------------------------------------------------
// The node.

Tensor random_tensor(const Shape& shape, Layout layout, Rng& rng) {
  Tensor t = Tensor::empty(shape, layout);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.uniform(-2.0f, 2.0f);
  return t;
}

double weighted_sum(const Tensor& y, const Tensor& w) {
  double s = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(y[i]) * w[i];
  return s;
}

// Central differences of L = sum(w * node(x)) against the node's backward,
// for every input value and every trainable parameter value.
void check_gradients(Node& node, std::vector<Tensor> inputs, bool training, double h, double tol) {
  ForwardArgs fwd{inputs, training, 1234};
  const Tensor y = node.forward(fwd);
  Rng rng(99);
  Tensor w = random_tensor(y.shape(), y.layout(), rng);
  for (Parameter* p : node.parameters()) p->grad.zero();
  const Saves saves = node.saves();
  std::vector<Tensor> saved_inputs(inputs.size());
  if (saves.inputs) saved_inputs = inputs;
  const std::vector<char> need(inputs.size(), 1);
  BackwardArgs bwd;
  bwd.inputs = saved_inputs;
  bwd.output = saves.output ? &y : nullptr;
  bwd.diff_dst = &w;
  bwd.need_diff_src = need;
  const std::vector<Tensor> diff = node.backward(bwd);
  ASSERT_EQ(diff.size(), inputs.size());

  const auto loss = [&] {
    ForwardArgs args{inputs, training, 1234};
    return weighted_sum(node.forward(args), w);
  };
  const auto check = [&](float& x, double analytic, const std::string& what) {
    const float x0 = x;
    x = x0 + static_cast<float>(h);
    const double up = x - x0;
    const double l_up = loss();
    x = x0 - static_cast<float>(h);
    const double down = x0 - x;
    const double l_down = loss();
    x = x0;
    const double numeric = (l_up - l_down) / (up + down);
    EXPECT_NEAR(analytic, numeric, tol * std::max(1.0, std::abs(numeric))) << what;
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    ASSERT_TRUE(diff[k].defined());
    ASSERT_EQ(diff[k].shape(), inputs[k].shape());
    const Tensor dk = to_layout(diff[k], inputs[k].layout());
    for (int64_t i = 0; i < inputs[k].numel(); ++i)
      check(inputs[k][i], dk[i], "input " + std::to_string(k) + " value " + std::to_string(i));
  }
  for (Parameter* p : node.parameters()) {
    if (!p->trainable()) continue;
    const Tensor g = p->grad.clone();
    for (int64_t i = 0; i < p->value.numel(); ++i)
      check(p->value[i], g[i], p->name + "[" + std::to_string(i) + "]");
  }
}

std::unique_ptr<Node> make_bn(int64_t channels, Rng& rng) {
  auto node = nodes::make_batchnorm2d("bn", channels, BatchNormOptions{});
  for (Parameter* p : node->parameters()) {
    if (p->name == "bn.weight")
      for (int64_t i = 0; i < channels; ++i) p->value[i] = rng.uniform(0.5f, 1.5f);
    if (p->name == "bn.bias")
      for (int64_t i = 0; i < channels; ++i) p->value[i] = rng.uniform(-0.5f, 0.5f);
    if (p->name == "bn.running_mean")
      for (int64_t i = 0; i < channels; ++i) p->value[i] = rng.uniform(-0.5f, 0.5f);
    if (p->name == "bn.running_var")
      for (int64_t i = 0; i < channels; ++i) p->value[i] = rng.uniform(0.5f, 2.0f);
  }
  return node;
}

TEST(BatchNormNode, GradientsMatchFiniteDifferencesInTraining) {
  for (Layout layout : kLayouts) {
    SCOPED_TRACE(layout_name(layout));
    Rng rng(5);
    auto node = make_bn(3, rng);
    check_gradients(*node, {random_tensor({4, 3, 3, 2}, layout, rng)}, true, 1e-2, 2e-3);
  }
}

TEST(BatchNormNode, GradientsMatchFiniteDifferencesInEvaluation) {
  for (Layout layout : kLayouts) {
    SCOPED_TRACE(layout_name(layout));
    Rng rng(6);
    auto node = make_bn(3, rng);
    check_gradients(*node, {random_tensor({2, 3, 2, 3}, layout, rng)}, false, 1e-2, 2e-3);
  }
}

TEST(BatchNormNode, ParametersAndBuffers) {
  auto node = nodes::make_batchnorm2d("layer1.bn", 4, BatchNormOptions{});
  EXPECT_STREQ(node->type(), "batchnorm2d");
  const std::vector<Parameter*> params = node->parameters();
  ASSERT_EQ(params.size(), 4u);
  const struct {
    const char* name;
    ParamKind kind;
    float value;
  } expected[] = {{"layer1.bn.weight", ParamKind::kNorm, 1.0f},
                  {"layer1.bn.bias", ParamKind::kNorm, 0.0f},
                  {"layer1.bn.running_mean", ParamKind::kBuffer, 0.0f},
                  {"layer1.bn.running_var", ParamKind::kBuffer, 1.0f}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(params[i]->name, expected[i].name);
    EXPECT_EQ(params[i]->kind, expected[i].kind);
    EXPECT_FALSE(params[i]->prunable());
    EXPECT_EQ(params[i]->value.shape(), Shape{4});
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(params[i]->value[c], expected[i].value);
  }
  params[0]->value.fill(3.0f);
  params[3]->value.fill(9.0f);
  Rng rng(1);
  node->reset_parameters(rng);
  EXPECT_EQ(params[0]->value[0], 1.0f);
  EXPECT_EQ(params[3]->value[0], 1.0f);
}

TEST(BatchNormNode, TrainingUpdatesRunningStatisticsAndEvaluationUsesThem) {
  BatchNormOptions options;
  options.momentum = 0.5f;
  auto node = nodes::make_batchnorm2d("bn", 2, options);
  // Channel 0 holds {1, 2, 3, 4}, channel 1 holds {10, 10, 10, 10}.
  const Tensor x = Tensor::from({2, 2, 1, 2}, {1, 2, 10, 10, 3, 4, 10, 10}, Layout::kNCHW);
  const std::vector<Tensor> in = {x};
  const Tensor y = node->forward({in, true, 0});
  // Batch statistics: channel 0 normalised to (x - 2.5) / sqrt(1.25 + eps).
  const double r = 1.0 / std::sqrt(1.25 + 1e-5);
  EXPECT_NEAR(y[0], (1 - 2.5) * r, 1e-5);
  EXPECT_NEAR(y[5], (4 - 2.5) * r, 1e-5);
  EXPECT_NEAR(y[2], 0.0, 1e-5);  // a constant channel becomes 0 (+ bias)
  const std::vector<Parameter*> params = node->parameters();
  EXPECT_NEAR(params[2]->value[0], 0.5 * 0 + 0.5 * 2.5, 1e-6);
  EXPECT_NEAR(params[3]->value[0], 0.5 * 1 + 0.5 * (5.0 / 3.0), 1e-6);  // unbiased
  EXPECT_NEAR(params[2]->value[1], 0.5 * 0 + 0.5 * 10, 1e-6);
  EXPECT_NEAR(params[3]->value[1], 0.5 * 1 + 0.5 * 0, 1e-6);

  // Evaluation: the running statistics, and no update.
  const Tensor e = node->forward({in, false, 0});
  const double rm = params[2]->value[0], rv = params[3]->value[0];
  EXPECT_NEAR(e[0], (1 - rm) / std::sqrt(rv + 1e-5), 1e-5);
  EXPECT_NEAR(e[2], (10 - 5.0) / std::sqrt(0.5 + 1e-5), 1e-4);
  EXPECT_NEAR(params[2]->value[0], rm, 0.0);
  EXPECT_NEAR(params[3]->value[0], rv, 0.0);
  EXPECT_FALSE(e.equals(y));
}

TEST(BatchNormNode, KeepsTheLayoutOfItsInput) {
  Rng rng(3);
  for (Layout layout : {Layout::kPlain, Layout::kNCHW, Layout::kNHWC, Layout::kCHWN}) {
    auto node = make_bn(3, rng);
    const Tensor x = random_tensor({4, 3, 5, 5}, layout, rng);
    const std::vector<Tensor> in = {x};
    const Tensor y = node->forward({in, true, 0});
    EXPECT_EQ(y.layout(), layout);
    EXPECT_EQ(y.shape(), x.shape());
    // The same values as NCHW data, reordered.
    auto ref_node = make_bn(3, rng);
    for (size_t i = 0; i < 2; ++i)
      ref_node->parameters()[i]->value.copy_from(node->parameters()[i]->value);
    const std::vector<Tensor> in_nchw = {to_layout(x, Layout::kNCHW)};
    const Tensor y_nchw = ref_node->forward({in_nchw, true, 0});
    const Tensor y_back = to_layout(y, Layout::kNCHW);
    for (int64_t i = 0; i < y.numel(); ++i) EXPECT_NEAR(y_back[i], y_nchw[i], 1e-5);
  }
}

TEST(BatchNormNode, RejectsBadShapesAndOptions) {
  auto node = nodes::make_batchnorm2d("stem.bn", 16, BatchNormOptions{});
  EXPECT_EQ(node->output_shape({{8, 16, 4, 4}}), (Shape{8, 16, 4, 4}));
  try {
    node->output_shape({{8, 8, 4, 4}});
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stem.bn"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(8, 8, 4, 4)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(node->output_shape({{8, 16}}), Error);
  EXPECT_THROW(node->output_shape({{8, 16, 4, 4}, {8, 16, 4, 4}}), Error);
  EXPECT_THROW(nodes::make_batchnorm2d("bn", 0, BatchNormOptions{}), Error);
  BatchNormOptions bad;
  bad.eps = 0.0f;
  EXPECT_THROW(nodes::make_batchnorm2d("bn", 4, bad), Error);
  bad = {};
  bad.momentum = 1.5f;
  EXPECT_THROW(nodes::make_batchnorm2d("bn", 4, bad), Error);
  // Training on one value per channel has no variance.
  auto one = nodes::make_batchnorm2d("bn", 2, BatchNormOptions{});
  const std::vector<Tensor> single = {Tensor::zeros({1, 2, 1, 1}, Layout::kNCHW)};
  EXPECT_THROW(one->forward({single, true, 0}), Error);
  EXPECT_NO_THROW(one->forward({single, false, 0}));
}

TEST(BatchNormNode, SavesOnlyItsInput) {
  auto node = nodes::make_batchnorm2d("bn", 2, BatchNormOptions{});
  EXPECT_TRUE(node->saves().inputs);
  EXPECT_FALSE(node->saves().output);
}

}  // namespace
}  // namespace sparsetrain

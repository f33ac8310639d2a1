// Tensor storage, layouts and reorders, memory accounting, and the RNG.
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

#include "sparsetrain/error.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/tensor.h"

namespace sparsetrain {
namespace {

TEST(Tensor, IsZeroedAlignedAndShared) {
  Tensor t({3, 5});
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t[i], 0.0f);
  Tensor alias = t;
  alias[4] = 2.5f;
  EXPECT_EQ(t[4], 2.5f);
  Tensor copy = t.clone();
  copy[4] = 1.0f;
  EXPECT_EQ(t[4], 2.5f);
  EXPECT_TRUE(t.equals(alias));
  EXPECT_FALSE(t.equals(copy));
}

TEST(Tensor, ReshapeChecksTheCount) {
  Tensor t({2, 6});
  EXPECT_EQ(t.reshaped({3, 4}).shape(), (Shape{3, 4}));
  EXPECT_THROW(t.reshaped({5, 2}), Error);
  EXPECT_THROW(Tensor({2, -1}), Error);
  EXPECT_THROW(Tensor::from({2}, {1.0f, 2.0f, 3.0f}), Error);
}

TEST(Tensor, LayoutRoundTripsAreExact) {
  const Shape s{3, 5, 4, 7};
  Tensor t = Tensor::empty(s, Layout::kNCHW);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(i);
  for (Layout l : {Layout::kNHWC, Layout::kCHWN}) {
    const Tensor u = to_layout(t, l);
    EXPECT_EQ(u.layout(), l);
    EXPECT_EQ(u[offset4(l, s, 2, 3, 1, 6)], t[offset4(Layout::kNCHW, s, 2, 3, 1, 6)]);
    const Tensor back = to_layout(u, Layout::kNCHW);
    EXPECT_TRUE(back.equals(t));
  }
  Tensor m = Tensor::empty({4, 3});
  for (int64_t i = 0; i < 12; ++i) m[i] = static_cast<float>(i);
  const Tensor cn = to_layout(m, Layout::kCN);
  EXPECT_EQ(cn[1 * 4 + 2], m[2 * 3 + 1]);
  EXPECT_TRUE(to_layout(cn, Layout::kPlain).equals(m));
}

// Padded channel planes (kCHWN, Tensor::plane): element (n, c, h, w) at
// c * plane + (h * W + w) * N + n; copies, comparisons and reorders see the
// elements only.
TEST(Tensor, PaddedChannelPlanesHoldTheSameElements) {
  const Shape shape = {3, 4, 2, 5};  // N, C, H, W: planes of 30 floats
  EXPECT_EQ(chwn_padded_plane(3, 2, 5), 30) << "not a multiple of 4 KiB: packed";
  EXPECT_EQ(chwn_padded_plane(128, 32, 32), 128 * 32 * 32 + 16);
  EXPECT_FALSE(Tensor::empty_planes(shape, 30).padded()) << "no room: packed";
  Tensor packed = Tensor::empty(shape, Layout::kCHWN);
  for (int64_t i = 0; i < packed.numel(); ++i) packed[i] = static_cast<float>(i);
  Tensor padded = Tensor::empty_planes(shape, 37);
  ASSERT_TRUE(padded.padded());
  EXPECT_EQ(padded.plane(), 37);
  EXPECT_EQ(padded.span(), 3 * 37 + 30);
  padded.fill(-1.0f);
  for (int64_t c = 0; c < 4; ++c)
    for (int64_t k = 0; k < 30; ++k) padded[c * 37 + k] = packed[c * 30 + k];
  EXPECT_TRUE(padded.equals(packed));
  EXPECT_TRUE(packed.equals(padded));
  const Tensor back = padded.packed();
  EXPECT_FALSE(back.padded());
  EXPECT_EQ(std::vector<float>(back.data(), back.data() + back.numel()),
            std::vector<float>(packed.data(), packed.data() + packed.numel()));
  const Tensor copy = padded.clone();
  EXPECT_EQ(copy.plane(), 37);
  EXPECT_TRUE(copy.equals(packed));
  EXPECT_EQ(Tensor::empty_like(padded).plane(), 37);
  // Reorders read the elements; the same layout keeps the planes.
  EXPECT_TRUE(to_layout(padded, Layout::kNCHW).equals(to_layout(packed, Layout::kNCHW)));
  EXPECT_EQ(to_layout(padded, Layout::kCHWN).plane(), 37);
  EXPECT_TRUE(to_layout_of(packed, padded).equals(packed));
  EXPECT_EQ(to_layout_of(packed, padded).plane(), 37);
  EXPECT_FALSE(to_layout_of(padded, packed).padded());
  EXPECT_TRUE(to_layout_of(to_layout(packed, Layout::kNHWC), padded).equals(packed));
  const Tensor nhwc = to_layout_of(padded, to_layout(packed, Layout::kNHWC));
  EXPECT_EQ(nhwc.layout(), Layout::kNHWC);
  EXPECT_TRUE(nhwc.equals(to_layout(packed, Layout::kNHWC)));
  // A view or a copy across different planes would misplace elements.
  EXPECT_THROW(padded.reshaped({3, 120}), Error);
  Tensor other = Tensor::empty(shape, Layout::kCHWN);
  EXPECT_THROW(other.copy_from(padded), Error);
  Tensor same = Tensor::empty_like(padded);
  same.copy_from(padded);
  EXPECT_TRUE(same.equals(packed));
}

TEST(Tensor, MemoryIsAccounted) {
  const int64_t before = memory_stats().current_bytes;
  {
    Tensor big({1024, 1024});
    EXPECT_GE(memory_stats().current_bytes, before + 4 * 1024 * 1024);
    EXPECT_GE(memory_stats().peak_bytes, before + 4 * 1024 * 1024);
  }
  EXPECT_EQ(memory_stats().current_bytes, before);
}

TEST(Rng, IsReproducibleAndRestorable) {
  Rng a(5), b(5), c(6);
  EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(a.next(), c.next());
  Rng d(9);
  d.next();
  const auto saved = d.state();
  const uint64_t expect = d.next();
  Rng e;
  e.set_state(saved);
  EXPECT_EQ(e.next(), expect);
}

TEST(Rng, DistributionsHaveTheRightMoments) {
  Rng r(1);
  double sum = 0, sum_sq = 0, usum = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double v = r.normal();
    sum += v;
    sum_sq += v * v;
    const float u = r.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    usum += u;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.02);
  EXPECT_NEAR(usum / n, 0.5, 0.01);
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(r.below(7));
  EXPECT_EQ(seen.size(), 7u);
}

}  // namespace
}  // namespace sparsetrain

// The layer benchmarks' timing method (apps/sparsetrain/bench_common.h): in
// what order the dense and sparse passes run for each cache state, and the
// values --cache accepts.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bench_common.h"
#include "sparsetrain/error.h"

namespace sparsetrain::cli::bench {
namespace {

// Records every pass a side runs as "<side><pass>" ("d0" = dense fwd).
struct Recorder {
  std::vector<std::string> calls;
  PassFn side(char name) {
    return [this, name](int pass) { calls.push_back(std::string(1, name) + std::to_string(pass)); };
  }
};

std::vector<std::string> repeat(const std::vector<std::string>& v, int times) {
  std::vector<std::string> out;
  for (int k = 0; k < times; ++k) out.insert(out.end(), v.begin(), v.end());
  return out;
}

TEST(BenchMethod, ColdAlternatesPassByPass) {
  Recorder rec;
  interleave(3, CacheState::kCold, rec.side('d'), rec.side('s'));
  EXPECT_EQ(rec.calls, repeat({"d0", "s0", "d1", "s1", "d2", "s2"}, 3));
}

// Warm: each side's step runs once untimed, then once timed, before the
// other side's; so every timed pass follows the same side's step.
TEST(BenchMethod, WarmRunsEachSideTwiceInARow) {
  Recorder rec;
  interleave(2, CacheState::kWarm, rec.side('d'), rec.side('s'));
  const std::vector<std::string> step_d = {"d0", "d1", "d2"}, step_s = {"s0", "s1", "s2"};
  std::vector<std::string> rep = repeat(step_d, 2);
  const std::vector<std::string> ss = repeat(step_s, 2);
  rep.insert(rep.end(), ss.begin(), ss.end());
  EXPECT_EQ(rec.calls, repeat(rep, 2));
}

TEST(BenchMethod, ParseCache) {
  EXPECT_EQ(parse_cache("cold"), CacheState::kCold);
  EXPECT_EQ(parse_cache("warm"), CacheState::kWarm);
  EXPECT_STREQ(cache_name(CacheState::kWarm), "warm");
  EXPECT_STREQ(cache_name(CacheState::kCold), "cold");
  try {
    parse_cache("hot");
    FAIL() << "accepted 'hot'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--cache"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sparsetrain::cli::bench

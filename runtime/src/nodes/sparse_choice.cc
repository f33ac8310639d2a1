#include "nodes/sparse_choice.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>

#include "kernels/common/log.h"

namespace sparsetrain::nodes {
namespace {

// Repetitions after the warm-up; the best one counts (the least disturbed by
// other processes on a shared machine).
constexpr int kTimingReps = 5;

std::mutex g_mutex;
std::map<std::string, bool>& choices() {
  static std::map<std::string, bool> cache;
  return cache;
}

double best_seconds(const std::function<void()>& step) {
  step();  // warm-up: primitive creation, first-touch of the buffers
  double best = 1e30;
  for (int rep = 0; rep < kTimingReps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
    best = std::min(best, took.count());
  }
  return best;
}

}  // namespace

bool choose_sparse_kernels(const std::string& key, const std::string& label,
                           const std::function<TimedSteps()>& prepare) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (auto it = choices().find(key); it != choices().end()) return it->second;
  const TimedSteps steps = prepare();
  const double sparse_s = best_seconds(steps.sparse);
  const double dense_s = best_seconds(steps.dense);
  const bool sparse = sparse_s <= dense_s;
  choices().emplace(key, sparse);
  char times[128];
  std::snprintf(times, sizeof times, " kernels (sparse %.3f ms, dense %.3f ms per step)",
                1e3 * sparse_s, 1e3 * dense_s);
  kernels::log(kernels::LogLevel::kInfo, label + ": " + (sparse ? "sparse" : "dense") + times);
  return sparse;
}

}  // namespace sparsetrain::nodes

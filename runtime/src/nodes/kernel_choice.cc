#include "nodes/kernel_choice.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "base/stats.h"
#include "kernels/common/log.h"
#include "sparsetrain/error.h"

namespace sparsetrain {

bool kernel_choice_rule(const std::string& op, double density) {
  return density <= (op == "linear" ? kLinearSparseMaxDensity : kConvSparseMaxDensity);
}

namespace nodes {
namespace {

double seconds_of(const std::function<void()>& step) {
  const auto t0 = std::chrono::steady_clock::now();
  step();
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
  return took.count();
}

double median(std::vector<double> v) {
  SPARSETRAIN_ASSERT(!v.empty());
  return detail::median_of(std::move(v));
}

std::string describe(const KernelChoice& c) {
  char text[256];
  std::string how;
  if (c.decided_by == "batch") {
    how = " (as decided at batch " + std::to_string(c.from_batch) + "; nothing timed)";
  } else if (c.decided_by == "rule") {
    std::snprintf(text, sizeof text, " (rule: sparse at density <= %.2f; nothing timed)",
                  c.op == "linear" ? kLinearSparseMaxDensity : kConvSparseMaxDensity);
    how = text;
  } else {
    std::snprintf(text, sizeof text, " (sparse %.3f ms, dense %.3f ms per step%s)", c.sparse_ms,
                  c.dense_ms, c.decided_by == "margin" ? "; a tie: the density rule decides" : "");
    how = text;
  }
  return c.layer + " " + c.op + " " + c.shape + ": " + (c.sparse ? "sparse" : "dense") +
         " kernels" + how;
}

}  // namespace

KernelChoiceBook::Timing KernelChoiceBook::time_steps(const KernelChoice& problem,
                                                      const std::function<TimedSteps()>& prepare) {
  if (auto it = timed_.find(problem.problem); it != timed_.end()) return it->second;
  const TimedSteps steps = prepare();
  // Warm-up: primitive creation, first touch of the buffers.
  steps.sparse();
  steps.dense();
  std::vector<double> sparse_s, dense_s;
  for (int rep = 0; rep < kKernelTimingReps; ++rep) {
    // Alternate which side goes first, so neither always follows the other.
    if (rep % 2 == 0) {
      sparse_s.push_back(seconds_of(steps.sparse));
      dense_s.push_back(seconds_of(steps.dense));
    } else {
      dense_s.push_back(seconds_of(steps.dense));
      sparse_s.push_back(seconds_of(steps.sparse));
    }
  }
  Timing t{1e3 * median(sparse_s), 1e3 * median(dense_s)};
  ++timings_;
  if (hook_) hook_(problem, t.sparse_ms, t.dense_ms);
  timed_.emplace(problem.problem, t);
  return t;
}

bool KernelChoiceBook::choose(KernelChoice problem, const std::function<TimedSteps()>& prepare) {
  std::lock_guard<std::mutex> lock(mutex_);
  const Key key{problem.layer, problem.problem};
  if (auto it = index_.find(key); it != index_.end()) return made_[it->second].sparse;
  KernelChoice c;
  if (auto it = replay_.find(key); it != replay_.end()) {
    c = it->second;
    c.replayed = true;
  } else {
    c = std::move(problem);
    c.step = step_;
    const bool rule = kernel_choice_rule(c.op, c.density);
    if (const KernelChoice* from = same_family(c)) {
      c.decided_by = "batch";
      c.from_batch = from->decided_by == "batch" ? from->from_batch : from->batch;
      c.sparse = from->sparse;
    } else if (c.kernels == "auto-fixed") {
      c.decided_by = "rule";
      c.sparse = rule;
    } else {
      const Timing t = time_steps(c, prepare);
      c.sparse_ms = t.sparse_ms;
      c.dense_ms = t.dense_ms;
      const double faster = std::min(t.sparse_ms, t.dense_ms);
      const bool tie = std::fabs(t.sparse_ms - t.dense_ms) < kKernelChoiceMargin * faster;
      c.decided_by = tie ? "margin" : "timing";
      c.sparse = tie ? rule : t.sparse_ms < t.dense_ms;
    }
    kernels::log(kernels::LogLevel::kInfo, describe(c));
  }
  index_.emplace(key, made_.size());
  made_.push_back(c);
  return c.sparse;
}

const KernelChoice* KernelChoiceBook::same_family(const KernelChoice& c) const {
  const auto shares = [&](const KernelChoice& d) {
    return d.layer == c.layer && d.family == c.family && d.batch >= kKernelChoiceSharedMinBatch;
  };
  if (c.kernels != "auto" || c.family.empty() || c.batch < kKernelChoiceSharedMinBatch)
    return nullptr;
  // What this graph ran first, else a record (in key order).
  for (const KernelChoice& d : made_)
    if (shares(d)) return &d;
  for (const auto& [key, d] : replay_)
    if (shares(d)) return &d;
  return nullptr;
}

void KernelChoiceBook::replay(const std::vector<KernelChoice>& records) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const KernelChoice& r : records) {
    const Key key{r.layer, r.problem};
    replay_[key] = r;
    // A record overrides a decision made before it (a checkpoint loaded into
    // a graph that has run).
    if (auto it = index_.find(key); it != index_.end()) {
      made_[it->second] = r;
      made_[it->second].replayed = true;
    }
  }
}

std::vector<KernelChoice> KernelChoiceBook::made() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return made_;
}

void KernelChoiceBook::set_timing_hook(KernelTimingHook hook) {
  std::lock_guard<std::mutex> lock(mutex_);
  hook_ = std::move(hook);
}

int64_t KernelChoiceBook::timings_run() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return timings_;
}

}  // namespace nodes
}  // namespace sparsetrain

#include "kernels/common/threads.h"

#include <omp.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>

namespace sparsetrain::kernels {
namespace {

// 0 until set_num_threads is called: both runtimes keep their own defaults.
std::atomic<int> g_num_threads{0};

std::mutex& control_mutex() {
  static std::mutex mutex;
  return mutex;
}

// The live TBB limit. tbb::global_control applies while the object exists, so
// it is kept here until the next set_num_threads replaces it.
std::unique_ptr<oneapi::tbb::global_control>& tbb_control() {
  static std::unique_ptr<oneapi::tbb::global_control> control;
  return control;
}

int hardware_threads() { return std::max(1, oneapi::tbb::info::default_concurrency()); }

}  // namespace

void set_num_threads(int n) {
  const int count = n > 0 ? n : hardware_threads();
  std::lock_guard<std::mutex> lock(control_mutex());
  auto& control = tbb_control();
  control.reset();  // the effective limit is the minimum over live objects
  control = std::make_unique<oneapi::tbb::global_control>(
      oneapi::tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(count));
  g_num_threads.store(count);
  omp_set_num_threads(count);
}

int num_threads() {
  const int count = g_num_threads.load();
  return count > 0 ? count : hardware_threads();
}

void sync_openmp_threads() {
  const int count = g_num_threads.load();
  if (count > 0 && omp_get_max_threads() != count) omp_set_num_threads(count);
}

}  // namespace sparsetrain::kernels

// What every Google Benchmark program here does around its cases: takes our
// own --threads=N flag out of the command line before Google Benchmark sees
// it, and runs the registered benchmarks.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/common/threads.h"

namespace sparsetrain::bench {

// Removes every --threads=N from argv (argc shrinks accordingly) and returns
// the last N given, or `fallback` when there is none.
inline int take_threads_flag(int& argc, char** argv, int fallback) {
  int threads = fallback;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return threads;
}

// take_threads_flag, then that many threads for TBB and OpenMP alike
// (kernels::set_num_threads), recorded in the benchmark context.
inline void set_threads_from_flag(int& argc, char** argv, int fallback) {
  kernels::set_num_threads(take_threads_flag(argc, argv, fallback));
  benchmark::AddCustomContext("threads", std::to_string(kernels::num_threads()));
}

// `count` values uniform in [-1, 1) (the benchmarks' weights and
// activations).
inline std::vector<float> random_floats(int64_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = dist(rng);
  return v;
}

// Initialises Google Benchmark with the remaining flags and runs the
// registered cases; 1 on an unrecognised flag.
inline int run_benchmarks(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace sparsetrain::bench

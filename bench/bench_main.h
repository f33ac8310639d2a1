// What every Google Benchmark program here does around its cases: takes our
// own --threads=N flag out of the command line before Google Benchmark sees
// it, and runs the registered benchmarks.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>

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

// What `sparsetrain bench linear | conv | model` share: timing and medians,
// the interleaved dense-vs-sparse measurement of the three passes, the
// report of one layer benchmark (table, JSON, sweep table and plot), the
// validation of common options, and the PNG plot.
//
// The method every layer benchmark follows: build every operand up front;
// warm up both sides; choose the dense side's fastest form per pass; then run
// `reps` repetitions in which dense and sparse alternate, so both sides see
// the same machine state, and report medians. How they alternate sets what
// the caches hold when a pass starts (--cache):
//
//   cold  pass by pass (dense fwd, sparse fwd, dense bwd_data, ...): every
//         pass starts from caches the other side's pass has just filled with
//         its own operands (for 768 -> 3072 the dense side streams a 9 MiB
//         weight and its gradient), so little of its own data is left;
//   warm  step by step, each side's step (fwd, bwd_data, bwd_weights) run
//         once untimed right before its timed step: every pass finds its
//         operands where that side's previous step left them, as in a
//         training loop over this one layer (oneDNN's benchdnn also times
//         warm caches by default).
#pragma once

#include <CLI/CLI.hpp>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "commands.h"

namespace sparsetrain::cli::bench {

using Clock = std::chrono::steady_clock;

inline constexpr double kSweepSparsities[] = {0.5, 0.8, 0.9, 0.95, 0.98, 0.99};

enum Pass { kFwd = 0, kBwdData = 1, kBwdWeights = 2, kTotal = 3, kNumPasses = 4 };
inline constexpr int kNumKernelPasses = 3;  // fwd, bwd_data, bwd_weights
inline constexpr const char* kPassNames[kNumPasses] = {"fwd", "bwd_data", "bwd_weights", "total"};

double median(std::vector<double> v);

template <class F>
double time_ms(F&& f) {
  const Clock::time_point t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::vector<float> random_floats(int64_t count, std::mt19937& rng);

// Magnitude mask: the round(sparsity * size) smallest |w| are pruned (ties
// broken by position, so the count is exact).
std::vector<uint8_t> magnitude_mask(const std::vector<float>& w, double sparsity);

// What the caches hold when a timed pass starts (see the top of the file).
enum class CacheState { kCold, kWarm };
// "cold" | "warm"; throws Error naming --cache otherwise.
CacheState parse_cache(const std::string& name);
const char* cache_name(CacheState cache);

// Runs one pass of one side; `pass` is kFwd, kBwdData or kBwdWeights.
using PassFn = std::function<void(int pass)>;

// Medians per pass (and of the per-repetition sum, kTotal), dense and sparse.
struct PassTimes {
  std::array<double, kNumPasses> dense_ms{}, sparse_ms{};
  double speedup(int pass) const { return dense_ms[pass] / sparse_ms[pass]; }
};

// Medians per pass (and of the per-repetition sum, kTotal) of `reps`
// repetitions of dense and sparse, alternating as `cache` says.
PassTimes interleave(int reps, CacheState cache, const PassFn& dense, const PassFn& sparse);

// The dense side has `forms` ways to run each pass (operand layouts);
// dense(form, pass) runs one. After `warmup` untimed rounds of every form and
// the sparse side, picks the fastest form per pass (medians of a few runs of
// each, interleaved), then times `reps` repetitions of that form against the
// sparse side, alternating as `cache` says.
struct Comparison {
  PassTimes t;
  std::array<int, kNumKernelPasses> form{};  // the dense form chosen per pass
};
Comparison compare(int warmup, int reps, int forms, CacheState cache,
                   const std::function<void(int, int)>& dense, const PassFn& sparse);

// One measured layer at one sparsity, in the words both layer benchmarks use.
struct LayerReport {
  std::string command;           // "linear" | "conv"
  nlohmann::ordered_json shape;  // the op's own fields first (in/out/batch, ...)
  std::string shape_line;        // "batch 256 x 768 -> 3072"
  std::string plot_title;        // "b256 768->3072" (the plot font's characters only)
  std::string dense_name;        // "oneDNN matmul"
  double sparsity = 0.0;
  int64_t nnz = 0, dense_size = 0;
  int threads = 0, reps = 0;
  CacheState cache = CacheState::kCold;
  std::string isa, dense_impl;
  std::array<std::string, kNumKernelPasses> sparse_kernels;
  // FLOPs of one pass (the three cost the same): the dense layer's, and the
  // sparse layer's real ones (2 x nnz x batch [x output pixels]), from which
  // the JSON's GFLOP/s per pass.
  double dense_flop = 0.0, sparse_flop = 0.0;
  PassTimes t;
};

// compare() of the dense `forms` against the sparse side under the options'
// --warmup, --reps and --cache, and its report (times, thread count, reps,
// cache, ISA, sparsity); dense_impl lists the chosen form of each pass as
// "fwd=<form>:<impl> bwd_data=...", describe(form, pass) giving
// "<form>:<impl>". The caller adds the rest.
LayerReport measure_layer(const BenchLayerOptions& options, double sparsity, const std::string& isa,
                          int forms, const std::function<void(int, int)>& dense,
                          const PassFn& sparse,
                          const std::function<std::string(int, int)>& describe);

nlohmann::ordered_json to_json(const LayerReport& r);
// The table of one sparsity, or the sweep's rows as they come.
void print_table(const LayerReport& r);
void print_sweep_row(const LayerReport& r, bool first);

// A single measurement at `sparsity`, or with `sweep` one per kSweepSparsities
// with their speed-ups plotted into `plot`; prints the table or the JSON.
int report_layer(bool sweep, bool json, double sparsity, const std::string& plot,
                 const std::function<LayerReport(double)>& measure);

// The plot of a sweep: speed-up of the whole step against sparsity, with a
// dashed break-even line, written as a PNG through a temporary file (a reader
// never sees a half-written plot). Throws Error naming --plot on failure.
struct SweepPoint {
  double sparsity, speedup;
};
void plot_speedups(const std::vector<SweepPoint>& points, const std::string& title,
                   const std::string& path);

// --- options ---------------------------------------------------------------

// Throws Error "<flag> must be at least <min>, got <v>".
void require_at_least(int64_t v, int64_t min, const char* flag);
// Throws Error naming --sparsity unless 0 <= s < 1.
void require_sparsity(double s);
// Throws Error naming --warmup / --threads when negative.
void require_warmup_threads(int warmup, int threads);
// The checks every layer benchmark's options share (--batch, --reps,
// --cache, --sparsity, --warmup, --threads); throws Error naming the flag.
void check_layer_options(const BenchLayerOptions& options);
// The subcommands take unknown arguments as extras (allow_extras) so that
// they are reported here as one line and exit code 1: throws Error naming the
// first one.
void reject_extras(const CLI::App& app);

}  // namespace sparsetrain::cli::bench

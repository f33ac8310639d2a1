#include "bench_common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>

#include "kernels/common/threads.h"
#include "sparsetrain/error.h"

namespace sparsetrain::cli::bench {

// Repetitions per dense form when choosing the fastest form of each pass.
constexpr int kSelectReps = 5;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::vector<float> random_floats(int64_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<uint8_t> magnitude_mask(const std::vector<float>& w, double sparsity) {
  const std::size_t size = w.size();
  const auto pruned = static_cast<std::size_t>(std::llround(sparsity * static_cast<double>(size)));
  std::vector<uint8_t> mask(size, 1);
  if (pruned == 0) return mask;
  std::vector<uint32_t> order(size);
  std::iota(order.begin(), order.end(), 0u);
  const auto smaller = [&](uint32_t a, uint32_t b) {
    const float fa = std::fabs(w[a]), fb = std::fabs(w[b]);
    return fa < fb || (fa == fb && a < b);
  };
  std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(pruned - 1),
                   order.end(), smaller);
  for (std::size_t k = 0; k < pruned; ++k) mask[order[k]] = 0;
  return mask;
}

namespace {

using Samples = std::array<std::vector<double>, kNumPasses>;

// One timed step of one side: each pass into its samples, their sum into
// samples[kTotal].
void timed_step(const PassFn& side, Samples& samples) {
  double total = 0.0;
  for (int pass = kFwd; pass <= kBwdWeights; ++pass) {
    const double t = time_ms([&] { side(pass); });
    samples[pass].push_back(t);
    total += t;
  }
  samples[kTotal].push_back(total);
}

void untimed_step(const PassFn& side) {
  for (int pass = kFwd; pass <= kBwdWeights; ++pass) side(pass);
}

}  // namespace

// Medians per pass (and of the per-repetition sum, kTotal) of `reps`
// repetitions, dense and sparse alternating as `cache` says (bench_common.h).
PassTimes interleave(int reps, CacheState cache, const PassFn& dense, const PassFn& sparse) {
  Samples dense_t, sparse_t;
  for (int r = 0; r < reps; ++r) {
    if (cache == CacheState::kWarm) {
      untimed_step(dense);
      timed_step(dense, dense_t);
      untimed_step(sparse);
      timed_step(sparse, sparse_t);
      continue;
    }
    double dense_total = 0.0, sparse_total = 0.0;
    for (int pass = kFwd; pass <= kBwdWeights; ++pass) {
      const double d = time_ms([&] { dense(pass); });
      const double s = time_ms([&] { sparse(pass); });
      dense_t[pass].push_back(d);
      sparse_t[pass].push_back(s);
      dense_total += d;
      sparse_total += s;
    }
    dense_t[kTotal].push_back(dense_total);
    sparse_t[kTotal].push_back(sparse_total);
  }
  PassTimes t;
  for (int pass = 0; pass < kNumPasses; ++pass) {
    t.dense_ms[pass] = median(dense_t[pass]);
    t.sparse_ms[pass] = median(sparse_t[pass]);
  }
  return t;
}

CacheState parse_cache(const std::string& name) {
  if (name == "cold") return CacheState::kCold;
  if (name == "warm") return CacheState::kWarm;
  throw Error("--cache must be cold or warm, got '" + name + "'");
}

const char* cache_name(CacheState cache) { return cache == CacheState::kWarm ? "warm" : "cold"; }

Comparison compare(int warmup, int reps, int forms, CacheState cache,
                   const std::function<void(int, int)>& dense, const PassFn& sparse) {
  for (int r = 0; r < warmup; ++r) {
    for (int pass = kFwd; pass <= kBwdWeights; ++pass) {
      for (int f = 0; f < forms; ++f) dense(f, pass);
      sparse(pass);
    }
  }
  Comparison c;
  for (int pass = kFwd; pass <= kBwdWeights; ++pass) {
    std::vector<std::vector<double>> t(static_cast<std::size_t>(forms));
    for (int r = 0; r < kSelectReps; ++r)
      for (int f = 0; f < forms; ++f) t[f].push_back(time_ms([&] { dense(f, pass); }));
    for (int f = 1; f < forms; ++f)
      if (median(t[f]) < median(t[c.form[pass]])) c.form[pass] = f;
  }
  c.t = interleave(
      reps, cache, [&](int pass) { dense(c.form[pass], pass); }, sparse);
  return c;
}

// --- the report -----------------------------------------------------------------

LayerReport measure_layer(const BenchLayerOptions& options, double sparsity, const std::string& isa,
                          int forms, const std::function<void(int, int)>& dense,
                          const PassFn& sparse,
                          const std::function<std::string(int, int)>& describe) {
  const CacheState cache = parse_cache(options.cache);
  const Comparison c = compare(options.warmup, options.reps, forms, cache, dense, sparse);
  LayerReport r;
  r.t = c.t;
  r.threads = kernels::num_threads();
  r.reps = options.reps;
  r.cache = cache;
  r.isa = isa;
  r.sparsity = sparsity;
  for (int pass = kFwd; pass <= kBwdWeights; ++pass) {
    if (!r.dense_impl.empty()) r.dense_impl += " ";
    r.dense_impl += std::string(kPassNames[pass]) + "=" + describe(c.form[pass], pass);
  }
  return r;
}

nlohmann::ordered_json to_json(const LayerReport& r) {
  nlohmann::ordered_json dense, sparse, speedup, kernels, dense_gflops, sparse_gflops;
  for (int pass = 0; pass < kNumPasses; ++pass) {
    dense[kPassNames[pass]] = r.t.dense_ms[pass];
    sparse[kPassNames[pass]] = r.t.sparse_ms[pass];
    if (pass != kTotal) {
      speedup[kPassNames[pass]] = r.t.speedup(pass);
      kernels[kPassNames[pass]] = r.sparse_kernels[pass];
      dense_gflops[kPassNames[pass]] = r.dense_flop / (r.t.dense_ms[pass] * 1e6);
      sparse_gflops[kPassNames[pass]] = r.sparse_flop / (r.t.sparse_ms[pass] * 1e6);
    }
  }
  nlohmann::ordered_json j = r.shape;
  j["sparsity"] = r.sparsity;
  j["nnz"] = r.nnz;
  j["threads"] = r.threads;
  j["isa"] = r.isa;
  j["dense_impl"] = r.dense_impl;
  j["sparse_kernels"] = kernels;
  j["dense_ms"] = dense;
  j["sparse_ms"] = sparse;
  j["speedup"] = speedup;
  j["speedup_total"] = r.t.speedup(kTotal);
  j["dense_gflops"] = dense_gflops;
  j["sparse_gflops"] = sparse_gflops;
  j["reps"] = r.reps;
  j["cache"] = cache_name(r.cache);
  return j;
}

namespace {

void print_header(const LayerReport& r, bool sweep) {
  std::printf("bench %s: %s", r.command.c_str(), r.shape_line.c_str());
  if (!sweep)
    std::printf(", sparsity %.2f (nnz %lld of %lld)", r.sparsity, static_cast<long long>(r.nnz),
                static_cast<long long>(r.dense_size));
  std::printf(", ISA %s, %d threads, medians of %d reps, %s caches\n", r.isa.c_str(), r.threads,
              r.reps, cache_name(r.cache));
  std::printf("sparse kernels: fwd=%s bwd_data=%s bwd_weights=%s\n", r.sparse_kernels[kFwd].c_str(),
              r.sparse_kernels[kBwdData].c_str(), r.sparse_kernels[kBwdWeights].c_str());
  if (!sweep) std::printf("dense (%s): %s\n", r.dense_name.c_str(), r.dense_impl.c_str());
}

}  // namespace

void print_table(const LayerReport& r) {
  print_header(r, false);
  std::printf("\n%-12s %10s %10s %9s\n", "pass", "dense ms", "sparse ms", "speed-up");
  for (int pass = 0; pass < kNumPasses; ++pass)
    std::printf("%-12s %10.3f %10.3f %8.2fx\n", kPassNames[pass], r.t.dense_ms[pass],
                r.t.sparse_ms[pass], r.t.speedup(pass));
}

void print_sweep_row(const LayerReport& r, bool first) {
  if (first) {
    print_header(r, true);
    std::printf("\n%-8s %10s %10s %9s %8s %9s %12s\n", "sparsity", "dense ms", "sparse ms",
                "speed-up", "fwd", "bwd_data", "bwd_weights");
  }
  std::printf("%-8.2f %10.3f %10.3f %8.2fx %7.2fx %8.2fx %11.2fx\n", r.sparsity,
              r.t.dense_ms[kTotal], r.t.sparse_ms[kTotal], r.t.speedup(kTotal), r.t.speedup(kFwd),
              r.t.speedup(kBwdData), r.t.speedup(kBwdWeights));
  std::fflush(stdout);
}

int report_layer(bool sweep, bool json, double sparsity, const std::string& plot,
                 const std::function<LayerReport(double)>& measure) {
  if (!sweep) {
    const LayerReport r = measure(sparsity);
    if (json) {
      std::cout << to_json(r).dump(2) << "\n";
    } else {
      print_table(r);
    }
    return 0;
  }

  std::vector<LayerReport> results;
  std::vector<SweepPoint> points;
  for (const double s : kSweepSparsities) {
    results.push_back(measure(s));
    points.push_back({s, results.back().t.speedup(kTotal)});
    if (!json) print_sweep_row(results.back(), results.size() == 1);
  }
  const LayerReport& r0 = results.front();
  plot_speedups(points,
                "speed-up vs sparsity: " + r0.plot_title + ", " + std::to_string(r0.threads) +
                    " threads, " + r0.isa,
                plot);
  if (json) {
    nlohmann::ordered_json all = nlohmann::ordered_json::array();
    for (const LayerReport& r : results) all.push_back(to_json(r));
    std::cout << all.dump(2) << "\n";
    std::fprintf(stderr, "plot: %s\n", plot.c_str());
  } else {
    std::printf("\nplot: %s\n", plot.c_str());
  }
  return 0;
}

// --- options ------------------------------------------------------------------

void require_at_least(int64_t v, int64_t min, const char* flag) {
  if (v < min) {
    throw Error(std::string(flag) + " must be at least " + std::to_string(min) + ", got " +
                std::to_string(v));
  }
}

void require_sparsity(double s) {
  if (!(s >= 0.0 && s < 1.0)) {
    char got[32];
    std::snprintf(got, sizeof got, "%g", s);
    throw Error(std::string("--sparsity must be in [0, 1), got ") + got);
  }
}

void require_warmup_threads(int warmup, int threads) {
  require_at_least(warmup, 0, "--warmup");
  if (threads < 0)
    throw Error("--threads must be at least 0 (0: all cores), got " + std::to_string(threads));
}

void check_layer_options(const BenchLayerOptions& o) {
  require_at_least(o.batch, 1, "--batch");
  require_at_least(o.reps, 1, "--reps");
  parse_cache(o.cache);  // throws naming --cache
  require_sparsity(o.sparsity);
  require_warmup_threads(o.warmup, o.threads);
}

void reject_extras(const CLI::App& app) {
  const std::vector<std::string> extras = app.remaining();
  if (extras.empty()) return;
  const std::string& first = extras.front();
  const std::string what =
      !first.empty() && first[0] == '-' ? "unknown option" : "unexpected argument";
  throw Error(app.get_parent()->get_name() + " " + app.get_name() + ": " + what + " '" + first +
              "' (see sparsetrain " + app.get_parent()->get_name() + " " + app.get_name() +
              " --help)");
}

}  // namespace sparsetrain::cli::bench

// Internals of compare_models (runtime/src/compare/): shared by the passes
// (compare.cc), the group aggregates (compare_groups.cc) and the report.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "sparsetrain/compare.h"

namespace sparsetrain::detail {

// One model's clean pass: logits (N, K) and the embedding (N, dim).
struct ModelPass {
  std::vector<float> logits;
  std::vector<float> embedding;
  int64_t dim = 0;
};

// Images first .. first + count of `data` as floats in [0, 1], (n, C, H, W).
void pixels_01(const Dataset& data, int64_t first, int64_t count, std::vector<float>& out);
// Normalised as the loader does: (n, C, H, W) in NCHW.
Tensor normalised(const Dataset& data, const std::vector<float>& images01);
std::vector<int32_t> argmax_rows(const Tensor& logits);
double seconds_since(std::chrono::steady_clock::time_point start);

// The samples of the PCA scatter plots: all, or a seeded subset of
// options.scatter_points, sorted.
std::vector<int64_t> scatter_samples(int64_t n, const CompareOptions& options);
Projection project(const ModelPass& pass, const std::string& label,
                   const std::vector<int64_t>& samples);

// Fills r.groups, r.pairs (from r.models), the PIEs.
void aggregate_groups(const std::vector<CompareGroup>& groups, int classes, CompareResult& r);
// r.embeddings: every model but the reference's first against it.
void embedding_pairs(const std::vector<std::vector<int64_t>>& neighbours, CompareResult& r);
// r.potentials: clean, each noise level above 0, each corruption (mean over severities).
void prune_potentials(CompareResult& r);

}  // namespace sparsetrain::detail

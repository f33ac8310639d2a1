// Deep features for linear probing and sparse heads: what one node of a
// model outputs for every sample of a dataset, computed once with
// inference-only passes and cached on disk under a key of everything the
// values depend on.
#pragma once

#include <cstdint>
#include <string>

#include "sparsetrain/data.h"
#include "sparsetrain/graph.h"

namespace sparsetrain::detail {

// The output of `node` for every sample of `data`, in order, from inference
// passes of `batch_size` samples (running statistics, no dropout, nothing
// kept for backward, no state of the graph changed): a Dataset of float
// values (Dataset::values) with data's labels, classes and file names. Its
// sample shape is the node's: (C, H, W), or (F, 1, 1) for a node with
// (N, F) outputs.
Dataset node_features(Graph& graph, const std::string& node, const Dataset& data,
                      int64_t batch_size);

// A hex digest of everything node_features(graph, node, data) depends on:
// the structure of the graph up to the node (names, types, shapes), the
// values, masks and buffers of every parameter of the nodes up to it, the
// node, and the data as the Loader feeds it (pixels, labels, normalisation,
// sample shape). Another checkpoint, other classes, another node or other
// preprocessing give another key.
std::string feature_key(Graph& graph, const std::string& node, const Dataset& data);

// Where features are cached by default: $XDG_CACHE_HOME/sparsetrain/features,
// else $HOME/.cache/sparsetrain/features (empty when neither is set).
std::string default_feature_cache_dir();

struct CachedFeatures {
  Dataset train, test;
  std::string note;  // one line for the run log: computed or read, where, how long
};

// node_features of both splits, read from `cache_dir`/<key>.safetensors when
// that file holds them for this key, else computed and written there
// (atomically; a file that cannot be read or written is reported in the note
// and the features are computed). cache_dir "none" (or empty with no default
// place) never touches the disk.
CachedFeatures cached_features(Graph& graph, const std::string& node, const Dataset& train,
                               const Dataset& test, int64_t batch_size,
                               const std::string& cache_dir);

}  // namespace sparsetrain::detail

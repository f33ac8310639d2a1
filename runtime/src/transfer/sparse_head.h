// Finetune mode sparse-head (Wong, Santurkar, Madry 2021, "Leveraging
// sparse linear layers for debuggable deep networks"): an elastic-net
// multinomial logistic regression over the standardised features of the
// head's input, solved along a regularisation path; the chosen point
// becomes the model's head, stored compressed.
#pragma once

#include <functional>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>

#include "sparsetrain/data.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/options.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain::detail {

struct SparseHeadFit {
  EpochStats stats;       // the chosen point as a row of the run's table
  nlohmann::json report;  // the path, the choice, and each class's features
};

// Fits the path over `train` (float features; a seeded val_fraction of it
// held out to choose the point), reports each point on `log` (a table) and
// to `emit` (metrics events), and writes the chosen head, in the raw feature
// space, into the linear node `head` of `head_graph` (compressed to its
// nonzero weights). `feature_node` names the features in the report.
SparseHeadFit fit_sparse_head(const TrainOptions& options, const Dataset& train,
                              const Dataset& test, Graph& head_graph, const std::string& head,
                              const std::string& feature_node, std::ostream& log,
                              const std::function<void(const nlohmann::json&)>& emit);

}  // namespace sparsetrain::detail

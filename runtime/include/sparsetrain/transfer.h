// Transfer fine-tuning of sparse models: a run that starts from an upstream
// checkpoint on a new task (another dataset, or other classes of the same
// one with TrainOptions::classes) with a new classifier head, keeping the
// upstream's masks, so a sparse model stays sparse (and fast) the whole way
// (Iofinova et al., "How well do sparse ImageNet models transfer?", CVPR
// 2022).
//
//   TrainOptions o = finetune_options("runs/upstream", "full");
//   o.classes = "5-9";
//   o.epochs = 5;
//   o.out_dir = "runs/downstream";
//   Trainer(o, zoo_factory()).run(std::cout);
//
// Mode "full": the head (TrainOptions::head, default the last linear node)
// is a new, freshly initialised one sized for the new classes; every other
// parameter is loaded from the upstream checkpoint, whose model and input
// shape must fit; everything trains, BatchNorm included, while compressed
// layers stay compressed and run on the sparse kernels and pruned weights
// stay exactly zero. TrainOptions::freeze freezes chosen parameters (no
// gradient and no weight-gradient pass). The run folder is a normal one:
// eval, prune, finetune and --resume accept it.
#pragma once

#include <string>

#include "sparsetrain/core/export.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/options.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// The options a run started from the checkpoint at `path` (a file or its run
// folder) inherits: the upstream run's model, data, batch, optimizer, lr
// schedule, epochs, threads, seed, kernels and storage, without its sparsity
// schedule, snapshots, retraining, transfer settings and outputs.
TrainOptions inherited_options(const std::string& path);

// inherited_options(upstream) with init_from = upstream and finetune = mode.
TrainOptions finetune_options(const std::string& upstream, const std::string& mode = "full");

// The classifier of a model: its last linear node in graph order. Throws
// Error when it has none.
std::string classifier_node(Graph& graph);

// Freezes the parameters matching TrainOptions::freeze (Graph::set_frozen);
// throws Error naming --freeze and the pattern when one matches nothing.
void apply_freeze(const TrainOptions& options, Graph& graph);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

// The model zoo, built with the public graph-builder API.
#pragma once

#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/model_file.h"  // ModelOptions
#include "sparsetrain/trainer.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// "mlp" (LeNet-300-100), "lenet5", "resnet20", "resnet32", "resnet56", or
// a model file (a name ending in .yaml or .yml: load_model_file in
// sparsetrain/model_file.h; the zoo's own are graphs/*.yaml). Throws Error
// for an unknown name, listing the known ones. Parameters are
// left zero: call Graph::initialize(seed).
Graph build_model(const std::string& name, const ModelOptions& options);
std::vector<std::string> model_names();

// build_model as the Trainer's GraphFactory (the model's input and classes
// from the dataset), for Trainer(options, zoo_factory()) and
// load_model_checkpoint.
GraphFactory zoo_factory();

Graph build_mlp(const ModelOptions& options, const std::vector<int64_t>& hidden = {300, 100});
Graph build_lenet5(const ModelOptions& options);
// CIFAR-style ResNet (He et al., CVPR 2016, section 4.2) with depth 6n+2:
// three stages of n basic blocks at 16, 32 and 64 channels. Downsampling
// shortcuts are 1x1 convolutions with BatchNorm (option B).
Graph build_cifar_resnet(int depth, const ModelOptions& options);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

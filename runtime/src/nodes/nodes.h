// Factories for the built-in node types (internal: the public API reaches
// them through Graph's builder methods). Each factory validates its options
// and throws Error naming the node on a bad one.
#pragma once

#include <memory>
#include <string>

#include "sparsetrain/graph.h"
#include "sparsetrain/node.h"

namespace sparsetrain::nodes {

std::unique_ptr<Node> make_input(const std::string& name, Shape sample_shape);
std::unique_ptr<Node> make_conv2d(const std::string& name, int64_t in_channels,
                                  const Conv2dOptions& options);
std::unique_ptr<Node> make_linear(const std::string& name, int64_t in_features,
                                  const LinearOptions& options);
std::unique_ptr<Node> make_batchnorm2d(const std::string& name, int64_t channels,
                                       const BatchNormOptions& options);
std::unique_ptr<Node> make_relu(const std::string& name);
std::unique_ptr<Node> make_maxpool2d(const std::string& name, const PoolOptions& options);
std::unique_ptr<Node> make_avgpool2d(const std::string& name, const PoolOptions& options);
std::unique_ptr<Node> make_global_avgpool(const std::string& name);
std::unique_ptr<Node> make_add(const std::string& name);
std::unique_ptr<Node> make_flatten(const std::string& name);
std::unique_ptr<Node> make_dropout(const std::string& name, float p);

// The memory layout of dense 4-D activations between conv-domain nodes
// (conv, BatchNorm, ReLU, pooling, Add). Graph inputs arrive as kNCHW; the
// first conv reorders once and the run stays in this layout until Flatten.
Layout dense_conv_layout();

}  // namespace sparsetrain::nodes

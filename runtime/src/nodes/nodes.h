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

// Sparse state of linear nodes (linear.cc). `node` must be a linear node
// (type() == "linear"); see Graph::compress for the semantics.
enum class LinearKernels : uint8_t { kAuto, kSparse, kDense };
LinearKernels parse_linear_kernels(const std::string& mode);  // throws Error naming --kernels
void linear_compress(Node& node, const Tensor& mask);         // mask (O, I), nonzero = kept
void linear_decompress(Node& node);
void linear_set_kernels(Node& node, LinearKernels kernels);
// Whether the node is compressed and its last forward (or, before any,
// its next one, when not forced dense) runs the sparse kernels.
bool linear_runs_sparse(Node& node);

// The memory layout of dense 4-D activations between conv-domain nodes
// (conv, BatchNorm, ReLU, pooling, Add). Graph inputs arrive as kNCHW; the
// first conv reorders once and the run stays in this layout until Flatten.
Layout dense_conv_layout();

}  // namespace sparsetrain::nodes

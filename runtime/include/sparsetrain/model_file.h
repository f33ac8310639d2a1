// Models defined in files: a YAML description of a graph (README "Models in
// files"), read wherever a model name is accepted (`--model my_net.yaml`,
// build_model in sparsetrain/models.h, the C API and the Python module).
//
//   input: [channels, 28, 28]        # C, H, W (or [F]); a word takes the dataset's
//   nodes:                           # in any order that has no cycle
//     - {name: conv1, type: conv2d, out_channels: 6, kernel: 5, padding: 2}
//     - {name: relu1, type: relu}    # input: the node above (the first: the input)
//     - {name: fc, type: linear, out_features: classes, prunable: false}
//     - {name: sum, type: add, inputs: [fc, other]}
//   output: fc                       # default: the last node listed
//
// Node types are registered by name (register_model_node_type); every type
// of the graph builder is: conv2d, linear, batchnorm2d, relu, maxpool2d,
// avgpool2d, global_avgpool, add, flatten, dropout.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/graph.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// What a model is built for: the sample shape and the number of classes
// (from the dataset).
struct ModelOptions {
  // The input sample: channels x height x width (MNIST 1x28x28, CIFAR 3x32x32).
  int64_t channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  int64_t num_classes = 10;
};

// True when `model` names a model file rather than a built-in model: it ends
// in ".yaml" or ".yml".
bool is_model_file(const std::string& model);

// Builds the graph the model file at `path` describes for `options`.
// Parameters are left zero: call Graph::initialize(seed). Throws Error
// "model file 'PATH', line L: ..." naming what is wrong: not valid YAML, an
// unknown key or node type, a missing or duplicate name, an input that does
// not exist, a cycle, a shape that does not fit (the node's own message), an
// input size that differs from the dataset's; or that the file cannot be
// read.
Graph load_model_file(const std::string& path, const ModelOptions& options);
// The same from text; `source` names it in errors.
Graph parse_model_file(const std::string& text, const std::string& source,
                       const ModelOptions& options);

// Adds one node of a registered type to `graph` from its options as text,
// as a model file gives them ({"out_channels", "16"}, {"prunable",
// "false"}; the words channels, height, width and classes take `data`'s):
// the builder calls of the C API and the Python module. `inputs` name nodes
// of the graph ("input" is the graph input); empty: the node added last.
// Throws Error "node 'NAME': ..." naming the problem (unknown type or key,
// a bad value, an input that does not exist, a shape that does not fit).
NodeId add_model_node(Graph& graph, const std::string& name, const std::string& type,
                      const std::vector<std::string>& inputs,
                      const std::vector<std::pair<std::string, std::string>>& options,
                      const ModelOptions& data = {});

// The sample shape the model file at `path` takes: its input: with the
// words (channels, height, width) taken from `data`, and data.num_classes.
// For callers with no dataset of their own (bench model). Throws Error as
// load_model_file does.
ModelOptions model_file_input(const std::string& path, const ModelOptions& data);

// --- node types ---------------------------------------------------------------

// One node of a model file, as its type's builder reads it.
class ModelNodeSpec {
 public:
  virtual ~ModelNodeSpec() = default;
  virtual const std::string& name() const = 0;
  virtual const std::vector<NodeId>& inputs() const = 0;
  // Option `key` of the node: absent gives `fallback`. Integers accept the
  // words channels, height, width and classes (the dataset's). Each throws
  // Error with the file and line when the value has the wrong type or is
  // outside [min, max].
  virtual int64_t integer(const std::string& key, int64_t fallback, int64_t min = 0,
                          int64_t max = INT64_MAX) const = 0;
  virtual int64_t required_integer(const std::string& key, int64_t min = 1,
                                   int64_t max = INT64_MAX) const = 0;
  virtual double number(const std::string& key, double fallback, double min, double max) const = 0;
  virtual bool boolean(const std::string& key, bool fallback) const = 0;
};

struct ModelNodeType {
  // Option keys the type reads (beyond name, type, input/inputs, prunable).
  std::vector<std::string> keys;
  // Inputs it takes: exactly this many (the default input is the node listed
  // before it, so only types of more inputs need `inputs:`).
  int inputs = 1;
  // Adds the node to the graph (a builder method or Graph::add_node).
  std::function<NodeId(Graph& graph, const ModelNodeSpec& spec)> build;
};

// Registers (or replaces) node type `type`. Thread-safe. The built-in types
// are registered before main.
void register_model_node_type(const std::string& type, ModelNodeType node_type);
// The registered types, sorted.
std::vector<std::string> model_node_types();

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

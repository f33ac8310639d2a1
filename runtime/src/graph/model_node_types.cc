// The node types of model files: one entry per builder method of Graph, each
// reading its options (defaults as the builder's option structs have them).
#include "graph/model_node_types.h"

#include <algorithm>
#include <initializer_list>
#include <iomanip>
#include <sstream>

#include "base/named_registry.h"

namespace sparsetrain {

namespace {

using Registry = detail::NamedRegistry<std::shared_ptr<const ModelNodeType>>;

ModelNodeType one_input(std::vector<std::string> keys,
                        std::function<NodeId(Graph&, const ModelNodeSpec&, NodeId)> build) {
  return {std::move(keys), 1, [build = std::move(build)](Graph& g, const ModelNodeSpec& s) {
            return build(g, s, s.inputs()[0]);
          }};
}

// The largest weight a model file may give one layer (256 MiB of floats;
// ResNet-50's largest has 2.4 million entries), so that a hostile or
// mistyped file fails with a message instead of exhausting memory.
constexpr int64_t kMaxWeightEntries = int64_t{1} << 26;

// `factors` multiply to the weight's entries (in double: a hostile file's
// product may not fit in 64 bits).
void check_weight_size(const ModelNodeSpec& s, const char* type,
                       std::initializer_list<int64_t> factors) {
  double entries = 1;
  for (const int64_t f : factors) entries *= static_cast<double>(f);
  if (entries > static_cast<double>(kMaxWeightEntries)) {
    std::ostringstream text;
    text << std::setprecision(entries < 1e15 ? 15 : 3) << entries;
    throw Error(std::string(type) + " '" + s.name() + "': a weight of " + text.str() +
                " entries, more than the " + std::to_string(kMaxWeightEntries) +
                " a model file may give one layer");
  }
}

PoolOptions pool_options(const ModelNodeSpec& s) {
  PoolOptions o;
  o.kernel = s.integer("kernel", o.kernel, 1, 1 << 16);
  o.stride = s.integer("stride", o.stride, 1, 1 << 16);
  o.padding = s.integer("padding", o.padding, 0, 1 << 16);
  return o;
}

void register_builtins(Registry& r) {
  const auto add = [&r](const std::string& type, ModelNodeType t) {
    r.add(type, std::make_shared<const ModelNodeType>(std::move(t)));
  };
  add("conv2d", one_input({"out_channels", "kernel", "stride", "padding", "groups", "bias"},
                          [](Graph& g, const ModelNodeSpec& s, NodeId x) {
                            Conv2dOptions o;
                            o.out_channels = s.required_integer("out_channels", 1, 1 << 16);
                            o.kernel = s.integer("kernel", o.kernel, 1, 1 << 10);
                            o.stride = s.integer("stride", o.stride, 1, 1 << 10);
                            o.padding = s.integer("padding", o.padding, 0, 1 << 10);
                            o.groups = s.integer("groups", o.groups, 1, 1 << 16);
                            o.bias = s.boolean("bias", o.bias);
                            const Shape in = g.shape_of(x);
                            if (in.size() == 4 && o.groups > 0) {
                              check_weight_size(
                                  s, "conv2d",
                                  {o.out_channels, in[1] / o.groups, o.kernel, o.kernel});
                            }
                            return g.conv2d(s.name(), x, o);
                          }));
  add("linear", one_input({"out_features", "bias"}, [](Graph& g, const ModelNodeSpec& s, NodeId x) {
        LinearOptions o;
        o.out_features = s.required_integer("out_features", 1, 1 << 20);
        o.bias = s.boolean("bias", o.bias);
        const Shape in = g.shape_of(x);
        if (in.size() == 2) check_weight_size(s, "linear", {o.out_features, in[1]});
        return g.linear(s.name(), x, o);
      }));
  add("batchnorm2d", one_input({"momentum", "eps"}, [](Graph& g, const ModelNodeSpec& s, NodeId x) {
        BatchNormOptions o;
        o.momentum = static_cast<float>(s.number("momentum", o.momentum, 0.0, 1.0));
        o.eps = static_cast<float>(s.number("eps", o.eps, 1e-12, 1.0));
        return g.batchnorm2d(s.name(), x, o);
      }));
  add("relu", one_input({}, [](Graph& g, const ModelNodeSpec& s, NodeId x) {
        return g.relu(s.name(), x);
      }));
  add("maxpool2d",
      one_input({"kernel", "stride", "padding"}, [](Graph& g, const ModelNodeSpec& s, NodeId x) {
        return g.maxpool2d(s.name(), x, pool_options(s));
      }));
  add("avgpool2d",
      one_input({"kernel", "stride", "padding"}, [](Graph& g, const ModelNodeSpec& s, NodeId x) {
        return g.avgpool2d(s.name(), x, pool_options(s));
      }));
  add("global_avgpool", one_input({}, [](Graph& g, const ModelNodeSpec& s, NodeId x) {
        return g.global_avgpool(s.name(), x);
      }));
  add("flatten", one_input({}, [](Graph& g, const ModelNodeSpec& s, NodeId x) {
        return g.flatten(s.name(), x);
      }));
  add("dropout", one_input({"p"}, [](Graph& g, const ModelNodeSpec& s, NodeId x) {
        return g.dropout(s.name(), x, static_cast<float>(s.number("p", 0.5, 0.0, 0.999)));
      }));
  add("add", {{}, 2, [](Graph& g, const ModelNodeSpec& s) {
                return g.add(s.name(), s.inputs()[0], s.inputs()[1]);
              }});
}

Registry& registry() {
  static Registry r("register_model_node_type", "a model node type");
  static const bool builtins = (register_builtins(r), true);
  (void)builtins;
  return r;
}

}  // namespace

void register_model_node_type(const std::string& type, ModelNodeType node_type) {
  if (!node_type.build || node_type.inputs < 1) {
    throw Error("register_model_node_type: '" + type +
                "' needs a build function and one input or more");
  }
  registry().add(type, std::make_shared<const ModelNodeType>(std::move(node_type)));
}

std::vector<std::string> model_node_types() {
  std::vector<std::string> names = registry().names();
  std::sort(names.begin(), names.end());
  return names;
}

namespace detail {
std::shared_ptr<const ModelNodeType> find_model_node_type(const std::string& type) {
  return registry().find(type);
}
}  // namespace detail

}  // namespace sparsetrain

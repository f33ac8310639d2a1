#include "sparsetrain/models.h"

#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

constexpr int64_t kResNetStageWidths[3] = {16, 32, 64};

// conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU.
NodeId basic_block(Graph& g, const std::string& prefix, NodeId x, int64_t in_ch, int64_t out_ch,
                   int64_t stride) {
  Conv2dOptions c1{
      .out_channels = out_ch, .kernel = 3, .stride = stride, .padding = 1, .bias = false};
  NodeId y = g.conv2d(prefix + ".conv1", x, c1);
  y = g.batchnorm2d(prefix + ".bn1", y);
  y = g.relu(prefix + ".relu1", y);
  Conv2dOptions c2{.out_channels = out_ch, .kernel = 3, .stride = 1, .padding = 1, .bias = false};
  y = g.conv2d(prefix + ".conv2", y, c2);
  y = g.batchnorm2d(prefix + ".bn2", y);
  NodeId shortcut = x;
  if (stride != 1 || in_ch != out_ch) {
    Conv2dOptions proj{
        .out_channels = out_ch, .kernel = 1, .stride = stride, .padding = 0, .bias = false};
    shortcut = g.conv2d(prefix + ".shortcut.conv", x, proj);
    shortcut = g.batchnorm2d(prefix + ".shortcut.bn", shortcut);
  }
  y = g.add(prefix + ".add", y, shortcut);
  return g.relu(prefix + ".relu2", y);
}

}  // namespace

std::vector<std::string> model_names() {
  return {"mlp", "lenet5", "resnet20", "resnet32", "resnet56"};
}

Graph build_model(const std::string& name, const ModelOptions& options) {
  if (is_model_file(name)) return load_model_file(name, options);
  if (name == "mlp") return build_mlp(options);
  if (name == "lenet5") return build_lenet5(options);
  if (name == "resnet20") return build_cifar_resnet(20, options);
  if (name == "resnet32") return build_cifar_resnet(32, options);
  if (name == "resnet56") return build_cifar_resnet(56, options);
  std::string known;
  for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown model '" + name + "' (expected one of: " + known +
              ", or a model file NAME.yaml)");
}

Graph build_mlp(const ModelOptions& options, const std::vector<int64_t>& hidden) {
  Graph g;
  NodeId x = g.input("input", {options.channels, options.height, options.width});
  x = g.flatten("flatten", x);
  for (std::size_t i = 0; i < hidden.size(); ++i) {
    const std::string k = std::to_string(i + 1);
    x = g.linear("fc" + k, x, {.out_features = hidden[i]});
    x = g.relu("relu" + k, x);
  }
  x = g.linear("fc" + std::to_string(hidden.size() + 1), x, {.out_features = options.num_classes});
  g.set_output(x);
  return g;
}

Graph build_lenet5(const ModelOptions& options) {
  // LeCun et al. 1998 with ReLU and max pooling; 28x28 inputs are padded by 2
  // so both MNIST and CIFAR reach the 5x5x16 feature map before the classifier.
  if (options.height < 28 || options.width < 28) {
    throw Error("lenet5: needs images of at least 28x28, got " + std::to_string(options.height) +
                "x" + std::to_string(options.width));
  }
  const int64_t pad = options.height < 32 ? 2 : 0;
  Graph g;
  NodeId x = g.input("input", {options.channels, options.height, options.width});
  x = g.conv2d("conv1", x, {.out_channels = 6, .kernel = 5, .stride = 1, .padding = pad});
  x = g.relu("relu1", x);
  x = g.maxpool2d("pool1", x, {.kernel = 2, .stride = 2});
  x = g.conv2d("conv2", x, {.out_channels = 16, .kernel = 5, .stride = 1, .padding = 0});
  x = g.relu("relu2", x);
  x = g.maxpool2d("pool2", x, {.kernel = 2, .stride = 2});
  x = g.flatten("flatten", x);
  x = g.linear("fc1", x, {.out_features = 120});
  x = g.relu("relu3", x);
  x = g.linear("fc2", x, {.out_features = 84});
  x = g.relu("relu4", x);
  x = g.linear("fc3", x, {.out_features = options.num_classes});
  g.set_output(x);
  return g;
}

Graph build_cifar_resnet(int depth, const ModelOptions& options) {
  if (depth < 8 || (depth - 2) % 6 != 0) {
    throw Error("resnet: depth must be 6n+2 (20, 32, 44, 56, 110), got " + std::to_string(depth));
  }
  const int blocks = (depth - 2) / 6;
  Graph g;
  NodeId x = g.input("input", {options.channels, options.height, options.width});
  x = g.conv2d("conv1", x,
               {.out_channels = kResNetStageWidths[0],
                .kernel = 3,
                .stride = 1,
                .padding = 1,
                .bias = false});
  x = g.batchnorm2d("bn1", x);
  x = g.relu("relu1", x);
  int64_t in_ch = kResNetStageWidths[0];
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t out_ch = kResNetStageWidths[stage];
    for (int b = 0; b < blocks; ++b) {
      const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
      const std::string prefix = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      x = basic_block(g, prefix, x, in_ch, out_ch, stride);
      in_ch = out_ch;
    }
  }
  x = g.global_avgpool("pool", x);
  x = g.linear("fc", x, {.out_features = options.num_classes});
  g.set_output(x);
  return g;
}

GraphFactory zoo_factory() {
  return [](const std::string& model, int64_t channels, int64_t height, int64_t width,
            int64_t classes) {
    return build_model(model, ModelOptions{channels, height, width, classes});
  };
}

}  // namespace sparsetrain

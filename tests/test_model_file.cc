// Models defined in files (sparsetrain/model_file.h): the zoo's files build
// the graphs the C++ builders do, node for node and value for value; every
// malformed file gives one error naming the file, the line and the problem;
// prunable: false keeps a layer out of every sparsity method; a registered
// node type is usable; `--model FILE.yaml` trains from the command line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "sparsetrain/error.h"
#include "sparsetrain/masks.h"
#include "sparsetrain/model_file.h"
#include "sparsetrain/models.h"
#include "tests/cli_runner.h"

namespace sparsetrain {
namespace {

const ModelOptions kMnist{1, 28, 28, 10};
const ModelOptions kCifar{3, 32, 32, 10};

std::string zoo_file(const std::string& name) {
  return std::string(SPARSETRAIN_TESTS_DIR) + "/../graphs/" + name + ".yaml";
}

// Same nodes (names, types, inputs, in order), same parameters (names,
// kinds, shapes, count) and, drawn from the same seed, the same values.
void expect_same_graph(Graph& a, Graph& b) {
  ASSERT_EQ(a.size(), b.size());
  for (int i = 0; i < a.size(); ++i) {
    Node& na = a.node(NodeId{i});
    Node& nb = b.node(NodeId{i});
    EXPECT_EQ(na.name(), nb.name()) << "node " << i;
    EXPECT_STREQ(na.type(), nb.type()) << na.name();
    EXPECT_EQ(na.describe(), nb.describe()) << na.name();
    const auto& ia = a.inputs_of(NodeId{i});
    const auto& ib = b.inputs_of(NodeId{i});
    ASSERT_EQ(ia.size(), ib.size()) << na.name();
    for (std::size_t k = 0; k < ia.size(); ++k) EXPECT_EQ(ia[k].index, ib[k].index) << na.name();
    EXPECT_EQ(a.shape_of(NodeId{i}, 2), b.shape_of(NodeId{i}, 2)) << na.name();
  }
  EXPECT_EQ(a.output().index, b.output().index);
  EXPECT_EQ(a.parameter_count(true), b.parameter_count(true));
  a.initialize(7);
  b.initialize(7);
  const std::vector<Parameter*> pa = a.parameters();
  const std::vector<Parameter*> pb = b.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t k = 0; k < pa.size(); ++k) {
    EXPECT_EQ(pa[k]->name, pb[k]->name);
    EXPECT_EQ(pa[k]->kind, pb[k]->kind) << pa[k]->name;
    ASSERT_EQ(pa[k]->value.shape(), pb[k]->value.shape()) << pa[k]->name;
    for (int64_t j = 0; j < pa[k]->value.numel(); ++j) {
      ASSERT_EQ(pa[k]->value.data()[j], pb[k]->value.data()[j]) << pa[k]->name << "[" << j << "]";
    }
  }
}

TEST(ModelFile, ZooFilesBuildTheBuiltInGraphs) {
  const std::vector<std::pair<std::string, ModelOptions>> zoo = {
      {"mlp", kMnist},
      {"lenet5", kMnist},
      {"resnet20", kCifar},
      {"resnet32", kCifar},
      {"resnet56", kCifar},
      {"mlp", ModelOptions{3, 32, 32, 100}},
      {"resnet20", ModelOptions{1, 28, 28, 5}}};
  for (const auto& [name, shape] : zoo) {
    SCOPED_TRACE(name);
    Graph built = build_model(name, shape);
    Graph read = load_model_file(zoo_file(name), shape);
    expect_same_graph(built, read);
    // build_model takes the file's name too, as --model does.
    Graph by_name = build_model(zoo_file(name), shape);
    EXPECT_EQ(by_name.size(), built.size());
  }
  EXPECT_TRUE(is_model_file("nets/a.yaml"));
  EXPECT_TRUE(is_model_file("a.yml"));
  EXPECT_FALSE(is_model_file("resnet20"));
  EXPECT_FALSE(is_model_file(".yaml"));
}

TEST(ModelFile, NodesInAnyOrderWithoutACycle) {
  const std::string ordered =
      "input: [channels, height, width]\n"
      "nodes:\n"
      "  - {name: c, type: conv2d, out_channels: 4, padding: 1}\n"
      "  - {name: r, type: relu}\n"
      "  - {name: s, type: add, inputs: [r, c]}\n"
      "  - {name: p, type: global_avgpool}\n"
      "  - {name: fc, type: linear, out_features: classes}\n";
  const std::string shuffled =
      "input: [1, 8, 8]\n"
      "nodes:\n"
      "  - {name: fc, type: linear, input: p, out_features: 10}\n"
      "  - {name: s, type: add, inputs: [r, c]}\n"
      "  - {name: p, type: global_avgpool, input: s}\n"
      "  - {name: r, type: relu, input: c}\n"
      "  - {name: c, type: conv2d, input: input, out_channels: 4, padding: 1}\n"
      "output: fc\n";
  const ModelOptions small{1, 8, 8, 10};
  Graph a = parse_model_file(ordered, "ordered.yaml", small);
  Graph b = parse_model_file(shuffled, "shuffled.yaml", small);
  expect_same_graph(a, b);
}

TEST(ModelFile, PrunableFalseKeepsALayerDense) {
  const std::string text =
      "input: [channels, height, width]\n"
      "nodes:\n"
      "  - {name: flatten, type: flatten}\n"
      "  - {name: fc1, type: linear, out_features: 32, prunable: false}\n"
      "  - {name: relu, type: relu}\n"
      "  - {name: fc2, type: linear, out_features: 16}\n"
      "  - {name: fc3, type: linear, out_features: classes, prunable: true}\n";
  Graph g = parse_model_file(text, "net.yaml", kMnist);
  EXPECT_FALSE(g.prunable("fc1"));
  EXPECT_TRUE(g.prunable("fc2"));
  const std::vector<PrunableLayer> layers = prunable_layers(g, false);
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0].node, "fc2");
  EXPECT_EQ(layers[1].node, "fc3");
  EXPECT_THROW(g.set_prunable("relu", false), Error);
}

TEST(ModelFile, RegisteredNodeTypesAreUsable) {
  register_model_node_type("test_scaled_pool", {{"size"}, 1, [](Graph& g, const ModelNodeSpec& s) {
                                                  const int64_t k = s.integer("size", 2, 1, 64);
                                                  return g.avgpool2d(s.name(), s.inputs()[0],
                                                                     {.kernel = k, .stride = k});
                                                }});
  const auto types = model_node_types();
  EXPECT_NE(std::find(types.begin(), types.end(), "test_scaled_pool"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "conv2d"), types.end());
  Graph g = parse_model_file(
      "input: [channels, height, width]\nnodes:\n  - {name: p, type: test_scaled_pool, size: 4}\n"
      "  - {name: f, type: flatten}\n  - {name: fc, type: linear, out_features: 3}\n",
      "custom.yaml", kMnist);
  EXPECT_EQ(g.shape_of(g.find("p"), 1), (Shape{1, 1, 7, 7}));
  EXPECT_THROW(register_model_node_type(
                   "conv2d", {{}, 1, [](Graph&, const ModelNodeSpec&) { return NodeId{}; }}),
               Error);
}

TEST(ModelFile, BuilderCallsByTypeName) {
  Graph g;
  g.input("input", {1, 28, 28});
  using Options = std::vector<std::pair<std::string, std::string>>;
  add_model_node(g, "conv1", "conv2d", {},
                 Options{{"out_channels", "6"}, {"kernel", "5"}, {"padding", "2"}});
  add_model_node(g, "relu1", "relu", {}, {});
  add_model_node(g, "pool1", "maxpool2d", {}, {});
  add_model_node(g, "conv2", "conv2d", {}, {{"out_channels", "16"}, {"kernel", "5"}});
  add_model_node(g, "relu2", "relu", {}, {});
  add_model_node(g, "pool2", "maxpool2d", {"relu2"}, {{"kernel", "2"}, {"stride", "2"}});
  add_model_node(g, "flatten", "flatten", {}, {});
  add_model_node(g, "fc1", "linear", {}, {{"out_features", "120"}});
  add_model_node(g, "relu3", "relu", {}, {});
  add_model_node(g, "fc2", "linear", {}, {{"out_features", "84"}});
  add_model_node(g, "relu4", "relu", {}, {});
  g.set_output(add_model_node(g, "fc3", "linear", {}, {{"out_features", "classes"}}, kMnist));
  Graph built = build_model("lenet5", kMnist);
  expect_same_graph(built, g);

  const auto expect_error = [&](const std::function<void()>& call, const std::string& text) {
    try {
      call();
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  expect_error([&] { add_model_node(g, "x", "conv3d", {}, {}); }, "node 'x': unknown node type");
  expect_error([&] { add_model_node(g, "x", "relu", {"nowhere"}, {}); },
               "node 'x': input 'nowhere' is not a node of the graph");
  expect_error([&] { add_model_node(g, "fc1", "relu", {}, {}); },
               "node 'fc1': a node of that name is in the graph already");
  expect_error(
      [&] {
        add_model_node(g, "x", "linear", {}, {{"out_features", "-3"}});
      },
      "node 'x': out_features: -3 is out of range");
  expect_error(
      [&] {
        add_model_node(g, "x", "relu", {}, {{"slope", "2"}});
      },
      "node 'x': unknown key 'slope'");
  expect_error(
      [&] {
        add_model_node(g, "x", "conv2d", {}, {{"out_channels", "4"}});
      },
      "node 'x': conv2d 'x': input must be 4-D");
  expect_error([&] { add_model_node(g, "x", "add", {"fc1"}, {}); },
               "node 'x': add 'x' takes 2 inputs, got 1");
}

struct Malformed {
  std::string what;
  std::string text;
  std::vector<std::string> expected;  // substrings of the message
};

TEST(ModelFile, MalformedFilesNameFileLineAndProblem) {
  const std::string head = "input: [channels, height, width]\nnodes:\n";
  const std::vector<Malformed> cases = {
      {"unknown type",
       head + "  - {name: a, type: conv3d, out_channels: 4}\n",
       {"line 3", "unknown node type 'conv3d'", "conv2d"}},
      {"missing input",
       head + "  - {name: a, type: relu}\n  - {name: b, type: relu, input: x}\n",
       {"line 4", "node 'b' takes input 'x', which does not exist"}},
      {"cycle",
       head + "  - {name: a, type: relu, input: c}\n  - {name: b, type: relu}\n"
              "  - {name: c, type: relu}\n",
       {"line 3", "cycle: a -> c -> b -> a"}},
      {"shape that does not fit",
       head + "  - {name: f, type: flatten}\n  - {name: c, type: conv2d, out_channels: 4}\n",
       {"line 4", "conv2d 'c'"}},
      {"add of different shapes",
       head + "  - {name: c, type: conv2d, out_channels: 4}\n"
              "  - {name: s, type: add, inputs: [c, input]}\n",
       {"line 4", "add 's'"}},
      {"kernel larger than the image",
       head + "  - {name: c, type: conv2d, out_channels: 4, kernel: 40}\n",
       {"line 3", "'c'"}},
      {"unknown key",
       head + "  - {name: a, type: relu, slope: 0.1}\n",
       {"line 3", "unknown key 'slope' for a relu node"}},
      {"duplicate name",
       head + "  - {name: a, type: relu}\n  - {name: a, type: relu}\n",
       {"line 4", "a second node named 'a' (the first is on line 3)"}},
      {"missing option",
       head + "  - {name: f, type: flatten}\n  - {name: fc, type: linear}\n",
       {"line 4", "linear 'fc' needs out_features"}},
      {"bad value",
       head + "  - {name: f, type: flatten}\n  - {name: fc, type: linear, out_features: many}\n",
       {"line 4", "out_features: expected an integer", "'many'"}},
      {"add with one input",
       head + "  - {name: s, type: add}\n",
       {"line 3", "add 's' takes 2 inputs, got 1"}},
      {"prunable on relu",
       head + "  - {name: r, type: relu, prunable: false}\n",
       {"line 3", "only conv2d and linear layers are pruned"}},
      {"dangling node",
       head + "  - {name: a, type: relu}\n  - {name: b, type: relu, input: input}\n",
       {"line 3", "node 'a' does not lead to the output 'b'"}},
      {"unknown output",
       head + "  - {name: a, type: relu}\noutput: z\n",
       {"line 4", "output: no node is named 'z'"}},
      {"input size",
       "input: [3, 32, 32]\nnodes:\n  - {name: a, type: relu}\n",
       {"line 1", "takes 3x32x32 samples, the data has 1x28x28"}},
      {"input not a shape",
       "input: 3\nnodes:\n  - {name: a, type: relu}\n",
       {"line 1", "input: expected [channels, height, width]"}},
      {"no nodes", "input: [channels, height, width]\n", {"no nodes:"}},
      {"unknown top key", "input: [1, 28, 28]\nlayers: []\n", {"line 2", "unknown key 'layers'"}},
      {"not YAML", "input: [1, 28\nnodes: x\n", {"not valid YAML"}},
      {"parser loop", ",", {"not valid YAML"}},
      {"two documents",
       head + "  - {name: a, type: relu}\n---\ninput: 1\n",
       {"line 5", "a second YAML document"}},
      {"empty", "", {"line 1", "a model file is a mapping"}},
      {"a weight too large",
       head + "  - {name: f, type: flatten}\n  - {name: fc, type: linear, out_features: 1000000}\n",
       {"line 4", "linear 'fc': a weight of 784000000 entries"}},
      {"name input", head + "  - {name: input, type: relu}\n", {"line 3", "graph input's name"}},
  };
  for (const Malformed& c : cases) {
    SCOPED_TRACE(c.what);
    try {
      parse_model_file(c.text, "bad.yaml", kMnist);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("model file 'bad.yaml'", 0), 0u) << msg;
      for (const std::string& s : c.expected) EXPECT_NE(msg.find(s), std::string::npos) << msg;
    }
  }
  try {
    load_model_file("/nonexistent/net.yaml", kMnist);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "model file '/nonexistent/net.yaml': no such file");
  }
}

TEST(ModelFile, TrainsFromTheCommandLine) {
  namespace fs = std::filesystem;
  const fs::path dir = testing::fresh_temp_dir("sparsetrain_model_file_", "cli");
  const fs::path net = dir / "net.yaml";
  std::ofstream(net) << "input: [channels, height, width]\nnodes:\n"
                        "  - {name: flatten, type: flatten}\n"
                        "  - {name: fc1, type: linear, out_features: 64}\n"
                        "  - {name: relu, type: relu}\n"
                        "  - {name: fc2, type: linear, out_features: classes}\n";
  const std::string common =
      " --dataset mnist --epochs 1 --train-limit 2000 --test-limit 500"
      " --threads 2 --no-progress --data-dir " +
      std::string(SPARSETRAIN_TEST_DATA_DIR);
  const testing::RunResult r = testing::run_cli(
      "train --model " + net.string() + common + " --out " + (dir / "run").string(), true);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("model " + net.string()), std::string::npos) << r.out;
  // The checkpoint loads back through the file.
  const testing::RunResult e =
      testing::run_cli("eval --checkpoint " + (dir / "run").string() + " --limit 200 --data-dir " +
                           std::string(SPARSETRAIN_TEST_DATA_DIR),
                       true);
  EXPECT_EQ(e.exit_code, 0) << e.out;
  // A broken file: one line with the file and line, exit 1.
  std::ofstream(dir / "bad.yaml") << "input: [channels, height, width]\nnodes:\n"
                                     "  - {name: a, type: dense}\n";
  const testing::RunResult b =
      testing::run_cli("train --model " + (dir / "bad.yaml").string() + common, true);
  EXPECT_EQ(b.exit_code, 1) << b.out;
  EXPECT_NE(b.out.find("bad.yaml', line 3: unknown node type 'dense'"), std::string::npos) << b.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sparsetrain

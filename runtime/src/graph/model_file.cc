// Model files (sparsetrain/model_file.h): the YAML reader. Every node is
// read and checked where it stands, so an error names its line; the graph is
// then built in an order where each node follows its inputs (the file's
// order when it already is one), each node by its registered type.
#include "sparsetrain/model_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "base/yaml_text.h"
#include "graph/model_node_types.h"
#include "sparsetrain/error.h"

namespace sparsetrain {

namespace {

using detail::quoted;

// The words an integer option may use for the dataset's values.
const std::vector<std::string> kWords = {"channels", "height", "width", "classes"};
// Keys every node may have, beyond its type's.
const std::vector<std::string> kCommonKeys = {"name", "type", "input", "inputs", "prunable"};
const std::vector<std::string> kTopKeys = {"name", "description", "input", "nodes", "output"};
// Nodes a file may list (the graph is built depth-first, one stack frame per
// node of the longest chain).
constexpr std::size_t kMaxNodes = 4096;
// The graph input's node name: inputs refer to it.
const std::string kInputName = "input";

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool listed(const std::vector<std::string>& items, const std::string& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

int line_of(const YAML::Node& n) { return n.Mark().line + 1; }

// An option's value as text, and its line in the file (0: not from a file).
struct Value {
  std::string text;
  int line = 0;
};

// One node as read, before the graph is built.
struct Entry {
  std::string name;
  std::string type;
  std::shared_ptr<const ModelNodeType> node_type;
  int line = 0;
  std::vector<std::pair<std::string, Value>> options;  // the type's keys and prunable
  std::vector<std::string> input_names;
  std::vector<int> input_lines;

  const Value* option(const std::string& key) const {
    for (const auto& [k, v] : options)
      if (k == key) return &v;
    return nullptr;
  }
};

// Reads values and words errors: "model file 'F', line L: ..." for a file,
// `where` itself for builder calls.
class Reader {
 public:
  Reader(std::string source, const ModelOptions& options, bool file = true)
      : source_(std::move(source)), options_(options), file_(file) {}

  std::string at(int line) const {
    return file_ ? "model file '" + source_ + "', line " + std::to_string(line) : source_;
  }
  // What every message of this reader starts with.
  std::string prefix() const { return file_ ? "model file '" + source_ + "'" : source_; }
  [[noreturn]] void fail(int line, const std::string& problem) const {
    throw Error(at(line) + ": " + problem);
  }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& problem) const {
    fail(line_of(n), problem);
  }

  std::string scalar(const YAML::Node& v, const std::string& key) const {
    if (!v.IsScalar()) {
      fail(v, key + ": expected a single value, got a " + (v.IsMap() ? "mapping" : "list"));
    }
    return v.Scalar();
  }
  Value value(const YAML::Node& v, const std::string& key) const {
    return {scalar(v, key), line_of(v)};
  }
  int64_t integer(const YAML::Node& v, const std::string& key, int64_t min, int64_t max) const {
    return integer(value(v, key), key, min, max);
  }

  // An integer or one of kWords.
  int64_t integer(const Value& v, const std::string& key, int64_t min, int64_t max) const {
    const std::string& s = v.text;
    int64_t value = 0;
    if (s == "channels") {
      value = options_.channels;
    } else if (s == "height") {
      value = options_.height;
    } else if (s == "width") {
      value = options_.width;
    } else if (s == "classes") {
      value = options_.num_classes;
    } else {
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
      if (ec != std::errc() || end != s.data() + s.size()) {
        fail(v.line,
             key + ": expected an integer or one of " + join(kWords) + ", got " + quoted(s));
      }
    }
    if (value < min || value > max) {
      fail(v.line, key + ": " + std::to_string(value) + " is out of range (" + std::to_string(min) +
                       (max == INT64_MAX ? " or more" : " to " + std::to_string(max)) + ")");
    }
    return value;
  }

  double number(const Value& v, const std::string& key, double min, double max) const {
    const std::string& s = v.text;
    char* end = nullptr;
    const double value = s.empty() ? std::nan("") : std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(value)) {
      fail(v.line, key + ": expected a number, got " + quoted(s));
    }
    if (value < min || value > max) {
      fail(v.line, key + ": " + s + " is out of range (" + std::to_string(min) + " to " +
                       std::to_string(max) + ")");
    }
    return value;
  }

  bool boolean(const Value& v, const std::string& key) const {
    const std::string& s = v.text;
    if (s == "true") return true;
    if (s == "false") return false;
    fail(v.line, key + ": expected true or false, got " + quoted(s));
  }

  const ModelOptions& options() const { return options_; }

 private:
  std::string source_;
  ModelOptions options_;
  bool file_;
};

class Spec final : public ModelNodeSpec {
 public:
  Spec(const Reader& reader, const Entry& entry, std::vector<NodeId> inputs)
      : r_(reader), e_(entry), inputs_(std::move(inputs)) {}

  const std::string& name() const override { return e_.name; }
  const std::vector<NodeId>& inputs() const override { return inputs_; }
  int64_t integer(const std::string& key, int64_t fallback, int64_t min,
                  int64_t max) const override {
    const Value* v = value(key);
    return v != nullptr ? r_.integer(*v, key, min, max) : fallback;
  }
  int64_t required_integer(const std::string& key, int64_t min, int64_t max) const override {
    const Value* v = value(key);
    if (v == nullptr) r_.fail(e_.line, e_.type + " '" + e_.name + "' needs " + key);
    return r_.integer(*v, key, min, max);
  }
  double number(const std::string& key, double fallback, double min, double max) const override {
    const Value* v = value(key);
    return v != nullptr ? r_.number(*v, key, min, max) : fallback;
  }
  bool boolean(const std::string& key, bool fallback) const override {
    const Value* v = value(key);
    return v != nullptr ? r_.boolean(*v, key) : fallback;
  }

 private:
  // The option's value; null when absent. Asking for a key the type did not
  // declare is the type's own error.
  const Value* value(const std::string& key) const {
    if (!listed(e_.node_type->keys, key)) {
      throw Error("model node type '" + e_.type + "' reads option '" + key +
                  "', which it does not declare in ModelNodeType::keys");
    }
    return e_.option(key);
  }

  const Reader& r_;
  const Entry& e_;
  std::vector<NodeId> inputs_;
};

// The registered type `type` (named at `line` in errors).
std::shared_ptr<const ModelNodeType> node_type(const Reader& r, const std::string& type, int line) {
  std::shared_ptr<const ModelNodeType> t = detail::find_model_node_type(type);
  if (!t) {
    r.fail(line, "unknown node type " + quoted(type) +
                     " (expected one of: " + join(model_node_types()) + ")");
  }
  return t;
}

// Option `key` is one the node's type reads, or prunable.
void check_key(const Reader& r, const Entry& e, const std::string& key, int line) {
  if (key == "prunable" || listed(e.node_type->keys, key)) return;
  std::vector<std::string> known = kCommonKeys;
  known.insert(known.end(), e.node_type->keys.begin(), e.node_type->keys.end());
  r.fail(line, "unknown key '" + key + "' for a " + e.type +
                   " node (expected one of: " + join(known) + ")");
}

void check_input_count(const Reader& r, const Entry& e) {
  const auto want = static_cast<std::size_t>(e.node_type->inputs);
  if (e.input_names.size() != want) {
    r.fail(e.line, e.type + " '" + e.name + "' takes " + std::to_string(want) + " input" +
                       (want == 1 ? "" : "s") + ", got " + std::to_string(e.input_names.size()) +
                       (want > 1 ? " (list them: inputs: [a, b])" : ""));
  }
}

// Adds the node by its type's builder, then marks it not prunable if asked.
// Errors from the graph (shapes) get the node's place in front.
NodeId build_node(Graph& g, const Reader& r, const Entry& e, const std::vector<NodeId>& inputs) {
  const Spec spec(r, e, inputs);
  const std::string where = r.at(e.line) + ": ";
  NodeId id;
  try {
    id = e.node_type->build(g, spec);
    if (const Value* v = e.option("prunable")) {
      const bool prunable = r.boolean(*v, "prunable");
      if (!g.node(id).traits().convolution && std::string(g.node(id).type()) != "linear") {
        r.fail(v->line, "prunable: only conv2d and linear layers are pruned");
      }
      g.set_prunable(e.name, prunable);
    }
  } catch (const Error& err) {
    const std::string what = err.what();
    if (what.rfind(r.prefix(), 0) == 0) throw;  // already placed
    throw Error(where + what);
  }
  if (g.node(id).name() != e.name) {
    throw Error(where + "node type '" + e.type + "' added a node named '" + g.node(id).name() +
                "' for '" + e.name + "'");
  }
  return id;
}

class ModelParser {
 public:
  ModelParser(const std::string& source, const ModelOptions& options) : r_(source, options) {}

  Graph parse(const std::string& text) {
    const YAML::Node root = load(text);
    read_nodes(root["nodes"]);
    Graph g;
    ids_[kInputName] = g.input(kInputName, input_shape(root["input"], true));
    const int output = output_entry(root["output"]);
    std::vector<int> state(entries_.size(), 0);
    std::vector<int> path;
    for (std::size_t i = 0; i < entries_.size(); ++i) visit(static_cast<int>(i), state, path);
    for (const int i : order_) build(g, entries_[i]);
    check_reaches_output(output);
    g.set_output(ids_.at(entries_[output].name));
    return g;
  }

  ModelOptions input(const std::string& text) {
    const Shape s = input_shape(load(text)["input"], false);
    return {s[0], s[1], s[2], r_.options().num_classes};
  }

 private:
  // The document, its top-level keys checked.
  YAML::Node load(const std::string& text) {
    const YAML::Node root = detail::load_one_document(
        text, [this](int line) { return r_.at(line); }, "a model file",
        "a model file needs four levels: nodes, a node, its inputs, one input");
    if (!root.IsMap()) {
      throw Error(r_.at(root.IsNull() ? 1 : line_of(root)) +
                  ": a model file is a mapping with input: and nodes: (see README \"Models in "
                  "files\")");
    }
    std::set<std::string> seen;
    for (const auto& kv : root) {
      const std::string key = r_.scalar(kv.first, "(top level)");
      if (!listed(kTopKeys, key)) {
        r_.fail(kv.first, "unknown key '" + key + "' (expected one of: " + join(kTopKeys) + ")");
      }
      if (!seen.insert(key).second) r_.fail(kv.first, key + ": given twice");
    }
    if (!root["input"]) r_.fail(root, "no input: (the sample shape, as [channels, height, width])");
    if (!root["nodes"]) r_.fail(root, "no nodes: (the list of the model's nodes)");
    return root;
  }

  // `check`: the data's sample shape must be the model's.
  Shape input_shape(const YAML::Node& v, bool check) {
    if (!v.IsSequence() || v.size() != 3) {
      r_.fail(v,
              "input: expected [channels, height, width] (three integers, or the words "
              "channels, height and width for the dataset's)");
    }
    const ModelOptions& o = r_.options();
    const int64_t c = r_.integer(v[0], "input channels", 1, 1 << 16);
    const int64_t h = r_.integer(v[1], "input height", 1, 1 << 16);
    const int64_t w = r_.integer(v[2], "input width", 1, 1 << 16);
    if (check && (c != o.channels || h != o.height || w != o.width)) {
      r_.fail(v, "input: the model takes " + std::to_string(c) + "x" + std::to_string(h) + "x" +
                     std::to_string(w) + " samples, the data has " + std::to_string(o.channels) +
                     "x" + std::to_string(o.height) + "x" + std::to_string(o.width) +
                     " (write channels, height or width to take the data's)");
    }
    return {c, h, w};
  }

  void read_nodes(const YAML::Node& nodes) {
    if (!nodes.IsSequence() || nodes.size() == 0) {
      r_.fail(nodes, "nodes: expected a list of nodes ({name: ..., type: ..., ...})");
    }
    if (nodes.size() > kMaxNodes) {
      r_.fail(nodes, "nodes: " + std::to_string(nodes.size()) + " nodes, more than the " +
                         std::to_string(kMaxNodes) + " a model file may have");
    }
    for (auto it = nodes.begin(); it != nodes.end(); ++it) {
      const YAML::Node n = *it;
      if (!n.IsMap()) r_.fail(n, "a node is a mapping ({name: ..., type: ..., ...})");
      Entry e;
      e.line = line_of(n);
      if (!n["name"]) r_.fail(n, "a node without name:");
      if (!n["type"]) r_.fail(n, "node without type: (one of: " + join(model_node_types()) + ")");
      e.name = r_.scalar(n["name"], "name");
      if (e.name.empty()) r_.fail(n["name"], "name: empty");
      if (e.name == kInputName) {
        r_.fail(n["name"], "name: 'input' is the graph input's name (inputs refer to it)");
      }
      const auto [at, fresh] = index_.emplace(e.name, static_cast<int>(entries_.size()));
      if (!fresh) {
        r_.fail(n["name"], "a second node named '" + e.name + "' (the first is on line " +
                               std::to_string(entries_[at->second].line) + ")");
      }
      e.type = r_.scalar(n["type"], "type");
      e.node_type = node_type(r_, e.type, line_of(n["type"]));
      read_options(n, e);
      read_inputs(n, e);
      check_input_count(r_, e);
      entries_.push_back(std::move(e));
    }
  }

  void read_options(const YAML::Node& n, Entry& e) {
    std::set<std::string> seen;
    for (const auto& kv : n) {
      const std::string key = r_.scalar(kv.first, "a key of node '" + e.name + "'");
      if (!seen.insert(key).second) r_.fail(kv.first, key + ": given twice");
      if (listed(kCommonKeys, key) && key != "prunable") continue;
      check_key(r_, e, key, line_of(kv.first));
      e.options.emplace_back(key, r_.value(kv.second, key));
    }
  }

  void read_inputs(const YAML::Node& n, Entry& e) {
    const YAML::Node one = n["input"];
    const YAML::Node many = n["inputs"];
    if (one && many) r_.fail(many, "inputs: give input: or inputs:, not both");
    if (one) {
      e.input_names.push_back(r_.scalar(one, "input"));
      e.input_lines.push_back(line_of(one));
    } else if (many) {
      if (!many.IsSequence()) r_.fail(many, "inputs: expected a list of node names");
      for (auto it = many.begin(); it != many.end(); ++it) {
        const YAML::Node v = *it;
        e.input_names.push_back(r_.scalar(v, "inputs"));
        e.input_lines.push_back(line_of(v));
      }
    } else {
      // The node listed before it, or the graph input for the first.
      e.input_names.push_back(entries_.empty() ? kInputName : entries_.back().name);
      e.input_lines.push_back(e.line);
    }
  }

  int find_entry(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? -1 : it->second;
  }

  int output_entry(const YAML::Node& v) const {
    if (!v) return static_cast<int>(entries_.size()) - 1;
    const std::string name = r_.scalar(v, "output");
    const int i = find_entry(name);
    if (i < 0) r_.fail(v, "output: no node is named " + quoted(name));
    return i;
  }

  // Depth-first: inputs before the node, in the order they are listed;
  // `path` is the chain of nodes being visited, for the cycle message.
  void visit(int i, std::vector<int>& state, std::vector<int>& path) {
    if (state[i] == 2) return;
    path.push_back(i);
    if (state[i] == 1) {
      std::string chain;
      const auto from = std::find(path.begin(), path.end(), i);
      for (auto it = from; it != path.end(); ++it)
        chain += (chain.empty() ? "" : " -> ") + entries_[*it].name;
      throw Error(r_.at(entries_[i].line) + ": the nodes form a cycle: " + chain +
                  " (each node's inputs must lead back to the graph input)");
    }
    state[i] = 1;
    const Entry& e = entries_[i];
    for (std::size_t k = 0; k < e.input_names.size(); ++k) {
      const std::string& in = e.input_names[k];
      if (in == kInputName) continue;
      const int j = find_entry(in);
      if (j < 0) {
        throw Error(r_.at(e.input_lines[k]) + ": node '" + e.name + "' takes input " + quoted(in) +
                    ", which does not exist (no node has that name)");
      }
      visit(j, state, path);
    }
    path.pop_back();
    state[i] = 2;
    order_.push_back(i);
  }

  void build(Graph& g, const Entry& e) {
    std::vector<NodeId> inputs;
    for (const std::string& in : e.input_names) inputs.push_back(ids_.at(in));
    ids_[e.name] = build_node(g, r_, e, inputs);
  }

  // Every node must feed the output: a node that does not is a typo in an
  // input name more often than not.
  void check_reaches_output(int output) const {
    std::vector<bool> used(entries_.size(), false);
    std::vector<int> todo = {output};
    used[output] = true;
    while (!todo.empty()) {
      const int i = todo.back();
      todo.pop_back();
      for (const std::string& in : entries_[i].input_names) {
        const int j = find_entry(in);
        if (j >= 0 && !used[j]) {
          used[j] = true;
          todo.push_back(j);
        }
      }
    }
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      if (!used[i]) {
        throw Error(r_.at(entries_[i].line) + ": node '" + entries_[i].name +
                    "' does not lead to the output '" + entries_[output].name +
                    "' (no later node takes it as an input)");
      }
    }
  }

  Reader r_;
  std::vector<Entry> entries_;
  std::map<std::string, int> index_;  // node name -> entries_ index
  std::vector<int> order_;
  std::map<std::string, NodeId> ids_;
};

}  // namespace

bool is_model_file(const std::string& model) {
  const auto ends = [&](const std::string& suffix) {
    return model.size() > suffix.size() &&
           model.compare(model.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

namespace {
// Runs `read` with anything yaml-cpp raises beyond the parse errors handled
// where they occur turned into an Error with the file and line.
template <class Read>
auto placing_yaml_errors(const std::string& source, Read&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const YAML::Exception& e) {
    throw Error("model file '" + source + "', line " + std::to_string(e.mark.line + 1) + ": " +
                detail::printable(e.msg));
  }
}
}  // namespace

Graph parse_model_file(const std::string& text, const std::string& source,
                       const ModelOptions& options) {
  ModelParser parser(source, options);
  return placing_yaml_errors(source, [&] { return parser.parse(text); });
}

NodeId add_model_node(Graph& graph, const std::string& name, const std::string& type,
                      const std::vector<std::string>& inputs,
                      const std::vector<std::pair<std::string, std::string>>& options,
                      const ModelOptions& data) {
  const Reader r("node '" + name + "'", data, /*file=*/false);
  if (name.empty()) throw Error("add_model_node: the node needs a name");
  if (graph.find(name).index >= 0) r.fail(0, "a node of that name is in the graph already");
  if (graph.size() == 0) r.fail(0, "the graph has no input yet (Graph::input first)");
  Entry e;
  e.name = name;
  e.type = type;
  e.node_type = node_type(r, type, 0);
  std::set<std::string> seen;
  for (const auto& [key, text] : options) {
    if (!seen.insert(key).second) r.fail(0, key + ": given twice");
    check_key(r, e, key, 0);
    e.options.emplace_back(key, Value{text, 0});
  }
  std::vector<NodeId> ids;
  if (inputs.empty()) {
    ids.push_back(NodeId{graph.size() - 1});  // the node added last
  } else {
    for (const std::string& in : inputs) {
      const NodeId id = graph.find(in);
      if (id.index < 0) r.fail(0, "input '" + in + "' is not a node of the graph");
      ids.push_back(id);
    }
  }
  e.input_names.resize(ids.size());
  check_input_count(r, e);
  return build_node(graph, r, e, ids);
}

Graph load_model_file(const std::string& path, const ModelOptions& options) {
  return parse_model_file(detail::read_text_file(path, "model file"), path, options);
}

ModelOptions model_file_input(const std::string& path, const ModelOptions& data) {
  const std::string text = detail::read_text_file(path, "model file");
  ModelParser parser(path, data);
  return placing_yaml_errors(path, [&] { return parser.input(text); });
}

}  // namespace sparsetrain

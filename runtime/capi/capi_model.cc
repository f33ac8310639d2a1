// The C API: models (built, loaded, saved), prediction, evaluation, pruning
// and hooks.
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "capi/capi_internal.h"
#include "sparsetrain/checkpoint.h"
#include "sparsetrain/masks.h"
#include "sparsetrain/models.h"

namespace sparsetrain::capi {

std::shared_ptr<ModelState> model_state(st_model* model, const char* fn) {
  require(model, fn, "the model");
  if (!model->state->finished) {
    throw Error(std::string(fn) + ": the model is still being built (st_model_finish first)");
  }
  return model->state;
}

Graph copy_model(ModelState& s) {
  Graph g = s.calls_yaml.empty()
                ? build_model(s.name, s.shape)
                : parse_model_file("input: [channels, height, width]\nnodes:\n" + s.calls_yaml,
                                   "the model built by calls", s.shape);
  Checkpoint ck;
  save_parameters(ck, s.graph().parameters());
  load_graph_parameters(ck, g, SparseLoad::kAsSaved);
  return g;
}

st_model* new_model_handle(std::shared_ptr<ModelState> state) {
  return new st_model{std::move(state)};
}

namespace {

// A model built by calls, as a model file's node list (saved with it).
void record_call(ModelState& s, const std::string& previous, const std::string& name,
                 const std::string& type, const std::vector<std::string>& inputs,
                 const std::vector<std::pair<std::string, std::string>>& options) {
  const auto quote = [](const std::string& t) { return nlohmann::json(t).dump(); };
  std::ostringstream line;
  line << "  - {name: " << quote(name) << ", type: " << quote(type);
  if (!inputs.empty()) {
    line << ", inputs: [";
    for (std::size_t i = 0; i < inputs.size(); ++i) line << (i ? ", " : "") << quote(inputs[i]);
    line << "]";
  } else {
    line << ", input: " << quote(previous);
  }
  for (const auto& [k, v] : options) line << ", " << quote(k) << ": " << quote(v);
  line << "}\n";
  s.calls_yaml += line.str();
}

std::vector<std::string> split_names(const char* text) {
  std::vector<std::string> names;
  if (text == nullptr) return names;
  std::string item;
  for (const char* c = text;; ++c) {
    if (*c == ',' || *c == '\0') {
      const auto b = item.find_first_not_of(' ');
      const auto e = item.find_last_not_of(' ');
      if (b != std::string::npos) names.push_back(item.substr(b, e - b + 1));
      item.clear();
      if (*c == '\0') break;
    } else {
      item += *c;
    }
  }
  return names;
}

ModelOptions checked_shape(int64_t channels, int64_t height, int64_t width, int32_t classes,
                           const char* fn) {
  if (channels < 1 || height < 1 || width < 1 || classes < 1) {
    throw InvalidArgument(std::string(fn) +
                          ": channels, height, width and classes must be 1 or more");
  }
  return ModelOptions{channels, height, width, classes};
}

// A plain-layout copy for a hook's view (the executor may hold (C, H, W, N)
// or (F, N) tensors).
st_tensor_view view_of(const Tensor& t, std::vector<Tensor>& keep) {
  st_tensor_view v{};
  if (!t.defined()) return v;
  const Layout plain = t.shape().size() == 4 ? Layout::kNCHW : Layout::kPlain;
  keep.push_back(t.layout() == plain || t.layout() == Layout::kPlain ? t : to_layout(t, plain));
  const Tensor& c = keep.back();
  v.data = c.data();
  v.ndim = static_cast<int32_t>(std::min<std::size_t>(c.shape().size(), 6));
  for (int32_t i = 0; i < v.ndim; ++i) v.shape[i] = c.shape()[static_cast<std::size_t>(i)];
  return v;
}

}  // namespace

}  // namespace sparsetrain::capi

struct st_hook {
  std::shared_ptr<sparsetrain::capi::ModelState> state;
  sparsetrain::HookHandle handle;
};

using namespace sparsetrain;
using capi::guard;
using capi::require;

extern "C" {

st_status st_model_create(const char* model, int64_t channels, int64_t height, int64_t width,
                          int32_t classes, uint64_t seed, st_model** out) {
  constexpr const char* fn = "st_model_create";
  return guard([&] {
    require(out, fn, "out");
    *out = nullptr;
    require(model, fn, "model");
    auto s = std::make_shared<capi::ModelState>();
    s->shape = capi::checked_shape(channels, height, width, classes, fn);
    s->own = std::make_unique<Graph>(build_model(model, s->shape));
    s->own->initialize(seed);
    s->name = model;
    s->finished = true;
    *out = capi::new_model_handle(std::move(s));
  });
}

st_status st_model_begin(int64_t channels, int64_t height, int64_t width, int32_t classes,
                         st_model** out) {
  constexpr const char* fn = "st_model_begin";
  return guard([&] {
    require(out, fn, "out");
    *out = nullptr;
    auto s = std::make_shared<capi::ModelState>();
    s->shape = capi::checked_shape(channels, height, width, classes, fn);
    s->own = std::make_unique<Graph>();
    s->own->input("input", {channels, height, width});
    *out = capi::new_model_handle(std::move(s));
  });
}

st_status st_model_add_node(st_model* model, const char* name, const char* type, const char* inputs,
                            const char* options) {
  constexpr const char* fn = "st_model_add_node";
  return guard([&] {
    require(model, fn, "the model");
    require(name, fn, "name");
    require(type, fn, "type");
    capi::ModelState& s = *model->state;
    if (s.finished) throw Error(std::string(fn) + ": the model is finished; nodes come before");
    const std::vector<std::string> in = capi::split_names(inputs);
    const auto pairs = capi::parse_pairs(options, fn);
    const std::string previous = s.own->node(NodeId{s.own->size() - 1}).name();
    add_model_node(*s.own, name, type, in, pairs, s.shape);
    capi::record_call(s, previous, name, type, in, pairs);
  });
}

st_status st_model_finish(st_model* model, const char* output, uint64_t seed) {
  constexpr const char* fn = "st_model_finish";
  return guard([&] {
    require(model, fn, "the model");
    capi::ModelState& s = *model->state;
    if (s.finished) throw Error(std::string(fn) + ": the model is finished already");
    if (s.own->size() < 2) throw Error(std::string(fn) + ": the model has no node");
    NodeId out{s.own->size() - 1};
    if (output != nullptr) {
      out = s.own->find(output);
      if (out.index < 0) throw Error(std::string(fn) + ": no node is named '" + output + "'");
    }
    s.own->set_output(out);
    s.own->initialize(seed);
    s.calls_yaml += "output: " + nlohmann::json(s.own->node(out).name()).dump() + "\n";
    s.finished = true;
  });
}

st_status st_model_load(const char* checkpoint, st_model** out) {
  constexpr const char* fn = "st_model_load";
  return guard([&] {
    require(out, fn, "out");
    *out = nullptr;
    require(checkpoint, fn, "checkpoint");
    const std::string path = checkpoint_file(checkpoint);
    auto s = std::make_shared<capi::ModelState>();
    // A model built by calls carries its own description.
    const Checkpoint ck = Checkpoint::load(path);
    const auto text = ck.metadata().find("model_nodes");
    GraphFactory factory = zoo_factory();
    if (text != ck.metadata().end()) {
      const std::string nodes = text->second;
      factory = [nodes, path](const std::string&, int64_t c, int64_t h, int64_t w, int64_t k) {
        return parse_model_file("input: [channels, height, width]\nnodes:\n" + nodes,
                                path + " (model_nodes)", ModelOptions{c, h, w, k});
      };
      s->calls_yaml = nodes;
    }
    s->own = std::make_unique<Graph>();
    s->trained = load_model_checkpoint(path, factory, *s->own);
    const Shape in = s->own->input_shape();
    s->shape = ModelOptions{in[0], in[1], in[2], s->own->shape_of(s->own->output())[1]};
    s->name = s->trained.model;
    s->finished = true;
    *out = capi::new_model_handle(std::move(s));
  });
}

st_status st_model_save(st_model* model, const char* path) {
  constexpr const char* fn = "st_model_save";
  return guard([&] {
    auto s = capi::model_state(model, fn);
    require(path, fn, "path");
    Checkpoint ck;
    save_parameters(ck, s->graph().parameters());
    TrainOptions o = s->trained;
    o.model = s->name.empty() ? "built-by-calls" : s->name;
    if (o.dataset.empty() || s->trained.model.empty()) o.dataset = "app";
    auto& meta = ck.metadata();
    meta["format"] = "sparsetrain-checkpoint-2";
    meta["options"] = options_to_json(o);
    meta["sample_shape"] =
        nlohmann::json({s->shape.channels, s->shape.height, s->shape.width}).dump();
    meta["num_classes"] = std::to_string(s->shape.num_classes);
    if (!s->calls_yaml.empty()) meta["model_nodes"] = s->calls_yaml;
    ck.save(path);
  });
}

st_status st_model_info(st_model* model, int64_t* channels, int64_t* height, int64_t* width,
                        int32_t* classes, int64_t* parameters, int64_t* nonzero) {
  return guard([&] {
    auto s = capi::model_state(model, "st_model_info");
    if (channels != nullptr) *channels = s->shape.channels;
    if (height != nullptr) *height = s->shape.height;
    if (width != nullptr) *width = s->shape.width;
    if (classes != nullptr) *classes = static_cast<int32_t>(s->shape.num_classes);
    const SparsityReport r = sparsity_report(s->graph());
    if (parameters != nullptr) *parameters = r.params_total;
    if (nonzero != nullptr) *nonzero = r.params_nonzero;
  });
}

st_status st_model_predict(st_model* model, const float* images, size_t images_len, int64_t count,
                           float* logits, size_t logits_len) {
  constexpr const char* fn = "st_model_predict";
  return guard([&] {
    auto s = capi::model_state(model, fn);
    const Tensor x = capi::images_tensor(images, images_len, count, s->shape, fn);
    require(logits, fn, "logits");
    capi::require_len(
        logits_len, count * s->shape.num_classes, fn, "logits",
        std::to_string(count) + " samples of " + std::to_string(s->shape.num_classes) + " classes");
    const Tensor y = s->graph().forward(x, ExecMode::kInference);
    std::memcpy(logits, y.data(), logits_len * sizeof(float));
    s->graph().release();
  });
}

st_status st_model_input_gradient(st_model* model, const float* images, size_t images_len,
                                  int64_t count, const float* grad_logits, size_t grad_logits_len,
                                  float* grad_images, size_t grad_images_len) {
  constexpr const char* fn = "st_model_input_gradient";
  return guard([&] {
    auto s = capi::model_state(model, fn);
    const Tensor x = capi::images_tensor(images, images_len, count, s->shape, fn);
    require(grad_logits, fn, "grad_logits");
    capi::require_len(
        grad_logits_len, count * s->shape.num_classes, fn, "grad_logits",
        std::to_string(count) + " samples of " + std::to_string(s->shape.num_classes) + " classes");
    require(grad_images, fn, "grad_images");
    capi::require_len(grad_images_len, static_cast<int64_t>(images_len), fn, "grad_images",
                      "the images");
    Graph& g = s->graph();
    (void)g.forward(x, ExecMode::kProbe);
    Tensor d = Tensor::empty({count, s->shape.num_classes});
    std::memcpy(d.data(), grad_logits, grad_logits_len * sizeof(float));
    BackwardOptions o;
    o.param_grads = false;
    o.input_grad = true;
    const Tensor gx = to_layout(g.backward(d, o), Layout::kNCHW);
    std::memcpy(grad_images, gx.data(), grad_images_len * sizeof(float));
    g.release();
  });
}

st_status st_model_evaluate(st_model* model, const st_dataset* data, double* accuracy,
                            double* loss) {
  constexpr const char* fn = "st_model_evaluate";
  return guard([&] {
    auto s = capi::model_state(model, fn);
    const Dataset& d = capi::dataset_of(data, fn);
    const EvalResult r = evaluate_graph(s->graph(), d, 256);
    if (accuracy != nullptr) *accuracy = r.accuracy;
    if (loss != nullptr) *loss = r.loss;
  });
}

st_status st_model_prune(st_model* model, double sparsity, const char* distribution) {
  constexpr const char* fn = "st_model_prune";
  return guard([&] {
    auto s = capi::model_state(model, fn);
    if (s->trainer) throw Error(std::string(fn) + ": the model is in a trainer; prune it there");
    if (!(sparsity >= 0.0 && sparsity < 1.0)) {
      throw Error(std::string(fn) + ": sparsity must be in [0, 1), got " +
                  std::to_string(sparsity));
    }
    const Distribution dist = parse_distribution(distribution == nullptr ? "global" : distribution);
    Graph& g = s->graph();
    const std::vector<PrunableLayer> layers = prunable_layers(g, auto_dense_first_last(g));
    if (layers.empty()) throw Error(std::string(fn) + ": the model has no layer to prune");
    const std::vector<Tensor> masks =
        magnitude_masks(g, layers, static_cast<float>(sparsity), dist);
    for (std::size_t l = 0; l < layers.size(); ++l) {
      if (g.parameter(layers[l].param).masked()) g.unmask(layers[l].node);
      g.compress(layers[l].node, masks[l]);
    }
  });
}

void st_model_release(st_model* model) { delete model; }

st_status st_model_add_hook(st_model* model, st_hook_point point, const char* pattern,
                            st_hook_fn fn_ptr, void* user, st_hook** out) {
  constexpr const char* fn = "st_model_add_hook";
  return guard([&] {
    require(out, fn, "out");
    *out = nullptr;
    auto s = capi::model_state(model, fn);
    require(pattern, fn, "pattern");
    if (fn_ptr == nullptr) require(nullptr, fn, "the hook function");
    HookPoint p;
    switch (point) {
      case ST_HOOK_BEFORE_FORWARD:
        p = HookPoint::kBeforeForward;
        break;
      case ST_HOOK_AFTER_FORWARD:
        p = HookPoint::kAfterForward;
        break;
      case ST_HOOK_AFTER_BACKWARD:
        p = HookPoint::kAfterBackward;
        break;
      case ST_HOOK_AFTER_STEP:
        p = HookPoint::kAfterOptimizerStep;
        break;
      default:
        throw capi::InvalidArgument(std::string(fn) + ": unknown hook point " +
                                    std::to_string(static_cast<int>(point)));
    }
    auto hook = std::make_unique<st_hook>();
    hook->state = s;
    hook->handle = s->graph().add_hook(p, pattern, [fn_ptr, user, point](HookEvent& e) {
      std::vector<Tensor> keep;
      keep.reserve(e.inputs.size() + 2);
      std::vector<st_tensor_view> inputs;
      for (const Tensor& t : e.inputs) inputs.push_back(capi::view_of(t, keep));
      st_hook_event ev{};
      ev.point = point;
      ev.node = e.node.c_str();
      ev.node_type = e.node_type.c_str();
      ev.step = e.step;
      ev.training = e.training ? 1 : 0;
      ev.num_inputs = static_cast<int32_t>(inputs.size());
      ev.inputs = inputs.data();
      if (e.output != nullptr) ev.output = capi::view_of(*e.output, keep);
      if (e.diff_dst != nullptr) ev.grad_output = capi::view_of(*e.diff_dst, keep);
      const int rc = fn_ptr(&ev, user);
      if (rc != 0) {
        throw Error("the hook on node '" + e.node + "' returned " + std::to_string(rc) +
                    " (not 0): the pass stopped");
      }
    });
    *out = hook.release();
  });
}

void st_hook_release(st_hook* hook) { delete hook; }

}  // extern "C"

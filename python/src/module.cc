// The Python module sparsetrain._sparsetrain: pybind11 over the C API
// (sparsetrain.h), so Python sees the same objects, checks and messages as C.
// NumPy arrays go in without a copy when they are C-contiguous float32 /
// int32 (otherwise NumPy makes one); results are written straight into new
// NumPy arrays. The GIL is released while the runtime computes and taken
// back by Python hooks.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sparsetrain.h"

namespace py = pybind11;

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IntArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using IndexArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// A Python exception raised by a hook, to re-raise from the call that ran it.
thread_local std::optional<py::error_already_set> hook_error;

// sparsetrain.Error (a reference kept for the life of the process).
py::handle error_type;
struct RuntimeError {};

// Raises the hook's exception, or one carrying the runtime's message:
// ValueError for an invalid argument, MemoryError, else sparsetrain.Error.
void check(st_status status) {
  if (hook_error) {
    py::error_already_set e = std::move(*hook_error);
    hook_error.reset();
    throw e;
  }
  if (status == ST_OK) return;
  const std::string message = st_last_error();
  if (status == ST_INVALID_ARGUMENT) throw py::value_error(message);
  if (status == ST_OUT_OF_MEMORY) {
    PyErr_SetString(PyExc_MemoryError, message.c_str());
    throw py::error_already_set();
  }
  PyErr_SetString(error_type.ptr(), message.c_str());
  throw py::error_already_set();
}

// Runs a C call with the GIL released, then checks its status.
template <class Call>
void run(Call&& call) {
  st_status status;
  {
    py::gil_scoped_release nogil;
    status = call();
  }
  check(status);
}

template <class T, void (*Release)(T*)>
struct Handle {
  std::shared_ptr<T> ptr;
  explicit Handle(T* raw = nullptr) : ptr(raw, Release) {}
  T* get() const { return ptr.get(); }
};

using Dataset = Handle<st_dataset, st_dataset_release>;

// Python hooks of a model: kept while the model or the returned handle lives.
struct HookData {
  py::function fn;
  st_hook* hook = nullptr;
  ~HookData() { st_hook_release(hook); }
};

struct Model {
  std::shared_ptr<st_model> ptr;
  std::vector<std::shared_ptr<HookData>> hooks;
  st_model* get() const { return ptr.get(); }
  static Model wrap(st_model* raw) {
    return Model{std::shared_ptr<st_model>(raw, st_model_release), {}};
  }
};

struct Hook {
  std::weak_ptr<HookData> data;
  Model* owner = nullptr;
};

using Trainer = Handle<st_trainer, st_trainer_release>;
using ProbeResult = Handle<st_probe_result, st_probe_result_release>;

py::array_t<float> copy_view(const st_tensor_view& v) {
  if (v.data == nullptr) return py::array_t<float>();
  std::vector<py::ssize_t> shape(v.shape, v.shape + v.ndim);
  py::array_t<float> a(shape);
  std::copy(v.data, v.data + a.size(), a.mutable_data());
  return a;
}

int hook_trampoline(const st_hook_event* e, void* user) {
  py::gil_scoped_acquire gil;
  auto* data = static_cast<HookData*>(user);
  try {
    py::dict event;
    static const char* points[] = {"before_forward", "after_forward", "after_backward",
                                   "after_step"};
    event["point"] = points[e->point];
    event["node"] = e->node;
    event["node_type"] = e->node_type;
    event["step"] = e->step;
    event["training"] = e->training != 0;
    py::list inputs;
    for (int32_t i = 0; i < e->num_inputs; ++i) inputs.append(copy_view(e->inputs[i]));
    event["inputs"] = inputs;
    event["output"] = e->output.data ? py::object(copy_view(e->output)) : py::object(py::none());
    event["grad_output"] =
        e->grad_output.data ? py::object(copy_view(e->grad_output)) : py::object(py::none());
    data->fn(event);
    return 0;
  } catch (py::error_already_set& err) {
    hook_error.emplace(std::move(err));
    return 1;
  }
}

st_hook_point hook_point(const std::string& name) {
  if (name == "before_forward") return ST_HOOK_BEFORE_FORWARD;
  if (name == "after_forward") return ST_HOOK_AFTER_FORWARD;
  if (name == "after_backward") return ST_HOOK_AFTER_BACKWARD;
  if (name == "after_step") return ST_HOOK_AFTER_STEP;
  throw py::value_error("unknown hook point '" + name +
                        "' (expected before_forward, after_forward, after_backward or after_step)");
}

// key=value text for the C API from Python keyword arguments.
std::string options_text(const py::kwargs& options) {
  std::string text;
  for (const auto& [k, v] : options) {
    std::string value = py::str(v);
    if (py::isinstance<py::bool_>(v)) value = v.cast<bool>() ? "true" : "false";
    text += (text.empty() ? "" : " ") + py::str(k).cast<std::string>() + "=" + value;
  }
  return text;
}

struct Shape {
  int64_t channels, height, width;
  int32_t classes;
};
Shape model_shape(const Model& m) {
  Shape s{};
  check(st_model_info(m.get(), &s.channels, &s.height, &s.width, &s.classes, nullptr, nullptr));
  return s;
}

int64_t batch_of(const FloatArray& images) {
  if (images.ndim() != 4) {
    throw py::value_error("images: expected a 4-D array (N, C, H, W), got " +
                          std::to_string(images.ndim()) + " dimensions");
  }
  return images.shape(0);
}

}  // namespace

PYBIND11_MODULE(_sparsetrain, m) {
  m.doc() = "sparsetrain: sparse neural-network training on CPUs (the runtime's Python module)";
  error_type = py::exception<RuntimeError>(m, "Error", PyExc_RuntimeError).release();
  m.attr("api_version") = st_api_version();
  m.attr("__version__") = st_library_version();
  m.def(
      "set_num_threads", [](int n) { check(st_set_num_threads(n)); }, py::arg("threads"));

  py::class_<Dataset>(m, "Dataset")
      .def_static(
          "load",
          [](const std::string& name, const std::string& data_dir, const std::string& split) {
            if (split != "train" && split != "test") {
              throw py::value_error("split: expected 'train' or 'test', got '" + split + "'");
            }
            st_dataset* d = nullptr;
            run([&] {
              return st_dataset_load(name.c_str(), data_dir.c_str(), split == "test", &d);
            });
            return Dataset(d);
          },
          py::arg("name"), py::arg("data_dir") = "", py::arg("split") = "train")
      .def(py::init([](FloatArray images, IntArray labels, int32_t classes) {
             const int64_t n = batch_of(images);
             if (labels.ndim() != 1 || labels.shape(0) != n) {
               throw py::value_error("labels: expected " + std::to_string(n) + " labels");
             }
             st_dataset* d = nullptr;
             check(st_dataset_create(images.data(), static_cast<size_t>(images.size()),
                                     labels.data(), n, images.shape(1), images.shape(2),
                                     images.shape(3), classes, &d));
             return Dataset(d);
           }),
           py::arg("images"), py::arg("labels"), py::arg("classes"))
      .def("__len__",
           [](const Dataset& d) {
             int64_t n = 0;
             check(st_dataset_info(d.get(), &n, nullptr, nullptr, nullptr, nullptr));
             return n;
           })
      .def_property_readonly("shape",
                             [](const Dataset& d) {
                               int64_t c = 0, h = 0, w = 0;
                               check(st_dataset_info(d.get(), nullptr, &c, &h, &w, nullptr));
                               return py::make_tuple(c, h, w);
                             })
      .def_property_readonly(
          "classes",
          [](const Dataset& d) {
            int32_t k = 0;
            check(st_dataset_info(d.get(), nullptr, nullptr, nullptr, nullptr, &k));
            return k;
          })
      .def(
          "samples",
          [](const Dataset& d, int64_t first, int64_t count) {
            int64_t c = 0, h = 0, w = 0;
            check(st_dataset_info(d.get(), nullptr, &c, &h, &w, nullptr));
            if (count < 1) throw py::value_error("count must be 1 or more");
            py::array_t<float> images({count, c, h, w});
            py::array_t<int32_t> labels(count);
            float* x = images.mutable_data();
            int32_t* y = labels.mutable_data();
            const auto nx = static_cast<size_t>(images.size());
            run([&] { return st_dataset_samples(d.get(), first, count, x, nx, y, count); });
            return py::make_tuple(images, labels);
          },
          py::arg("first"), py::arg("count"),
          "Samples [first, first + count) normalised as models take them: (images, labels).");

  py::class_<Hook>(m, "Hook").def("remove", [](Hook& h) {
    if (auto data = h.data.lock()) {
      auto& hooks = h.owner->hooks;
      hooks.erase(std::remove(hooks.begin(), hooks.end(), data), hooks.end());
    }
  });

  py::class_<Model>(m, "Model")
      .def(py::init([](const std::string& model, std::tuple<int64_t, int64_t, int64_t> input,
                       int32_t classes, uint64_t seed) {
             st_model* raw = nullptr;
             const auto [c, h, w] = input;
             run([&] { return st_model_create(model.c_str(), c, h, w, classes, seed, &raw); });
             return Model::wrap(raw);
           }),
           py::arg("model"), py::arg("input_shape") = std::make_tuple(1, 28, 28),
           py::arg("classes") = 10, py::arg("seed") = 0)
      .def_static(
          "begin",
          [](std::tuple<int64_t, int64_t, int64_t> input, int32_t classes) {
            st_model* raw = nullptr;
            const auto [c, h, w] = input;
            check(st_model_begin(c, h, w, classes, &raw));
            return Model::wrap(raw);
          },
          py::arg("input_shape"), py::arg("classes") = 10)
      .def(
          "add",
          [](Model& self, const std::string& name, const std::string& type,
             std::optional<std::vector<std::string>> inputs, const py::kwargs& options) {
            std::string in;
            if (inputs) {
              for (const auto& i : *inputs) in += (in.empty() ? "" : ",") + i;
            }
            const std::string text = options_text(options);
            check(st_model_add_node(self.get(), name.c_str(), type.c_str(), in.c_str(),
                                    text.c_str()));
          },
          py::arg("name"), py::arg("type"), py::arg("inputs") = py::none())
      .def(
          "finish",
          [](Model& self, std::optional<std::string> output, uint64_t seed) {
            check(st_model_finish(self.get(), output ? output->c_str() : nullptr, seed));
          },
          py::arg("output") = py::none(), py::arg("seed") = 0)
      .def_static("load",
                  [](const std::string& path) {
                    st_model* raw = nullptr;
                    run([&] { return st_model_load(path.c_str(), &raw); });
                    return Model::wrap(raw);
                  })
      .def("save",
           [](Model& self, const std::string& path) {
             run([&] { return st_model_save(self.get(), path.c_str()); });
           })
      .def_property_readonly("info",
                             [](Model& self) {
                               int64_t c = 0, h = 0, w = 0, params = 0, nonzero = 0;
                               int32_t k = 0;
                               check(st_model_info(self.get(), &c, &h, &w, &k, &params, &nonzero));
                               py::dict d;
                               d["input_shape"] = py::make_tuple(c, h, w);
                               d["classes"] = k;
                               d["parameters"] = params;
                               d["nonzero"] = nonzero;
                               return d;
                             })
      .def("predict",
           [](Model& self, FloatArray images) {
             const int64_t n = batch_of(images);
             const Shape s = model_shape(self);
             py::array_t<float> logits({n, static_cast<int64_t>(s.classes)});
             float* out = logits.mutable_data();
             const auto nout = static_cast<size_t>(logits.size());
             run([&] {
               return st_model_predict(self.get(), images.data(),
                                       static_cast<size_t>(images.size()), n, out, nout);
             });
             return logits;
           })
      .def(
          "input_gradient",
          [](Model& self, FloatArray images, FloatArray grad_logits) {
            const int64_t n = batch_of(images);
            py::array_t<float> grad(std::vector<py::ssize_t>(images.shape(), images.shape() + 4));
            float* out = grad.mutable_data();
            run([&] {
              return st_model_input_gradient(
                  self.get(), images.data(), static_cast<size_t>(images.size()), n,
                  grad_logits.data(), static_cast<size_t>(grad_logits.size()), out,
                  static_cast<size_t>(images.size()));
            });
            return grad;
          },
          py::arg("images"), py::arg("grad_logits"),
          "Gradient of sum(grad_logits * logits) with respect to the images (a probe pass).")
      .def("evaluate",
           [](Model& self, const Dataset& data) {
             double acc = 0, loss = 0;
             run([&] { return st_model_evaluate(self.get(), data.get(), &acc, &loss); });
             return py::make_tuple(acc, loss);
           })
      .def(
          "prune",
          [](Model& self, double sparsity, const std::string& distribution) {
            run([&] { return st_model_prune(self.get(), sparsity, distribution.c_str()); });
          },
          py::arg("sparsity"), py::arg("distribution") = "global")
      .def(
          "add_hook",
          [](Model& self, const std::string& point, const std::string& pattern, py::function fn) {
            auto data = std::make_shared<HookData>();
            data->fn = std::move(fn);
            check(st_model_add_hook(self.get(), hook_point(point), pattern.c_str(), hook_trampoline,
                                    data.get(), &data->hook));
            self.hooks.push_back(data);
            return Hook{data, &self};
          },
          py::arg("point"), py::arg("pattern"), py::arg("fn"), py::keep_alive<0, 1>())
      .def(
          "probe",
          [](Model& self, const std::string& name, const Dataset& data, IndexArray indices,
             const py::kwargs& options) {
            const std::string text = options_text(options);
            st_probe_result* raw = nullptr;
            run([&] {
              return st_probe_run(self.get(), name.c_str(), data.get(), indices.data(),
                                  indices.size(), text.c_str(), &raw);
            });
            return ProbeResult(raw);
          },
          py::arg("name"), py::arg("data"), py::arg("indices"));

  py::class_<ProbeResult>(m, "ProbeResult")
      .def_property_readonly("json",
                             [](const ProbeResult& r) {
                               const char* text = nullptr;
                               check(st_probe_result_json(r.get(), &text));
                               return py::module_::import("json").attr("loads")(text);
                             })
      .def_property_readonly("maps",
                             [](const ProbeResult& r) {
                               int64_t n = 0;
                               check(st_probe_result_map_count(r.get(), &n));
                               py::list maps;
                               for (int64_t i = 0; i < n; ++i) {
                                 int64_t sample = 0;
                                 const char* title = nullptr;
                                 st_tensor_view v{};
                                 check(st_probe_result_map(r.get(), i, &sample, &title, &v));
                                 maps.append(py::make_tuple(sample, title, copy_view(v)));
                               }
                               return maps;
                             })
      .def("write", [](const ProbeResult& r, const std::string& dir) {
        run([&] { return st_probe_result_write(r.get(), dir.c_str()); });
      });

  py::class_<Trainer>(m, "Trainer")
      .def(py::init([](Model* model, const std::string& recipe, const Dataset* train,
                       const Dataset* test) {
             st_trainer* raw = nullptr;
             run([&] {
               return st_trainer_create(model ? model->get() : nullptr, recipe.c_str(),
                                        train ? train->get() : nullptr,
                                        test ? test->get() : nullptr, &raw);
             });
             return Trainer(raw);
           }),
           py::arg("model") = nullptr, py::arg("recipe") = "", py::arg("train") = nullptr,
           py::arg("test") = nullptr)
      .def(
          "step",
          [](Trainer& t, FloatArray images, IntArray labels) {
            const int64_t n = batch_of(images);
            if (labels.ndim() != 1 || labels.shape(0) != n) {
              throw py::value_error("labels: expected " + std::to_string(n) + " labels");
            }
            float loss = 0;
            run([&] {
              return st_trainer_step(t.get(), images.data(), static_cast<size_t>(images.size()),
                                     labels.data(), n, &loss);
            });
            return loss;
          },
          py::arg("images"), py::arg("labels"))
      .def(
          "run",
          [](Trainer& t, bool print) {
            double acc = 0;
            run([&] { return st_trainer_run(t.get(), print ? 1 : 0, &acc); });
            return acc;
          },
          py::arg("print") = true)
      .def("save",
           [](Trainer& t, const std::string& path) {
             run([&] { return st_trainer_save(t.get(), path.c_str()); });
           })
      .def("load",
           [](Trainer& t, const std::string& path) {
             run([&] { return st_trainer_load(t.get(), path.c_str()); });
           })
      .def_property_readonly("model", [](Trainer& t) {
        st_model* raw = nullptr;
        check(st_trainer_model(t.get(), &raw));
        return Model::wrap(raw);
      });
}

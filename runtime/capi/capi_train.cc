// The C API: training runs and probes.
#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <ostream>
#include <streambuf>

#include "capi/capi_internal.h"
#include "sparsetrain/models.h"
#include "sparsetrain/recipe.h"

namespace sparsetrain::capi {
namespace {

// The options of a run: the recipe over the model's recommended ones.
TrainOptions run_options(const char* recipe, const std::string& model) {
  const bool has_recipe = recipe != nullptr && recipe[0] != '\0';
  std::optional<Recipe> r;
  if (has_recipe) r = Recipe::parse(recipe, "st_trainer_create recipe");
  std::string name = model;
  if (name.empty()) name = r && !r->model().empty() ? r->model() : TrainOptions{}.model;
  TrainOptions o = recommended_options(name);
  if (r) r->apply(o);
  o.model = name;
  validate(o);
  return o;
}

// An ostream that drops what it is given (a run without its table).
class NullBuffer : public std::streambuf {
 protected:
  int overflow(int c) override { return c; }
};

}  // namespace
}  // namespace sparsetrain::capi

struct st_trainer {
  std::shared_ptr<sparsetrain::capi::ModelState> state;
};

struct st_probe_result {
  std::string probe;
  sparsetrain::ProbeContext context;
  sparsetrain::ProbeReport report;
  std::shared_ptr<const sparsetrain::Dataset> data;
  std::shared_ptr<sparsetrain::capi::ModelState> model;
  std::vector<sparsetrain::Tensor> maps;  // plain (H, W) copies
};

using namespace sparsetrain;
using capi::guard;
using capi::require;

extern "C" {

st_status st_trainer_create(st_model* model, const char* recipe, const st_dataset* train,
                            const st_dataset* test, st_trainer** out) {
  constexpr const char* fn = "st_trainer_create";
  return guard([&] {
    require(out, fn, "out");
    *out = nullptr;
    if ((train == nullptr) != (test == nullptr)) {
      throw capi::InvalidArgument(std::string(fn) +
                                  ": give both datasets (train and test) or neither");
    }
    std::shared_ptr<capi::ModelState> s;
    if (model != nullptr) {
      s = capi::model_state(model, fn);
      if (s->trainer) throw Error(std::string(fn) + ": the model is in a trainer already");
    }
    TrainOptions o =
        capi::run_options(recipe, s ? (s->name.empty() ? "built-by-calls" : s->name) : "");
    if (!s && train == nullptr) {
      // Everything by name: the recipe's model on the recipe's dataset.
      s = std::make_shared<capi::ModelState>();
      s->trainer = std::make_unique<Trainer>(o, zoo_factory());
      const Dataset& d = s->trainer->train_data();
      s->shape = ModelOptions{d.channels, d.height, d.width, d.num_classes};
      s->name = o.model;
      s->finished = true;
    } else {
      Dataset tr, te;
      if (train != nullptr) {
        tr = *train->data;
        te = *test->data;
      } else {
        tr = load_dataset(o.dataset, o.data_dir, Split::kTrain, o.train_limit, o.classes);
        te = load_dataset(o.dataset, o.data_dir, Split::kTest, o.test_limit, o.classes);
      }
      if (!s) {
        s = std::make_shared<capi::ModelState>();
        s->shape = ModelOptions{tr.channels, tr.height, tr.width, tr.num_classes};
        s->own = std::make_unique<Graph>(build_model(o.model, s->shape));
        s->own->initialize(o.seed);
        s->name = o.model;
        s->finished = true;
      }
      s->trainer = std::make_unique<Trainer>(std::move(*s->own), std::move(tr), std::move(te), o);
      s->own.reset();
    }
    s->trained = o;
    *out = new st_trainer{std::move(s)};
  });
}

st_status st_trainer_step(st_trainer* trainer, const float* images, size_t images_len,
                          const int32_t* labels, int64_t count, float* loss) {
  constexpr const char* fn = "st_trainer_step";
  return guard([&] {
    require(trainer, fn, "the trainer");
    capi::ModelState& s = *trainer->state;
    const Tensor x = capi::images_tensor(images, images_len, count, s.shape, fn);
    require(labels, fn, "labels");
    std::vector<int32_t> y(labels, labels + count);
    for (int64_t i = 0; i < count; ++i) {
      if (y[i] < 0 || y[i] >= s.shape.num_classes) {
        throw Error(std::string(fn) + ": label " + std::to_string(y[i]) + " of sample " +
                    std::to_string(i) + " is outside [0, " + std::to_string(s.shape.num_classes) +
                    ")");
      }
    }
    const float l = s.trainer->step(x, y);
    if (loss != nullptr) *loss = l;
  });
}

st_status st_trainer_run(st_trainer* trainer, int print, double* accuracy) {
  constexpr const char* fn = "st_trainer_run";
  return guard([&] {
    require(trainer, fn, "the trainer");
    capi::NullBuffer nothing;
    std::ostream quiet(&nothing);
    const TrainResult r = trainer->state->trainer->run(print != 0 ? std::cout : quiet);
    std::cout.flush();
    if (accuracy != nullptr) *accuracy = r.test_accuracy;
  });
}

st_status st_trainer_save(st_trainer* trainer, const char* path) {
  return guard([&] {
    require(trainer, "st_trainer_save", "the trainer");
    require(path, "st_trainer_save", "path");
    trainer->state->trainer->save_checkpoint(path);
  });
}

st_status st_trainer_load(st_trainer* trainer, const char* path) {
  return guard([&] {
    require(trainer, "st_trainer_load", "the trainer");
    require(path, "st_trainer_load", "path");
    trainer->state->trainer->load_checkpoint(checkpoint_file(path));
  });
}

st_status st_trainer_model(st_trainer* trainer, st_model** out) {
  return guard([&] {
    require(out, "st_trainer_model", "out");
    *out = nullptr;
    require(trainer, "st_trainer_model", "the trainer");
    *out = capi::new_model_handle(trainer->state);
  });
}

void st_trainer_release(st_trainer* trainer) {
  if (trainer == nullptr) return;
  // The model goes back to its handles as a plain graph.
  capi::ModelState& s = *trainer->state;
  if (s.trainer && !s.own) {
    try {
      s.own = std::make_unique<Graph>(std::move(s.trainer->model()));
      s.trainer.reset();
    } catch (...) {
      // Keep the trainer: the model stays usable through it.
    }
  }
  delete trainer;
}

st_status st_probe_run(st_model* model, const char* probe, const st_dataset* data,
                       const int64_t* indices, int64_t count, const char* options,
                       st_probe_result** out) {
  constexpr const char* fn = "st_probe_run";
  return guard([&] {
    require(out, fn, "out");
    *out = nullptr;
    auto s = capi::model_state(model, fn);
    require(probe, fn, "probe");
    const Dataset& d = capi::dataset_of(data, fn);
    require(indices, fn, "indices");
    if (count < 1) throw capi::InvalidArgument(std::string(fn) + ": count must be 1 or more");
    if (d.channels != s->shape.channels || d.height != s->shape.height ||
        d.width != s->shape.width) {
      throw Error(std::string(fn) + ": the dataset's samples are not the model's input");
    }
    auto r = std::make_unique<st_probe_result>();
    r->probe = probe;
    r->data = capi::shared_dataset(data);
    r->model = s;
    std::unique_ptr<SampleProbe> p = make_sample_probe(probe);
    std::map<std::string, std::string> given;
    for (const auto& [k, v] : capi::parse_pairs(options, fn)) given[k] = v;
    ProbeContext& c = r->context;
    c.graph = &s->graph();
    c.data = r->data.get();
    c.options = resolve_probe_options(probe, given);
    for (int64_t i = 0; i < count; ++i) {
      if (indices[i] < 0 || indices[i] >= d.size()) {
        throw Error(std::string(fn) + ": index " + std::to_string(indices[i]) +
                    " is not a sample of the dataset (" + std::to_string(d.size()) + ")");
      }
      c.indices.push_back(indices[i]);
    }
    c.images = dataset_images(d, c.indices);
    const Tensor logits = class_logits(*c.graph, c.images);
    const int64_t k = logits.shape()[1];
    for (int64_t i = 0; i < count; ++i) {
      const float* row = logits.data() + i * k;
      c.targets.push_back(static_cast<int32_t>(std::max_element(row, row + k) - row));
    }
    // A copy of the model with its weights (spade changes one).
    c.model_copy = [s] { return capi::copy_model(*s); };
    p->check(c);
    r->report = p->run(c);
    for (const ProbeMap& m : r->report.maps) {
      r->maps.push_back(m.map.defined() ? to_layout(m.map, Layout::kPlain) : Tensor());
    }
    *out = r.release();
  });
}

st_status st_probe_result_json(const st_probe_result* result, const char** json) {
  return guard([&] {
    require(result, "st_probe_result_json", "the result");
    require(json, "st_probe_result_json", "json");
    *json = result->report.json.c_str();
  });
}

st_status st_probe_result_map_count(const st_probe_result* result, int64_t* count) {
  return guard([&] {
    require(result, "st_probe_result_map_count", "the result");
    require(count, "st_probe_result_map_count", "count");
    *count = static_cast<int64_t>(result->report.maps.size());
  });
}

st_status st_probe_result_map(const st_probe_result* result, int64_t i, int64_t* sample,
                              const char** title, st_tensor_view* map) {
  constexpr const char* fn = "st_probe_result_map";
  return guard([&] {
    require(result, fn, "the result");
    const auto n = static_cast<int64_t>(result->report.maps.size());
    if (i < 0 || i >= n) {
      throw capi::InvalidArgument(std::string(fn) + ": map " + std::to_string(i) +
                                  " does not exist (the result has " + std::to_string(n) + ")");
    }
    const ProbeMap& m = result->report.maps[static_cast<std::size_t>(i)];
    if (sample != nullptr) *sample = m.sample;
    if (title != nullptr) *title = m.title.c_str();
    if (map != nullptr) {
      *map = st_tensor_view{};
      const Tensor& t = result->maps[static_cast<std::size_t>(i)];
      if (t.defined()) {
        map->data = t.data();
        map->ndim = static_cast<int32_t>(t.shape().size());
        for (int32_t d = 0; d < map->ndim && d < 6; ++d) map->shape[d] = t.shape()[d];
      }
    }
  });
}

st_status st_probe_result_write(const st_probe_result* result, const char* dir) {
  return guard([&] {
    require(result, "st_probe_result_write", "the result");
    require(dir, "st_probe_result_write", "dir");
    write_probe_report(dir, result->probe, "{}", result->context, result->report);
  });
}

void st_probe_result_release(st_probe_result* result) { delete result; }

}  // extern "C"

// The C API's objects and its error boundary (runtime/include/sparsetrain.h).
#pragma once

#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "sparsetrain.h"
#include "sparsetrain/attribution.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/model_file.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain::capi {

// A null handle or pointer, a buffer of the wrong size: ST_INVALID_ARGUMENT.
struct InvalidArgument : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void set_error(const std::string& message);
void clear_error();

// Runs `body` and turns every exception into a status and a message, so no
// exception crosses the C interface.
template <class Body>
st_status guard(Body&& body) noexcept {
  try {
    clear_error();
    body();
    return ST_OK;
  } catch (const InvalidArgument& e) {
    set_error(e.what());
    return ST_INVALID_ARGUMENT;
  } catch (const Error& e) {
    set_error(e.what());
    return ST_ERROR;
  } catch (const std::bad_alloc&) {
    set_error("out of memory");
    return ST_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_error(std::string("internal error: ") + e.what());
    return ST_INTERNAL_ERROR;
  } catch (...) {
    set_error("internal error: an unknown exception");
    return ST_INTERNAL_ERROR;
  }
}

// Throws InvalidArgument "FN: WHAT is NULL".
inline void require(const void* p, const char* fn, const char* what) {
  if (p == nullptr) throw InvalidArgument(std::string(fn) + ": " + what + " is NULL");
}
// Throws InvalidArgument unless a buffer of `given` elements holds `want`.
void require_len(std::size_t given, int64_t want, const char* fn, const char* what,
                 const std::string& because);

// A model and, while one trains it, its trainer (which then owns the graph).
// Shared by every handle to it, so any may be released first.
struct ModelState {
  std::unique_ptr<Graph> own;
  std::unique_ptr<Trainer> trainer;
  ModelOptions shape;
  std::string name;        // zoo name or model file; "" when built by calls
  std::string calls_yaml;  // built by calls: the same model as a model file's nodes
  bool finished = false;
  TrainOptions trained;  // what a loaded model was trained with

  Graph& graph() { return trainer ? trainer->model() : *own; }
};

// A new graph of the same model with the same weights (masks included).
Graph copy_model(ModelState& state);

std::shared_ptr<ModelState> model_state(st_model* model, const char* fn);
st_model* new_model_handle(std::shared_ptr<ModelState> state);

// "k=v k2=v2" or "k=v,k2=v2" -> pairs; throws Error naming `fn` on a pair
// without '='.
std::vector<std::pair<std::string, std::string>> parse_pairs(const char* text, const char* fn);

// The dataset behind a handle.
const Dataset& dataset_of(const st_dataset* data, const char* fn);
std::shared_ptr<const Dataset> shared_dataset(const st_dataset* data);

// (count, C, H, W) images from a caller's buffer.
Tensor images_tensor(const float* images, std::size_t images_len, int64_t count,
                     const ModelOptions& shape, const char* fn);

}  // namespace sparsetrain::capi

struct st_model {
  std::shared_ptr<sparsetrain::capi::ModelState> state;
};
struct st_dataset {
  std::shared_ptr<const sparsetrain::Dataset> data;
};

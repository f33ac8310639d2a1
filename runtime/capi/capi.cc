// The C API: the library, errors, threads, logging and datasets.
#include <cstring>
#include <mutex>

#include "capi/capi_internal.h"
#include "sparsetrain/log.h"

namespace sparsetrain::capi {

namespace {
thread_local std::string last_error;
}  // namespace

void set_error(const std::string& message) { last_error = message; }
void clear_error() { last_error.clear(); }

void require_len(std::size_t given, int64_t want, const char* fn, const char* what,
                 const std::string& because) {
  if (want < 0 || given != static_cast<std::size_t>(want)) {
    throw InvalidArgument(std::string(fn) + ": " + what + " holds " + std::to_string(given) +
                          " elements, " + because + " need " + std::to_string(want));
  }
}

std::vector<std::pair<std::string, std::string>> parse_pairs(const char* text, const char* fn) {
  std::vector<std::pair<std::string, std::string>> pairs;
  if (text == nullptr) return pairs;
  std::string item;
  const auto flush = [&] {
    if (item.empty()) return;
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error(std::string(fn) + ": option '" + item + "' is not key=value");
    }
    pairs.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    item.clear();
  };
  for (const char* c = text; *c != '\0'; ++c) {
    if (*c == ' ' || *c == ',' || *c == '\t' || *c == '\n') {
      flush();
    } else {
      item += *c;
    }
  }
  flush();
  return pairs;
}

const Dataset& dataset_of(const st_dataset* data, const char* fn) {
  require(data, fn, "the dataset");
  return *data->data;
}

std::shared_ptr<const Dataset> shared_dataset(const st_dataset* data) { return data->data; }

Tensor images_tensor(const float* images, std::size_t images_len, int64_t count,
                     const ModelOptions& shape, const char* fn) {
  require(images, fn, "images");
  if (count < 1) throw InvalidArgument(std::string(fn) + ": count must be 1 or more");
  const int64_t per = shape.channels * shape.height * shape.width;
  require_len(images_len, count * per, fn, "images",
              std::to_string(count) + " samples of " + std::to_string(shape.channels) + "x" +
                  std::to_string(shape.height) + "x" + std::to_string(shape.width));
  Tensor x = Tensor::empty({count, shape.channels, shape.height, shape.width}, Layout::kNCHW);
  std::memcpy(x.data(), images, images_len * sizeof(float));
  return x;
}

}  // namespace sparsetrain::capi

using namespace sparsetrain;
using capi::guard;
using capi::require;

extern "C" {

int st_api_version(void) { return SPARSETRAIN_C_API_VERSION; }

const char* st_library_version(void) { return SPARSETRAIN_VERSION; }

const char* st_last_error(void) { return capi::last_error.c_str(); }

const char* st_status_name(st_status status) {
  switch (status) {
    case ST_OK:
      return "ST_OK";
    case ST_INVALID_ARGUMENT:
      return "ST_INVALID_ARGUMENT";
    case ST_ERROR:
      return "ST_ERROR";
    case ST_OUT_OF_MEMORY:
      return "ST_OUT_OF_MEMORY";
    case ST_INTERNAL_ERROR:
      return "ST_INTERNAL_ERROR";
  }
  return "unknown status";
}

st_status st_set_num_threads(int threads) {
  return guard([&] {
    if (threads < 0) throw capi::InvalidArgument("st_set_num_threads: threads must be 0 or more");
    set_num_threads(threads);
  });
}

st_status st_set_log_callback(st_log_fn fn, void* user) {
  return guard([&] {
    if (fn == nullptr) {
      set_log_sink(nullptr);
      return;
    }
    set_log_sink([fn, user](LogLevel level, std::string_view line) {
      const std::string text(line);
      fn(level == LogLevel::kWarning ? 1 : 0, text.c_str(), user);
    });
  });
}

st_status st_dataset_load(const char* name, const char* data_dir, int test, st_dataset** out) {
  return guard([&] {
    require(name, "st_dataset_load", "name");
    require(out, "st_dataset_load", "out");
    *out = nullptr;
    auto d = std::make_shared<Dataset>(load_dataset(name, data_dir == nullptr ? "" : data_dir,
                                                    test != 0 ? Split::kTest : Split::kTrain));
    *out = new st_dataset{std::move(d)};
  });
}

st_status st_dataset_create(const float* values, size_t values_len, const int32_t* labels,
                            int64_t count, int64_t channels, int64_t height, int64_t width,
                            int32_t classes, st_dataset** out) {
  constexpr const char* fn = "st_dataset_create";
  return guard([&] {
    require(out, fn, "out");
    *out = nullptr;
    require(values, fn, "values");
    require(labels, fn, "labels");
    if (count < 1 || channels < 1 || height < 1 || width < 1 || classes < 2) {
      throw capi::InvalidArgument(std::string(fn) +
                                  ": count, channels, height and width must be 1 or more and "
                                  "classes 2 or more");
    }
    capi::require_len(values_len, count * channels * height * width, fn, "values",
                      std::to_string(count) + " samples of " + std::to_string(channels) + "x" +
                          std::to_string(height) + "x" + std::to_string(width));
    auto d = std::make_shared<Dataset>();
    d->name = "app";
    d->channels = channels;
    d->height = height;
    d->width = width;
    d->num_classes = classes;
    d->values.assign(values, values + values_len);
    d->labels.assign(labels, labels + count);
    for (int64_t i = 0; i < count; ++i) {
      if (labels[i] < 0 || labels[i] >= classes) {
        throw Error(std::string(fn) + ": label " + std::to_string(labels[i]) + " of sample " +
                    std::to_string(i) + " is outside [0, " + std::to_string(classes) + ")");
      }
    }
    for (int32_t k = 0; k < classes; ++k) d->class_names.push_back(std::to_string(k));
    *out = new st_dataset{std::move(d)};
  });
}

st_status st_dataset_info(const st_dataset* data, int64_t* count, int64_t* channels,
                          int64_t* height, int64_t* width, int32_t* classes) {
  return guard([&] {
    const Dataset& d = capi::dataset_of(data, "st_dataset_info");
    if (count != nullptr) *count = d.size();
    if (channels != nullptr) *channels = d.channels;
    if (height != nullptr) *height = d.height;
    if (width != nullptr) *width = d.width;
    if (classes != nullptr) *classes = d.num_classes;
  });
}

st_status st_dataset_samples(const st_dataset* data, int64_t first, int64_t count, float* images,
                             size_t images_len, int32_t* labels, size_t labels_len) {
  constexpr const char* fn = "st_dataset_samples";
  return guard([&] {
    const Dataset& d = capi::dataset_of(data, fn);
    if (first < 0 || count < 1 || first + count > d.size()) {
      throw capi::InvalidArgument(std::string(fn) + ": samples [" + std::to_string(first) + ", " +
                                  std::to_string(first + count) + ") are not within the " +
                                  std::to_string(d.size()) + " of the dataset");
    }
    require(images, fn, "images");
    capi::require_len(images_len, count * d.image_numel(), fn, "images",
                      std::to_string(count) + " samples");
    if (labels != nullptr) capi::require_len(labels_len, count, fn, "labels", "the samples");
    std::vector<int64_t> indices(static_cast<std::size_t>(count));
    for (int64_t i = 0; i < count; ++i) indices[static_cast<std::size_t>(i)] = first + i;
    const Tensor x = dataset_images(d, indices);
    std::memcpy(images, x.data(), images_len * sizeof(float));
    if (labels != nullptr) {
      for (int64_t i = 0; i < count; ++i) labels[i] = d.labels[static_cast<std::size_t>(first + i)];
    }
  });
}

void st_dataset_release(st_dataset* data) { delete data; }

}  // extern "C"

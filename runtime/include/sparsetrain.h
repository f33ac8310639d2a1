/* sparsetrain.h: the C API of libsparsetrain (C99).
 *
 * Every object is an opaque handle made by a _create/_load call and freed by
 * its _release call (release of NULL does nothing). Every other call returns
 * an st_status: ST_OK, or an error whose message st_last_error() gives (per
 * thread, until that thread's next call). No C++ exception crosses this
 * interface. Objects are independent: a handle stays valid after the handle
 * it came from is released (a trainer keeps its model alive, a probe result
 * owns its arrays). One object must not be used from two threads at once.
 *
 * Link with pkg-config: cc app.c $(pkg-config --cflags --libs sparsetrain).
 */
#ifndef SPARSETRAIN_H
#define SPARSETRAIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ST_API __attribute__((visibility("default")))
#else
#define ST_API
#endif

/* The version of this interface: st_api_version() returns the one the
 * library implements; a new function raises it, a changed one raises the
 * library's SONAME. */
#define SPARSETRAIN_C_API_VERSION 1

typedef enum st_status {
  ST_OK = 0,
  ST_INVALID_ARGUMENT = 1, /* a null handle or pointer, a buffer of the wrong size */
  ST_ERROR = 2,            /* the runtime refused: a bad file, shape, option or value */
  ST_OUT_OF_MEMORY = 3,
  ST_INTERNAL_ERROR = 4 /* a bug: please report it with the message */
} st_status;

/* --- the library ----------------------------------------------------------- */

ST_API int st_api_version(void);
ST_API const char* st_library_version(void); /* "0.1.0" */
/* The message of this thread's last failed call ("" when none). */
ST_API const char* st_last_error(void);
ST_API const char* st_status_name(st_status status); /* "ST_OK", ... */

/* Worker threads of every kernel (0: all cores). */
ST_API st_status st_set_num_threads(int threads);
/* The library's messages, one line each (level 0: information, 1: warning);
 * NULL drops them (the default). Called from the thread that logs. */
typedef void (*st_log_fn)(int level, const char* line, void* user);
ST_API st_status st_set_log_callback(st_log_fn fn, void* user);

/* --- datasets ---------------------------------------------------------------- */

typedef struct st_dataset st_dataset;

/* "mnist", "fashion-mnist" or "cifar10" from data_dir (NULL or "": the
 * usual places, README "Datasets"); test != 0 for the test split. */
ST_API st_status st_dataset_load(const char* name, const char* data_dir, int test,
                                 st_dataset** out);
/* A dataset of the caller's samples, copied: values (count, C, H, W) as the
 * model takes them, labels (count) in [0, classes). */
ST_API st_status st_dataset_create(const float* values, size_t values_len, const int32_t* labels,
                                   int64_t count, int64_t channels, int64_t height, int64_t width,
                                   int32_t classes, st_dataset** out);
ST_API st_status st_dataset_info(const st_dataset* data, int64_t* count, int64_t* channels,
                                 int64_t* height, int64_t* width, int32_t* classes);
/* Samples [first, first + count) normalised as the model takes them:
 * images (count * C * H * W floats), labels (count). */
ST_API st_status st_dataset_samples(const st_dataset* data, int64_t first, int64_t count,
                                    float* images, size_t images_len, int32_t* labels,
                                    size_t labels_len);
ST_API void st_dataset_release(st_dataset* data);

/* --- models ------------------------------------------------------------------ */

typedef struct st_model st_model;

/* A built-in model ("mlp", "lenet5", "resnet20", ...) or a model file
 * ("net.yaml") for samples of channels x height x width and `classes`
 * classes, its parameters drawn from `seed`. */
ST_API st_status st_model_create(const char* model, int64_t channels, int64_t height, int64_t width,
                                 int32_t classes, uint64_t seed, st_model** out);
/* A model built by calls: an input node "input" of that shape, then
 * st_model_add_node for each node and st_model_finish. */
ST_API st_status st_model_begin(int64_t channels, int64_t height, int64_t width, int32_t classes,
                                st_model** out);
/* type: a node type of model files (conv2d, linear, relu, add, ...);
 * inputs: node names separated by commas, NULL or "" for the node added
 * last; options: "key=value" pairs separated by spaces or commas, as a model
 * file gives them ("out_channels=16 kernel=3 padding=1"), or NULL. */
ST_API st_status st_model_add_node(st_model* model, const char* name, const char* type,
                                   const char* inputs, const char* options);
/* Ends the building: output node (NULL: the last added), parameters drawn
 * from `seed`. */
ST_API st_status st_model_finish(st_model* model, const char* output, uint64_t seed);
/* The model of a checkpoint written by a training run, `sparsetrain prune`
 * or st_model_save (a file, or a run folder). */
ST_API st_status st_model_load(const char* checkpoint, st_model** out);
/* Writes the model's parameters and how to rebuild it, atomically. */
ST_API st_status st_model_save(st_model* model, const char* path);
/* Sample shape, classes, parameters (logical count) and nonzero weights. */
ST_API st_status st_model_info(st_model* model, int64_t* channels, int64_t* height, int64_t* width,
                               int32_t* classes, int64_t* parameters, int64_t* nonzero);
/* Logits (count x classes) of `count` samples (count x C x H x W floats,
 * normalised as st_dataset_samples gives them). */
ST_API st_status st_model_predict(st_model* model, const float* images, size_t images_len,
                                  int64_t count, float* logits, size_t logits_len);
/* The gradient of sum(grad_logits * logits) with respect to the images
 * (count x C x H x W floats): a probe pass, which changes nothing in the
 * model (saliency, finite-difference checks). */
ST_API st_status st_model_input_gradient(st_model* model, const float* images, size_t images_len,
                                         int64_t count, const float* grad_logits,
                                         size_t grad_logits_len, float* grad_images,
                                         size_t grad_images_len);
ST_API st_status st_model_evaluate(st_model* model, const st_dataset* data, double* accuracy,
                                   double* loss);
/* One-shot magnitude pruning of the prunable layers to `sparsity`
 * ("global", "uniform" or "erk"; NULL: global); the first and last layer
 * of a convolutional model stay dense. */
ST_API st_status st_model_prune(st_model* model, double sparsity, const char* distribution);
ST_API void st_model_release(st_model* model);

/* --- hooks ------------------------------------------------------------------- */

typedef enum st_hook_point {
  ST_HOOK_BEFORE_FORWARD = 0,
  ST_HOOK_AFTER_FORWARD = 1,
  ST_HOOK_AFTER_BACKWARD = 2,
  ST_HOOK_AFTER_STEP = 3 /* once per optimizer step, node "" */
} st_hook_point;

/* A tensor lent to a hook for the duration of the call: plain row-major
 * (N, C, H, W) or (N, F) floats. */
typedef struct st_tensor_view {
  const float* data; /* NULL when absent */
  int32_t ndim;
  int64_t shape[6];
} st_tensor_view;

typedef struct st_hook_event {
  st_hook_point point;
  const char* node;      /* node name ("" for ST_HOOK_AFTER_STEP) */
  const char* node_type; /* "conv2d", "linear", ... */
  int64_t step;
  int32_t training;
  int32_t num_inputs;
  const st_tensor_view* inputs; /* forward inputs */
  st_tensor_view output;        /* ST_HOOK_AFTER_FORWARD */
  st_tensor_view grad_output;   /* ST_HOOK_AFTER_BACKWARD: the loss gradient of the output */
} st_hook_event;

/* Return 0 to go on; anything else stops the pass, whose call then fails
 * with ST_ERROR naming the hook's node and the value. */
typedef int (*st_hook_fn)(const st_hook_event* event, void* user);
typedef struct st_hook st_hook;

/* Calls fn at `point` of every node whose name matches `pattern` ("*",
 * "conv*", "layer1.?.conv1"). st_hook_release removes it. */
ST_API st_status st_model_add_hook(st_model* model, st_hook_point point, const char* pattern,
                                   st_hook_fn fn, void* user, st_hook** out);
ST_API void st_hook_release(st_hook* hook);

/* --- training ---------------------------------------------------------------- */

typedef struct st_trainer st_trainer;

/* A training run. recipe: YAML text of a recipe (README "Recipes"; NULL or
 * "": the model's recommended options), e.g. "epochs: 2\nsparsity: {method:
 * acdc, target: 0.95}". model: NULL builds the recipe's model; given, the
 * trainer trains it (the handle then shows the trained weights; a model
 * trains in one trainer at a time). train, test: NULL loads the recipe's
 * dataset. */
ST_API st_status st_trainer_create(st_model* model, const char* recipe, const st_dataset* train,
                                   const st_dataset* test, st_trainer** out);
/* One optimizer step on `count` samples (normalised floats) and labels. */
ST_API st_status st_trainer_step(st_trainer* trainer, const float* images, size_t images_len,
                                 const int32_t* labels, int64_t count, float* loss);
/* The whole run of the recipe (epochs, evaluation, sparsity schedule); with
 * print != 0 the per-epoch table goes to stdout. Final test accuracy in
 * *accuracy (may be NULL). */
ST_API st_status st_trainer_run(st_trainer* trainer, int print, double* accuracy);
ST_API st_status st_trainer_save(st_trainer* trainer, const char* path);
ST_API st_status st_trainer_load(st_trainer* trainer, const char* path);
/* A handle to the model being trained. */
ST_API st_status st_trainer_model(st_trainer* trainer, st_model** out);
ST_API void st_trainer_release(st_trainer* trainer);

/* --- probes ------------------------------------------------------------------ */

typedef struct st_probe_result st_probe_result;

/* Runs probe `probe` ("saliency", "integrated-gradients", "smoothgrad",
 * "sis", "spade") on samples `indices` of `data`, explaining each sample's
 * predicted class; options: "key=value" pairs as for st_model_add_node
 * ("steps=32 baseline=zeros"), NULL for the defaults. */
ST_API st_status st_probe_run(st_model* model, const char* probe, const st_dataset* data,
                              const int64_t* indices, int64_t count, const char* options,
                              st_probe_result** out);
/* The results as JSON text (owned by the result). */
ST_API st_status st_probe_result_json(const st_probe_result* result, const char** json);
ST_API st_status st_probe_result_map_count(const st_probe_result* result, int64_t* count);
/* Map i: its sample (position in indices), title and (H, W) values, owned
 * by the result (map.data is NULL for a map that is an image alone). */
ST_API st_status st_probe_result_map(const st_probe_result* result, int64_t i, int64_t* sample,
                                     const char** title, st_tensor_view* map);
/* The pictures and NAME.json into folder dir (as `sparsetrain probe`). */
ST_API st_status st_probe_result_write(const st_probe_result* result, const char* dir);
ST_API void st_probe_result_release(st_probe_result* result);

#ifdef __cplusplus
}
#endif

#endif /* SPARSETRAIN_H */

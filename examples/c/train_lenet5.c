/* A C99 app on libsparsetrain's C API (sparsetrain.h): trains a 95%-sparse
 * LeNet-5 with AC/DC on MNIST for one epoch, predicts a few test images,
 * explains one with a saliency map, and saves the model.
 *
 *   cc -std=c99 -Wall -Wextra -Werror train_lenet5.c -o train_lenet5 \
 *       $(pkg-config --cflags --libs sparsetrain)
 *   ./train_lenet5 ../shared/data /tmp/lenet5-c
 */
#include <sparsetrain.h>
#include <stdio.h>
#include <stdlib.h>

/* Stops with the library's message when a call fails. */
#define CHECK(call)                                                          \
  do {                                                                       \
    st_status status_ = (call);                                              \
    if (status_ != ST_OK) {                                                  \
      fprintf(stderr, "%s: %s\n", st_status_name(status_), st_last_error()); \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

/* Counts the nonzero weights of each layer as the forward pass goes by. */
static int count_layers(const st_hook_event* event, void* user) {
  (void)event;
  ++*(int*)user;
  return 0;
}

int main(int argc, char** argv) {
  const char* data_dir = argc > 1 ? argv[1] : "";
  const char* out_dir = argc > 2 ? argv[2] : "lenet5-c";
  printf("sparsetrain %s, C API version %d\n", st_library_version(), st_api_version());
  CHECK(st_set_num_threads(2));

  st_dataset* train = NULL;
  st_dataset* test = NULL;
  CHECK(st_dataset_load("mnist", data_dir, 0, &train));
  CHECK(st_dataset_load("mnist", data_dir, 1, &test));

  /* The model from the zoo, the run from a recipe: AC/DC to 95% sparsity. */
  st_model* model = NULL;
  CHECK(st_model_create("lenet5", 1, 28, 28, 10, 0, &model));
  st_trainer* trainer = NULL;
  CHECK(st_trainer_create(model,
                          "epochs: 1\n"
                          "batch_size: 50\n"
                          "sparsity: {method: acdc, target: 0.95}\n",
                          train, test, &trainer));
  double accuracy = 0;
  CHECK(st_trainer_run(trainer, 1, &accuracy));
  printf("test accuracy %.2f%%\n", 100 * accuracy);
  st_trainer_release(trainer); /* the model handle keeps the trained weights */

  int64_t params = 0, nonzero = 0;
  CHECK(st_model_info(model, NULL, NULL, NULL, NULL, &params, &nonzero));
  printf("parameters %lld, nonzero %lld\n", (long long)params, (long long)nonzero);

  /* Predictions on the first four test images, with a hook watching. */
  enum { kCount = 4, kClasses = 10 };
  float images[kCount * 28 * 28];
  int32_t labels[kCount];
  float logits[kCount * kClasses];
  CHECK(st_dataset_samples(test, 0, kCount, images, kCount * 28 * 28, labels, kCount));
  int layers = 0;
  st_hook* hook = NULL;
  CHECK(st_model_add_hook(model, ST_HOOK_AFTER_FORWARD, "fc*", count_layers, &layers, &hook));
  CHECK(st_model_predict(model, images, kCount * 28 * 28, kCount, logits, kCount * kClasses));
  st_hook_release(hook);
  for (int i = 0; i < kCount; ++i) {
    int best = 0;
    for (int k = 1; k < kClasses; ++k)
      if (logits[i * kClasses + k] > logits[i * kClasses + best]) best = k;
    printf("image %d: label %d, predicted %d\n", i, (int)labels[i], best);
  }
  printf("the hook saw %d fc layers\n", layers);

  /* A saliency map of test image 0 (gradient x input), saved as a picture. */
  const int64_t index = 0;
  st_probe_result* saliency = NULL;
  CHECK(st_probe_run(model, "saliency", test, &index, 1, "mode=gradient-x-input", &saliency));
  st_tensor_view map;
  CHECK(st_probe_result_map(saliency, 0, NULL, NULL, &map));
  printf("saliency map %lldx%lld written to %s\n", (long long)map.shape[0], (long long)map.shape[1],
         out_dir);
  CHECK(st_probe_result_write(saliency, out_dir));
  st_probe_result_release(saliency);

  /* A mistake is a status and a message, never a crash. */
  if (st_model_predict(model, images, 10, kCount, logits, kCount * kClasses) != ST_OK)
    printf("refused: %s\n", st_last_error());

  char path[4096];
  snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
  CHECK(st_model_save(model, path));
  st_model* back = NULL;
  CHECK(st_model_load(path, &back));
  CHECK(st_model_evaluate(back, test, &accuracy, NULL));
  printf("reloaded from %s: test accuracy %.2f%%\n", path, 100 * accuracy);

  st_model_release(back);
  st_model_release(model);
  st_dataset_release(train);
  st_dataset_release(test);
  return 0;
}

// The training loop: data -> graph forward -> loss -> backward -> optimizer
// -> metrics, progress, checkpoints. Used by `sparsetrain train` and by apps
// that embed the runtime.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"
#include "sparsetrain/graph.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

struct Dataset;

struct TrainOptions {
  std::string model = "lenet5";
  std::string dataset = "mnist";
  std::string data_dir;  // empty: search the places of data_search_places() (data.h)
  int64_t epochs = 1;
  int64_t batch_size = 50;
  std::string optimizer = "sgd";  // sgd | adamw
  float lr = 0.05f;
  float momentum = 0.9f;
  bool nesterov = true;
  float weight_decay = 5e-4f;
  float beta1 = 0.9f, beta2 = 0.999f, adam_eps = 1e-8f;
  std::string lr_schedule = "onecycle";  // constant | multistep | cosine | onecycle
  std::vector<int64_t> milestones;       // epochs, for multistep
  float lr_gamma = 0.1f;
  int64_t warmup_epochs = 0;
  float clip_grad_norm = 0.0f;  // 0: no clipping
  int threads = 0;              // 0: all hardware threads
  uint64_t seed = 0;
  int augment = -1;          // -1: dataset default (crop + flip on CIFAR-10), 0 off, 1 on
  int64_t train_limit = -1;  // use only the first N training images
  int64_t test_limit = -1;
  int64_t eval_batch_size = 500;
  std::string out_dir;       // checkpoints; empty: none
  std::string metrics_path;  // JSON lines; empty: none
  std::string resume_dir;    // continue the run saved there
  int64_t max_steps = -1;    // stop (and checkpoint) after this many steps in total
  int64_t log_every = 0;     // also log the loss of every N-th step to the metrics file
  std::string sparse_storage = "compressed";  // compressed | masked (dense storage + mask)
  std::vector<std::string> probes;  // registered probes (sparsetrain/probes.h): "activation-stats"
  // --- sparsity (DESIGN.md "Sparsity methods", sparsetrain/sparsity.h) ----
  // Target sparsity over the prunable weights (conv and linear weights of
  // the layers chosen below); 0: a dense run.
  float sparsity = 0.0f;
  // static: magnitude masks right after initialisation, fixed for the run;
  // acdc: alternating compressed / decompressed phases;
  // gmp: gradual magnitude pruning on the cubic schedule;
  // rigl: ERK masks at initialisation, drop by magnitude, grow by gradient.
  std::string sparsity_method = "static";
  // global | uniform | erk; empty: the method's default (static: uniform,
  // acdc and gmp: global, rigl: erk).
  std::string distribution;
  // Leave the first and the last prunable layer dense: -1 when the model
  // has convolutions (the stem conv and the classifier are tiny and
  // sensitive), 0 never, 1 always.
  int dense_first_last = -1;
  // acdc: epochs (fractions allowed, counted from 0) at which compressed and
  // decompressed phases begin; the run is dense before the first compressed
  // phase. Empty: the paper's proportions scaled to `epochs` (dense warm-up
  // to 5%, compressed phases from 5, 25, 45, 65 and 85%, decompressed ones
  // from 15, 35, 55 and 75%).
  std::vector<double> compress_epochs;
  std::vector<double> decompress_epochs;
  // gmp: s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, pruning every
  // `prune_every_steps` steps (dt) from `prune_start_epoch` (t0) to
  // `prune_end_epoch` (t0 + n dt), s_f = sparsity. -1: the method's default
  // (gmp: from 10% to 60% of the run; rigl: updates from the start until
  // 75% of the run).
  float initial_sparsity = 0.0f;    // s_i
  double prune_start_epoch = -1;    // t0
  double prune_end_epoch = -1;      // t0 + n dt
  int64_t prune_every_steps = 100;  // dt; gmp and rigl
  // rigl: fraction of each layer's stored weights dropped and regrown at the
  // first update, cosine-decayed to zero at prune_end_epoch.
  float drop_fraction = 0.3f;
  std::string kernels = "auto";  // compressed layers: sparse | dense | auto
  bool progress = true;
  // --- snapshots and retraining after pruning (Renda et al., ICLR 2020) ---
  // Also save the whole training state at the end of these epochs (0: before
  // the first step) as out_dir/epoch-<E>/checkpoint.safetensors, for weight
  // rewinding. Needs out_dir.
  std::vector<int64_t> save_epochs;
  // Start from this checkpoint's weights (file or run folder; BatchNorm
  // statistics and biases included) instead of a random initialisation. Its
  // masked or compressed weights keep their masks for the whole run
  // (compressed unless sparse_storage is "masked"). The optimizer starts
  // fresh.
  std::string init_from;
  // With init_from: how the learning rate and the weights of the retraining
  // are chosen.
  //   finetune       the original run's final lr, constant, for `epochs`;
  //   lr-rewind      the original run's lr schedule replayed from epoch
  //                  rewind_epoch for `epochs` (the pruned weights kept);
  //   weight-rewind  as lr-rewind, and every parameter reset to the original
  //                  run's snapshot at epoch rewind_epoch, pruned by the
  //                  checkpoint's masks.
  // Empty: the lr schedule of these options. Resolving a mode rewrites the
  // lr fields below, so a saved run resumes with its resolved schedule.
  std::string retrain;
  // -1: epochs of the original run minus `epochs` (the last `epochs`
  // epochs of the original schedule, as in the paper).
  int64_t rewind_epoch = -1;
  // weight-rewind: the snapshot to rewind to; empty: epoch-<E>/ in the run
  // folder the pruned checkpoint came from.
  std::string rewind_from;
  // The lr schedule spans this many epochs (0: `epochs`), and the run's step
  // s takes its value at step s + lr_schedule_offset_epochs * steps per
  // epoch. Set by lr-rewind and weight-rewind.
  int64_t lr_schedule_epochs = 0;
  int64_t lr_schedule_offset_epochs = 0;
};

// Throws Error naming the option when a value is out of range.
void validate(const TrainOptions& options);

// The hyper-parameters that suit a model out of the box (the command line
// starts from these and applies the flags the user gave):
// - mlp, lenet5: batch 50, SGD with Nesterov momentum 0.9, weight decay
//   5e-4, one-cycle schedule peaking at lr 0.05 (LeNet-5 reaches 98.5% on
//   MNIST in one epoch);
// - resnet*: batch 128, SGD momentum 0.9, weight decay 5e-4, one-cycle
//   schedule peaking at lr 0.1.
// Every other field keeps its TrainOptions default.
TrainOptions recommended_options(const std::string& model);
std::string options_to_json(const TrainOptions& options);
TrainOptions options_from_json(const std::string& json);

struct EvalResult {
  double loss = 0;
  double accuracy = 0;
  int64_t samples = 0;
  std::vector<double> class_accuracy;
  std::vector<int64_t> class_count;
};

struct EpochStats {
  int64_t epoch = 0;  // 1-based
  double loss = 0;
  double train_accuracy = 0;
  double test_accuracy = 0;
  double test_loss = 0;
  float lr = 0;
  double seconds = 0;
  double samples_per_second = 0;
  int64_t peak_bytes = 0;
  int sparse_layers = 0;    // prunable layers that ran on the sparse kernels
  int prunable_layers = 0;  // all prunable (conv and linear) layers
  // Sparsity at the end of the epoch: the phase of the sparsity schedule
  // ("dense", "masked", "compressed", "decompressed"; phase_name), the
  // sparsity over all prunable weights, and the bytes of parameters plus
  // optimizer state (parameter_memory_bytes).
  std::string phase = "dense";
  double sparsity = 0;
  int64_t param_bytes = 0;
};

struct TrainResult {
  std::vector<EpochStats> epochs;
  double test_accuracy = 0;
  int64_t steps = 0;
  bool interrupted = false;        // stopped by max_steps or a signal before the last epoch ended
  std::vector<float> step_losses;  // losses of the steps run in this call
};

// Builds the model for the dataset's sample shape: (model name, channels,
// height, width, classes) -> graph. The model zoo's build_model fits.
using GraphFactory = std::function<Graph(const std::string& model, int64_t channels, int64_t height,
                                         int64_t width, int64_t classes)>;

class Trainer;

// Plug-in points of a run, for apps and bindings (progress of their own,
// early stopping through request_stop(), probes between steps). Any may be
// empty.
struct TrainerCallbacks {
  // run(): after the run's header is written, before the first step.
  std::function<void(Trainer&)> on_start;
  // After every optimizer step (run() and step()): the step just taken
  // (0-based) and its loss.
  std::function<void(Trainer&, int64_t step, float loss)> on_step;
  // run(): after an epoch's test evaluation.
  std::function<void(Trainer&, const EpochStats&)> on_epoch_end;
  // run(): the sparsity schedule entered a new phase ("dense", "masked",
  // "compressed", "decompressed"; phase_name) at the step just taken.
  std::function<void(Trainer&, const std::string& phase)> on_phase_change;
};

class Trainer {
 public:
  // Loads the datasets by name (options.dataset, options.data_dir), builds
  // the model by name with `factory` (the zoo's: zoo_factory() in
  // sparsetrain/models.h), initialises it from options.seed, and (with
  // options.resume_dir) restores the saved run.
  Trainer(TrainOptions options, GraphFactory factory);
  // An app's own graph and data. The graph is used as it is (initialise it,
  // Graph::initialize, or load weights first); its input must take the
  // datasets' samples (C, H, W). options.model and options.dataset only name
  // the run in its log, metrics and checkpoints (a checkpoint of such a run
  // loads with load_model_checkpoint and a factory that builds the same
  // graph). Throws Error when the graph and data do not fit or an option is
  // out of range.
  Trainer(Graph graph, Dataset train, Dataset test, TrainOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  const TrainOptions& options() const;
  Graph& graph();
  const Dataset& train_data() const;
  const Dataset& test_data() const;

  // The whole run: epochs, table on `log`, metrics file, checkpoints.
  TrainResult run(std::ostream& log);
  // One optimizer step on a batch; returns the loss.
  float step(const Tensor& images, const std::vector<int32_t>& labels);
  EvalResult evaluate(const Dataset& data);
  // The learning rate of global step `step` (0: the first step of the run;
  // lr_schedule_offset_epochs already applied), and the steps taken so far.
  float lr_at(int64_t step) const;
  int64_t steps_done() const;

  void save_checkpoint(const std::string& path) const;
  void load_checkpoint(const std::string& path);

  // Adds a set of callbacks (called in the order added).
  void add_callbacks(TrainerCallbacks callbacks);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Evaluates a model on a dataset in batches (no gradients).
EvalResult evaluate_graph(Graph& graph, const Dataset& data, int64_t batch_size);

// Reads a checkpoint written by Trainer (its options and parameters) into a
// freshly built graph; returns the options it was trained with.
TrainOptions load_model_checkpoint(const std::string& path, const GraphFactory& factory,
                                   Graph& graph_out);

// The options a training checkpoint was written with (`path` is the file or
// its run folder). Throws Error naming the file when it is not one.
TrainOptions read_checkpoint_options(const std::string& path);

// `path` itself, or path/checkpoint.safetensors when `path` is a folder.
std::string checkpoint_file(const std::string& path);

// Stops a running Trainer::run at the next step boundary (after saving a
// checkpoint when out_dir is set); safe to call from a signal handler.
void request_stop();
// Whether request_stop() was called since the last Trainer::run started
// (long operations other than training, such as downloads, also honour it).
bool stop_requested();

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

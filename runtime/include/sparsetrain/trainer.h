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
#include "sparsetrain/options.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

struct Dataset;
class DataParallel;

// Throws Error naming the option when a value is out of range (each row's
// check_option, options.h) or settings do not fit together (the sparsity
// method's and retraining's rules).
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
// The options as JSON, one key a saved row (option_rows()); reading takes
// the keys it finds and leaves the other fields at their defaults, so the
// options of older checkpoints load.
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
  // Of the seconds: the median wall time of one training step (forward,
  // backward, optimizer and masks; what `bench model` times) and the time
  // spent waiting for the loader's batches.
  double step_ms_median = 0;
  double data_seconds = 0;
  int64_t peak_bytes = 0;
  int sparse_layers = 0;                        // prunable layers that ran on the sparse kernels
  int prunable_layers = 0;                      // all prunable (conv and linear) layers
  std::vector<std::string> sparse_layer_names;  // those that ran sparse, in node order
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
  // The graph that trains. In finetune modes linear-probe and sparse-head
  // it is the head alone, over the features of its input (train_data() and
  // test_data() are those features, Dataset::values); model() is then the
  // whole model with the head as trained so far, which checkpoints hold.
  Graph& graph();
  Graph& model();
  const Dataset& train_data() const;
  const Dataset& test_data() const;

  // The whole run: epochs, table on `log`, metrics file, checkpoints.
  TrainResult run(std::ostream& log);
  // One optimizer step on a batch; returns the loss.
  float step(const Tensor& images, const std::vector<int32_t>& labels);
  // On images, or (linear-probe, sparse-head) on features.
  EvalResult evaluate(const Dataset& data);
  // The learning rate of global step `step` (0: the first step of the run;
  // lr_schedule_offset_epochs already applied), and the steps taken so far.
  float lr_at(int64_t step) const;
  int64_t steps_done() const;

  // The kernel choices of the run so far (Graph::kernel_choices): also in
  // every checkpoint (replayed by options.resume_dir) and, with out_dir, in
  // <out_dir>/kernel_choices.json (replayed by options.kernel_choices).
  std::vector<KernelChoice> kernel_choices() const;

  void save_checkpoint(const std::string& path) const;
  void load_checkpoint(const std::string& path);

  // Trains data-parallel over `ranks` (sparsetrain/distributed.h; null:
  // alone again), from the next step on. Every rank runs the same program:
  // each takes its share of every global batch (options.batch_size), the
  // gradients are summed over the ranks, the optimizer step is the same on
  // all. BatchNorm normalises with each rank's own batch statistics and
  // keeps its own running statistics (DistributedDataParallel's default);
  // rank 0's are evaluated and saved. Only rank 0 writes the log, the
  // metrics and the checkpoints, and evaluates. Masks are compared across
  // ranks after every change (Error on a mismatch). Throws Error when the
  // ranks' weights or masks differ now, or for linear-probe and sparse-head
  // fine-tuning (one process).
  void set_data_parallel(std::shared_ptr<DataParallel> ranks);

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

// Before a command writes a checkpoint to `target`: refuses (Error naming
// `flag`) when `target` is one of the checkpoints the command reads
// (`sources`, files or run folders), whose training state it would replace,
// and, unless `force`, when a checkpoint is there already.
void check_checkpoint_target(const std::string& target, const std::string& flag,
                             const std::vector<std::string>& sources, bool force);

// Stops a running Trainer::run at the next step boundary (after saving a
// checkpoint when out_dir is set); safe to call from a signal handler.
void request_stop();
// Whether request_stop() was called since the last Trainer::run started
// (long operations other than training, such as downloads, also honour it).
bool stop_requested();

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

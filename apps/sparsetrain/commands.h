// The subcommands of the command-line program: each has an options struct,
// a function that declares its flags on a CLI11 app, and a run function.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "sparsetrain/compare.h"
#include "sparsetrain/data.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain::cli {

// The help of a setting's flag (option_row(key).help), for the commands
// that share it with train: --data-dir, --threads.
inline std::string option_help(std::string_view key) { return std::string(option_row(key).help); }
// --threads of a command other than train, checked by its settings row.
inline void check_threads(int threads) {
  TrainOptions o;
  o.threads = threads;
  check_option(option_row("threads"), o);
}

// The flag of a tristate row (auto | on | off -> -1 | 1 | 0), bound to
// `target`.
CLI::Option* add_tristate_option(CLI::App* app, const OptionRow& row, int& target);

struct TrainCommand {
  TrainOptions options;
  CLI::App* app = nullptr;
  bool no_progress = false;
  std::string recipe;         // YAML recipe under the flags (sparsetrain/recipe.h)
  bool print_recipe = false;  // print the resolved recipe and exit
  bool finetune = false;      // the finetune command: --checkpoint and --mode
  double mpi_timeout = 300;   // under mpirun: seconds a collective may take
};
CLI::App* add_train(CLI::App& app, TrainCommand& cmd);
// `finetune`: train's flags, with the upstream checkpoint as --checkpoint
// (init_from) and --mode (TrainOptions::finetune) instead of --init-from and
// the retraining flags (sparsetrain/transfer.h).
CLI::App* add_finetune(CLI::App& app, TrainCommand& cmd);
int run_train(TrainCommand& cmd);

struct EvalCommand {
  std::string checkpoint;
  std::string dataset;   // default: the one the checkpoint was trained on
  std::string classes;   // default: the training run's (on its dataset)
  std::string data_dir;  // empty: $SPARSETRAIN_DATA, the user cache, ../shared/data
  int64_t batch_size = 500;
  int64_t limit = -1;
  int threads = 0;
  bool json = false;
};
CLI::App* add_eval(CLI::App& app, EvalCommand& cmd);
// A checkpoint's model with the data to run it on, as eval and probe load
// them: the dataset, classes and data folder default to the training run's;
// the model's outputs must match the classes (Error otherwise).
struct ModelOnData {
  std::string path;  // the checkpoint file
  TrainOptions trained;
  std::string dataset, data_dir, classes;
  Dataset data;
  Graph graph;
};
ModelOnData load_model_on_data(const std::string& checkpoint, const std::string& dataset_flag,
                               const std::string& classes_flag, const std::string& data_dir_flag,
                               Split split, int64_t limit);
int run_eval(EvalCommand& cmd);

// `probe NAME`: an attribution probe on chosen samples (sparsetrain/attribution.h).
struct ProbeCommand {
  std::string probe;
  std::vector<std::string> checkpoints;  // PATH or LABEL=PATH, the first the reference
  std::string dataset, classes, data_dir;
  std::string split = "test";
  std::string indices = "0";
  std::string target = "predicted";
  std::string out;
  int threads = 0;
  uint64_t seed = 0;
  // The probes' own options (--steps, --mode, ...): all declared, the given
  // ones passed on.
  std::map<std::string, std::string> given;
  std::vector<std::pair<std::string, CLI::Option*>> probe_flags;
};
CLI::App* add_probe(CLI::App& app, ProbeCommand& cmd);
int run_probe(ProbeCommand& cmd);

// `compare`: groups of runs against the first (sparsetrain/compare.h).
struct CompareCommand {
  std::vector<std::string> groups;  // NAME=RUN[,RUN...]
  std::string dataset, classes, data_dir;
  std::string split = "test";
  int64_t limit = -1;
  std::string corruptions = "gaussian-noise,defocus-blur,contrast,brightness,pixelate";
  CompareOptions options;
  int threads = 0;
  std::string out;
  bool json = false;
};
CLI::App* add_compare(CLI::App& app, CompareCommand& cmd);
int run_compare(CompareCommand& cmd);

struct PruneCommand {
  std::string checkpoint;
  double sparsity = 0.9;
  std::string distribution = "global";
  int dense_first_last = -1;  // -1 auto, 0 off, 1 on
  std::string out;
  std::string data_dir;  // empty: $SPARSETRAIN_DATA, the user cache, ../shared/data
  int64_t test_limit = -1;
  int64_t batch_size = 500;
  int threads = 0;
  bool no_eval = false;
  bool force = false;  // replace a checkpoint already in --out
  bool json = false;
};
CLI::App* add_prune(CLI::App& app, PruneCommand& cmd);
int run_prune(PruneCommand& cmd);

struct DataCommand {
  std::vector<std::string> names;  // fetch: datasets, or "all"
  std::string dir;                 // fetch: --dir; list: --data-dir
  std::string mirror;
  bool no_progress = false;
  bool if_missing = false;  // fetch only what no searched place holds
  bool json = false;
  CLI::App* fetch_app = nullptr;
  CLI::App* list_app = nullptr;
};
CLI::App* add_data(CLI::App& app, DataCommand& cmd);
int run_data(DataCommand& cmd);

struct InfoCommand {
  int threads = 0;
  bool json = false;
};
CLI::App* add_info(CLI::App& app, InfoCommand& cmd);
int run_info(InfoCommand& cmd);

// What every layer benchmark (bench linear, bench conv) takes besides its shape.
struct BenchLayerOptions {
  int64_t batch = 0;  // each benchmark sets its default
  double sparsity = 0.9;
  int threads = 0;
  int reps = 20;
  int warmup = 3;
  uint32_t seed = 0;
  std::string cache = "cold";  // what the caches hold when a timed pass starts: cold | warm
  bool json = false;
  bool sweep = false;
  std::string plot;  // default: named after the shape
};
struct BenchLinearCommand : BenchLayerOptions {
  BenchLinearCommand() { batch = 256; }
  int64_t in = 768;
  int64_t out = 3072;
};
struct BenchConvCommand : BenchLayerOptions {
  BenchConvCommand() { batch = 32; }
  int64_t cin = 64;
  int64_t cout = 64;
  int64_t hw = 32;  // input height = width
  int64_t k = 3;    // kernel height = width
  int64_t stride = 1;
  int64_t padding = -1;  // -1: k / 2
  int64_t groups = 1;
};
struct BenchModelCommand {
  std::string model = "resnet20";
  int64_t batch = 128;
  double sparsity = 0.9;
  int threads = 0;
  int steps = 20;
  int warmup = 3;
  std::string distribution = "uniform";
  std::string kernels = "sparse";
  uint64_t seed = 0;
  bool json = false;
  std::string masks_from;   // a checkpoint whose masks (and model) the sparse side takes
  bool no_fusion = false;   // Graph::set_fusion(false) on both sides
  bool no_padding = false;  // Graph::set_padded_planes(false) on the sparse side
};
struct BenchCommand {
  BenchLinearCommand linear;
  BenchConvCommand conv;
  BenchModelCommand model;
  CLI::App* linear_app = nullptr;
  CLI::App* conv_app = nullptr;
  CLI::App* model_app = nullptr;
};
CLI::App* add_bench(CLI::App& app, BenchCommand& cmd);
int run_bench(BenchCommand& cmd);
int run_bench_linear(BenchLinearCommand& cmd);
int run_bench_conv(BenchConvCommand& cmd);
int run_bench_model(BenchModelCommand& cmd);

}  // namespace sparsetrain::cli

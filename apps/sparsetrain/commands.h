// The subcommands of the command-line program: each has an options struct,
// a function that declares its flags on a CLI11 app, and a run function.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "sparsetrain/trainer.h"

namespace sparsetrain::cli {

struct TrainCommand {
  TrainOptions options;
  CLI::App* app = nullptr;
  std::string augment = "auto";
  bool no_progress = false;
};
CLI::App* add_train(CLI::App& app, TrainCommand& cmd);
int run_train(TrainCommand& cmd);

struct EvalCommand {
  std::string checkpoint;
  std::string dataset;  // default: the one the checkpoint was trained on
  std::string data_dir = "../shared/data";
  int64_t batch_size = 500;
  int64_t limit = -1;
  int threads = 0;
  bool json = false;
};
CLI::App* add_eval(CLI::App& app, EvalCommand& cmd);
int run_eval(EvalCommand& cmd);

struct InfoCommand {
  int threads = 0;
  bool json = false;
};
CLI::App* add_info(CLI::App& app, InfoCommand& cmd);
int run_info(InfoCommand& cmd);

struct BenchLinearCommand {
  int64_t in = 768;
  int64_t out = 3072;
  int64_t batch = 256;
  double sparsity = 0.9;
  int threads = 0;
  int reps = 20;
  int warmup = 3;
  uint32_t seed = 0;
  bool json = false;
  bool sweep = false;
  std::string plot;  // default: bench-linear-<in>x<out>-b<batch>.png
};
struct BenchCommand {
  BenchLinearCommand linear;
  CLI::App* linear_app = nullptr;
};
CLI::App* add_bench(CLI::App& app, BenchCommand& cmd);
int run_bench(BenchCommand& cmd);

// The model zoo as a GraphFactory for the trainer.
GraphFactory model_factory();

}  // namespace sparsetrain::cli

// The subcommands of the command-line program: each has an options struct,
// a function that declares its flags on a CLI11 app, and a run function.
#pragma once

#include <CLI/CLI.hpp>
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

// The model zoo as a GraphFactory for the trainer.
GraphFactory model_factory();

}  // namespace sparsetrain::cli

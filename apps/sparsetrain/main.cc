// sparsetrain: the command-line program.
//   sparsetrain train | eval | info   (each with --help)
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "sparsetrain/error.h"

namespace {

void on_interrupt(int) { sparsetrain::request_stop(); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sparsetrain: train sparse neural networks on CPUs"};
  app.require_subcommand(1, 1);
  app.set_help_all_flag("--help-all", "Show the help of every command");

  sparsetrain::cli::TrainCommand train;
  sparsetrain::cli::EvalCommand eval;
  sparsetrain::cli::InfoCommand info;
  CLI::App* train_cmd = sparsetrain::cli::add_train(app, train);
  CLI::App* eval_cmd = sparsetrain::cli::add_eval(app, eval);
  CLI::App* info_cmd = sparsetrain::cli::add_info(app, info);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (train_cmd->parsed()) {
      std::signal(SIGINT, on_interrupt);
      std::signal(SIGTERM, on_interrupt);
      return sparsetrain::cli::run_train(train);
    }
    if (eval_cmd->parsed()) return sparsetrain::cli::run_eval(eval);
    if (info_cmd->parsed()) return sparsetrain::cli::run_info(info);
  } catch (const sparsetrain::Error& e) {
    std::cout << std::flush;
    std::fprintf(stderr, "sparsetrain: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "sparsetrain: error: out of memory (try a smaller --batch-size)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparsetrain: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

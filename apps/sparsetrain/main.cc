// sparsetrain: the command-line program.
//   sparsetrain train | finetune | eval | prune | probe | compare | info | bench | data   (each
//   with --help)
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "sparsetrain/distributed.h"
#include "sparsetrain/error.h"
#include "sparsetrain/log.h"

namespace {

void on_interrupt(int) { sparsetrain::request_stop(); }

// oneDNN (Debian's build) runs on OpenMP, whose idle threads spin by default.
// With TBB's workers also wanting the cores, a spinning OpenMP thread holds a
// core that the next parallel region needs, and on a busy machine every
// oneDNN call can stall for a scheduler time slice: a LeNet-5 epoch measured
// 28 s with spinning threads against 5 s with OMP_WAIT_POLICY=passive. The
// policy is read when libgomp loads, before main, so the program restarts
// itself once with it set, unless the user chose a policy.
void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: carry on as is
}

}  // namespace

int main(int argc, char** argv) {
  prefer_passive_openmp(argv);
  // The library's messages (kernel choices, warnings) on stderr.
  sparsetrain::set_log_sink([](sparsetrain::LogLevel level, std::string_view line) {
    std::clog << (level == sparsetrain::LogLevel::kWarning ? "sparsetrain: warning: " : "") << line
              << std::endl;
  });
  CLI::App app{"sparsetrain: train sparse neural networks on CPUs"};
  app.require_subcommand(1, 1);
  app.set_help_all_flag("--help-all", "Show the help of every command");

  sparsetrain::cli::TrainCommand train;
  sparsetrain::cli::TrainCommand finetune;
  sparsetrain::cli::EvalCommand eval;
  sparsetrain::cli::PruneCommand prune;
  sparsetrain::cli::ProbeCommand probe;
  sparsetrain::cli::CompareCommand compare;
  sparsetrain::cli::InfoCommand info;
  sparsetrain::cli::BenchCommand bench;
  sparsetrain::cli::DataCommand data;
  CLI::App* train_cmd = sparsetrain::cli::add_train(app, train);
  CLI::App* finetune_cmd = sparsetrain::cli::add_finetune(app, finetune);
  CLI::App* eval_cmd = sparsetrain::cli::add_eval(app, eval);
  CLI::App* prune_cmd = sparsetrain::cli::add_prune(app, prune);
  CLI::App* probe_cmd = sparsetrain::cli::add_probe(app, probe);
  CLI::App* compare_cmd = sparsetrain::cli::add_compare(app, compare);
  CLI::App* info_cmd = sparsetrain::cli::add_info(app, info);
  CLI::App* bench_cmd = sparsetrain::cli::add_bench(app, bench);
  CLI::App* data_cmd = sparsetrain::cli::add_data(app, data);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line naming the option and exit code 1, like every other bad input
    // (CLI11's own exit codes and two-line message are not what scripts
    // checking `sparsetrain ... || handle` expect).
    std::fprintf(stderr, "sparsetrain: error: %s (see --help)\n", e.what());
    return 1;
  }

  try {
    if (train_cmd->parsed() || finetune_cmd->parsed()) {
      std::signal(SIGINT, on_interrupt);
      std::signal(SIGTERM, on_interrupt);
      return sparsetrain::cli::run_train(train_cmd->parsed() ? train : finetune);
    }
    if (eval_cmd->parsed()) return sparsetrain::cli::run_eval(eval);
    if (prune_cmd->parsed()) return sparsetrain::cli::run_prune(prune);
    if (probe_cmd->parsed()) return sparsetrain::cli::run_probe(probe);
    if (compare_cmd->parsed()) return sparsetrain::cli::run_compare(compare);
    if (info_cmd->parsed()) return sparsetrain::cli::run_info(info);
    if (bench_cmd->parsed()) return sparsetrain::cli::run_bench(bench);
    if (data_cmd->parsed()) {
      std::signal(SIGINT, on_interrupt);  // a download stops keeping its .part
      std::signal(SIGTERM, on_interrupt);
      return sparsetrain::cli::run_data(data);
    }
  } catch (const sparsetrain::Error& e) {
    std::cout << std::flush;
    std::fprintf(stderr, "sparsetrain: error: %s\n", e.what());
    // Under mpirun: the other ranks stop now instead of waiting for this one.
    sparsetrain::abort_ranks(1);
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

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

// oneDNN (Debian's build) runs on OpenMP; the runtime's own kernels on TBB.
// Idle OpenMP threads spin by default (libgomp: 300,000 spins), holding cores
// that TBB's threads and other processes need. Passive waiting is the polite
// choice, and measured here (README "OpenMP's waiting policy") it is the
// better one where the work per parallel region is large or many programs
// share the cores: ResNet-20 steps 2-17% faster, the test suite on two cores
// 1.2-1.6x faster. Its cost is waking up: on a busy core a sleeping thread
// waits for the scheduler, which makes a small model's steps (LeNet-5) up to
// 8x slower next to other busy processes, where spinning keeps them fast.
// libgomp reads the policy when it is loaded, before main, so the program
// restarts itself once with OMP_WAIT_POLICY=passive, unless the user chose
// a policy (OMP_WAIT_POLICY, or a spin count in GOMP_SPINCOUNT).
void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
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

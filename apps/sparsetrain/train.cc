#include <algorithm>
#include <iostream>
#include <optional>
#include <type_traits>
#include <variant>

#include "commands.h"
#include "sparsetrain/distributed.h"
#include "sparsetrain/error.h"
#include "sparsetrain/log.h"
#include "sparsetrain/models.h"
#include "sparsetrain/probes.h"
#include "sparsetrain/recipe.h"
#include "sparsetrain/transfer.h"

namespace sparsetrain::cli {

CLI::Option* add_tristate_option(CLI::App* app, const OptionRow& row, int& target) {
  const int fallback = target;
  return app
      ->add_option_function<std::string>(
          std::string(row.flag),
          [&target](const std::string& s) { target = s == "auto" ? -1 : (s == "on" ? 1 : 0); },
          std::string(row.help))
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->default_str(fallback < 0 ? "auto" : (fallback ? "on" : "off"));
}

namespace {

// The flag of a row, bound to its member of `o`: the type says how it is
// read (a bool is a --x / --no-x switch, a list takes comma-separated items),
// the row's choices are checked as it is parsed, its range by validate().
void add_row_option(CLI::App* sub, const OptionRow& row, TrainOptions& o) {
  const std::string flag(row.flag);
  std::string help(row.help);
  if (row.member == OptionMember(&TrainOptions::probes)) {
    std::string names;
    for (const std::string& name : probe_names()) names += (names.empty() ? "" : ", ") + name;
    help += ": " + names;
  }
  std::visit(
      [&](auto m) {
        using T = std::remove_cvref_t<decltype(o.*m)>;
        CLI::Option* opt = nullptr;
        if constexpr (std::is_same_v<T, bool>) {
          opt = sub->add_flag(flag + ",!--no-" + flag.substr(2), o.*m, help);
        } else if constexpr (std::is_same_v<T, int>) {
          opt = row.tristate ? add_tristate_option(sub, row, o.*m)
                             : sub->add_option(flag, o.*m, help);
        } else {
          opt = sub->add_option(flag, o.*m, help);
        }
        if constexpr (requires { typename T::value_type; } && !std::is_same_v<T, std::string>) {
          opt->delimiter(',');
        }
        if (const auto choices = option_choices(row);
            !choices.empty() && !row.choices_bind_recipes_only) {
          opt->check(CLI::IsMember(choices));
        }
        if (row.show_default && !row.tristate) opt->capture_default_str();
      },
      row.member);
}

}  // namespace

namespace {

// Rows that are not flags of `finetune`: --checkpoint and --mode stand for
// the first, and retraining does not go with fine-tuning.
bool finetune_skips(const OptionRow& row) {
  for (const auto member :
       {&TrainOptions::init_from, &TrainOptions::retrain, &TrainOptions::rewind_from}) {
    if (row.member == OptionMember(member)) return true;
  }
  return row.member == OptionMember(&TrainOptions::rewind_epoch);
}

void add_run_options(CLI::App* sub, TrainCommand& cmd) {
  sub->add_option("--recipe", cmd.recipe,
                  "YAML recipe of the run (model, data, optimizer, lr and sparsity schedules); "
                  "flags given with it override its fields");
  sub->add_flag("--print-recipe", cmd.print_recipe,
                "Print the resolved recipe (recipe, then flags) as YAML and exit");
  sub->add_flag("--no-progress", cmd.no_progress, "No progress lines, only the table");
  sub->add_option("--mpi-timeout", cmd.mpi_timeout,
                  "Under mpirun: seconds a rank waits for the others in one collective before "
                  "stopping the run with an error (a rank died or hangs)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.app = sub;
}

}  // namespace

CLI::App* add_train(CLI::App& app, TrainCommand& cmd) {
  CLI::App* sub = app.add_subcommand("train", "Train a model on a dataset");
  for (const OptionRow& row : option_rows()) {
    if (!row.flag.empty()) add_row_option(sub, row, cmd.options);
  }
  add_run_options(sub, cmd);
  return sub;
}

CLI::App* add_finetune(CLI::App& app, TrainCommand& cmd) {
  CLI::App* sub = app.add_subcommand(
      "finetune",
      "Fine-tune a trained (sparse) model on a new task with a new classifier head, keeping its "
      "masks");
  cmd.finetune = true;
  cmd.options.finetune = "full";
  sub->add_option("--checkpoint", cmd.options.init_from,
                  "The upstream checkpoint (file or run folder); the run starts from its options "
                  "(model, data, optimizer, lr schedule, epochs), flags override them");
  sub->add_option("--mode", cmd.options.finetune, std::string(option_row("finetune").help))
      ->check(CLI::IsMember(option_choices(option_row("finetune"))))
      ->capture_default_str();
  for (const OptionRow& row : option_rows()) {
    if (!row.flag.empty() && !finetune_skips(row)) add_row_option(sub, row, cmd.options);
  }
  add_run_options(sub, cmd);
  return sub;
}

namespace {

// Whether the command line gave `flag` (finetune has no flag of some rows).
bool given(const TrainCommand& cmd, const std::string& flag) {
  const CLI::Option* option = cmd.app->get_option_no_throw(flag);
  return option != nullptr && option->count() != 0;
}

// The lr flags that --retrain replaces by the original run's schedule.
constexpr const char* kRetrainLrFlags[] = {"--lr", "--lr-schedule", "--lr-milestones", "--lr-gamma",
                                           "--warmup-epochs"};

// The options of the run: the user's flags over a base. The base is the
// saved run's options when resuming (so `--resume DIR` alone continues the
// same run, and e.g. `--epochs 5` extends it), else the model's
// recommended options with the recipe (--recipe) applied over them, else
// the options of the --init-from checkpoint's run (init_base), else the
// model's recommended options.
void resolve_options(TrainCommand& cmd) {
  TrainOptions& o = cmd.options;
  TrainOptions base;
  std::optional<Recipe> recipe;
  if (!o.resume_dir.empty()) {
    if (!cmd.recipe.empty()) {
      throw Error("--recipe with --resume: the run's resolved recipe is saved with it (" +
                  o.resume_dir + "/recipe.yaml); give flags to change it");
    }
    base = read_checkpoint_options(o.resume_dir);
    if (o.out_dir.empty()) o.out_dir = o.resume_dir;
  } else if (!cmd.recipe.empty()) {
    recipe = Recipe::load(cmd.recipe);
    const bool model_flag = cmd.app->count("--model") != 0;
    if (!model_flag && !recipe->model().empty()) {
      const std::vector<std::string> known = model_names();
      if (!is_model_file(recipe->model()) &&
          std::find(known.begin(), known.end(), recipe->model()) == known.end()) {
        std::string list;
        for (const std::string& m : known) list += (list.empty() ? "" : ", ") + m;
        throw Error(recipe->where("model") + ": unknown model '" + recipe->model() +
                    "' (expected one of: " + list + ", or a model file NAME.yaml)");
      }
    }
    base = recommended_options(model_flag || recipe->model().empty() ? o.model : recipe->model());
    recipe->apply(base);
  } else if (!o.init_from.empty()) {
    base = inherited_options(o.init_from);
  } else {
    base = recommended_options(o.model);
  }
  // The base with the flags given over it; fields without a flag (the lr
  // schedule's span and offset of a retraining run, AdamW's eps) keep the
  // base's value, the run-control flags below always the command line's.
  const TrainOptions flags = o;
  o = base;
  for (const OptionRow& row : option_rows()) {
    if (!row.flag.empty() && given(cmd, std::string(row.flag))) {
      std::visit([&](auto m) { o.*m = flags.*m; }, row.member);
    }
  }
  if (cmd.finetune && flags.resume_dir.empty()) {
    if (flags.init_from.empty()) {
      throw Error("finetune needs --checkpoint: the upstream checkpoint (or --resume a run)");
    }
    o.init_from = flags.init_from;
    o.finetune = flags.finetune;
  }
  o.out_dir = flags.out_dir;
  o.resume_dir = flags.resume_dir;
  o.max_steps = flags.max_steps;
  o.progress = !cmd.no_progress;
  if (!o.retrain.empty() && o.resume_dir.empty()) {
    for (const char* flag : kRetrainLrFlags) {
      if (given(cmd, flag)) {
        throw Error(std::string(flag) + " with --retrain " + o.retrain +
                    ": retraining takes its learning rate from the original run; use "
                    "--init-from without --retrain for a schedule of your own");
      }
    }
  }
  if (recipe) {
    try {
      validate(o);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (options from recipe '" + recipe->source() +
                  "' and the flags)");
    }
  }
}

}  // namespace

int run_train(TrainCommand& cmd) {
  resolve_options(cmd);
  if (cmd.print_recipe) {
    std::cout << recipe_to_yaml(cmd.options);
    return 0;
  }
  std::shared_ptr<DataParallel> ranks;
  if (launched_by_mpi()) {
    // Started by mpirun: data-parallel over its ranks (distributed.h), each
    // with its share of the cores unless --threads says otherwise.
    MpiOptions mpi;
    mpi.timeout_seconds = cmd.mpi_timeout;
    ranks = mpi_data_parallel(mpi);
    if (ranks->rank() != 0) {
      // Rank 0 speaks for the run; the others only report problems.
      const int rank = ranks->rank();
      set_log_sink([rank](LogLevel level, std::string_view line) {
        if (level == LogLevel::kWarning)
          std::clog << "sparsetrain: warning (rank " << rank << "): " << line << std::endl;
      });
    }
    if (cmd.app->count("--threads") == 0) cmd.options.threads = mpi_local_threads();
  }
  Trainer trainer(cmd.options, zoo_factory());
  if (ranks) trainer.set_data_parallel(ranks);
  const TrainResult r = trainer.run(std::cout);
  // Reaching --max-steps is a planned stop; a signal is not.
  const bool planned = cmd.options.max_steps >= 0 && r.steps >= cmd.options.max_steps;
  return r.interrupted && !planned ? 130 : 0;
}

}  // namespace sparsetrain::cli

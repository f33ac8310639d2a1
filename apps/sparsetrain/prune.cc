// sparsetrain prune: one-shot magnitude pruning of a trained checkpoint into
// a compressed one, with test accuracy before and after.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/json_text.h"
#include "commands.h"
#include "sparsetrain/checkpoint.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/log.h"
#include "sparsetrain/models.h"
#include "sparsetrain/sparsity.h"

namespace sparsetrain::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string megabytes(uintmax_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

struct LayerRow {
  std::string node;
  Shape shape;
  int64_t kept = 0;
  int64_t total = 0;
  bool pruned = true;  // false: left as it was (--dense-first-last)
};

}  // namespace

CLI::App* add_prune(CLI::App& app, PruneCommand& cmd) {
  CLI::App* sub = app.add_subcommand(
      "prune", "Prune a trained checkpoint by weight magnitude into a new, compressed checkpoint");
  sub->add_option("--checkpoint", cmd.checkpoint, "checkpoint.safetensors (or its run folder)")
      ->required();
  sub->add_option("--sparsity", cmd.sparsity,
                  "Fraction of the pruned layers' weights to remove, in [0, 1)")
      ->required();
  sub->add_option("--distribution", cmd.distribution,
                  "How the sparsity spreads over layers: global (one magnitude threshold) | "
                  "uniform (every layer at --sparsity) | erk (Erdos-Renyi-Kernel)")
      ->check(CLI::IsMember({"global", "uniform", "erk"}))
      ->capture_default_str();
  add_tristate_option(sub, option_row("dense_first_last"), cmd.dense_first_last);
  sub->add_option("--out", cmd.out, "Folder of the pruned checkpoint (checkpoint.safetensors)")
      ->required();
  sub->add_option("--data-dir", cmd.data_dir, option_help("data_dir"));
  sub->add_option("--test-limit", cmd.test_limit, "Evaluate on the first N test images only");
  sub->add_option("--batch-size", cmd.batch_size, "Evaluation batch size")->capture_default_str();
  sub->add_option("--threads", cmd.threads, option_help("threads"))->capture_default_str();
  sub->add_flag("--no-eval", cmd.no_eval, "Skip the test accuracy before and after pruning");
  sub->add_flag("--json", cmd.json, "Print one JSON object");
  sub->add_flag("--force", cmd.force,
                "Replace a checkpoint already in --out (never the one being pruned)");
  return sub;
}

int run_prune(PruneCommand& cmd) {
  if (!(cmd.sparsity >= 0.0 && cmd.sparsity < 1.0)) {
    throw Error("--sparsity must be in [0, 1), got " + std::to_string(cmd.sparsity));
  }
  if (cmd.batch_size < 1) throw Error("--batch-size must be at least 1");
  check_threads(cmd.threads);
  set_num_threads(cmd.threads);
  const std::string path = checkpoint_file(cmd.checkpoint);
  const std::string out_path = (fs::path(cmd.out) / "checkpoint.safetensors").string();
  // Before any work: the pruned file must not replace the source's training
  // state, nor (without --force) another checkpoint.
  check_checkpoint_target(out_path, "--out", {path}, cmd.force);
  const Checkpoint source = Checkpoint::load(path);
  Graph graph;
  const TrainOptions trained = load_model_checkpoint(path, zoo_factory(), graph);
  const Distribution distribution = parse_distribution(cmd.distribution);
  const bool dense_first_last =
      cmd.dense_first_last < 0 ? auto_dense_first_last(graph) : cmd.dense_first_last == 1;
  const std::vector<PrunableLayer> layers = prunable_layers(graph, dense_first_last);
  if (layers.empty()) throw Error("--checkpoint: '" + path + "' has no layer to prune");

  Dataset test;
  EvalResult before, after;
  if (!cmd.no_eval) {
    test = load_dataset(trained.dataset, cmd.data_dir.empty() ? trained.data_dir : cmd.data_dir,
                        Split::kTest, cmd.test_limit, trained.classes);
    before = evaluate_graph(graph, test, cmd.batch_size);
  }

  const std::vector<Tensor> masks =
      magnitude_masks(graph, layers, static_cast<float>(cmd.sparsity), distribution);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::string& node = layers[l].node;
    if (graph.parameter(layers[l].param).masked()) graph.unmask(node);
    graph.compress(node, masks[l]);
  }
  std::vector<LayerRow> rows;
  for (const PrunableLayer& l : prunable_layers(graph, /*dense_first_last=*/false)) {
    const Parameter& p = graph.parameter(l.param);
    const bool pruned = std::any_of(layers.begin(), layers.end(),
                                    [&l](const PrunableLayer& c) { return c.node == l.node; });
    rows.push_back({l.node, l.shape, p.value.numel(), Tensor::count(l.shape), pruned});
  }
  const SparsityReport report = sparsity_report(graph);
  if (!cmd.no_eval) after = evaluate_graph(graph, test, cmd.batch_size);

  // The pruned checkpoint: the model with its compressed weights and the
  // original run's metadata (options, history, sample shape), no optimizer
  // state (retraining starts a fresh optimizer).
  Checkpoint out;
  for (const auto& [key, value] : source.metadata()) {
    if (key.rfind("optim.", 0) == 0 || key == "state" || key == "sparse") continue;
    out.metadata()[key] = value;
  }
  save_parameters(out, graph.parameters());
  json pruned = {{"from", detail::text_to_json(fs::absolute(path).lexically_normal().string())},
                 {"source_run", detail::text_to_json(
                                    fs::absolute(path).lexically_normal().parent_path().string())},
                 {"sparsity", cmd.sparsity},
                 {"distribution", distribution_name(distribution)},
                 {"dense_first_last", dense_first_last},
                 {"prunable_sparsity", report.prunable_sparsity()}};
  if (!cmd.no_eval) {
    pruned["test_accuracy_before"] = before.accuracy;
    pruned["test_accuracy_after"] = after.accuracy;
  }
  out.metadata()["format"] = "sparsetrain-checkpoint-2";
  out.metadata()["pruned"] = pruned.dump();
  std::error_code ec;
  fs::create_directories(cmd.out, ec);
  if (ec) throw Error("--out: cannot create directory '" + cmd.out + "': " + ec.message());
  out.save(out_path);

  if (cmd.json) {
    json layer_list = json::array();
    for (const LayerRow& r : rows) {
      layer_list.push_back({{"node", r.node},
                            {"shape", r.shape},
                            {"kept", r.kept},
                            {"total", r.total},
                            {"density", static_cast<double>(r.kept) / static_cast<double>(r.total)},
                            {"pruned", r.pruned}});
    }
    json j = {{"checkpoint", out_path},
              {"from", path},
              {"model", trained.model},
              {"sparsity", cmd.sparsity},
              {"distribution", distribution_name(distribution)},
              {"dense_first_last", dense_first_last},
              {"layers", layer_list},
              {"prunable_sparsity", report.prunable_sparsity()},
              {"params_sparsity", report.params_sparsity()},
              {"bytes", fs::file_size(out_path)},
              {"bytes_before", fs::file_size(path)}};
    if (!cmd.no_eval) {
      j["test_samples"] = before.samples;
      j["test_accuracy_before"] = before.accuracy;
      j["test_accuracy_after"] = after.accuracy;
    }
    std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    return 0;
  }

  std::printf("pruned %s (model %s, dataset %s): magnitude, %s, sparsity %.3f%s\n\n", path.c_str(),
              trained.model.c_str(), trained.dataset.c_str(), distribution_name(distribution),
              cmd.sparsity, dense_first_last ? ", first and last layer dense" : "");
  std::printf("%-22s %-18s %19s %8s\n", "layer", "shape", "kept / total", "density");
  for (const LayerRow& r : rows) {
    std::printf("%-22s %-18s %9lld / %7lld %8.3f%s\n", r.node.c_str(),
                shape_to_string(r.shape).c_str(), static_cast<long long>(r.kept),
                static_cast<long long>(r.total),
                static_cast<double>(r.kept) / static_cast<double>(r.total),
                r.pruned ? "" : "  (not pruned)");
  }
  std::printf(
      "\nsparsity: %.2f%% of the prunable weights (%lld of %lld kept), %.2f%% of all "
      "parameters\n",
      100.0 * report.prunable_sparsity(), static_cast<long long>(report.prunable_nonzero),
      static_cast<long long>(report.prunable_total), 100.0 * report.params_sparsity());
  if (!cmd.no_eval) {
    std::printf("test accuracy: %.2f%% before, %.2f%% after pruning (%lld images)\n",
                100.0 * before.accuracy, 100.0 * after.accuracy,
                static_cast<long long>(before.samples));
  }
  const bool had_state = source.metadata().count("state") > 0;
  std::printf("checkpoint: %s (%s; the original%s: %s)\n", out_path.c_str(),
              megabytes(fs::file_size(out_path)).c_str(), had_state ? ", with optimizer state" : "",
              megabytes(fs::file_size(path)).c_str());
  return 0;
}

}  // namespace sparsetrain::cli

// sparsetrain bench model: one whole training step (forward, softmax
// cross-entropy, backward, SGD with momentum) of a model from the zoo, dense
// against sparse, on a random batch of the dataset's shape (CIFAR-10's
// 3x32x32 for the ResNets, MNIST's 1x28x28 otherwise; 10 classes).
//
// The two models start from the same initial weights. The sparse one has its
// prunable layers (conv and linear weights; in a model with convolutions all
// but the first and the last, as the trainer does) pruned by magnitude at
// --sparsity spread by --distribution and compressed (Graph::compress), so
// they run the sparse kernels (or, with --kernels, the dense ones, or
// whichever was faster when timed). After --warmup untimed steps of each,
// --steps steps alternate between the two (dense first on even steps, sparse
// first on odd ones) and the medians are reported: of the step and its
// phases, and, from Graph's per-node profiling, of every node's forward and
// backward time. "executor" is what the graph's forward and backward took
// beyond its nodes (the output reorder, freeing activations).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_common.h"
#include "commands.h"
#include "kernels/common/cpu.h"
#include "kernels/common/threads.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/models.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/rng.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain::cli {

namespace {

namespace sk = kernels;
using namespace bench;

// The optimizer of bench/bench_train_step.cc (and of the ResNet recipes).
constexpr float kMomentum = 0.9f;
constexpr float kWeightDecay = 5e-4f;
// Small enough that a few dozen steps on random labels stay finite.
constexpr float kLearningRate = 0.01f;
constexpr int64_t kNumClasses = 10;

enum Phase { kForward = 0, kLoss = 1, kBackward = 2, kOptimizer = 3, kStep = 4, kNumPhases = 5 };
constexpr const char* kPhaseNames[kNumPhases] = {"forward", "loss", "backward", "optimizer",
                                                 "step"};

ModelOptions input_of(const std::string& model) {
  if (is_model_file(model)) return model_file_input(model, ModelOptions{1, 28, 28, kNumClasses});
  if (model.rfind("resnet", 0) == 0) return ModelOptions{3, 32, 32, kNumClasses};
  return ModelOptions{1, 28, 28, kNumClasses};
}

// One model with its optimizer, and the times of its timed steps.
struct Side {
  Graph graph;
  std::unique_ptr<SGD> sgd;
  std::vector<Parameter*> params;
  Tensor diff;
  std::array<std::vector<double>, kNumPhases> phase_ms;
  // Per node (in profile() order): forward and backward ms of each step.
  std::vector<std::vector<double>> node_fwd, node_bwd;
  std::vector<double> executor_ms;
  // The most memory a step's tensors held above what was live before it
  // (both sides' parameters and optimizer states live all along).
  int64_t peak_step_bytes = 0;
};

void make_side(Side& s, const BenchModelCommand& cmd, const ModelOptions& in) {
  s.graph = build_model(cmd.model, in);
  s.graph.initialize(cmd.seed);
  s.sgd = std::make_unique<SGD>(kMomentum, /*nesterov=*/false, kWeightDecay);
}

// One training step; with `timed`, its phases and the profile are recorded.
void train_step(Side& s, const Tensor& x, const std::vector<int32_t>& labels, bool timed) {
  std::array<double, kNumPhases> t{};
  s.graph.reset_profile();
  Tensor logits;
  t[kOptimizer] = time_ms([&] { Optimizer::zero_grad(s.params); });
  const int64_t live = memory_stats().current_bytes;
  t[kForward] = time_ms([&] { logits = s.graph.forward(x, /*training=*/true); });
  t[kLoss] = time_ms([&] {
    if (!s.diff.defined()) s.diff = Tensor::empty(logits.shape());
    const LossResult loss = softmax_cross_entropy(logits, labels, &s.diff);
    if (!std::isfinite(loss.loss)) throw Error("bench model: the loss is not finite");
  });
  t[kBackward] = time_ms([&] { s.graph.backward(s.diff); });
  s.peak_step_bytes = std::max(s.peak_step_bytes, s.graph.last_peak_bytes() - live);
  t[kOptimizer] += time_ms([&] { s.sgd->step(s.params, kLearningRate); });
  if (!timed) return;
  t[kStep] = t[kForward] + t[kLoss] + t[kBackward] + t[kOptimizer];
  for (int p = 0; p < kNumPhases; ++p) s.phase_ms[p].push_back(t[p]);

  const std::vector<NodeTiming> prof = s.graph.profile();
  s.node_fwd.resize(prof.size());
  s.node_bwd.resize(prof.size());
  double nodes_ms = 0.0;
  for (std::size_t i = 0; i < prof.size(); ++i) {
    s.node_fwd[i].push_back(prof[i].forward_ms);
    s.node_bwd[i].push_back(prof[i].backward_ms);
    nodes_ms += prof[i].forward_ms + prof[i].backward_ms;
  }
  s.executor_ms.push_back(std::max(0.0, t[kForward] + t[kBackward] - nodes_ms));
}

struct Row {
  std::string name, type;
  double dense_fwd = 0, dense_bwd = 0, sparse_fwd = 0, sparse_bwd = 0;
  double density = -1;  // the sparse model's kept fraction; -1: not a prunable layer
  bool sparse = false;
  bool direct = false;  // dense weight on the sparse kernels' direct path
  bool padded = false;  // its output had padded channel planes (NodeTraits::padded_planes)
  bool single = false;  // one figure (loss, optimizer, executor), in the fwd columns
  double dense_ms() const { return dense_fwd + dense_bwd; }
  double sparse_ms() const { return sparse_fwd + sparse_bwd; }
};

struct Report {
  std::string model, distribution, kernels, isa;
  bool fusion = true, padding = true;
  int64_t batch = 0;
  double sparsity = 0;
  int threads = 0, steps = 0;
  int compressed_layers = 0, prunable_layers = 0, sparse_layers = 0;
  bool dense_first_last = false;
  std::array<double, kNumPhases> dense_ms{}, sparse_ms{};
  int64_t dense_param_bytes = 0, sparse_param_bytes = 0;
  int64_t dense_peak_bytes = 0, sparse_peak_bytes = 0;
  std::vector<Row> rows;
};

// The sparse side takes the masks of the compressed (or masked) layers of
// the checkpoint at `path`; returns how many.
int take_masks(Side& side, Graph& source) {
  int taken = 0;
  for (Parameter* p : source.parameters()) {
    if (!p->prunable() || (!p->compressed() && !p->masked())) continue;
    const std::string node = p->name.substr(0, p->name.rfind('.'));
    side.graph.compress(node, kept_mask(*p), side.sgd.get());
    ++taken;
  }
  return taken;
}

double kept_fraction(Graph& g, const std::string& node) {
  const Parameter& p = g.parameter(node + ".weight");
  return static_cast<double>(p.value.numel()) / static_cast<double>(p.dense_numel());
}

Report measure(const BenchModelCommand& cmd) {
  const sk::Isa isa = sk::active_isa();  // throws on a bad SPARSETRAIN_ISA
  const Distribution distribution = parse_distribution(cmd.distribution);
  // With --masks-from, the checkpoint's model for its samples and classes.
  Graph source;
  ModelOptions in = input_of(cmd.model);
  if (!cmd.masks_from.empty()) {
    load_model_checkpoint(checkpoint_file(cmd.masks_from), zoo_factory(), source);
    const Shape sample = source.input_shape();
    in = ModelOptions{sample[0], sample[1], sample[2], source.shape_of(source.output()).back()};
  }

  Side dense, sparse;
  make_side(dense, cmd, in);
  make_side(sparse, cmd, in);
  sparse.graph.set_sparse_kernels(cmd.kernels);
  // As the trainer's default: the first and the last layer stay dense in
  // models with convolutions (the stem and the classifier are small and
  // sensitive).
  const bool dense_first_last = auto_dense_first_last(sparse.graph);
  const std::vector<PrunableLayer> layers = prunable_layers(sparse.graph, dense_first_last);
  int compressed = 0;
  if (!cmd.masks_from.empty()) {
    compressed = take_masks(sparse, source);
  } else if (cmd.sparsity > 0.0) {
    compressed = static_cast<int>(layers.size());
    const std::vector<Tensor> masks =
        magnitude_masks(sparse.graph, layers, static_cast<float>(cmd.sparsity), distribution);
    for (std::size_t i = 0; i < layers.size(); ++i)
      sparse.graph.compress(layers[i].node, masks[i], sparse.sgd.get());
  }
  for (Side* s : {&dense, &sparse}) {
    s->params = s->graph.parameters();
    s->graph.set_profiling(true);
    s->graph.set_fusion(!cmd.no_fusion);
    s->graph.set_padded_planes(!cmd.no_padding);
  }

  Rng rng(cmd.seed + 1);
  Tensor x = Tensor::empty({cmd.batch, in.channels, in.height, in.width}, Layout::kNCHW);
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
  std::vector<int32_t> labels(static_cast<std::size_t>(cmd.batch));
  for (int32_t& l : labels) l = static_cast<int32_t>(rng.below(in.num_classes));

  for (int r = 0; r < cmd.warmup; ++r) {
    train_step(dense, x, labels, false);
    train_step(sparse, x, labels, false);
  }
  for (int r = 0; r < cmd.steps; ++r) {
    Side& first = r % 2 == 0 ? dense : sparse;
    Side& second = r % 2 == 0 ? sparse : dense;
    train_step(first, x, labels, true);
    train_step(second, x, labels, true);
  }

  Report rep;
  rep.model = cmd.model;
  rep.distribution = distribution_name(distribution);
  rep.kernels = cmd.kernels;
  rep.fusion = !cmd.no_fusion;
  rep.padding = !cmd.no_padding && !cmd.no_fusion;
  rep.isa = sk::isa_name(isa);
  rep.batch = cmd.batch;
  rep.sparsity =
      cmd.masks_from.empty() ? cmd.sparsity : sparsity_report(sparse.graph).prunable_sparsity();
  if (!cmd.masks_from.empty()) rep.distribution = "masks of " + cmd.masks_from;
  rep.threads = sk::num_threads();
  rep.steps = cmd.steps;
  rep.dense_first_last = dense_first_last;
  rep.compressed_layers = compressed;
  rep.prunable_layers = static_cast<int>(prunable_layers(dense.graph, false).size());
  for (int p = 0; p < kNumPhases; ++p) {
    rep.dense_ms[p] = median(dense.phase_ms[p]);
    rep.sparse_ms[p] = median(sparse.phase_ms[p]);
  }
  rep.dense_param_bytes = parameter_memory_bytes(dense.graph, dense.sgd.get());
  rep.sparse_param_bytes = parameter_memory_bytes(sparse.graph, sparse.sgd.get());
  rep.dense_peak_bytes = dense.peak_step_bytes;
  rep.sparse_peak_bytes = sparse.peak_step_bytes;

  const std::vector<NodeTiming> dense_prof = dense.graph.profile();
  const std::vector<NodeTiming> sparse_prof = sparse.graph.profile();
  for (std::size_t i = 0; i < sparse_prof.size() && i < dense.node_fwd.size(); ++i) {
    Row row;
    row.name = sparse_prof[i].name;
    row.type = sparse_prof[i].type;
    row.sparse = sparse_prof[i].sparse;
    row.direct = sparse_prof[i].direct;
    row.padded = sparse_prof[i].padded_output;
    row.dense_fwd = median(dense.node_fwd[i]);
    row.dense_bwd = median(dense.node_bwd[i]);
    row.sparse_fwd = median(sparse.node_fwd[i]);
    row.sparse_bwd = median(sparse.node_bwd[i]);
    if (row.type == "conv2d" || row.type == "linear")
      row.density = kept_fraction(sparse.graph, row.name);
    if (row.sparse) ++rep.sparse_layers;
    rep.rows.push_back(row);
  }
  Row loss{.name = "loss", .type = "softmax_xent", .single = true};
  loss.dense_fwd = rep.dense_ms[kLoss];
  loss.sparse_fwd = rep.sparse_ms[kLoss];
  Row opt{.name = "optimizer", .type = "sgd", .single = true};
  opt.dense_fwd = rep.dense_ms[kOptimizer];
  opt.sparse_fwd = rep.sparse_ms[kOptimizer];
  Row exec{.name = "executor", .type = "graph", .single = true};
  exec.dense_fwd = median(dense.executor_ms);
  exec.sparse_fwd = median(sparse.executor_ms);
  rep.rows.push_back(loss);
  rep.rows.push_back(opt);
  rep.rows.push_back(exec);
  return rep;
}

std::string megabytes(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

std::string ratio(double dense, double sparse) {
  if (!(sparse > 0.0)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", dense / sparse);
  return buf;
}

// A time cell, blank where the row has no such time (loss, optimizer and
// executor are one figure each).
std::string cell(double ms, bool present) {
  if (!present) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", ms);
  return buf;
}

void print_report(const Report& r) {
  std::printf(
      "bench model: %s, batch %lld, sparsity %.2f (%s) on %d of %d prunable layers%s, kernels "
      "%s%s%s, ISA %s, %d threads, medians of %d steps\n",
      r.model.c_str(), static_cast<long long>(r.batch), r.sparsity, r.distribution.c_str(),
      r.compressed_layers, r.prunable_layers, r.dense_first_last ? " (first and last dense)" : "",
      r.kernels.c_str(), r.fusion ? "" : ", no fusion",
      r.fusion && !r.padding ? ", no padded planes" : "", r.isa.c_str(), r.threads, r.steps);
  std::printf(
      "parameters + optimizer state: dense %s, sparse %s; peak activations: dense %s, "
      "sparse %s\n",
      megabytes(r.dense_param_bytes).c_str(), megabytes(r.sparse_param_bytes).c_str(),
      megabytes(r.dense_peak_bytes).c_str(), megabytes(r.sparse_peak_bytes).c_str());

  std::printf("\n%-12s %10s %10s %9s\n", "phase", "dense ms", "sparse ms", "speed-up");
  for (const Phase p : {kStep, kForward, kLoss, kBackward, kOptimizer})
    std::printf("%-12s %10.3f %10.3f %9s\n", kPhaseNames[p], r.dense_ms[p], r.sparse_ms[p],
                ratio(r.dense_ms[p], r.sparse_ms[p]).c_str());

  int name_w = 5, type_w = 4;
  for (const Row& row : r.rows) {
    name_w = std::max(name_w, static_cast<int>(row.name.size()));
    type_w = std::max(type_w, static_cast<int>(row.type.size()));
  }
  std::printf("\n%-*s  %-*s  %7s  %9s  %9s  %10s  %10s  %8s  %s\n", name_w, "layer", type_w, "type",
              "density", "dense fwd", "dense bwd", "sparse fwd", "sparse bwd", "speed-up",
              "kernels");
  for (const Row& row : r.rows) {
    const bool prunable = row.density >= 0.0;
    // A node fused into another on one side only (its forward there: 0.000)
    // has no meaningful ratio: its time is in the other node's row.
    const bool fused_one_side = !row.single && (row.dense_fwd == 0.0) != (row.sparse_fwd == 0.0);
    std::printf("%-*s  %-*s  %7s  %9s  %9s  %10s  %10s  %8s%s\n", name_w, row.name.c_str(), type_w,
                row.type.c_str(), prunable ? cell(row.density, true).c_str() : "",
                cell(row.dense_fwd, true).c_str(), cell(row.dense_bwd, !row.single).c_str(),
                cell(row.sparse_fwd, true).c_str(), cell(row.sparse_bwd, !row.single).c_str(),
                fused_one_side ? "" : ratio(row.dense_ms(), row.sparse_ms()).c_str(),
                prunable ? (row.sparse && row.padded ? "  sparse, padded output"
                            : row.sparse             ? "  sparse"
                            : row.direct             ? "  direct"
                                                     : "  dense")
                         : "");
  }
  std::printf(
      "\n(ms per step; the dense and sparse figures of each row are medians over the same "
      "steps, and the rows need not add up to the step)\n");
}

nlohmann::ordered_json to_json(const Report& r) {
  nlohmann::ordered_json dense_phases, sparse_phases, layers = nlohmann::ordered_json::array();
  for (const Phase p : {kForward, kLoss, kBackward, kOptimizer}) {
    dense_phases[kPhaseNames[p]] = r.dense_ms[p];
    sparse_phases[kPhaseNames[p]] = r.sparse_ms[p];
  }
  for (const Row& row : r.rows) {
    nlohmann::ordered_json l = {{"name", row.name},
                                {"type", row.type},
                                {"dense_ms", row.dense_ms()},
                                {"sparse_ms", row.sparse_ms()},
                                {"sparse", row.sparse},
                                {"direct", row.direct},
                                {"padded_output", row.padded},
                                {"dense_fwd_ms", row.dense_fwd},
                                {"dense_bwd_ms", row.dense_bwd},
                                {"sparse_fwd_ms", row.sparse_fwd},
                                {"sparse_bwd_ms", row.sparse_bwd}};
    if (row.density >= 0.0) l["density"] = row.density;
    layers.push_back(l);
  }
  return {{"model", r.model},
          {"batch", r.batch},
          {"sparsity", r.sparsity},
          {"distribution", r.distribution},
          {"kernels", r.kernels},
          {"fusion", r.fusion},
          {"padded_planes", r.padding},
          {"threads", r.threads},
          {"isa", r.isa},
          {"steps", r.steps},
          {"dense_step_ms", r.dense_ms[kStep]},
          {"sparse_step_ms", r.sparse_ms[kStep]},
          {"speedup", r.dense_ms[kStep] / r.sparse_ms[kStep]},
          {"dense_phases_ms", dense_phases},
          {"sparse_phases_ms", sparse_phases},
          {"prunable_layers", r.prunable_layers},
          {"dense_first_last", r.dense_first_last},
          {"compressed_layers", r.compressed_layers},
          {"sparse_layers", r.sparse_layers},
          {"dense_param_bytes", r.dense_param_bytes},
          {"sparse_param_bytes", r.sparse_param_bytes},
          {"dense_peak_bytes", r.dense_peak_bytes},
          {"sparse_peak_bytes", r.sparse_peak_bytes},
          {"layers", layers}};
}

void validate(const BenchModelCommand& cmd) {
  const std::vector<std::string> names = model_names();
  if (!is_model_file(cmd.model) &&
      std::find(names.begin(), names.end(), cmd.model) == names.end()) {
    std::string known;
    for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
    throw Error("--model: unknown model '" + cmd.model + "' (expected one of: " + known +
                ", or a model file NAME.yaml)");
  }
  require_at_least(cmd.batch, 1, "--batch");
  require_at_least(cmd.steps, 1, "--steps");
  require_sparsity(cmd.sparsity);
  require_warmup_threads(cmd.warmup, cmd.threads);
  parse_distribution(cmd.distribution);  // throws naming --distribution
  if (cmd.kernels != "sparse" && cmd.kernels != "dense" && cmd.kernels != "auto" &&
      cmd.kernels != "auto-fixed") {
    throw Error("--kernels: unknown kernels '" + cmd.kernels +
                "' (expected sparse, dense, auto or auto-fixed)");
  }
}

}  // namespace

int run_bench_model(BenchModelCommand& cmd) {
  // The checkpoint names the model.
  if (!cmd.masks_from.empty()) cmd.model = read_checkpoint_options(cmd.masks_from).model;
  validate(cmd);
  sk::set_num_threads(cmd.threads);
  const Report r = measure(cmd);
  if (cmd.json) {
    std::cout << to_json(r).dump(2) << "\n";
  } else {
    print_report(r);
  }
  return 0;
}

}  // namespace sparsetrain::cli

// sparsetrain bench linear | conv | model: the flags of each benchmark and the
// dispatch (bench_linear.cc, bench_conv.cc, bench_model.cc; what they share
// is in bench_common.h).
#include "bench_common.h"
#include "commands.h"

namespace sparsetrain::cli {

namespace {

// Flags every layer benchmark has.
void add_layer_flags(CLI::App* sub, BenchLayerOptions& c, const std::string& plot_default) {
  sub->add_option("--batch", c.batch, "Batch size")->capture_default_str();
  sub->add_option("--sparsity", c.sparsity, "Fraction of weights pruned, in [0, 1)")
      ->capture_default_str();
  sub->add_option("--threads", c.threads, "Threads (0: all cores)")->capture_default_str();
  sub->add_option("--reps", c.reps, "Timed repetitions (medians are reported)")
      ->capture_default_str();
  sub->add_option("--warmup", c.warmup, "Untimed repetitions first")->capture_default_str();
  sub->add_option("--seed", c.seed, "Seed of the random operands")->capture_default_str();
  sub->add_option("--cache", c.cache,
                  "cold: dense and sparse alternate pass by pass, each pass starting from the "
                  "other side's data; warm: step by step, each side's step run once untimed "
                  "right before its timed step")
      ->capture_default_str();
  sub->add_flag("--json", c.json, "Print one JSON object (an array with --sweep)");
  sub->add_flag("--sweep", c.sweep, "Sparsities 0.5 .. 0.99 (ignores --sparsity), writes a plot");
  sub->add_option("--plot", c.plot, "PNG of the sweep (default " + plot_default + ")");
  // Unknown arguments are reported by bench::reject_extras as one line.
  sub->allow_extras();
}

}  // namespace

CLI::App* add_bench(CLI::App& app, BenchCommand& cmd) {
  CLI::App* sub = app.add_subcommand("bench", "Micro-benchmarks: sparse kernels against dense");
  sub->require_subcommand(1, 1);

  BenchLinearCommand& l = cmd.linear;
  CLI::App* lin = sub->add_subcommand(
      "linear", "One linear layer: sparse kernels against the fastest oneDNN matmul, per pass");
  lin->add_option("--in", l.in, "Input features")->capture_default_str();
  lin->add_option("--out", l.out, "Output features")->capture_default_str();
  add_layer_flags(lin, l, "bench-linear-<in>x<out>-b<batch>.png");
  cmd.linear_app = lin;

  BenchConvCommand& c = cmd.conv;
  CLI::App* conv = sub->add_subcommand(
      "conv",
      "One 2-D convolution: sparse kernels (CHWN) against the fastest oneDNN convolution "
      "(NHWC or NCHW), per pass");
  conv->add_option("--cin", c.cin, "Input channels")->capture_default_str();
  conv->add_option("--cout", c.cout, "Output channels")->capture_default_str();
  conv->add_option("--hw", c.hw, "Input height and width")->capture_default_str();
  conv->add_option("--k", c.k, "Kernel height and width")->capture_default_str();
  conv->add_option("--stride", c.stride, "Stride")->capture_default_str();
  conv->add_option("--padding", c.padding, "Zero padding on each side (default k/2)");
  conv->add_option("--groups", c.groups, "Groups (--groups = --cin = --cout: depthwise)")
      ->capture_default_str();
  add_layer_flags(conv, c, "bench-conv-<cin>x<cout>-hw<hw>-k<k>-s<stride>-b<batch>.png");
  cmd.conv_app = conv;

  BenchModelCommand& m = cmd.model;
  CLI::App* model = sub->add_subcommand(
      "model",
      "One training step (forward, loss, backward, SGD) of a dense model against its sparse "
      "version, with a per-layer breakdown");
  model
      ->add_option("--model", m.model,
                   "mlp | lenet5 | resnet20 | resnet32 | resnet56, or a model file NAME.yaml")
      ->capture_default_str();
  model->add_option("--batch", m.batch, "Batch size")->capture_default_str();
  model
      ->add_option("--sparsity", m.sparsity,
                   "Sparsity of the prunable layers (with convolutions: all but the first and "
                   "the last), in [0, 1)")
      ->capture_default_str();
  model
      ->add_option("--distribution", m.distribution,
                   "How the sparsity is spread over the layers: uniform | global | erk")
      ->capture_default_str();
  model
      ->add_option("--kernels", m.kernels,
                   "Kernels of the compressed layers: sparse | dense | auto (timed once per "
                   "layer, shape and density) | auto-fixed (the density rule only)")
      ->capture_default_str();
  model->add_option("--threads", m.threads, "Threads (0: all cores)")->capture_default_str();
  model->add_option("--steps", m.steps, "Timed steps of each model (medians are reported)")
      ->capture_default_str();
  model->add_option("--warmup", m.warmup, "Untimed steps of each model first")
      ->capture_default_str();
  model->add_option("--seed", m.seed, "Seed of the initial weights and the random batch")
      ->capture_default_str();
  model->add_option("--masks-from", m.masks_from,
                    "A checkpoint (or run folder): the sparse side takes its model and the masks "
                    "of its compressed layers (e.g. an AC/DC run, to time its fine-tuning step) "
                    "instead of --sparsity and --distribution");
  model->add_flag("--no-fusion", m.no_fusion,
                  "Run every node on its own, on both sides (no BatchNorm / Add / ReLU fusion): "
                  "the executor's fusions measured by difference");
  model->add_flag("--no-padding", m.no_padding,
                  "Keep every activation's channel planes packed on the sparse side (no padded "
                  "planes after the blocks' first convolutions): their gain measured by "
                  "difference");
  model->add_flag("--json", m.json, "Print one JSON object");
  model->allow_extras();
  cmd.model_app = model;
  return sub;
}

int run_bench(BenchCommand& cmd) {
  for (CLI::App* app : {cmd.linear_app, cmd.conv_app, cmd.model_app})
    if (app != nullptr && app->parsed()) bench::reject_extras(*app);
  if (cmd.linear_app != nullptr && cmd.linear_app->parsed()) return run_bench_linear(cmd.linear);
  if (cmd.conv_app != nullptr && cmd.conv_app->parsed()) return run_bench_conv(cmd.conv);
  if (cmd.model_app != nullptr && cmd.model_app->parsed()) return run_bench_model(cmd.model);
  return 0;
}

}  // namespace sparsetrain::cli

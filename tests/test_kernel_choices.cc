// Kernel choices (sparsetrain/kernel_choices.h): the timed choice with its
// margin and rule, auto-fixed timing nothing, one decision per layer and
// problem, the record in the run folder, the metrics and the checkpoint, and
// replay: a run whose timings say otherwise, replaying a first run's
// choices (from the file or through --resume), repeats it bit for bit.
// Timings never decide a test: a timing hook sets them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sparsetrain/checkpoint.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/kernel_choices.h"
#include "sparsetrain/models.h"
#include "sparsetrain/trainer.h"
#include "tests/cli_runner.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

GraphFactory zoo() {
  return [](const std::string& model, int64_t c, int64_t h, int64_t w, int64_t k) {
    return build_model(model, ModelOptions{c, h, w, k});
  };
}

fs::path temp_dir(const std::string& name) {
  return testing::fresh_temp_dir("sparsetrain_test_kc_", name);
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The expected message parts of an Error thrown by `f`.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "expected sparsetrain::Error";
  } catch (const Error& e) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message: " << e.what() << "\nmissing: " << part;
  }
}

// LeNet-5 at 90% sparsity on 10 MNIST batches: three compressed layers
// (conv2, fc1, fc2; conv1 and fc3 stay dense), each meeting a training batch
// and an evaluation batch. (A linear layer gives the same numbers on either
// kernels: both sum its products in input order, and the pruned ones are
// exact zeros; the convolution's kernels sum in different orders.)
TrainOptions small_run() {
  TrainOptions o;
  o.model = "lenet5";
  o.dataset = "mnist";
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.train_limit = 640;
  o.test_limit = 200;
  o.batch_size = 64;
  o.eval_batch_size = 100;
  o.epochs = 1;
  o.lr = 0.05f;
  o.lr_schedule = "constant";
  o.threads = 2;
  o.sparsity = 0.9f;
  o.progress = false;
  return o;
}

// Timings that make every layer look faster dense, or faster sparse: a
// machine whose load falls on one side.
KernelTimingHook favour(bool sparse) {
  return [sparse](const KernelChoice&, double& sparse_ms, double& dense_ms) {
    sparse_ms = sparse ? 1.0 : 5.0;
    dense_ms = sparse ? 5.0 : 1.0;
  };
}

struct RunRecord {
  std::vector<float> losses;
  std::vector<KernelChoice> choices;
  double test_accuracy = 0;
  int64_t timings = 0;
};

RunRecord train(TrainOptions o, const KernelTimingHook& hook) {
  Trainer t(o, zoo());
  t.graph().set_kernel_timing_hook(hook);
  std::ostringstream log;
  const TrainResult r = t.run(log);
  return {r.step_losses, t.kernel_choices(), r.test_accuracy, t.graph().kernel_timings_run()};
}

TEST(KernelChoices, ReplayedRunIsBitIdenticalWhateverTheTimings) {
  TrainOptions o = small_run();
  o.out_dir = temp_dir("first").string();
  o.metrics_path = (fs::path(o.out_dir) / "metrics.jsonl").string();
  const RunRecord first = train(o, favour(/*sparse=*/false));
  ASSERT_EQ(first.losses.size(), 10u);
  ASSERT_EQ(first.choices.size(), 6u);  // 3 layers x (train batch, eval batch)
  for (const KernelChoice& c : first.choices) {
    EXPECT_FALSE(c.sparse) << c.layer;
    // The evaluation batch takes the training batch's decision, untimed.
    EXPECT_EQ(c.decided_by, c.batch == 64 ? "timing" : "batch") << c.layer;
    EXPECT_EQ(c.from_batch, c.batch == 64 ? 0 : 64) << c.layer;
  }
  EXPECT_EQ(first.timings, 3);
  // The run folder's file holds what the trainer reports.
  const fs::path file = fs::path(o.out_dir) / "kernel_choices.json";
  ASSERT_TRUE(fs::exists(file));
  const std::vector<KernelChoice> recorded = read_kernel_choices(o.out_dir);
  ASSERT_EQ(recorded.size(), first.choices.size());
  for (std::size_t i = 0; i < recorded.size(); ++i) {
    EXPECT_EQ(recorded[i].layer, first.choices[i].layer);
    EXPECT_EQ(recorded[i].problem, first.choices[i].problem);
    EXPECT_EQ(recorded[i].sparse, first.choices[i].sparse);
    EXPECT_EQ(recorded[i].family, first.choices[i].family);
    EXPECT_EQ(recorded[i].from_batch, first.choices[i].from_batch);
    EXPECT_EQ(recorded[i].sparse_ms, first.choices[i].decided_by == "timing" ? 5.0 : -1.0);
  }
  // The metrics: one event per choice, and the epoch names no sparse layer.
  int events = 0;
  std::istringstream lines(read_text(o.metrics_path));
  for (std::string line; std::getline(lines, line);) {
    const json j = json::parse(line);
    if (j["event"] == "kernel_choice") ++events;
    if (j["event"] == "epoch") {
      EXPECT_EQ(j["sparse_layers"], 0);
      EXPECT_EQ(j["sparse_layer_names"], json::array());
    }
  }
  EXPECT_EQ(events, 6);

  // Timings the other way, no replay: other kernels, other numbers.
  TrainOptions plain = small_run();
  const RunRecord other = train(plain, favour(/*sparse=*/true));
  ASSERT_EQ(other.choices.size(), 6u);
  for (const KernelChoice& c : other.choices) EXPECT_TRUE(c.sparse) << c.layer;
  EXPECT_NE(other.losses, first.losses);

  // The same timings, replaying the first run's file: its numbers exactly.
  TrainOptions replay = small_run();
  replay.kernel_choices = file.string();
  const RunRecord again = train(replay, favour(/*sparse=*/true));
  EXPECT_EQ(again.losses, first.losses);
  EXPECT_EQ(again.test_accuracy, first.test_accuracy);
  ASSERT_EQ(again.choices.size(), first.choices.size());
  for (std::size_t i = 0; i < again.choices.size(); ++i) {
    EXPECT_FALSE(again.choices[i].sparse);
    EXPECT_TRUE(again.choices[i].replayed);
  }
  EXPECT_EQ(again.timings, 0);

  // The checkpoint evaluated at another batch: the run's choices, untimed
  // (the timings would say sparse).
  Graph model;
  load_model_checkpoint(checkpoint_file(o.out_dir), zoo(), model);
  model.set_kernel_timing_hook(favour(/*sparse=*/true));
  const Dataset test = load_dataset("mnist", SPARSETRAIN_TEST_DATA_DIR, Split::kTest, 200);
  const EvalResult eval = evaluate_graph(model, test, 40);
  EXPECT_EQ(eval.samples, 200);
  EXPECT_EQ(model.kernel_timings_run(), 0);
  EXPECT_EQ(model.sparse_layer_count(), 0);
  for (const KernelChoice& c : model.kernel_choices())
    EXPECT_TRUE(c.replayed || (c.decided_by == "batch" && c.from_batch == 64)) << c.layer;
}

TEST(KernelChoices, ResumeReplaysTheCheckpointsChoices) {
  TrainOptions o = small_run();
  const RunRecord whole = train(o, favour(/*sparse=*/false));

  TrainOptions first = small_run();
  first.out_dir = temp_dir("resume").string();
  first.max_steps = 4;
  std::vector<float> losses = train(first, favour(/*sparse=*/false)).losses;
  ASSERT_EQ(losses.size(), 4u);
  // The checkpoint's metadata holds the choices made so far.
  const Checkpoint ck = Checkpoint::load(checkpoint_file(first.out_dir));
  ASSERT_TRUE(ck.metadata().count("kernel_choices"));
  const std::vector<KernelChoice> saved =
      kernel_choices_from_json(ck.metadata().at("kernel_choices"), "checkpoint");
  ASSERT_EQ(saved.size(), 3u);  // the training batch of each layer
  for (const KernelChoice& c : saved) EXPECT_FALSE(c.sparse);

  // Resumed on a machine whose timings favour the sparse kernels: the
  // training-batch choices come from the checkpoint.
  TrainOptions second = small_run();
  second.resume_dir = first.out_dir;
  second.out_dir = first.out_dir;
  const RunRecord rest =
      train(second, [](const KernelChoice& c, double& sparse_ms, double& dense_ms) {
        // Only evaluation batches may be timed; they were not reached before.
        EXPECT_EQ(c.batch, 100) << c.layer;
        sparse_ms = 5.0;
        dense_ms = 1.0;
      });
  losses.insert(losses.end(), rest.losses.begin(), rest.losses.end());
  EXPECT_EQ(losses, whole.losses);
  EXPECT_EQ(rest.test_accuracy, whole.test_accuracy);
  int replayed = 0;
  for (const KernelChoice& c : rest.choices) replayed += c.replayed;
  EXPECT_EQ(replayed, 3);
}

TEST(KernelChoices, AutoFixedTimesNothingAndFollowsTheRule) {
  TrainOptions o = small_run();
  o.kernels = "auto-fixed";
  o.train_limit = 128;
  int timed = 0;
  Trainer t(o, zoo());
  t.graph().set_kernel_timing_hook([&](const KernelChoice&, double&, double&) { ++timed; });
  std::ostringstream log;
  t.run(log);
  EXPECT_EQ(timed, 0);
  EXPECT_EQ(t.graph().kernel_timings_run(), 0);
  ASSERT_EQ(t.kernel_choices().size(), 6u);
  for (const KernelChoice& c : t.kernel_choices()) {
    EXPECT_EQ(c.decided_by, "rule");
    EXPECT_EQ(c.kernels, "auto-fixed");
    EXPECT_EQ(c.sparse_ms, -1.0);
    EXPECT_EQ(c.sparse, kernel_choice_rule(c.op, c.density));
  }
}

// input(8) -> fc1(16) -> fc2(16), both compressed to `density` of their weights.
Graph two_linears(double density) {
  Graph g;
  NodeId x = g.input("x", {8});
  x = g.linear("fc1", x, {.out_features = 16});
  x = g.linear("fc2", x, {.out_features = 16});
  g.set_output(x);
  g.initialize(1);
  for (const char* name : {"fc1", "fc2"}) {
    const Shape shape = g.parameter(std::string(name) + ".weight").value.shape();
    Tensor mask = Tensor::zeros(shape);
    const int64_t keep = static_cast<int64_t>(density * static_cast<double>(mask.numel()));
    for (int64_t i = 0; i < keep; ++i) mask[i] = 1.0f;
    g.compress(name, mask);
  }
  return g;
}

TEST(KernelChoices, TiesWithinTheMarginFallBackToTheRule) {
  const Tensor x = Tensor::full({4, 8}, 0.5f);
  struct Case {
    double density, sparse_ms, dense_ms;
    const char* decided_by;
    bool sparse;
  };
  // 5% apart: within the margin, the rule (linear: sparse at density <= 0.5);
  // 2x apart: the faster.
  for (const Case& k :
       {Case{0.75, 1.0, 1.05, "margin", false}, Case{0.25, 1.05, 1.0, "margin", true},
        Case{0.75, 1.0, 2.0, "timing", true}, Case{0.25, 2.0, 1.0, "timing", false}}) {
    SCOPED_TRACE(std::to_string(k.density) + " " + k.decided_by);
    Graph g = two_linears(k.density);
    g.set_kernel_timing_hook([&](const KernelChoice&, double& s, double& d) {
      s = k.sparse_ms;
      d = k.dense_ms;
    });
    g.forward(x, ExecMode::kTrain);
    const std::vector<KernelChoice> made = g.kernel_choices();
    ASSERT_EQ(made.size(), 2u);
    EXPECT_EQ(made[0].layer, "fc1");
    EXPECT_EQ(made[0].decided_by, k.decided_by);
    EXPECT_EQ(made[0].sparse, k.sparse);
    EXPECT_EQ(g.sparse_layer_count(), k.sparse ? 2 : 0);
  }
  EXPECT_FALSE(kernel_choice_rule("linear", kLinearSparseMaxDensity + 0.01));
  EXPECT_TRUE(kernel_choice_rule("conv2d", kConvSparseMaxDensity));
}

TEST(KernelChoices, ADecisionIsTimedOncePerGraph) {
  // fc1 is 16x8, fc2 16x16: two problems, two timings; more steps, a
  // re-compression to the same stored count and another mode's pass add none.
  Graph g = two_linears(0.25);
  const Tensor x = Tensor::full({4, 8}, 0.5f);
  for (int step = 0; step < 3; ++step) g.forward(x, ExecMode::kTrain);
  g.forward(x, ExecMode::kInference);
  EXPECT_EQ(g.kernel_timings_run(), 2);
  g.compress("fc1", Tensor::full({16, 8}, 1.0f));  // a new problem
  g.forward(x, ExecMode::kTrain);
  EXPECT_EQ(g.kernel_timings_run(), 3);
  EXPECT_EQ(g.kernel_choices().size(), 3u);
}

TEST(KernelChoices, ADecisionHoldsAtTheLayersOtherBatchesOfTwoVectorsOrMore) {
  Graph g = two_linears(0.25);
  g.set_kernel_timing_hook(favour(/*sparse=*/false));
  g.forward(Tensor::full({64, 8}, 0.5f), ExecMode::kTrain);
  EXPECT_EQ(g.kernel_timings_run(), 2);
  // Other batches of at least kKernelChoiceSharedMinBatch: nothing timed,
  // the same kernels, recorded as taken from batch 64.
  g.set_kernel_timing_hook(favour(/*sparse=*/true));
  g.forward(Tensor::full({100, 8}, 0.5f), ExecMode::kInference);
  g.forward(Tensor::full({kKernelChoiceSharedMinBatch, 8}, 0.5f), ExecMode::kTrain);
  EXPECT_EQ(g.kernel_timings_run(), 2);
  EXPECT_EQ(g.sparse_layer_count(), 0);
  std::vector<KernelChoice> made = g.kernel_choices();
  ASSERT_EQ(made.size(), 6u);
  for (std::size_t i = 2; i < made.size(); ++i) {
    EXPECT_EQ(made[i].decided_by, "batch");
    EXPECT_EQ(made[i].from_batch, 64);
    EXPECT_FALSE(made[i].sparse);
    EXPECT_EQ(made[i].sparse_ms, -1.0);
    EXPECT_EQ(made[i].family, made[i % 2].family);
    EXPECT_NE(made[i].problem, made[i % 2].problem);
  }
  // A smaller batch is its own problem: timed.
  g.forward(Tensor::full({kKernelChoiceSharedMinBatch - 1, 8}, 0.5f), ExecMode::kInference);
  EXPECT_EQ(g.kernel_timings_run(), 4);
  EXPECT_EQ(g.sparse_layer_count(), 2);
  // Another stored count is another family.
  g.compress("fc1", Tensor::full({16, 8}, 1.0f));
  g.forward(Tensor::full({100, 8}, 0.5f), ExecMode::kInference);
  EXPECT_EQ(g.kernel_timings_run(), 5);

  // Replayed records carry their family (through the file's JSON): a new
  // graph decides its other batches from them. Records without one (files
  // written before families) are replayed only for their own batch.
  made = kernel_choices_from_json(kernel_choices_to_json(g.kernel_choices()), "roundtrip");
  for (bool with_family : {true, false}) {
    SCOPED_TRACE(with_family ? "with family" : "without");
    std::vector<KernelChoice> records(made.begin(), made.begin() + 2);
    if (!with_family)
      for (KernelChoice& r : records) r.family.clear();
    Graph h = two_linears(0.25);
    h.replay_kernel_choices(records, "test");
    h.set_kernel_timing_hook(favour(/*sparse=*/true));
    h.forward(Tensor::full({200, 8}, 0.5f), ExecMode::kInference);
    EXPECT_EQ(h.kernel_timings_run(), with_family ? 0 : 2);
    EXPECT_EQ(h.sparse_layer_count(), with_family ? 0 : 2);
  }
}

TEST(KernelChoices, MalformedFilesAreClearErrors) {
  const fs::path dir = temp_dir("malformed");
  struct Case {
    const char* text;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"{not json", "not valid JSON"},
      {"[1, 2]", "not a kernel-choices file"},
      {R"({"choices": {}})", "\"choices\" must be a list"},
      {R"({"format": "other", "choices": []})", "unknown format"},
      {R"({"choices": [{"problem": "p", "choice": "sparse"}]})", "choice 1: missing \"layer\""},
      {R"({"choices": [{"layer": "fc1", "problem": "p", "choice": "fast"}]})",
       "\"choice\" must be \"sparse\" or \"dense\", got \"fast\""},
      {R"({"choices": [{"layer": "fc1", "problem": "p", "choice": "dense", "batch": "x"}]})",
       "choice 1 (layer 'fc1'): \"batch\" must be an integer"},
      {R"({"choices": [{"layer": "fc1", "problem": "p", "choice": "dense"},
                       {"layer": "fc1", "problem": "p", "choice": "sparse"}]})",
       "choice 2 (layer 'fc1'): disagrees with choice 1"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const fs::path file = dir / ("bad" + std::to_string(i) + ".json");
    write_text(file, cases[i].text);
    SCOPED_TRACE(cases[i].text);
    TrainOptions o = small_run();
    o.kernel_choices = file.string();
    expect_error([&] { Trainer t(o, zoo()); }, {file.string(), cases[i].expected});
  }
  expect_error([&] { read_kernel_choices((dir / "absent.json").string()); },
               {"absent.json", "cannot read the kernel choices"});
}

TEST(KernelChoices, ChoicesOfAnotherModelAreRefused) {
  const fs::path dir = temp_dir("other_model");
  const fs::path unknown = dir / "unknown.json";
  write_text(unknown, R"({"choices": [{"layer": "conv9", "op": "conv2d", "problem": "p",
                                        "choice": "sparse"}]})");
  TrainOptions o = small_run();
  o.kernel_choices = unknown.string();
  expect_error(
      [&] { Trainer t(o, zoo()); },
      {"--kernel-choices " + unknown.string(), "layer 'conv9'",
       "no conv2d or linear layer of that name", "conv1, conv2, fc1, fc2, fc3", "another model"});
  const fs::path wrong_op = dir / "wrong_op.json";
  write_text(wrong_op, R"({"choices": [{"layer": "fc1", "op": "conv2d", "problem": "p",
                                         "choice": "sparse"}]})");
  o.kernel_choices = wrong_op.string();
  expect_error([&] { Trainer t(o, zoo()); }, {"recorded for a conv2d layer", "is a linear"});
  // Forced kernels replay nothing.
  o.kernels = "sparse";
  expect_error([&] { validate(o); }, {"--kernel-choices", "--kernels sparse"});
}

TEST(KernelChoices, CommandLineRecordsAndReplays) {
  const fs::path dir = temp_dir("cli");
  const std::string common = std::string("train --model lenet5 --data-dir ") +
                             SPARSETRAIN_TEST_DATA_DIR +
                             " --train-limit 128 --test-limit 100 --batch-size 64 --sparsity 0.9 "
                             "--epochs 1 --lr-schedule constant --threads 2 --no-progress";
  const testing::RunResult first =
      testing::run_cli(common + " --kernels auto-fixed --out " + (dir / "a").string(), true);
  ASSERT_EQ(first.exit_code, 0) << first.out;
  EXPECT_NE(first.out.find("sparse kernels (3/5): conv2, fc1, fc2"), std::string::npos)
      << first.out;
  EXPECT_NE(first.out.find("rule: sparse at density <= 0.50"), std::string::npos) << first.out;
  const testing::RunResult again = testing::run_cli(
      common + " --kernel-choices " + (dir / "a").string() + " --out " + (dir / "b").string(),
      true);
  ASSERT_EQ(again.exit_code, 0) << again.out;
  EXPECT_NE(again.out.find("kernel choices: replaying 6 from"), std::string::npos) << again.out;
  write_text(dir / "bad.json", "{\"choices\": [{\"layer\": \"fc1\"}]}");
  const testing::RunResult bad =
      testing::run_cli(common + " --kernel-choices " + (dir / "bad.json").string(), true);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.out.find("missing \"problem\""), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace sparsetrain

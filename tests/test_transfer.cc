// Transfer fine-tuning (issue 23): an MLP trained 80% sparse on MNIST digits
// 0-4 is fine-tuned on digits 5-9 with a new head. The head has the new
// shape and everything else is the upstream's; after `full` fine-tuning the
// pruned positions are still exactly zero with the same counts, frozen
// layers are bit-identical, and it learned the new task. Bad input is
// refused naming the problem.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "sparsetrain/error.h"
#include "sparsetrain/models.h"
#include "sparsetrain/trainer.h"
#include "sparsetrain/transfer.h"
#include "transfer_fixture.h"

namespace sparsetrain {
namespace {

TEST_F(Transfer, NewHeadAndEverythingElseFromUpstream) {
  Graph up;
  load_model_checkpoint(checkpoint_file(upstream()), zoo_factory(), up);
  const auto before = values_by_name(up);
  Trainer t(downstream("load-only"), zoo_factory());
  Graph& g = t.graph();
  const std::string head = classifier_node(g);
  EXPECT_EQ(head, classifier_node(up));
  EXPECT_EQ(t.options().finetune, "full");
  EXPECT_EQ(t.options().sparsity, 0.0f);  // the upstream's schedule is not inherited
  for (Parameter* p : g.parameters()) {
    SCOPED_TRACE(p->name);
    if (p->name.rfind(head + ".", 0) == 0) {
      EXPECT_FALSE(p->compressed());  // a new, dense head
      if (p->name == head + ".weight") {
        EXPECT_EQ(p->value.shape()[0], 5);
      }
      continue;
    }
    EXPECT_EQ(dense_values(*p), before.at(p->name));
    // Compressed upstream layers stay compressed (the sparse kernels run).
    Parameter& q = up.parameter(p->name);
    EXPECT_EQ(p->compressed(), q.compressed());
  }
}

TEST_F(Transfer, FullFineTuningKeepsMasksAndFrozenLayersAndLearns) {
  TrainOptions o = downstream("full");
  o.freeze = {"fc1.*"};
  Trainer t(o, zoo_factory());
  std::map<std::string, std::vector<int64_t>> masks;
  for (Parameter* p : t.graph().parameters()) {
    if (p->compressed()) masks[p->name] = p->dense_index;
  }
  ASSERT_GE(masks.size(), 2u);
  const auto start = values_by_name(t.graph());
  std::ostringstream log;
  const TrainResult r = t.run(log);
  EXPECT_NE(log.str().find("fine-tuning (full) from"), std::string::npos) << log.str();
  // The upstream's 80% over every layer, less its pruned head.
  EXPECT_NE(log.str().find("79.8% of the prunable weights pruned, masks fixed"), std::string::npos)
      << log.str();
  const auto end = values_by_name(t.graph());
  for (Parameter* p : t.graph().parameters()) {
    SCOPED_TRACE(p->name);
    if (p->name.rfind("fc1.", 0) == 0) {
      EXPECT_EQ(end.at(p->name), start.at(p->name));  // frozen: bit-identical
    } else if (p->trainable()) {
      EXPECT_NE(end.at(p->name), start.at(p->name));  // trained
    }
    const auto it = masks.find(p->name);
    if (it == masks.end()) continue;
    ASSERT_TRUE(p->compressed());
    EXPECT_EQ(p->dense_index, it->second);  // same positions, same count
    const std::vector<float>& v = end.at(p->name);
    std::vector<bool> kept(v.size(), false);
    for (const int64_t i : it->second) kept[i] = true;
    for (size_t i = 0; i < v.size(); ++i) {
      if (!kept[i]) {
        ASSERT_EQ(v[i], 0.0f) << "pruned position " << i;
      }
    }
  }
  // Five new digits, one epoch on 1,000 images: far above chance (20%).
  ASSERT_FALSE(r.epochs.empty());
  EXPECT_GT(r.epochs.back().test_accuracy, 0.8);
}

TEST_F(Transfer, BadInputIsRefusedNamingTheProblem) {
  const auto refused = [](const TrainOptions& o, const std::string& needle) {
    try {
      Trainer t(o, zoo_factory());
      ADD_FAILURE() << "accepted; expected an error with " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  TrainOptions other_model = downstream("bad");
  other_model.model = "lenet5";
  refused(other_model, "holds model 'mlp' but this run trains 'lenet5'");
  TrainOptions other_input = downstream("bad");
  other_input.dataset = "cifar10";
  other_input.classes = "";
  refused(other_input, "was trained on samples [1,28,28] but cifar10 has [3,32,32]");
  TrainOptions out_of_range = downstream("bad");
  out_of_range.classes = "5-10";
  refused(out_of_range, "--classes '5-10': class 10 is out of range");
  TrainOptions repeated = downstream("bad");
  repeated.classes = "5,5";
  refused(repeated, "class 5 is given twice");
  TrainOptions not_linear = downstream("bad");
  not_linear.head = "relu1";
  refused(not_linear, "--head 'relu1' is a relu node; the head replaced is a linear classifier");
  TrainOptions missing = downstream("bad");
  missing.head = "fc9";
  refused(missing, "--head 'fc9': no such node in mlp");
  TrainOptions frozen = downstream("bad");
  frozen.freeze = {"conv*"};
  refused(frozen, "--freeze 'conv*': matches no trainable parameter of mlp");
  TrainOptions sparse = downstream("bad");
  sparse.sparsity = 0.5f;
  refused(sparse, "fine-tuning keeps the upstream checkpoint's masks fixed: drop --sparsity");
}

TEST_F(Transfer, CommandLineFinetuneThenEvalAndResume) {
  const auto run = [](const std::string& args) { return testing::run_cli(args, true); };
  const std::string out = (root_ / "cli").string();
  const auto r = run("finetune --checkpoint " + upstream() +
                     " --classes 5-9 --epochs 2 --max-steps 20 --no-progress --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("fine-tuning (full) from"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("new head 'fc3' (5 outputs: classes 5-9)"), std::string::npos) << r.out;
  const auto resumed = run("finetune --resume " + out + " --no-progress");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out;
  const auto e = testing::run_cli("eval --checkpoint " + out + " --json", false);
  ASSERT_EQ(e.exit_code, 0) << e.out;
  EXPECT_EQ(nlohmann::json::parse(e.out)["classes"], nlohmann::json({"5", "6", "7", "8", "9"}));
  const auto no_checkpoint = run("finetune --classes 5-9 --out " + out + "-x");
  EXPECT_EQ(no_checkpoint.exit_code, 1);
  EXPECT_NE(no_checkpoint.out.find("finetune needs --checkpoint"), std::string::npos)
      << no_checkpoint.out;
  const auto not_linear = run("finetune --checkpoint " + upstream() +
                              " --classes 5-9 --head relu1 --out " + out + "-y");
  EXPECT_EQ(not_linear.exit_code, 1);
  EXPECT_NE(not_linear.out.find("is a relu node"), std::string::npos) << not_linear.out;
}

// bench model --masks-from times a checkpoint's sparse model (its model,
// classes and masks) against the dense one: the fine-tuning step of `full`.
TEST_F(Transfer, BenchModelTakesTheMasksOfACheckpoint) {
  const auto r = testing::run_cli(
      "bench model --masks-from " + upstream() + " --steps 2 --warmup 1 --json", false);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"], "mlp");
  EXPECT_EQ(j["compressed_layers"], 3);  // fc1, fc2 and the 5-class fc3 of the upstream
  EXPECT_NEAR(j["sparsity"].get<double>(), 0.8, 0.002);
  EXPECT_EQ(j["distribution"], "masks of " + upstream());
  const auto missing = testing::run_cli("bench model --masks-from " + upstream() + "-none", true);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.out.find(upstream() + "-none"), std::string::npos) << missing.out;
}

}  // namespace
}  // namespace sparsetrain

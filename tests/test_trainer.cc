// The training loop on real data: it learns, it resumes bit-identically, it
// refuses a diverged loss without touching the checkpoint on disk.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "sparsetrain/error.h"
#include "sparsetrain/models.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;

GraphFactory zoo() {
  return [](const std::string& model, int64_t c, int64_t h, int64_t w, int64_t k) {
    return build_model(model, ModelOptions{c, h, w, k});
  };
}

fs::path temp_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("sparsetrain_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TrainOptions mnist_mlp() {
  TrainOptions o;
  o.model = "mlp";
  o.dataset = "mnist";
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.batch_size = 64;
  o.lr = 0.05f;
  o.momentum = 0.9f;
  o.weight_decay = 0.0f;
  o.threads = 2;
  o.progress = false;
  return o;
}

TEST(Trainer, MlpLearnsMnistSubset) {
  TrainOptions o = mnist_mlp();
  o.train_limit = 10000;
  o.epochs = 3;
  Trainer t(o, zoo());
  std::ostringstream log;
  const TrainResult r = t.run(log);
  EXPECT_GE(r.test_accuracy, 0.95) << log.str();
  ASSERT_EQ(r.epochs.size(), 3u);
  EXPECT_LT(r.epochs.back().loss, r.epochs.front().loss);
  // The step times are part of the epoch's time, and so are the loader's.
  for (const EpochStats& e : r.epochs) {
    EXPECT_GT(e.step_ms_median, 0.0);
    EXPECT_GE(e.data_seconds, 0.0);
    const int64_t steps = (o.train_limit + o.batch_size - 1) / o.batch_size;
    EXPECT_LE(1e-3 * e.step_ms_median * static_cast<double>(steps) / 2 + e.data_seconds, e.seconds);
  }
}

TEST(Trainer, StepEventsCarryTheirTime) {
  TrainOptions o = mnist_mlp();
  o.train_limit = 640;
  o.test_limit = 100;
  o.log_every = 3;
  const fs::path dir = temp_dir("step_events");
  o.metrics_path = (dir / "metrics.jsonl").string();
  Trainer t(o, zoo());
  std::ostringstream log;
  t.run(log);
  std::istringstream lines(read_all(dir / "metrics.jsonl"));
  int step_events = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\"event\":\"step\"") == std::string::npos) continue;
    ++step_events;
    EXPECT_NE(line.find("\"ms\":"), std::string::npos) << line;
  }
  EXPECT_EQ(step_events, 4);  // steps 0, 3, 6, 9 of 10
  const std::string metrics = read_all(dir / "metrics.jsonl");
  EXPECT_NE(metrics.find("\"step_ms_median\":"), std::string::npos);
  EXPECT_NE(metrics.find("\"data_seconds\":"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Trainer, ResumedRunIsBitIdentical) {
  // LeNet-5 on augmented CIFAR-10 covers oneDNN convolutions, shuffling and
  // random crops/flips: all must replay exactly after a resume.
  TrainOptions o = mnist_mlp();
  o.model = "lenet5";
  o.dataset = "cifar10";
  o.train_limit = 1280;
  o.test_limit = 200;
  o.epochs = 2;
  o.batch_size = 128;
  o.lr = 0.02f;
  o.weight_decay = 5e-4f;
  o.augment = 1;

  TrainOptions whole = o;
  whole.out_dir = temp_dir("whole").string();
  Trainer a(whole, zoo());
  std::ostringstream log;
  const TrainResult ra = a.run(log);
  ASSERT_EQ(ra.step_losses.size(), 20u);

  TrainOptions first = o;
  first.out_dir = temp_dir("split").string();
  first.max_steps = 13;  // stops in the middle of epoch 2
  std::vector<float> losses;
  {
    Trainer b(first, zoo());
    const TrainResult rb = b.run(log);
    EXPECT_TRUE(rb.interrupted);
    losses = rb.step_losses;
  }
  ASSERT_EQ(losses.size(), 13u);
  TrainOptions second = o;
  second.out_dir = first.out_dir;
  second.resume_dir = first.out_dir;
  Trainer c(second, zoo());
  const TrainResult rc = c.run(log);
  EXPECT_FALSE(rc.interrupted);
  losses.insert(losses.end(), rc.step_losses.begin(), rc.step_losses.end());
  ASSERT_EQ(losses.size(), ra.step_losses.size());
  for (std::size_t i = 0; i < losses.size(); ++i) {
    EXPECT_EQ(losses[i], ra.step_losses[i]) << "step " << i;
  }
  for (Parameter* p : a.graph().parameters()) {
    EXPECT_TRUE(p->value.equals(c.graph().parameter(p->name).value)) << p->name;
  }
  EXPECT_EQ(ra.test_accuracy, rc.test_accuracy);
  ASSERT_EQ(rc.epochs.size(), 2u);
  EXPECT_EQ(rc.epochs[0].loss, ra.epochs[0].loss);
  EXPECT_EQ(rc.epochs[1].loss, ra.epochs[1].loss);
}

TEST(Trainer, DivergedLossIsAnErrorAndKeepsTheCheckpoint) {
  TrainOptions o = mnist_mlp();
  o.train_limit = 640;
  o.test_limit = 100;
  o.out_dir = temp_dir("nan").string();
  {
    Trainer ok(o, zoo());
    std::ostringstream log;
    ok.run(log);
  }
  const fs::path ck = fs::path(o.out_dir) / "checkpoint.safetensors";
  const std::string before = read_all(ck);
  ASSERT_FALSE(before.empty());
  o.lr = 1e5f;
  o.epochs = 3;
  o.force = true;  // a new run into the same folder
  Trainer bad(o, zoo());
  std::ostringstream log;
  try {
    bad.run(log);
    FAIL() << "no error for a diverged loss";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("the loss is"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--lr"), std::string::npos) << msg;
  }
  EXPECT_EQ(read_all(ck), before) << "the checkpoint on disk must not change";
}

TEST(Trainer, CheckpointRoundTripGivesTheSameModel) {
  TrainOptions o = mnist_mlp();
  o.train_limit = 640;
  o.test_limit = 300;
  o.out_dir = temp_dir("roundtrip").string();
  Trainer t(o, zoo());
  std::ostringstream log;
  const TrainResult r = t.run(log);
  Graph g;
  const TrainOptions saved =
      load_model_checkpoint((fs::path(o.out_dir) / "checkpoint.safetensors").string(), zoo(), g);
  EXPECT_EQ(saved.model, "mlp");
  const EvalResult ev = evaluate_graph(g, t.test_data(), 100);
  EXPECT_EQ(ev.accuracy, r.test_accuracy);
  EXPECT_EQ(ev.class_accuracy.size(), 10u);
}

TEST(Trainer, BadOptionsNameTheOption) {
  TrainOptions o = mnist_mlp();
  o.batch_size = 0;
  try {
    Trainer t(o, zoo());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--batch-size"), std::string::npos);
  }
  o = mnist_mlp();
  o.model = "resnet20";
  o.dataset = "nosuchset";
  EXPECT_THROW(Trainer(o, zoo()), Error);
}

}  // namespace
}  // namespace sparsetrain

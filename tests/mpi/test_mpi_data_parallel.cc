// Data-parallel training over MPI, run by ctest under mpirun with 1, 2 and 4
// ranks (tests/mpi/CMakeLists.txt). Every rank runs every test and makes the
// same collective calls, so only EXPECT_* is used (an ASSERT returning early
// on one rank would leave the others waiting). Each test trains the same
// run twice in every rank: alone on whole batches (the reference) and
// data-parallel on its share of them; the two must agree to float-summation
// tolerance, and bit for bit with one rank.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sstream>

#include "sparsetrain/distributed.h"
#include "sparsetrain/error.h"
#include "sparsetrain/models.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
namespace {

std::shared_ptr<DataParallel> g_ranks;

TrainOptions lenet5_mnist() {
  TrainOptions o = recommended_options("lenet5");
  o.model = "lenet5";
  o.dataset = "mnist";
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.train_limit = 1200;  // 24 global batches of 50
  o.test_limit = 500;
  o.epochs = 1;
  o.threads = 1;
  o.progress = false;
  o.kernels = "auto-fixed";  // the same kernels in both runs of a rank
  o.seed = 3;
  return o;
}

struct TrainedRun {
  TrainResult result;
  std::vector<std::vector<float>> stored;  // every parameter's stored values
  std::vector<Tensor> values;              // and its logical (dense) value
  std::vector<Tensor> kept;                // and which entries it keeps
  uint64_t masks = 0;
};

TrainedRun train(const TrainOptions& o, bool parallel) {
  Trainer t(o, zoo_factory());
  if (parallel) t.set_data_parallel(g_ranks);
  std::ostringstream log;
  TrainedRun run;
  run.result = t.run(log);
  for (Parameter* p : t.graph().parameters()) {
    run.stored.emplace_back(p->value.data(), p->value.data() + p->value.numel());
    run.values.push_back(dense_value(*p));
    run.kept.push_back(kept_mask(*p));
  }
  run.masks = mask_fingerprint(t.graph());
  return run;
}

// The data-parallel run against the single-process one: the loss of every
// step, the final weights and masks. One rank repeats the run bit for bit.
// With more, the gradients are summed in another order and differ in the
// last bits: the losses and weights agree to float tolerance, and a mask
// decision may go the other way only where two candidates are that close
// (a handful of positions at most; the ranks among themselves always agree).
void expect_same_training(const TrainedRun& alone, const TrainedRun& parallel, const char* what) {
  const auto& a = alone.result.step_losses;
  const auto& b = parallel.result.step_losses;
  EXPECT_EQ(a.size(), b.size()) << what;
  double worst_loss = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst_loss = std::max(worst_loss, std::abs(static_cast<double>(a[i]) - b[i]) / std::abs(a[i]));
  double worst_weight = 0;
  int64_t mask_flips = 0, positions = 0;
  EXPECT_EQ(alone.values.size(), parallel.values.size()) << what;
  for (std::size_t p = 0; p < std::min(alone.values.size(), parallel.values.size()); ++p) {
    const Tensor &va = alone.values[p], &vb = parallel.values[p];
    const Tensor &ka = alone.kept[p], &kb = parallel.kept[p];
    EXPECT_EQ(va.numel(), vb.numel()) << what << " parameter " << p;
    if (va.numel() != vb.numel()) continue;
    positions += va.numel();
    for (int64_t i = 0; i < va.numel(); ++i) {
      if (ka[i] != kb[i]) {
        ++mask_flips;
        continue;
      }
      worst_weight = std::max(worst_weight, static_cast<double>(std::abs(va[i] - vb[i])));
    }
  }
  if (g_ranks->ranks() == 1) {
    EXPECT_EQ(a, b) << what << ": one rank must repeat the single-process run bit for bit";
    EXPECT_TRUE(alone.stored == parallel.stored)
        << what << ": weights differ by up to " << worst_weight;
    EXPECT_EQ(alone.masks, parallel.masks) << what;
  } else {
    EXPECT_LT(worst_loss, 1e-3) << what << ": step losses differ by up to " << worst_loss;
    EXPECT_LT(worst_weight, 5e-3) << what << ": weights differ by up to " << worst_weight;
    EXPECT_LE(mask_flips, positions / 1000)
        << what << ": masks differ at " << mask_flips << " of " << positions << " positions";
  }
  if (g_ranks->rank() == 0)
    std::printf(
        "[ rank 0/%d ] %s: %zu steps, loss differs by <= %.2e (relative), weights by <= "
        "%.2e, masks at %lld of %lld positions; accuracy %.2f%% alone, %.2f%% "
        "data-parallel\n",
        g_ranks->ranks(), what, a.size(), worst_loss, worst_weight,
        static_cast<long long>(mask_flips), static_cast<long long>(positions),
        100 * alone.result.test_accuracy, 100 * parallel.result.test_accuracy);
  // Every rank holds the same masks (the trainer also compares them after
  // every change).
  EXPECT_NO_THROW(g_ranks->check_equal(parallel.masks, std::string(what) + ": final masks"));
}

TEST(DataParallel, DenseLeNet5MatchesOneProcess) {
  const TrainOptions o = lenet5_mnist();
  const TrainedRun alone = train(o, false);
  const TrainedRun parallel = train(o, true);
  expect_same_training(alone, parallel, "dense LeNet-5");
}

TEST(DataParallel, AcdcMatchesOneProcessWithEqualMasks) {
  TrainOptions o = lenet5_mnist();
  o.sparsity_method = "acdc";
  o.sparsity = 0.9f;
  o.compress_epochs = {0.25, 0.75};
  o.decompress_epochs = {0.5};
  const TrainedRun alone = train(o, false);
  const TrainedRun parallel = train(o, true);
  expect_same_training(alone, parallel, "AC/DC 90% LeNet-5");
}

TEST(DataParallel, GmpMatchesOneProcessWithEqualMasks) {
  TrainOptions o = lenet5_mnist();
  o.sparsity_method = "gmp";
  o.sparsity = 0.9f;
  o.prune_start_epoch = 0.1;
  o.prune_end_epoch = 0.6;
  o.prune_every_steps = 3;
  const TrainedRun alone = train(o, false);
  const TrainedRun parallel = train(o, true);
  expect_same_training(alone, parallel, "GMP 90% LeNet-5");
}

TEST(DataParallel, RiglGrowsFromSummedDenseGradients) {
  TrainOptions o = lenet5_mnist();
  o.sparsity_method = "rigl";
  o.sparsity = 0.9f;
  o.prune_every_steps = 5;
  const TrainedRun alone = train(o, false);
  const TrainedRun parallel = train(o, true);
  expect_same_training(alone, parallel, "RigL 90% LeNet-5");
}

// The bytes each rank all-reduces for a 90%-sparse ResNet-20 are its stored
// gradient entries: the nonzeros of the compressed layers plus the dense
// parameters, not the dense size.
DataParallelStats one_resnet20_step(float sparsity, int64_t& stored, int64_t& weights,
                                    int64_t& compressed_layers) {
  TrainOptions o = recommended_options("resnet20");
  o.model = "resnet20";
  o.dataset = "cifar10";
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.train_limit = 8 * g_ranks->ranks();
  o.test_limit = 10;
  o.batch_size = 4 * g_ranks->ranks();
  o.epochs = 1;
  o.max_steps = 1;
  o.threads = 1;
  o.progress = false;
  o.lr_schedule = "constant";
  o.sparsity = sparsity;  // static: magnitude masks from the start, compressed
  Trainer t(o, zoo_factory());
  t.set_data_parallel(g_ranks);
  std::ostringstream log;
  t.run(log);
  stored = weights = compressed_layers = 0;
  for (Parameter* p : t.graph().parameters()) {
    if (!p->updated()) continue;
    stored += p->compressed() ? static_cast<int64_t>(p->dense_index.size()) : p->value.numel();
    weights += p->prunable();
    compressed_layers += p->compressed();
  }
  return g_ranks->stats();
}

TEST(DataParallel, CompressedResNet20SendsItsNonzerosOnly) {
  int64_t stored = 0, weights = 0, compressed = 0;
  const DataParallelStats dense = one_resnet20_step(0.0f, stored, weights, compressed);
  EXPECT_EQ(compressed, 0);
  EXPECT_EQ(dense.values_last_step, stored);
  EXPECT_EQ(dense.values_last_step, dense.dense_values_last_step);
  EXPECT_GT(dense.buckets_last_step, 1);  // reductions start during backward
  const DataParallelStats sparse = one_resnet20_step(0.9f, stored, weights, compressed);
  EXPECT_EQ(compressed, weights - 2);  // all weights but the first and last
  EXPECT_EQ(sparse.values_last_step, stored);
  EXPECT_EQ(sparse.bytes_last_step, 4 * stored);
  EXPECT_EQ(sparse.dense_values_last_step, dense.values_last_step);
  EXPECT_LT(static_cast<double>(sparse.values_last_step),
            0.15 * static_cast<double>(dense.values_last_step));
  if (g_ranks->rank() == 0)
    std::printf(
        "[ rank 0/%d ] ResNet-20 all-reduce per step: dense %lld floats (%lld bytes, %lld "
        "buckets), 90%% sparse %lld floats (%lld bytes, %lld buckets): %.1fx fewer\n",
        g_ranks->ranks(), static_cast<long long>(dense.values_last_step),
        static_cast<long long>(dense.bytes_last_step),
        static_cast<long long>(dense.buckets_last_step),
        static_cast<long long>(sparse.values_last_step),
        static_cast<long long>(sparse.bytes_last_step),
        static_cast<long long>(sparse.buckets_last_step),
        static_cast<double>(dense.values_last_step) / static_cast<double>(sparse.values_last_step));
}

TEST(DataParallel, MismatchedMasksStopWithAnError) {
  Graph g = build_model("mlp", ModelOptions{1, 28, 28, 10});
  g.initialize(1);
  Tensor mask = Tensor::full(g.parameter("fc1.weight").value.shape(), 1.0f);
  if (g_ranks->rank() == g_ranks->ranks() - 1 && g_ranks->ranks() > 1) mask.data()[7] = 0.0f;
  g.mask("fc1", mask);
  if (g_ranks->ranks() == 1) {
    EXPECT_NO_THROW(g_ranks->check_equal(mask_fingerprint(g), "the masks"));
    return;
  }
  try {
    g_ranks->check_equal(mask_fingerprint(g), "the masks");
    ADD_FAILURE() << "different masks were not noticed";
  } catch (const Error& e) {
    const std::string last = std::to_string(g_ranks->ranks() - 1);
    EXPECT_NE(std::string(e.what()).find("the masks differs between the ranks: rank " + last),
              std::string::npos)
        << e.what();
  }
}

TEST(DataParallel, SumsAndChecksAcrossRanks) {
  double v[2] = {1.0, static_cast<double>(g_ranks->rank())};
  g_ranks->sum(v, "a test sum");
  const int n = g_ranks->ranks();
  EXPECT_EQ(v[0], n);
  EXPECT_EQ(v[1], n * (n - 1) / 2);
  EXPECT_NO_THROW(g_ranks->check_equal(42, "a constant"));
  EXPECT_NO_THROW(g_ranks->barrier("a test barrier"));
}

}  // namespace
}  // namespace sparsetrain

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  sparsetrain::MpiOptions mpi;
  mpi.timeout_seconds = 120;
  sparsetrain::g_ranks = sparsetrain::mpi_data_parallel(mpi);
  if (sparsetrain::g_ranks->rank() != 0) {
    // Rank 0 reports; the others' failures still fail the run (below).
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  double failures[1] = {failed != 0 ? 1.0 : 0.0};
  sparsetrain::g_ranks->sum(failures, "the test results");
  if (failures[0] > 0 && sparsetrain::g_ranks->rank() == 0)
    std::printf("%d rank(s) had failures\n", static_cast<int>(failures[0]));
  sparsetrain::g_ranks.reset();
  return failures[0] > 0 ? 1 : 0;
}

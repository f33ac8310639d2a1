// Compressed and masked weights in checkpoints (format 2): exact round trips
// of values, masks and optimizer state with a bit-identical continuation,
// the file size at 90% sparsity, every kind of corrupt sparse tensor, and
// format-1 files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sparsetrain/checkpoint.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/loss.h"
#include "sparsetrain/models.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/sparsity.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr float kSparsity = 0.9f;
// DESIGN.md "Files": a 90%-sparse model's file at most a fifth of the dense one.
constexpr double kMaxSizeRatio = 0.2;

GraphFactory zoo() {
  return [](const std::string& model, int64_t c, int64_t h, int64_t w, int64_t k) {
    return build_model(model, ModelOptions{c, h, w, k});
  };
}

class SparseCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("sparsetrain_ckpt_sparse_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TrainOptions mlp_options(float sparsity, const std::string& storage) {
  TrainOptions o;
  o.model = "mlp";
  o.dataset = "mnist";
  o.data_dir = SPARSETRAIN_TEST_DATA_DIR;
  o.train_limit = 500;
  o.test_limit = 100;
  o.batch_size = 50;
  o.lr = 0.05f;
  o.lr_schedule = "constant";
  o.momentum = 0.9f;
  o.weight_decay = 5e-4f;
  o.threads = 2;
  o.sparsity = sparsity;
  o.sparse_storage = storage;
  // The timed choice of `auto` may differ between two trainers.
  o.kernels = "sparse";
  o.progress = false;
  return o;
}

std::vector<Batch> batches(const Dataset& data, int count) {
  Loader loader(data, 50, /*shuffle=*/true, AugmentOptions{}, /*seed=*/7);
  loader.start_epoch(0);
  std::vector<Batch> out(static_cast<std::size_t>(count));
  for (Batch& b : out) EXPECT_TRUE(loader.next(b));
  return out;
}

// Stored value by flat position of a compressed parameter.
std::map<int64_t, float> by_position(const Parameter& p) {
  std::map<int64_t, float> out;
  for (std::size_t k = 0; k < p.dense_index.size(); ++k)
    out[p.dense_index[k]] = p.value[static_cast<int64_t>(k)];
  return out;
}

// Every tensor of two checkpoint files has the same dtype, shape and bytes.
void expect_same_tensors(const std::string& a_path, const std::string& b_path) {
  const Checkpoint a = Checkpoint::load(a_path);
  const Checkpoint b = Checkpoint::load(b_path);
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& name : a.names()) {
    const CheckpointTensor& ta = a.raw(name);
    const CheckpointTensor& tb = b.raw(name);
    EXPECT_EQ(ta.dtype, tb.dtype) << name;
    EXPECT_EQ(ta.shape, tb.shape) << name;
    EXPECT_TRUE(ta.bytes == tb.bytes) << name;
  }
  EXPECT_EQ(a.meta("sparse"), b.meta("sparse"));
}

void expect_same_parameters(Graph& a, Graph& b) {
  const std::vector<Parameter*> pa = a.parameters();
  const std::vector<Parameter*> pb = b.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const Parameter& x = *pa[i];
    const Parameter& y = *pb[i];
    ASSERT_EQ(x.name, y.name);
    ASSERT_EQ(x.compressed(), y.compressed()) << x.name;
    ASSERT_EQ(x.masked(), y.masked()) << x.name;
    if (x.compressed()) {
      EXPECT_EQ(x.dense_shape, y.dense_shape) << x.name;
      EXPECT_EQ(by_position(x), by_position(y)) << x.name;
    } else {
      EXPECT_TRUE(x.value.equals(y.value)) << x.name;
    }
    if (x.masked()) {
      EXPECT_TRUE(x.mask.equals(y.mask)) << x.name;
    }
  }
}

// Saves after some steps, loads into a second trainer, and checks that the
// file reads back to the same tensors and both trainers continue with the
// same losses, bit for bit.
void check_round_trip(const TrainOptions& o, const std::string& file1, const std::string& file2) {
  Trainer a(o, zoo());
  const std::vector<Batch> data = batches(a.train_data(), 8);
  for (int k = 0; k < 4; ++k) a.step(data[k].images, data[k].labels);
  a.save_checkpoint(file1);

  Trainer b(o, zoo());
  b.load_checkpoint(file1);
  expect_same_parameters(a.graph(), b.graph());
  b.save_checkpoint(file2);
  expect_same_tensors(file1, file2);

  for (int k = 4; k < 8; ++k) {
    const float la = a.step(data[k].images, data[k].labels);
    const float lb = b.step(data[k].images, data[k].labels);
    EXPECT_EQ(la, lb) << "step " << k;
  }
  expect_same_parameters(a.graph(), b.graph());
}

TEST_F(SparseCheckpointTest, CompressedMlpRoundTripContinuesBitIdentically) {
  const TrainOptions o = mlp_options(kSparsity, "compressed");
  check_round_trip(o, path("a.safetensors"), path("b.safetensors"));

  // The file holds the nonzeros in increasing flat position, one bit per
  // dense entry, and the momentum of the nonzeros only.
  const Checkpoint ck = Checkpoint::load(path("a.safetensors"));
  EXPECT_EQ(ck.meta("format"), "sparsetrain-checkpoint-2");
  EXPECT_FALSE(ck.has("param/fc1.weight"));
  const json sparse = json::parse(ck.meta("sparse"));
  ASSERT_TRUE(sparse.contains("fc1.weight"));
  EXPECT_EQ(sparse["fc1.weight"]["state"], "compressed");
  const int64_t nnz = sparse["fc1.weight"]["nnz"].get<int64_t>();
  EXPECT_EQ(nnz, 23520);  // 10% of 300 x 784
  EXPECT_EQ(ck.raw("sparse/fc1.weight/values").shape, Shape({nnz}));
  EXPECT_EQ(ck.raw("sparse/fc1.weight/bitmask").shape, Shape({300 * 784 / 8}));
  EXPECT_EQ(ck.raw("optim/fc1.weight.momentum").shape, Shape({nnz}));

  Trainer t(o, zoo());
  t.load_checkpoint(path("a.safetensors"));
  const Parameter& p = t.graph().parameter("fc1.weight");
  const std::map<int64_t, float> expected = by_position(p);
  const Tensor values = ck.get("sparse/fc1.weight/values");
  const std::vector<uint8_t> bits = ck.get_u8("sparse/fc1.weight/bitmask", {300 * 784 / 8});
  int64_t k = 0;
  for (int64_t i = 0; i < 300 * 784; ++i) {
    if (((bits[static_cast<std::size_t>(i / 8)] >> (i % 8)) & 1) == 0) continue;
    ASSERT_TRUE(expected.count(i)) << "bit " << i << " set for a pruned entry";
    EXPECT_EQ(values[k], expected.at(i)) << "entry " << k;
    ++k;
  }
  EXPECT_EQ(k, nnz);
}

TEST_F(SparseCheckpointTest, MaskedMlpRoundTripContinuesBitIdentically) {
  const TrainOptions o = mlp_options(kSparsity, "masked");
  check_round_trip(o, path("a.safetensors"), path("b.safetensors"));
  const Checkpoint ck = Checkpoint::load(path("a.safetensors"));
  EXPECT_EQ(json::parse(ck.meta("sparse"))["fc2.weight"]["state"], "masked");
  EXPECT_EQ(ck.raw("param/fc2.weight").shape, Shape({100, 300}));
  EXPECT_EQ(ck.raw("sparse/fc2.weight/bitmask").shape, Shape({100 * 300 / 8}));
}

TEST_F(SparseCheckpointTest, NinetyPercentFileIsUnderAFifthOfTheDenseOne) {
  uintmax_t sizes[2] = {0, 0};
  const float sparsities[2] = {0.0f, kSparsity};
  for (int i = 0; i < 2; ++i) {
    Trainer t(mlp_options(sparsities[i], "compressed"), zoo());
    const std::vector<Batch> data = batches(t.train_data(), 2);
    for (const Batch& b : data) t.step(b.images, b.labels);  // momentum exists
    const std::string file = path("mlp" + std::to_string(i) + ".safetensors");
    t.save_checkpoint(file);
    sizes[i] = fs::file_size(file);
  }
  const double ratio = static_cast<double>(sizes[1]) / static_cast<double>(sizes[0]);
  RecordProperty("dense_bytes", std::to_string(sizes[0]));
  RecordProperty("sparse_bytes", std::to_string(sizes[1]));
  EXPECT_LE(ratio, kMaxSizeRatio) << sizes[1] << " vs " << sizes[0] << " bytes";
}

// One SGD step on a fixed random batch: fills the momentum.
void sgd_step(Graph& g, Optimizer& opt, const Shape& input, int64_t classes) {
  Rng rng(3);
  Tensor x = Tensor::empty(input);
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
  std::vector<int32_t> labels(static_cast<std::size_t>(input[0]));
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % classes);
  const std::vector<Parameter*> params = g.parameters();
  Optimizer::zero_grad(params);
  const Tensor logits = g.forward(x, /*training=*/true);
  Tensor diff = Tensor::empty(logits.shape());
  softmax_cross_entropy(logits, labels, &diff);
  g.backward(diff);
  opt.step(params, 0.05f);
}

// A convolutional model (ResNet-20: convs, BatchNorm, a linear classifier),
// every prunable layer compressed at 90%: the round trip of values, masks,
// BatchNorm statistics and momentum, and the file size against the dense
// model's.
TEST_F(SparseCheckpointTest, CompressedResnet20RoundTripAndSize) {
  const ModelOptions shape{3, 32, 32, 10};
  const Shape input{2, 3, 32, 32};
  uintmax_t dense_bytes = 0;
  {
    Graph g = build_model("resnet20", shape);
    g.initialize(1);
    SGD sgd(0.9f, false, 5e-4f);
    sgd_step(g, sgd, input, 10);
    Checkpoint ck;
    save_parameters(ck, g.parameters());
    save_optimizer_state(ck, sgd, g.parameters());
    ck.save(path("dense.safetensors"));
    dense_bytes = fs::file_size(path("dense.safetensors"));
  }

  // Kernels fixed (not timed), so both graphs compute alike.
  Graph g = build_model("resnet20", shape);
  g.initialize(1);
  g.set_sparse_kernels("dense");
  const std::vector<PrunableLayer> layers = prunable_layers(g, /*dense_first_last=*/false);
  const std::vector<Tensor> masks = magnitude_masks(g, layers, kSparsity, Distribution::kUniform);
  try {
    for (std::size_t l = 0; l < layers.size(); ++l) g.compress(layers[l].node, masks[l]);
  } catch (const Error& e) {
    GTEST_SKIP() << "conv layers cannot be compressed yet: " << e.what();
  }
  SGD sgd(0.9f, false, 5e-4f);
  sgd_step(g, sgd, input, 10);
  sgd_step(g, sgd, input, 10);
  Checkpoint ck;
  save_parameters(ck, g.parameters());
  save_optimizer_state(ck, sgd, g.parameters());
  ck.save(path("sparse.safetensors"));
  const uintmax_t sparse_bytes = fs::file_size(path("sparse.safetensors"));
  EXPECT_LE(static_cast<double>(sparse_bytes) / static_cast<double>(dense_bytes), kMaxSizeRatio)
      << sparse_bytes << " vs " << dense_bytes << " bytes";

  Graph h = build_model("resnet20", shape);
  h.initialize(2);
  h.set_sparse_kernels("dense");
  const Checkpoint back = Checkpoint::load(path("sparse.safetensors"));
  load_graph_parameters(back, h);
  SGD sgd2(0.9f, false, 5e-4f);
  load_optimizer_state(back, sgd2, h.parameters());
  expect_same_parameters(g, h);
  for (const PrunableLayer& l : layers) {
    Parameter& pg = g.parameter(l.param);
    Parameter& ph = h.parameter(l.param);
    ASSERT_TRUE(ph.compressed()) << l.param;
    const Optimizer::ParamState* sg = sgd.state_of(l.param);
    const Optimizer::ParamState* sh = sgd2.state_of(l.param);
    ASSERT_TRUE(sg != nullptr && sh != nullptr) << l.param;
    std::map<int64_t, float> mg, mh;
    for (std::size_t k = 0; k < pg.dense_index.size(); ++k) {
      mg[pg.dense_index[k]] = sg->slot[0][static_cast<int64_t>(k)];
      mh[ph.dense_index[k]] = sh->slot[0][static_cast<int64_t>(k)];
    }
    EXPECT_EQ(mg, mh) << "momentum of " << l.param;
  }
  // The same next step on both.
  sgd_step(g, sgd, input, 10);
  sgd_step(h, sgd2, input, 10);
  expect_same_parameters(g, h);
}

// --- corrupt files --------------------------------------------------------------

// input (10) -> linear fc (7 x 10: 70 entries, so the bitmask's last byte
// has two unused bits).
Graph tiny_graph(uint64_t seed) {
  Graph g;
  NodeId x = g.input("x", {10});
  x = g.linear("fc", x, {.out_features = 7});
  g.set_output(x);
  g.initialize(seed);
  return g;
}

Checkpoint tiny_checkpoint(bool masked) {
  Graph g = tiny_graph(5);
  const Tensor mask = magnitude_mask(g.parameter("fc.weight").value, 0.5f);
  if (masked) {
    g.mask("fc", mask);
  } else {
    g.compress("fc", mask);
  }
  Checkpoint ck;
  save_parameters(ck, g.parameters());
  return ck;
}

class CorruptSparseTest : public SparseCheckpointTest {
 protected:
  // Saves `ck`, loads it into a fresh graph and expects an Error naming the
  // file and `needle`; the graph must be left as it was.
  void expect_refused(const Checkpoint& ck, const std::string& needle) {
    const std::string file = path("bad.safetensors");
    ck.save(file);
    Graph g = tiny_graph(9);
    const Tensor before = g.parameter("fc.weight").value.clone();
    try {
      load_graph_parameters(Checkpoint::load(file), g);
      ADD_FAILURE() << "loaded a corrupt checkpoint (expected an error about " << needle << ")";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(file), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
    const Parameter& p = g.parameter("fc.weight");
    EXPECT_FALSE(p.compressed());
    EXPECT_TRUE(p.value.equals(before));
  }
};

TEST_F(CorruptSparseTest, ValidTinyCheckpointsLoad) {
  for (const bool masked : {false, true}) {
    const std::string file = path("good.safetensors");
    tiny_checkpoint(masked).save(file);
    Graph g = tiny_graph(9);
    load_graph_parameters(Checkpoint::load(file), g);
    EXPECT_EQ(g.parameter("fc.weight").compressed(), !masked);
    EXPECT_EQ(g.parameter("fc.weight").masked(), masked);
    EXPECT_EQ(sparsity_report(g).prunable_nonzero, 35);
  }
}

TEST_F(CorruptSparseTest, BitmaskCountDisagreesWithValues) {
  Checkpoint ck = tiny_checkpoint(false);
  std::vector<uint8_t> bits = ck.raw("sparse/fc.weight/bitmask").bytes;
  for (uint8_t& b : bits) {
    if (b != 0xff) {
      b |= static_cast<uint8_t>(~b & (b + 1));  // one more bit: the lowest clear one
      break;
    }
  }
  ck.put_u8("sparse/fc.weight/bitmask", {9}, bits);
  expect_refused(ck, "sparse/fc.weight/bitmask' marks 36 stored entries");
}

TEST_F(CorruptSparseTest, BitPastTheEndOfTheWeight) {
  Checkpoint ck = tiny_checkpoint(false);
  std::vector<uint8_t> bits = ck.raw("sparse/fc.weight/bitmask").bytes;
  bits[8] |= 0x80;  // bit 71 of a 70-entry weight
  ck.put_u8("sparse/fc.weight/bitmask", {9}, bits);
  expect_refused(ck, "sets bit 71 past the weight's 70 entries");
}

TEST_F(CorruptSparseTest, ValuesOfTheWrongLength) {
  Checkpoint ck = tiny_checkpoint(false);
  ck.put("sparse/fc.weight/values", Tensor::zeros({34}));
  expect_refused(ck, "sparse/fc.weight/values' is F32 (34), expected F32 (35)");
}

TEST_F(CorruptSparseTest, MissingTensors) {
  Checkpoint ck = tiny_checkpoint(false);
  ck.remove("sparse/fc.weight/bitmask");
  expect_refused(ck, "sparse/fc.weight/bitmask' is missing");
  Checkpoint ck2 = tiny_checkpoint(false);
  ck2.remove("sparse/fc.weight/values");
  expect_refused(ck2, "sparse/fc.weight/values' is missing");
}

TEST_F(CorruptSparseTest, BadSparseMetadata) {
  Checkpoint ck = tiny_checkpoint(false);
  ck.metadata()["sparse"] = "{not json";
  expect_refused(ck, "metadata 'sparse' is not valid JSON");

  Checkpoint nnz = tiny_checkpoint(false);
  nnz.metadata()["sparse"] =
      R"({"fc.weight": {"state": "compressed", "shape": [7, 10], "nnz": 71}})";
  expect_refused(nnz, "'nnz' must be an integer between 0 and the 70 entries");

  Checkpoint state = tiny_checkpoint(false);
  state.metadata()["sparse"] = R"({"fc.weight": {"state": "csr", "shape": [7, 10], "nnz": 35}})";
  expect_refused(state, "sparse tensor 'fc.weight': 'state' must be");

  Checkpoint shape = tiny_checkpoint(false);
  shape.metadata()["sparse"] =
      R"({"fc.weight": {"state": "compressed", "shape": [70], "nnz": 35}})";
  expect_refused(shape, "sparse tensor 'fc.weight' has shape (70), the model's is (7, 10)");

  Checkpoint other = tiny_checkpoint(false);
  other.metadata()["sparse"] =
      R"({"fc.weight": {"state": "compressed", "shape": [7, 10], "nnz": 35},
          "fc.bias": {"state": "masked", "shape": [7], "nnz": 7}})";
  other.put_u8("sparse/fc.bias/bitmask", {1}, {0x7f});
  expect_refused(other, "'fc.bias' is not a prunable weight");
}

TEST_F(CorruptSparseTest, StrayAndAmbiguousTensors) {
  Checkpoint stray = tiny_checkpoint(false);
  stray.put("sparse/fc.weight/extra", Tensor::zeros({1}));
  expect_refused(stray, "sparse/fc.weight/extra' belongs to no entry");

  Checkpoint both = tiny_checkpoint(false);
  both.put("param/fc.weight", Tensor::zeros({7, 10}));
  expect_refused(both, "holds it dense as well");
}

TEST_F(CorruptSparseTest, MaskedValueOutsideItsMask) {
  Checkpoint ck = tiny_checkpoint(true);
  Tensor w = ck.get("param/fc.weight");
  const std::vector<uint8_t> bits = ck.raw("sparse/fc.weight/bitmask").bytes;
  int64_t pruned = 0;
  while ((bits[static_cast<std::size_t>(pruned / 8)] >> (pruned % 8)) & 1) ++pruned;
  w[pruned] = 1.0f;
  ck.put("param/fc.weight", w);
  expect_refused(ck, "nonzero value at flat position " + std::to_string(pruned));
}

TEST_F(CorruptSparseTest, TruncatedFile) {
  const std::string file = path("cut.safetensors");
  tiny_checkpoint(false).save(file);
  fs::resize_file(file, fs::file_size(file) - 12);
  try {
    Checkpoint::load(file);
    ADD_FAILURE() << "loaded a truncated checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
}

TEST_F(CorruptSparseTest, OptimizerStateOfTheWrongLength) {
  Graph g = tiny_graph(5);
  g.compress("fc", magnitude_mask(g.parameter("fc.weight").value, 0.5f));
  SGD sgd(0.9f);
  sgd_step(g, sgd, {2, 10}, 7);
  Checkpoint ck;
  save_parameters(ck, g.parameters());
  save_optimizer_state(ck, sgd, g.parameters());
  ck.put("optim/fc.weight.momentum", Tensor::zeros({34}));
  const std::string file = path("optim.safetensors");
  ck.save(file);
  const Checkpoint back = Checkpoint::load(file);
  Graph h = tiny_graph(9);
  load_graph_parameters(back, h);
  SGD sgd2(0.9f);
  try {
    load_optimizer_state(back, sgd2, h.parameters());
    ADD_FAILURE() << "loaded momentum of the wrong length";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
    EXPECT_NE(msg.find("fc.weight.momentum"), std::string::npos) << msg;
  }
}

// Format 1: a compressed weight saved dense plus a U8 "mask/<name>" of the
// dense shape.
TEST_F(SparseCheckpointTest, FormatOneFilesStillLoad) {
  Graph g = tiny_graph(5);
  const Tensor w = g.parameter("fc.weight").value.clone();
  const Tensor mask = magnitude_mask(w, 0.5f);
  Checkpoint ck;
  std::vector<uint8_t> mask_bytes(70);
  Tensor pruned = w.clone();
  for (int64_t i = 0; i < 70; ++i) {
    mask_bytes[static_cast<std::size_t>(i)] = mask[i] != 0.0f;
    if (mask[i] == 0.0f) pruned[i] = 0.0f;
  }
  ck.put("param/fc.weight", pruned);
  ck.put("param/fc.bias", g.parameter("fc.bias").value);
  ck.put_u8("mask/fc.weight", {7, 10}, mask_bytes);
  ck.metadata()["format"] = "sparsetrain-checkpoint-1";
  ck.save(path("v1.safetensors"));

  Graph h = tiny_graph(9);
  load_graph_parameters(Checkpoint::load(path("v1.safetensors")), h);
  const Parameter& p = h.parameter("fc.weight");
  ASSERT_TRUE(p.compressed());
  for (const auto& [pos, value] : by_position(p)) {
    EXPECT_EQ(mask[pos], 1.0f);
    EXPECT_EQ(value, w[pos]);
  }
  EXPECT_EQ(p.value.numel(), 35);
}

}  // namespace
// Issue 16, finding 5: an all-zero "mask/fc.weight" added to a current
// (format 2) file was read as a legacy mask and silently pruned the model;
// finding 6: NaN and infinite weights were loaded and evaluated. Both are
// refused, naming the tensor; a format-1 mask that does not match its
// weights is refused too.
TEST_F(SparseCheckpointTest, StrayMasksAndNonFiniteWeightsAreRefused) {
  Graph g = tiny_graph(5);
  const auto refused = [&](const Checkpoint& ck, const std::string& needle) {
    ck.save(path("bad.safetensors"));
    Graph h = tiny_graph(9);
    try {
      load_graph_parameters(Checkpoint::load(path("bad.safetensors")), h);
      ADD_FAILURE() << "loaded; expected an error with " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Checkpoint dense;
  save_parameters(dense, g.parameters());
  dense.metadata()["format"] = "sparsetrain-checkpoint-2";
  Checkpoint stray = dense;
  stray.put_u8("mask/fc.weight", {7, 10}, std::vector<uint8_t>(70, 0));
  refused(stray, "'mask/fc.weight' is not part of a sparsetrain-checkpoint-2 file");

  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    Checkpoint nan = dense;
    Tensor w = g.parameter("fc.weight").value.clone();
    w[17] = bad;
    nan.put("param/fc.weight", w);
    refused(nan, "at flat position 17");
  }

  Checkpoint v1;
  v1.put("param/fc.weight", g.parameter("fc.weight").value);  // nothing pruned
  v1.put("param/fc.bias", g.parameter("fc.bias").value);
  std::vector<uint8_t> half(70, 1);
  half[3] = 0;
  v1.put_u8("mask/fc.weight", {7, 10}, half);
  v1.metadata()["format"] = "sparsetrain-checkpoint-1";
  refused(v1, "masks flat position 3");
}

}  // namespace sparsetrain

namespace sparsetrain {
namespace {

// Issue 16, finding 3: a 498 KB checkpoint whose metadata claimed samples
// [1, 3000, 3000] made eval allocate 8.4 GB before a shape error, and
// [1, 100000, 100000] or 1e12 classes ended in a misleading "out of memory".
// The claims are checked before the model is built.
TEST_F(SparseCheckpointTest, SampleShapeAndClassClaimsAreCheckedBeforeTheModelIsBuilt) {
  Graph g = build_model("mlp", ModelOptions{1, 28, 28, 10});
  TrainOptions o = mlp_options(0.0f, "masked");
  const auto write = [&](const std::string& dataset, const std::string& shape,
                         const std::string& classes) {
    Checkpoint ck;
    save_parameters(ck, g.parameters());
    o.dataset = dataset;
    ck.metadata()["options"] = options_to_json(o);
    ck.metadata()["sample_shape"] = shape;
    ck.metadata()["num_classes"] = classes;
    ck.save(path("claims.safetensors"));
    return path("claims.safetensors");
  };
  const auto refused = [&](const std::string& file, const std::string& needle) {
    Graph h;
    try {
      load_model_checkpoint(file, zoo(), h);
      ADD_FAILURE() << "loaded; expected an error with " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Graph ok;
  load_model_checkpoint(write("mnist", "[1,28,28]", "10"), zoo(), ok);
  EXPECT_EQ(ok.parameter_count(), g.parameter_count());

  refused(write("mnist", "[1,3000,3000]", "10"),
          "its metadata claims samples [1,3000,3000] and 10 classes, but its dataset mnist has "
          "samples [1,28,28] and 10 classes");
  refused(write("mnist", "[1,100000,100000]", "10"), "but its dataset mnist has samples");
  refused(write("mnist", "[1,28,28]", "1000000000000"), "1000000000000 classes, but its dataset");
  refused(write("mnist", "[1,28,28]", "1e12"), "bad sample_shape / num_classes metadata");
  refused(write("cifar10", "[1,28,28]", "10"), "but its dataset cifar10 has samples [3,32,32]");
  // A dataset the runtime does not know (an app's own): bounds no image
  // dataset reaches.
  refused(write("my-set", "[1,60000,60000]", "10"),
          "more than any model of the runtime can be built for");
  refused(write("my-set", "[1,100000,100000]", "10"), "a side out of range");
  refused(write("my-set", "[1,28,28]", "1000000000000"), "more than any model");
  refused(write("my-set", "[0,28,28]", "10"), "a side out of range");
}

}  // namespace
}  // namespace sparsetrain

// The C API (runtime/include/sparsetrain.h) through libsparsetrain.so: every
// call refuses null handles, wrong buffer sizes and bad files with a status
// and a message naming the problem; models built by calls, from files and
// from the zoo agree; training through it learns; a C hook sees the tensors
// a C++ hook sees; every handle outlives the one it came from safely.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "capi/capi_internal.h"  // the C++ graph behind a handle, for the hook test
#include "sparsetrain.h"

namespace {

namespace fs = std::filesystem;

const char* data_dir() { return SPARSETRAIN_TEST_DATA_DIR; }

std::string error() { return st_last_error(); }

#define EXPECT_FAILS(call, status, text)                                          \
  do {                                                                            \
    EXPECT_EQ((call), (status)) << #call;                                         \
    EXPECT_NE(error().find(text), std::string::npos) << #call << ": " << error(); \
  } while (0)

fs::path temp_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("sparsetrain_capi_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// MNIST samples [first, first + n) as normalised floats and labels.
struct Batch {
  std::vector<float> images;
  std::vector<int32_t> labels;
};
Batch samples(const st_dataset* d, int64_t first, int64_t n) {
  Batch b{std::vector<float>(static_cast<std::size_t>(n * 784)),
          std::vector<int32_t>(static_cast<std::size_t>(n))};
  EXPECT_EQ(st_dataset_samples(d, first, n, b.images.data(), b.images.size(), b.labels.data(),
                               b.labels.size()),
            ST_OK)
      << error();
  return b;
}

class CApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(st_dataset_load("mnist", data_dir(), 0, &train_), ST_OK) << error();
    ASSERT_EQ(st_dataset_load("mnist", data_dir(), 1, &test_), ST_OK) << error();
  }
  static void TearDownTestSuite() {
    st_dataset_release(train_);
    st_dataset_release(test_);
  }
  static st_dataset* train_;
  static st_dataset* test_;
};
st_dataset* CApi::train_ = nullptr;
st_dataset* CApi::test_ = nullptr;

TEST(CApiBasics, VersionsAndStatusNames) {
  EXPECT_EQ(st_api_version(), SPARSETRAIN_C_API_VERSION);
  EXPECT_STREQ(st_library_version(), "0.1.0");
  EXPECT_STREQ(st_status_name(ST_INVALID_ARGUMENT), "ST_INVALID_ARGUMENT");
  EXPECT_EQ(st_set_num_threads(2), ST_OK);
  EXPECT_STREQ(st_last_error(), "");
  EXPECT_FAILS(st_set_num_threads(-1), ST_INVALID_ARGUMENT, "st_set_num_threads");
  // A successful call clears the message.
  EXPECT_EQ(st_set_num_threads(2), ST_OK);
  EXPECT_STREQ(st_last_error(), "");
}

TEST(CApiBasics, NullHandlesAndPointersAreRefused) {
  st_model* m = nullptr;
  st_dataset* d = nullptr;
  st_trainer* t = nullptr;
  st_probe_result* r = nullptr;
  st_hook* h = nullptr;
  float f[4] = {};
  int32_t l[1] = {};
  const int64_t idx[1] = {0};
  EXPECT_FAILS(st_model_create(nullptr, 1, 28, 28, 10, 0, &m), ST_INVALID_ARGUMENT,
               "st_model_create: model is NULL");
  EXPECT_FAILS(st_model_create("mlp", 1, 28, 28, 10, 0, nullptr), ST_INVALID_ARGUMENT,
               "st_model_create: out is NULL");
  EXPECT_FAILS(st_model_add_node(nullptr, "a", "relu", nullptr, nullptr), ST_INVALID_ARGUMENT,
               "st_model_add_node: the model is NULL");
  EXPECT_FAILS(st_model_finish(nullptr, nullptr, 0), ST_INVALID_ARGUMENT, "st_model_finish");
  EXPECT_FAILS(st_model_load(nullptr, &m), ST_INVALID_ARGUMENT, "st_model_load: checkpoint");
  EXPECT_FAILS(st_model_save(nullptr, "x"), ST_INVALID_ARGUMENT, "st_model_save: the model");
  EXPECT_FAILS(st_model_info(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
               ST_INVALID_ARGUMENT, "st_model_info");
  EXPECT_FAILS(st_model_predict(nullptr, f, 4, 1, f, 4), ST_INVALID_ARGUMENT, "st_model_predict");
  EXPECT_FAILS(st_model_evaluate(nullptr, d, nullptr, nullptr), ST_INVALID_ARGUMENT,
               "st_model_evaluate");
  EXPECT_FAILS(st_model_prune(nullptr, 0.5, nullptr), ST_INVALID_ARGUMENT, "st_model_prune");
  EXPECT_FAILS(st_model_add_hook(nullptr, ST_HOOK_AFTER_FORWARD, "*", nullptr, nullptr, &h),
               ST_INVALID_ARGUMENT, "st_model_add_hook");
  EXPECT_FAILS(st_dataset_load(nullptr, nullptr, 0, &d), ST_INVALID_ARGUMENT, "st_dataset_load");
  EXPECT_FAILS(st_dataset_create(nullptr, 4, l, 1, 1, 2, 2, 2, &d), ST_INVALID_ARGUMENT,
               "st_dataset_create: values is NULL");
  EXPECT_FAILS(st_dataset_info(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
               ST_INVALID_ARGUMENT, "st_dataset_info: the dataset is NULL");
  EXPECT_FAILS(st_dataset_samples(nullptr, 0, 1, f, 4, l, 1), ST_INVALID_ARGUMENT,
               "st_dataset_samples");
  EXPECT_FAILS(st_trainer_create(nullptr, nullptr, nullptr, nullptr, nullptr), ST_INVALID_ARGUMENT,
               "st_trainer_create: out is NULL");
  EXPECT_FAILS(st_trainer_step(nullptr, f, 4, l, 1, nullptr), ST_INVALID_ARGUMENT,
               "st_trainer_step: the trainer is NULL");
  EXPECT_FAILS(st_trainer_run(nullptr, 0, nullptr), ST_INVALID_ARGUMENT, "st_trainer_run");
  EXPECT_FAILS(st_trainer_save(nullptr, "x"), ST_INVALID_ARGUMENT, "st_trainer_save");
  EXPECT_FAILS(st_trainer_load(nullptr, "x"), ST_INVALID_ARGUMENT, "st_trainer_load");
  EXPECT_FAILS(st_trainer_model(nullptr, &m), ST_INVALID_ARGUMENT, "st_trainer_model");
  EXPECT_FAILS(st_probe_run(nullptr, "saliency", d, idx, 1, nullptr, &r), ST_INVALID_ARGUMENT,
               "st_probe_run: the model is NULL");
  EXPECT_FAILS(st_probe_result_json(nullptr, nullptr), ST_INVALID_ARGUMENT, "st_probe_result_json");
  EXPECT_FAILS(st_probe_result_map_count(nullptr, nullptr), ST_INVALID_ARGUMENT,
               "st_probe_result_map_count");
  EXPECT_FAILS(st_probe_result_map(nullptr, 0, nullptr, nullptr, nullptr), ST_INVALID_ARGUMENT,
               "st_probe_result_map");
  EXPECT_FAILS(st_probe_result_write(nullptr, "x"), ST_INVALID_ARGUMENT, "st_probe_result_write");
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(t, nullptr);
  // Releasing NULL does nothing.
  st_model_release(nullptr);
  st_dataset_release(nullptr);
  st_trainer_release(nullptr);
  st_hook_release(nullptr);
  st_probe_result_release(nullptr);
}

TEST_F(CApi, WrongSizesShapesAndFilesNameTheProblem) {
  st_model* m = nullptr;
  ASSERT_EQ(st_model_create("lenet5", 1, 28, 28, 10, 1, &m), ST_OK) << error();
  std::vector<float> x(784 * 2), logits(20);
  EXPECT_FAILS(st_model_predict(m, x.data(), 784, 2, logits.data(), 20), ST_INVALID_ARGUMENT,
               "images holds 784 elements, 2 samples of 1x28x28 need 1568");
  EXPECT_FAILS(st_model_predict(m, x.data(), x.size(), 2, logits.data(), 19), ST_INVALID_ARGUMENT,
               "logits holds 19 elements, 2 samples of 10 classes need 20");
  EXPECT_EQ(st_model_predict(m, x.data(), x.size(), 2, logits.data(), 20), ST_OK) << error();
  // A model of another input shape than the data.
  st_model* cifar = nullptr;
  ASSERT_EQ(st_model_create("resnet20", 3, 32, 32, 10, 1, &cifar), ST_OK) << error();
  EXPECT_FAILS(st_model_evaluate(cifar, test_, nullptr, nullptr), ST_ERROR, "");
  const int64_t idx[1] = {0};
  st_probe_result* r = nullptr;
  EXPECT_FAILS(st_probe_run(cifar, "saliency", test_, idx, 1, nullptr, &r), ST_ERROR,
               "not the model's input");
  st_model_release(cifar);
  // Files: missing, corrupt, not a model.
  st_model* none = nullptr;
  EXPECT_FAILS(st_model_create("nowhere/net.yaml", 1, 28, 28, 10, 0, &none), ST_ERROR,
               "model file 'nowhere/net.yaml': no such file");
  EXPECT_FAILS(st_model_create("lenet7", 1, 28, 28, 10, 0, &none), ST_ERROR, "unknown model");
  EXPECT_EQ(none, nullptr);
  const fs::path dir = temp_dir("files");
  st_model* loaded = nullptr;
  EXPECT_FAILS(st_model_load((dir / "missing.safetensors").c_str(), &loaded), ST_ERROR,
               "missing.safetensors");
  std::ofstream(dir / "corrupt.safetensors") << "not a checkpoint at all";
  EXPECT_FAILS(st_model_load((dir / "corrupt.safetensors").c_str(), &loaded), ST_ERROR,
               "corrupt.safetensors");
  EXPECT_EQ(loaded, nullptr);
  EXPECT_FAILS(st_dataset_load("mnist", data_dir(), 0, nullptr), ST_INVALID_ARGUMENT,
               "out is NULL");
  st_dataset* d = nullptr;
  EXPECT_FAILS(st_dataset_load("imagenet", data_dir(), 0, &d), ST_ERROR, "imagenet");
  const float values[8] = {};
  const int32_t bad_labels[2] = {0, 7};
  EXPECT_FAILS(st_dataset_create(values, 8, bad_labels, 2, 1, 2, 2, 3, &d), ST_ERROR,
               "label 7 of sample 1 is outside [0, 3)");
  EXPECT_FAILS(st_dataset_create(values, 7, bad_labels, 2, 1, 2, 2, 3, &d), ST_INVALID_ARGUMENT,
               "values holds 7 elements");
  EXPECT_FAILS(st_dataset_samples(test_, 9999, 2, x.data(), x.size(), nullptr, 0),
               ST_INVALID_ARGUMENT, "are not within the 10000");
  EXPECT_FAILS(st_model_prune(m, 1.5, nullptr), ST_ERROR, "sparsity must be in [0, 1)");
  EXPECT_FAILS(st_model_prune(m, 0.5, "lumpy"), ST_ERROR, "lumpy");
  st_trainer* t = nullptr;
  EXPECT_FAILS(st_trainer_create(m, "epochs: -1\n", nullptr, nullptr, &t), ST_ERROR, "epochs");
  EXPECT_FAILS(st_trainer_create(m, nullptr, train_, nullptr, &t), ST_INVALID_ARGUMENT,
               "give both datasets");
  EXPECT_FAILS(st_probe_run(m, "saliency", test_, idx, 1, "bogus=1", &r), ST_ERROR, "bogus");
  EXPECT_FAILS(st_probe_run(m, "mind-reading", test_, idx, 1, nullptr, &r), ST_ERROR,
               "mind-reading");
  st_model_release(m);
  fs::remove_all(dir);
}

void expect_near_all(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  float scale = 0;
  for (float v : a) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(a[i], b[i], 1e-5f * scale + 1e-6f) << "output " << i;
}

TEST_F(CApi, ModelsByCallsFilesAndNamesAgreeAndRoundTrip) {
  st_model* zoo = nullptr;
  st_model* file = nullptr;
  st_model* calls = nullptr;
  ASSERT_EQ(st_model_create("lenet5", 1, 28, 28, 10, 3, &zoo), ST_OK) << error();
  const std::string path = std::string(SPARSETRAIN_TESTS_DIR) + "/../graphs/lenet5.yaml";
  ASSERT_EQ(st_model_create(path.c_str(), 1, 28, 28, 10, 3, &file), ST_OK) << error();
  ASSERT_EQ(st_model_begin(1, 28, 28, 10, &calls), ST_OK);
  ASSERT_EQ(
      st_model_add_node(calls, "conv1", "conv2d", nullptr, "out_channels=6 kernel=5 padding=2"),
      ST_OK)
      << error();
  const char* rest[][3] = {{"relu1", "relu", ""},
                           {"pool1", "maxpool2d", ""},
                           {"conv2", "conv2d", "out_channels=16,kernel=5"},
                           {"relu2", "relu", ""},
                           {"pool2", "maxpool2d", "kernel=2 stride=2"},
                           {"flatten", "flatten", ""},
                           {"fc1", "linear", "out_features=120"},
                           {"relu3", "relu", ""},
                           {"fc2", "linear", "out_features=84"},
                           {"relu4", "relu", ""},
                           {"fc3", "linear", "out_features=classes"}};
  for (const auto& n : rest) ASSERT_EQ(st_model_add_node(calls, n[0], n[1], nullptr, n[2]), ST_OK);
  EXPECT_FAILS(st_model_predict(calls, nullptr, 0, 1, nullptr, 0), ST_ERROR, "still being built");
  EXPECT_FAILS(st_model_add_node(calls, "x", "conv3d", nullptr, nullptr), ST_ERROR,
               "node 'x': unknown node type 'conv3d'");
  EXPECT_FAILS(st_model_add_node(calls, "x", "relu", "nowhere", nullptr), ST_ERROR,
               "input 'nowhere' is not a node");
  EXPECT_FAILS(st_model_add_node(calls, "x", "linear", nullptr, "out_features"), ST_ERROR,
               "option 'out_features' is not key=value");
  ASSERT_EQ(st_model_finish(calls, nullptr, 3), ST_OK) << error();
  EXPECT_FAILS(st_model_add_node(calls, "x", "relu", nullptr, nullptr), ST_ERROR, "finished");

  // The same graph and, from the same seed, the same outputs.
  const Batch b = samples(test_, 0, 4);
  std::vector<float> a(40), f(40), c(40);
  ASSERT_EQ(st_model_predict(zoo, b.images.data(), b.images.size(), 4, a.data(), 40), ST_OK);
  ASSERT_EQ(st_model_predict(file, b.images.data(), b.images.size(), 4, f.data(), 40), ST_OK);
  ASSERT_EQ(st_model_predict(calls, b.images.data(), b.images.size(), 4, c.data(), 40), ST_OK);
  // Equal up to the kernels each model's timed choice took ("auto": sparse
  // or dense kernels, whose sums round differently).
  expect_near_all(a, f);
  expect_near_all(a, c);
  int64_t params = 0, nonzero = 0;
  ASSERT_EQ(st_model_info(calls, nullptr, nullptr, nullptr, nullptr, &params, &nonzero), ST_OK);
  EXPECT_EQ(params, 61706);

  // Pruned, saved and loaded back: the same outputs, the nonzeros kept.
  ASSERT_EQ(st_model_prune(calls, 0.8, "uniform"), ST_OK) << error();
  int64_t pruned_nonzero = 0;
  ASSERT_EQ(st_model_info(calls, nullptr, nullptr, nullptr, nullptr, nullptr, &pruned_nonzero),
            ST_OK);
  EXPECT_LT(pruned_nonzero, nonzero / 2);
  std::vector<float> before(40), after(40);
  ASSERT_EQ(st_model_predict(calls, b.images.data(), b.images.size(), 4, before.data(), 40), ST_OK);
  const fs::path dir = temp_dir("roundtrip");
  const std::string saved = (dir / "calls.safetensors").string();
  ASSERT_EQ(st_model_save(calls, saved.c_str()), ST_OK) << error();
  st_model_release(calls);
  st_model* back = nullptr;
  ASSERT_EQ(st_model_load(saved.c_str(), &back), ST_OK) << error();
  ASSERT_EQ(st_model_predict(back, b.images.data(), b.images.size(), 4, after.data(), 40), ST_OK);
  expect_near_all(before, after);
  int64_t back_nonzero = 0;
  ASSERT_EQ(st_model_info(back, nullptr, nullptr, nullptr, nullptr, nullptr, &back_nonzero), ST_OK);
  EXPECT_EQ(back_nonzero, pruned_nonzero);
  st_model_release(back);
  st_model_release(zoo);
  st_model_release(file);
  fs::remove_all(dir);
}

struct HookRecord {
  std::vector<std::string> nodes;
  std::vector<std::vector<float>> outputs;
  int stop_at = -1;
};

int record_hook(const st_hook_event* e, void* user) {
  auto* r = static_cast<HookRecord*>(user);
  r->nodes.emplace_back(e->node);
  int64_t n = e->output.data != nullptr ? 1 : 0;  // step events carry no tensor
  for (int32_t i = 0; i < e->output.ndim; ++i) n *= e->output.shape[i];
  r->outputs.emplace_back(e->output.data, e->output.data + n);
  return static_cast<int>(r->nodes.size()) == r->stop_at ? 7 : 0;
}

TEST_F(CApi, HooksSeeWhatCxxHooksSeeAndCanStopAPass) {
  st_model* m = nullptr;
  ASSERT_EQ(st_model_create("lenet5", 1, 28, 28, 10, 5, &m), ST_OK) << error();
  ASSERT_EQ(st_model_prune(m, 0.9, nullptr), ST_OK) << error();  // sparse layouts inside
  HookRecord rec;
  st_hook* h = nullptr;
  ASSERT_EQ(st_model_add_hook(m, ST_HOOK_AFTER_FORWARD, "*", record_hook, &rec, &h), ST_OK);
  std::vector<std::vector<float>> cxx;
  sparsetrain::HookHandle cxx_hook = m->state->graph().add_hook(
      sparsetrain::HookPoint::kAfterForward, "*", [&](sparsetrain::HookEvent& e) {
        const sparsetrain::Tensor t = sparsetrain::to_layout(
            *e.output, e.output->shape().size() == 4 ? sparsetrain::Layout::kNCHW
                                                     : sparsetrain::Layout::kPlain);
        cxx.emplace_back(t.data(), t.data() + t.numel());
      });
  const Batch b = samples(test_, 10, 3);
  std::vector<float> logits(30);
  ASSERT_EQ(st_model_predict(m, b.images.data(), b.images.size(), 3, logits.data(), 30), ST_OK);
  ASSERT_EQ(rec.outputs.size(), cxx.size());
  ASSERT_GE(rec.nodes.size(), 10u);
  for (std::size_t i = 0; i < cxx.size(); ++i) EXPECT_EQ(rec.outputs[i], cxx[i]) << rec.nodes[i];
  EXPECT_EQ(rec.nodes.front(), "input");

  // A hook that returns nonzero stops the pass; the model stays usable.
  rec = HookRecord{};
  rec.stop_at = 3;
  EXPECT_FAILS(st_model_predict(m, b.images.data(), b.images.size(), 3, logits.data(), 30),
               ST_ERROR, "returned 7");
  st_hook_release(h);
  rec = HookRecord{};
  ASSERT_EQ(st_model_predict(m, b.images.data(), b.images.size(), 3, logits.data(), 30), ST_OK);
  EXPECT_TRUE(rec.nodes.empty());  // removed
  st_model_release(m);
}

TEST_F(CApi, TrainingLearnsAndHandlesOutliveEachOther) {
  st_model* m = nullptr;
  ASSERT_EQ(st_model_create("lenet5", 1, 28, 28, 10, 0, &m), ST_OK);
  HookRecord steps;
  st_hook* h = nullptr;
  ASSERT_EQ(st_model_add_hook(m, ST_HOOK_AFTER_STEP, "*", record_hook, &steps, &h), ST_OK);
  st_trainer* t = nullptr;
  ASSERT_EQ(st_trainer_create(m, "batch_size: 50\nepochs: 1\n", train_, test_, &t), ST_OK)
      << error();
  st_model_release(m);  // the trainer keeps it
  st_trainer* again = nullptr;
  st_model* mm = nullptr;
  ASSERT_EQ(st_trainer_model(t, &mm), ST_OK);
  EXPECT_FAILS(st_trainer_create(mm, nullptr, nullptr, nullptr, &again), ST_ERROR,
               "in a trainer already");
  float first = 0, last = 0;
  for (int s = 0; s < 60; ++s) {
    const Batch b = samples(train_, s * 50, 50);
    float loss = 0;
    ASSERT_EQ(st_trainer_step(t, b.images.data(), b.images.size(), b.labels.data(), 50, &loss),
              ST_OK)
        << error();
    if (s == 0) first = loss;
    last = loss;
  }
  EXPECT_LT(last, first * 0.6f);
  EXPECT_EQ(steps.nodes.size(), 60u);  // the hook fired after every step
  std::vector<float> wrong(10);
  const int32_t label[1] = {11};
  EXPECT_FAILS(st_trainer_step(t, wrong.data(), wrong.size(), label, 1, nullptr),
               ST_INVALID_ARGUMENT, "images holds 10 elements");
  const Batch one = samples(train_, 0, 1);
  EXPECT_FAILS(st_trainer_step(t, one.images.data(), one.images.size(), label, 1, nullptr),
               ST_ERROR, "label 11 of sample 0");
  st_hook_release(h);
  st_trainer_release(t);  // the model handle keeps the trained weights
  st_dataset* small = nullptr;
  const Batch tb = samples(test_, 0, 500);
  ASSERT_EQ(st_dataset_create(tb.images.data(), tb.images.size(), tb.labels.data(), 500, 1, 28, 28,
                              10, &small),
            ST_OK)
      << error();
  double accuracy = 0;
  ASSERT_EQ(st_model_evaluate(mm, small, &accuracy, nullptr), ST_OK) << error();
  EXPECT_GT(accuracy, 0.6);  // chance is 0.1

  // A probe's result outlives the model and the dataset it came from.
  const int64_t idx[2] = {0, 1};
  st_probe_result* r = nullptr;
  ASSERT_EQ(st_probe_run(mm, "saliency", small, idx, 2, "mode=gradient", &r), ST_OK) << error();
  st_model_release(mm);
  st_dataset_release(small);
  int64_t maps = 0;
  ASSERT_EQ(st_probe_result_map_count(r, &maps), ST_OK);
  ASSERT_EQ(maps, 2);
  st_tensor_view v{};
  int64_t sample = -1;
  const char* title = nullptr;
  ASSERT_EQ(st_probe_result_map(r, 1, &sample, &title, &v), ST_OK);
  EXPECT_EQ(sample, 1);
  ASSERT_EQ(v.ndim, 2);
  EXPECT_EQ(v.shape[0], 28);
  float total = 0;
  for (int64_t i = 0; i < 28 * 28; ++i) total += std::fabs(v.data[i]);
  EXPECT_GT(total, 0.0f);
  EXPECT_FAILS(st_probe_result_map(r, 2, nullptr, nullptr, nullptr), ST_INVALID_ARGUMENT,
               "map 2 does not exist");
  const char* json = nullptr;
  ASSERT_EQ(st_probe_result_json(r, &json), ST_OK);
  EXPECT_NE(std::string(json).find('{'), std::string::npos);
  const fs::path dir = temp_dir("probe");
  ASSERT_EQ(st_probe_result_write(r, dir.c_str()), ST_OK) << error();
  EXPECT_TRUE(fs::exists(dir / "saliency.json"));
  st_probe_result_release(r);
  fs::remove_all(dir);
}

}  // namespace

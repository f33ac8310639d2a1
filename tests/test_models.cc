// The model zoo: parameter counts pinned to the published ones, shapes, and
// clear errors for unknown models and inputs that do not fit.
#include <gtest/gtest.h>

#include <cmath>

#include "sparsetrain/error.h"
#include "sparsetrain/models.h"

namespace sparsetrain {
namespace {

const ModelOptions kMnist{1, 28, 28, 10};
const ModelOptions kCifar{3, 32, 32, 10};

TEST(Models, MlpIsLeNet300_100) {
  Graph g = build_model("mlp", kMnist);
  // 784*300+300 + 300*100+100 + 100*10+10 (LeCun et al. 1998; Han et al. 2015).
  EXPECT_EQ(g.parameter_count(), 266610);
  EXPECT_EQ(g.shape_of(g.output(), 7), (Shape{7, 10}));
}

TEST(Models, LeNet5HasTheClassicCount) {
  Graph g = build_model("lenet5", kMnist);
  EXPECT_EQ(g.parameter_count(), 61706);
  Graph c = build_model("lenet5", kCifar);
  EXPECT_EQ(c.parameter_count(), 62006);  // 3 input channels: +2 * 6 * 25 weights
}

// He et al. 2016, Table 6: ResNet-20 0.27M, ResNet-32 0.46M, ResNet-56 0.85M.
void expect_near_published(const char* name, double millions) {
  Graph g = build_model(name, kCifar);
  const double count = static_cast<double>(g.parameter_count());
  EXPECT_NEAR(count / 1e6, millions, 0.02 * millions) << name << ": " << count;
  EXPECT_EQ(g.shape_of(g.output(), 2), (Shape{2, 10}));
}

TEST(Models, CifarResNetsMatchThePaper) {
  expect_near_published("resnet20", 0.27);
  expect_near_published("resnet32", 0.46);
  expect_near_published("resnet56", 0.85);
  EXPECT_EQ(build_model("resnet20", kCifar).parameter_count(), 272474);
}

TEST(Models, UnknownModelNamesTheKnownOnes) {
  try {
    build_model("vgg99", kCifar);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vgg99"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("resnet20"), std::string::npos);
  }
}

TEST(Models, ResNetDepthMustBe6nPlus2) { EXPECT_THROW(build_cifar_resnet(21, kCifar), Error); }

TEST(Models, ParametersAreNamedAfterNodes) {
  Graph g = build_model("resnet20", kCifar);
  EXPECT_NO_THROW(g.parameter("layer2.0.shortcut.conv.weight"));
  EXPECT_NO_THROW(g.parameter("layer3.2.bn2.running_var"));
  EXPECT_NO_THROW(g.parameter("fc.bias"));
  EXPECT_EQ(g.parameter("conv1.weight").value.shape(), (Shape{16, 3, 3, 3}));
}

TEST(Models, InitializationIsSeededAndHeScaled) {
  Graph a = build_model("lenet5", kMnist);
  Graph b = build_model("lenet5", kMnist);
  a.initialize(7);
  b.initialize(7);
  const Tensor& wa = a.parameter("fc1.weight").value;
  EXPECT_TRUE(wa.equals(b.parameter("fc1.weight").value));
  double sum_sq = 0;
  for (int64_t i = 0; i < wa.numel(); ++i) sum_sq += static_cast<double>(wa[i]) * wa[i];
  const double std = std::sqrt(sum_sq / wa.numel());
  EXPECT_NEAR(std, std::sqrt(2.0 / 400.0), 0.1 * std::sqrt(2.0 / 400.0));
}

}  // namespace
}  // namespace sparsetrain

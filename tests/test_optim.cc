// Optimizers and gradient clipping against hand-computed values. Inputs are
// chosen so that every intermediate is exact in float where possible, so
// most comparisons are exact.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "sparsetrain/error.h"
#include "sparsetrain/optim.h"
#include "sparsetrain/rng.h"

namespace sparsetrain {
namespace {

Parameter make_param(const std::string& name, ParamKind kind, std::vector<float> value) {
  Parameter p;
  p.name = name;
  p.kind = kind;
  const auto n = static_cast<int64_t>(value.size());
  p.value = Tensor::from({n}, value);
  p.grad = Tensor::zeros({n});
  return p;
}

void set_grad(Parameter& p, std::vector<float> g) {
  p.grad = Tensor::from({static_cast<int64_t>(g.size())}, g);
}

template <class F>
void expect_error_containing(F&& f, const std::vector<std::string>& pieces) {
  try {
    f();
    ADD_FAILURE() << "expected sparsetrain::Error";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const std::string& piece : pieces) {
      EXPECT_NE(what.find(piece), std::string::npos) << "'" << piece << "' not in: " << what;
    }
  }
}

TEST(SGD, PlainStepsMatchHandComputedValues) {
  Parameter w = make_param("fc.weight", ParamKind::kWeight, {1.0f, -2.0f});
  SGD sgd;
  std::vector<Parameter*> params{&w};
  set_grad(w, {0.5f, 0.25f});
  sgd.step(params, 0.5f);  // w -= 0.5 * g
  EXPECT_EQ(w.value[0], 0.75f);
  EXPECT_EQ(w.value[1], -2.125f);
  sgd.step(params, 0.5f);
  EXPECT_EQ(w.value[0], 0.5f);
  EXPECT_EQ(w.value[1], -2.25f);
  EXPECT_EQ(sgd.step_count(), 2);
  EXPECT_TRUE(sgd.state_tensors().empty());
}

TEST(SGD, MomentumMatchesHandComputedValues) {
  Parameter w = make_param("w", ParamKind::kWeight, {1.0f});
  SGD sgd(0.5f);
  std::vector<Parameter*> params{&w};
  // buf = g on the first step, then 0.5 * buf + g; w -= buf.
  set_grad(w, {1.0f});
  sgd.step(params, 1.0f);  // buf 1, w 0
  EXPECT_EQ(w.value[0], 0.0f);
  set_grad(w, {0.5f});
  sgd.step(params, 1.0f);  // buf 1, w -1
  EXPECT_EQ(w.value[0], -1.0f);
  set_grad(w, {0.25f});
  sgd.step(params, 1.0f);  // buf 0.75, w -1.75
  EXPECT_EQ(w.value[0], -1.75f);
  const auto state = sgd.state_tensors();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0].first, "w.momentum");
  EXPECT_EQ(state[0].second[0], 0.75f);
}

TEST(SGD, NesterovMatchesHandComputedValues) {
  Parameter w = make_param("w", ParamKind::kWeight, {1.0f});
  SGD sgd(0.5f, /*nesterov=*/true);
  std::vector<Parameter*> params{&w};
  // buf as above; d = g + 0.5 * buf; w -= d.
  set_grad(w, {1.0f});
  sgd.step(params, 1.0f);  // buf 1, d 1.5, w -0.5
  EXPECT_EQ(w.value[0], -0.5f);
  set_grad(w, {0.5f});
  sgd.step(params, 1.0f);  // buf 1, d 1, w -1.5
  EXPECT_EQ(w.value[0], -1.5f);
  set_grad(w, {0.25f});
  sgd.step(params, 1.0f);  // buf 0.75, d 0.625, w -2.125
  EXPECT_EQ(w.value[0], -2.125f);
}

TEST(SGD, WeightDecayAppliesToWeightsOnly) {
  Parameter weight = make_param("conv.weight", ParamKind::kWeight, {2.0f});
  Parameter bias = make_param("conv.bias", ParamKind::kBias, {2.0f});
  Parameter scale = make_param("bn.weight", ParamKind::kNorm, {2.0f});
  std::vector<Parameter*> params{&weight, &bias, &scale};
  SGD sgd(0.5f, false, 0.5f);
  for (Parameter* p : params) set_grad(*p, {1.0f});
  // weight: d = 1 + 0.5 w. Step 1: d 2, buf 2, w 1. Step 2: d 1.5, buf 2.5,
  // w -0.25. Step 3: d 0.875, buf 2.125, w -1.3125.
  // bias / BN: d = 1. buf 1, 1.5, 1.75; w 1.5, 0.75, -0.125.
  const float weight_expected[] = {1.0f, -0.25f, -1.3125f};
  const float other_expected[] = {1.5f, 0.75f, -0.125f};
  for (int s = 0; s < 3; ++s) {
    sgd.step(params, 0.5f);
    EXPECT_EQ(weight.value[0], weight_expected[s]) << "step " << s;
    EXPECT_EQ(bias.value[0], other_expected[s]) << "step " << s;
    EXPECT_EQ(scale.value[0], other_expected[s]) << "step " << s;
  }
}

TEST(SGD, SkipsBuffersAndParametersWithoutGradient) {
  Parameter running = make_param("bn.running_mean", ParamKind::kBuffer, {3.0f});
  set_grad(running, {1.0f});
  Parameter frozen = make_param("fc.weight", ParamKind::kWeight, {3.0f});
  frozen.grad = Tensor();
  SGD sgd(0.9f, false, 0.1f);
  std::vector<Parameter*> params{&running, &frozen};
  sgd.step(params, 1.0f);
  EXPECT_EQ(running.value[0], 3.0f);
  EXPECT_EQ(frozen.value[0], 3.0f);
  EXPECT_EQ(sgd.state_of("bn.running_mean"), nullptr);
  EXPECT_EQ(sgd.state_of("fc.weight"), nullptr);
}

TEST(SGD, RejectsBadHyperparameters) {
  expect_error_containing([] { SGD(1.0f); }, {"--momentum"});
  expect_error_containing([] { SGD(-0.1f); }, {"--momentum"});
  expect_error_containing([] { SGD(std::nanf("")); }, {"--momentum"});
  expect_error_containing([] { SGD(0.9f, false, -1.0f); }, {"--weight-decay"});
  expect_error_containing([] { SGD(0.0f, true); }, {"--nesterov"});
}

TEST(AdamW, MatchesHandComputedValues) {
  // beta1 0.5, beta2 0.75, lr 0.1. The eps term (1e-8 against a denominator
  // near 1) is below float resolution here.
  Parameter w = make_param("w", ParamKind::kWeight, {1.0f});
  AdamW adam(0.5f, 0.75f, 1e-8f, 0.0f);
  std::vector<Parameter*> params{&w};

  // t=1, g=2: m 1, v 1; m^ = 1/0.5 = 2, v^ = 1/0.25 = 4; w -= 0.1 * 2/2.
  set_grad(w, {2.0f});
  adam.step(params, 0.1f);
  EXPECT_FLOAT_EQ(w.value[0], 0.9f);

  // t=2, g=1: m 1, v 1; m^ = 1/0.75, v^ = 1/0.4375; w -= 0.1 * sqrt(0.4375)/0.75.
  set_grad(w, {1.0f});
  adam.step(params, 0.1f);
  const double w2 = 0.9 - 0.1 * std::sqrt(0.4375) / 0.75;
  EXPECT_NEAR(w.value[0], w2, 1e-6);

  // t=3, g=0: m 0.5, v 0.75; m^ = 0.5/0.875, v^ = 0.75/0.578125.
  set_grad(w, {0.0f});
  adam.step(params, 0.1f);
  const double w3 = w2 - 0.1 * (0.5 / 0.875) / std::sqrt(0.75 / 0.578125);
  EXPECT_NEAR(w.value[0], w3, 1e-6);

  const auto state = adam.state_tensors();
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state[0].first, "w.exp_avg");
  EXPECT_EQ(state[0].second[0], 0.5f);
  EXPECT_EQ(state[1].first, "w.exp_avg_sq");
  EXPECT_EQ(state[1].second[0], 0.75f);
  EXPECT_EQ(state[2].first, "w.step");
  EXPECT_EQ(state[2].second[0], 3.0f);
}

TEST(AdamW, DecoupledWeightDecayOnWeightsOnly) {
  Parameter weight = make_param("fc.weight", ParamKind::kWeight, {1.0f});
  Parameter bias = make_param("fc.bias", ParamKind::kBias, {1.0f});
  Parameter scale = make_param("bn.bias", ParamKind::kNorm, {1.0f});
  std::vector<Parameter*> params{&weight, &bias, &scale};
  AdamW adam(0.5f, 0.75f, 1e-8f, 0.5f);
  for (Parameter* p : params) set_grad(*p, {2.0f});
  adam.step(params, 0.1f);
  // Weight: w *= 1 - 0.1 * 0.5, then the Adam step of 0.1 (first step: m^/sqrt(v^) = 1).
  EXPECT_FLOAT_EQ(weight.value[0], 0.95f - 0.1f);
  EXPECT_FLOAT_EQ(bias.value[0], 0.9f);
  EXPECT_FLOAT_EQ(scale.value[0], 0.9f);
  // Decay acts even with a zero gradient (it is not part of the gradient).
  set_grad(weight, {0.0f});
  const float before = weight.value[0];
  AdamW decay_only(0.5f, 0.75f, 1e-8f, 0.5f);
  std::vector<Parameter*> just_weight{&weight};
  decay_only.step(just_weight, 0.1f);
  EXPECT_FLOAT_EQ(weight.value[0], before * 0.95f);
}

TEST(AdamW, RejectsBadHyperparameters) {
  expect_error_containing([] { AdamW(1.0f); }, {"--beta1"});
  expect_error_containing([] { AdamW(0.9f, -0.5f); }, {"--beta2"});
  expect_error_containing([] { AdamW(0.9f, 0.999f, 0.0f); }, {"--eps"});
  expect_error_containing([] { AdamW(0.9f, 0.999f, 1e-8f, -1.0f); }, {"--weight-decay"});
}

TEST(Optimizer, FactoryBuildsAndRejects) {
  OptimizerOptions o;
  o.kind = "sgd";
  o.momentum = 0.9f;
  o.nesterov = true;
  o.weight_decay = 5e-4f;
  auto sgd = make_optimizer(o);
  EXPECT_STREQ(sgd->kind(), "sgd");
  EXPECT_NE(sgd->describe().find("nesterov"), std::string::npos);
  o.kind = "adamw";
  EXPECT_STREQ(make_optimizer(o)->kind(), "adamw");
  o.kind = "foo";
  expect_error_containing([&] { make_optimizer(o); },
                          {"--optimizer: unknown optimizer 'foo' (expected sgd, adamw)"});
}

TEST(Optimizer, ZeroGradZeroesDefinedGradients) {
  Parameter a = make_param("a", ParamKind::kWeight, {1.0f, 2.0f});
  set_grad(a, {3.0f, 4.0f});
  Parameter b = make_param("b", ParamKind::kBias, {1.0f});
  b.grad = Tensor();
  Optimizer::zero_grad({&a, &b});
  EXPECT_EQ(a.grad[0], 0.0f);
  EXPECT_EQ(a.grad[1], 0.0f);
  EXPECT_FALSE(b.grad.defined());
}

TEST(Optimizer, ResetStateRestartsMomentumAndBiasCorrection) {
  Parameter w = make_param("w", ParamKind::kWeight, {0.0f});
  std::vector<Parameter*> params{&w};
  SGD sgd(0.5f);
  set_grad(w, {1.0f});
  sgd.step(params, 1.0f);  // buf 1
  sgd.step(params, 1.0f);  // buf 1.5, w -2.5
  EXPECT_EQ(w.value[0], -2.5f);
  sgd.reset_state("w");
  EXPECT_EQ(sgd.state_of("w"), nullptr);
  sgd.step(params, 1.0f);  // fresh: buf 1, w -3.5
  EXPECT_EQ(w.value[0], -3.5f);
  sgd.reset_state("not.there");  // no-op

  // Adam's first update after a reset is again lr * sign(g).
  Parameter v = make_param("v", ParamKind::kBias, {0.0f});
  std::vector<Parameter*> vp{&v};
  AdamW adam(0.9f, 0.999f, 1e-8f, 0.0f);
  set_grad(v, {4.0f});
  for (int i = 0; i < 5; ++i) adam.step(vp, 0.01f);
  set_grad(v, {-4.0f});
  adam.reset_state("v");
  const float before = v.value[0];
  adam.step(vp, 0.01f);
  EXPECT_NEAR(v.value[0] - before, 0.01f, 1e-7f);
  EXPECT_EQ(adam.state_of("v")->steps, 1);
}

TEST(Optimizer, GatherStateKeepsTheChosenEntries) {
  Parameter w = make_param("conv.weight", ParamKind::kWeight, {0.0f, 0.0f, 0.0f, 0.0f});
  std::vector<Parameter*> params{&w};
  SGD sgd(0.9f);
  set_grad(w, {1.0f, 2.0f, 3.0f, 4.0f});
  sgd.step(params, 1.0f);
  sgd.gather_state("conv.weight", {3, 1});
  const Optimizer::ParamState* state = sgd.state_of("conv.weight");
  ASSERT_NE(state, nullptr);
  ASSERT_EQ(state->slot[0].shape(), Shape({2}));
  EXPECT_EQ(state->slot[0][0], 4.0f);
  EXPECT_EQ(state->slot[0][1], 2.0f);
  // The parameter still has 4 values: stepping now is a usage error.
  expect_error_containing([&] { sgd.step(params, 1.0f); }, {"conv.weight", "reset_state"});
  // A compressed parameter with those 2 nonzeros continues the momentum.
  Parameter c = make_param("conv.weight", ParamKind::kWeight, {-4.0f, -2.0f});
  set_grad(c, {0.0f, 0.0f});
  std::vector<Parameter*> cp{&c};
  sgd.step(cp, 1.0f);  // buf = 0.9 * buf
  EXPECT_FLOAT_EQ(c.value[0], -4.0f - 0.9f * 4.0f);
  EXPECT_FLOAT_EQ(c.value[1], -2.0f - 0.9f * 2.0f);
  expect_error_containing([&] { sgd.gather_state("conv.weight", {2}); },
                          {"conv.weight", "index 2"});
}

TEST(Optimizer, StateRoundTripContinuesBitExactly) {
  Parameter a1 = make_param("fc.weight", ParamKind::kWeight, {0.5f, -1.0f, 2.0f});
  Parameter b1 = make_param("fc.bias", ParamKind::kBias, {0.25f});
  Parameter a2 = make_param("fc.weight", ParamKind::kWeight, {});
  Parameter b2 = make_param("fc.bias", ParamKind::kBias, {});
  std::vector<Parameter*> p1{&a1, &b1};
  AdamW adam1(0.9f, 0.99f, 1e-8f, 0.01f);
  Rng rng(7);
  auto random_grads = [&](std::vector<Parameter*>& ps) {
    for (Parameter* p : ps) {
      for (int64_t i = 0; i < p->grad.numel(); ++i) p->grad[i] = rng.normal();
    }
  };
  for (int s = 0; s < 3; ++s) {
    random_grads(p1);
    adam1.step(p1, 0.01f);
  }
  a2.value = a1.value.clone();
  a2.grad = Tensor::zeros(a1.value.shape());
  b2.value = b1.value.clone();
  b2.grad = Tensor::zeros(b1.value.shape());
  std::vector<Parameter*> p2{&a2, &b2};
  AdamW adam2(0.9f, 0.99f, 1e-8f, 0.01f);
  adam2.load_state_tensors(adam1.state_tensors(), p2);
  adam2.set_step_count(adam1.step_count());
  EXPECT_EQ(adam2.step_count(), 3);
  for (int s = 0; s < 2; ++s) {
    random_grads(p1);
    a2.grad.copy_from(a1.grad);
    b2.grad.copy_from(b1.grad);
    adam1.step(p1, 0.01f);
    adam2.step(p2, 0.01f);
  }
  EXPECT_TRUE(a1.value.equals(a2.value));
  EXPECT_TRUE(b1.value.equals(b2.value));
}

TEST(Optimizer, LoadStateValidatesNamesAndShapes) {
  Parameter w = make_param("conv1.weight", ParamKind::kWeight, {1.0f, 2.0f});
  std::vector<Parameter*> params{&w};
  SGD sgd(0.9f);
  set_grad(w, {1.0f, 1.0f});
  sgd.step(params, 0.1f);
  const Tensor good = Tensor::from({2}, {5.0f, 6.0f});
  expect_error_containing(
      [&] {
        sgd.load_state_tensors({{"conv2.weight.momentum", good}}, params);
      },
      {"conv2.weight.momentum", "no parameter named 'conv2.weight'"});
  expect_error_containing(
      [&] {
        sgd.load_state_tensors({{"conv1.weight.momentum", Tensor::zeros({3})}}, params);
      },
      {"conv1.weight.momentum", "shape (3)", "(2)"});
  expect_error_containing(
      [&] {
        sgd.load_state_tensors({{"conv1.weight.exp_avg", good}}, params);
      },
      {"conv1.weight.exp_avg", "unknown slot 'exp_avg'"});
  expect_error_containing([&] { sgd.load_state_tensors({{"nodot", good}}, params); }, {"nodot"});
  expect_error_containing(
      [&] {
        sgd.load_state_tensors({{"conv1.weight.momentum", good}, {"conv1.weight.momentum", good}},
                               params);
      },
      {"given twice"});
  // Nothing was loaded by the failed calls.
  EXPECT_EQ(sgd.state_of("conv1.weight")->slot[0][0], 1.0f);

  AdamW adam;
  expect_error_containing(
      [&] {
        adam.load_state_tensors(
            {{"conv1.weight.exp_avg", good}, {"conv1.weight.step", Tensor::from({1}, {1.0f})}},
            params);
      },
      {"conv1.weight.exp_avg_sq", "missing"});
  expect_error_containing(
      [&] {
        adam.load_state_tensors({{"conv1.weight.exp_avg", good},
                                 {"conv1.weight.exp_avg_sq", good},
                                 {"conv1.weight.step", Tensor::from({1}, {2.5f})}},
                                params);
      },
      {"conv1.weight.step", "step count"});
  adam.load_state_tensors({{"conv1.weight.exp_avg", good},
                           {"conv1.weight.exp_avg_sq", good},
                           {"conv1.weight.step", Tensor::from({1}, {4.0f})}},
                          params);
  EXPECT_EQ(adam.state_of("conv1.weight")->steps, 4);
  EXPECT_EQ(adam.state_of("conv1.weight")->slot[1][1], 6.0f);
}

TEST(ClipGradNorm, ScalesAboveTheLimitOnly) {
  Parameter a = make_param("a", ParamKind::kWeight, {0.0f, 0.0f});
  Parameter b = make_param("b", ParamKind::kBias, {0.0f, 0.0f});
  Parameter buffer = make_param("bn.running_var", ParamKind::kBuffer, {0.0f});
  set_grad(a, {3.0f, 4.0f});
  set_grad(b, {0.0f, 12.0f});
  set_grad(buffer, {100.0f});
  std::vector<Parameter*> params{&a, &b, &buffer};
  // Global norm sqrt(9 + 16 + 144) = 13; the buffer does not count.
  EXPECT_EQ(clip_grad_norm(params, 26.0f), 13.0f);
  EXPECT_EQ(a.grad[0], 3.0f);
  EXPECT_EQ(b.grad[1], 12.0f);
  EXPECT_EQ(clip_grad_norm(params, 6.5f), 13.0f);
  EXPECT_FLOAT_EQ(a.grad[0], 1.5f);
  EXPECT_FLOAT_EQ(a.grad[1], 2.0f);
  EXPECT_FLOAT_EQ(b.grad[1], 6.0f);
  EXPECT_EQ(buffer.grad[0], 100.0f);
  EXPECT_NEAR(clip_grad_norm(params, 100.0f), 6.5f, 1e-5f);
}

TEST(ClipGradNorm, NonFiniteNormLeavesGradientsAlone) {
  Parameter a = make_param("a", ParamKind::kWeight, {0.0f, 0.0f});
  set_grad(a, {std::numeric_limits<float>::infinity(), 1.0f});
  std::vector<Parameter*> params{&a};
  EXPECT_TRUE(std::isinf(clip_grad_norm(params, 1.0f)));
  EXPECT_EQ(a.grad[1], 1.0f);
  set_grad(a, {std::nanf(""), 1.0f});
  EXPECT_TRUE(std::isnan(clip_grad_norm(params, 1.0f)));
  EXPECT_EQ(a.grad[1], 1.0f);
}

TEST(ClipGradNorm, RejectsNonPositiveLimit) {
  std::vector<Parameter*> none;
  expect_error_containing([&] { clip_grad_norm(none, 0.0f); }, {"--clip-grad-norm"});
  expect_error_containing([&] { clip_grad_norm(none, -1.0f); }, {"--clip-grad-norm"});
  EXPECT_EQ(clip_grad_norm(none, 1.0f), 0.0f);
}

// Large tensors are split over TBB tasks; results must not depend on the
// thread count.
TEST(Optimizer, BitIdenticalForAnyThreadCount) {
  constexpr int64_t kN = 300001;  // several tasks and chunks, odd tail
  auto run = [&](int threads, const std::string& kind) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    Parameter w;
    w.name = "big.weight";
    w.value = Tensor::empty({kN});
    w.grad = Tensor::empty({kN});
    Rng rng(3);
    for (int64_t i = 0; i < kN; ++i) w.value[i] = rng.normal();
    OptimizerOptions o;
    o.kind = kind;
    o.nesterov = true;
    o.weight_decay = 1e-3f;
    auto opt = make_optimizer(o);
    std::vector<Parameter*> params{&w};
    std::vector<float> norms;
    for (int s = 0; s < 3; ++s) {
      for (int64_t i = 0; i < kN; ++i) w.grad[i] = rng.normal();
      norms.push_back(clip_grad_norm(params, 10.0f));
      opt->step(params, 0.05f);
    }
    return std::make_pair(w.value, norms);
  };
  for (const std::string kind : {"sgd", "adamw"}) {
    const auto [one, norms_one] = run(1, kind);
    const auto [two, norms_two] = run(2, kind);
    EXPECT_TRUE(one.equals(two)) << kind;
    EXPECT_EQ(norms_one, norms_two) << kind;
  }
}

TEST(ClipGradNorm, MatchesADoubleReferenceOnLargeTensors) {
  constexpr int64_t kN = 200003;
  Parameter w;
  w.name = "w";
  w.value = Tensor::zeros({kN});
  w.grad = Tensor::empty({kN});
  Rng rng(11);
  double sum = 0.0;
  for (int64_t i = 0; i < kN; ++i) {
    w.grad[i] = rng.normal();
    sum += static_cast<double>(w.grad[i]) * w.grad[i];
  }
  std::vector<Parameter*> params{&w};
  EXPECT_FLOAT_EQ(clip_grad_norm(params, 1e9f), static_cast<float>(std::sqrt(sum)));
}

}  // namespace
}  // namespace sparsetrain

// BatchNorm2d: batch statistics when training (and the running statistics
// updated, PyTorch's convention), running statistics otherwise. Output in the
// layout of the input.
#include <cmath>
#include <sstream>
#include <string>

#include "kernels/batchnorm/batchnorm.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

class BatchNorm2d final : public Node,
                          public ReluFusable,
                          public ResidualFusable,
                          public StatisticsConsumer {
 public:
  BatchNorm2d(const std::string& name, int64_t channels, const BatchNormOptions& options)
      : Node(name), channels_(channels), options_(options) {
    if (channels < 1) {
      throw Error("batchnorm2d '" + name + "': channels must be >= 1, got " +
                  std::to_string(channels));
    }
    if (!(options.momentum >= 0.0f && options.momentum <= 1.0f)) {
      throw Error("batchnorm2d '" + name + "': momentum must be in [0, 1], got " +
                  std::to_string(options.momentum));
    }
    if (!(options.eps > 0.0f) || !std::isfinite(options.eps)) {
      throw Error("batchnorm2d '" + name + "': eps must be a positive number, got " +
                  std::to_string(options.eps));
    }
    const auto make = [&](const char* field, ParamKind kind, float value) {
      Parameter p = zero_parameter(name + "." + field, kind, {channels});
      p.value.fill(value);
      return p;
    };
    weight_ = make("weight", ParamKind::kNorm, 1.0f);
    bias_ = make("bias", ParamKind::kNorm, 0.0f);
    running_mean_ = make("running_mean", ParamKind::kBuffer, 0.0f);
    running_var_ = make("running_var", ParamKind::kBuffer, 1.0f);
  }

  const char* type() const override { return "batchnorm2d"; }

  Shape output_shape(const std::vector<Shape>& inputs) const override {
    expect_inputs(inputs, 1);
    const Shape& x = inputs[0];
    if (x.size() != 4 || x[1] != channels_) {
      fail_input_shape("a 4-D input (N, " + std::to_string(channels_) + ", H, W)", x);
    }
    return x;
  }

  Tensor forward(const ForwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1);
    const Tensor& x = args.inputs[0];
    SPARSETRAIN_ASSERT(x.rank() == 4 && x.dim(1) == channels_);
    kernels::BatchNormDesc desc = describe_input(x);
    // Fuse the ReLU after it when asked and when the kernel chosen for plain
    // BatchNorm also fuses (oneDNN's NHWC kernel does not: unfused it stays).
    // Likewise the residual sum of the Add after it (and that Add's ReLU).
    kernels::BatchNormDesc fused = desc;
    fused.relu = true;
    const kernels::BatchNormKernel& plain = kernels::batchnorm_kernels().pick_for(desc);
    relu_fused_ = fuse_relu_ && args.training && plain.supports(fused);
    kernels::BatchNormDesc summed = desc;
    summed.residual = true;
    summed.relu = residual_relu_asked_;
    residual_fused_ = residual_ != nullptr && args.training && plain.supports(summed) &&
                      plain.forward_training_add != nullptr && residual_->shape() == x.shape() &&
                      residual_->layout() == x.layout() && residual_->plane() == x.plane();
    residual_relu_ = residual_fused_ && residual_relu_asked_;
    desc.relu = relu_fused_;
    if (residual_fused_) desc = summed;
    const kernels::BatchNormKernel& kernel = kernels::batchnorm_kernels().pick_for(desc);
    // Statistics the convolution before formed for this very input.
    stats_given_ = args.training && given_.of != nullptr && given_.of == x.data() &&
                   static_cast<int64_t>(given_.mean.size()) == channels_ &&
                   static_cast<int64_t>(given_.var.size()) == channels_ &&
                   kernel.forward_training_given != nullptr;
    given_.of = nullptr;
    Tensor y = Tensor::empty_like(x);
    saved_mean_ = Tensor::empty({channels_});
    saved_stat_ = Tensor::empty({channels_});
    saved_training_ = args.training;
    if (args.training) {
      if (desc.per_channel() < 2) {
        throw Error("batchnorm2d '" + name() + "': training needs more than one value per " +
                    "channel, got input " + x.shape_string() +
                    " (use a batch of at least 2 or run in evaluation mode)");
      }
      if (stats_given_) {
        kernel.forward_training_given(y.data(), saved_mean_.data(), saved_stat_.data(), x.data(),
                                      residual_fused_ ? residual_->data() : nullptr,
                                      weight_.value.data(), bias_.value.data(), given_.mean.data(),
                                      given_.var.data(), desc);
      } else if (residual_fused_) {
        kernel.forward_training_add(y.data(), saved_mean_.data(), saved_stat_.data(), x.data(),
                                    residual_->data(), weight_.value.data(), bias_.value.data(),
                                    desc);
      } else {
        kernel.forward_training(y.data(), saved_mean_.data(), saved_stat_.data(), x.data(),
                                weight_.value.data(), bias_.value.data(), desc);
      }
      kernels::batchnorm_update_running_stats(running_mean_.value.data(), running_var_.value.data(),
                                              saved_mean_.data(), saved_stat_.data(), channels_,
                                              desc.per_channel(), options_.momentum, options_.eps);
    } else {
      // The statistics used, kept for backward (saliency through an
      // evaluation-mode network).
      saved_mean_.copy_from(running_mean_.value);
      saved_stat_.copy_from(running_var_.value);
      kernel.forward_inference(y.data(), x.data(), weight_.value.data(), bias_.value.data(),
                               saved_mean_.data(), saved_stat_.data(), desc);
    }
    return y;
  }

  std::vector<Tensor> backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1 && args.diff_dst != nullptr);
    SPARSETRAIN_ASSERT(saved_mean_.defined());
    const Tensor& x = args.inputs[0];
    const Tensor dy = to_layout_of(*args.diff_dst, x);
    SPARSETRAIN_ASSERT(dy.shape() == x.shape());
    kernels::BatchNormDesc desc = describe_input(x);
    // diff_dst is the gradient of max(0, y) when the forward fused the ReLU
    // and the executor still fuses; of y otherwise.
    desc.relu = relu_fused_ && fuse_relu_;
    const kernels::BatchNormKernel& kernel = kernels::batchnorm_kernels().pick_for(desc);
    const bool need = args.need_diff_src.empty() || args.need_diff_src[0] != 0;
    Tensor dx = need ? Tensor::empty_like(x) : Tensor();
    float* dx_data = need ? dx.data() : nullptr;
    // The kernels compute the scale and shift gradients with dx in one pass;
    // those that must not change (frozen, or no parameter gradients wanted)
    // go to a scratch buffer.
    Tensor scratch;
    const auto target = [&](Parameter& p) {
      if (args.param_grads && !p.frozen) return p.grad.data();
      if (!scratch.defined()) scratch = Tensor::zeros({2, channels_});
      return scratch.data() + (&p == &weight_ ? 0 : channels_);
    };
    float* dweight = target(weight_);
    float* dbias = target(bias_);
    if (saved_training_) {
      kernel.backward(dx_data, dweight, dbias, dy.data(), x.data(), weight_.value.data(),
                      bias_.value.data(), saved_mean_.data(), saved_stat_.data(), desc);
    } else {
      kernel.backward_inference(dx_data, dweight, dbias, dy.data(), x.data(), weight_.value.data(),
                                saved_mean_.data(), saved_stat_.data(), desc);
    }
    return {dx};
  }

  Saves saves() const override { return {.inputs = true, .output = false}; }
  NodeTraits traits() const override { return {.layout_transparent = true, .padded_planes = true}; }

  void clear_saved() override {
    saved_mean_ = Tensor();
    saved_stat_ = Tensor();
  }

  void set_relu_fusion(bool on) override { fuse_relu_ = on; }
  bool relu_fused() const override { return relu_fused_; }
  void set_residual_fusion(const Tensor* residual, bool relu) override {
    residual_ = residual;
    residual_relu_asked_ = relu;
  }
  bool residual_fused() const override { return residual_fused_; }
  bool residual_relu() const override { return residual_relu_; }
  bool fuses_relu_backward() const override { return relu_fused_ && saved_training_; }
  BatchStatistics* statistics_slot() override { return &given_; }
  bool statistics_given() const override { return stats_given_; }

  std::vector<Parameter*> parameters() override {
    return {&weight_, &bias_, &running_mean_, &running_var_};
  }

  void reset_parameters(Rng&) override {
    weight_.value.fill(1.0f);
    bias_.value.fill(0.0f);
    running_mean_.value.fill(0.0f);
    running_var_.value.fill(1.0f);
  }

  std::string describe() const override {
    std::ostringstream os;
    os << channels_ << " channels, momentum " << options_.momentum << ", eps " << options_.eps;
    return os.str();
  }

 private:
  kernels::BatchNormDesc describe_input(const Tensor& x) const {
    kernels::BatchNormDesc d = {x.dim(0), x.dim(1), x.dim(2), x.dim(3), x.layout(), options_.eps};
    d.plane = x.plane();
    return d;
  }

  int64_t channels_;
  BatchNormOptions options_;
  Parameter weight_, bias_, running_mean_, running_var_;
  // From the last forward: the batch mean and rstd when training, the
  // running mean and variance otherwise.
  Tensor saved_mean_, saved_stat_;
  bool saved_training_ = false;
  bool fuse_relu_ = false;   // what the executor asks (nodes::ReluFusable)
  bool relu_fused_ = false;  // whether the last forward returned max(0, y)
  // nodes::ResidualFusable: what the executor asks (the residual is the
  // executor's, valid during the forward), and whether the last forward
  // returned [max(0,] y + residual [)].
  const Tensor* residual_ = nullptr;
  bool residual_relu_asked_ = false;
  bool residual_fused_ = false;
  bool residual_relu_ = false;
  // nodes::StatisticsConsumer: what the convolution before left, and
  // whether the last forward used it.
  BatchStatistics given_;
  bool stats_given_ = false;
};

}  // namespace

std::unique_ptr<Node> make_batchnorm2d(const std::string& name, int64_t channels,
                                       const BatchNormOptions& options) {
  return std::make_unique<BatchNorm2d>(name, channels, options);
}

}  // namespace sparsetrain::nodes

// The conv2d node. Weights are plain OIHW, (O, C/G, KH, KW).
//
// Dense weight (and masked: dense storage, the trainer applies the mask):
// oneDNN convolutions over activations in dense_conv_layout().
//
// Compressed weight (Graph::compress): the Parameter holds only the stored
// entries in ascending OIHW order, the `values` of kernels/conv_sparse, so
// its dense_index is the list of stored positions. On the sparse kernels the
// node reads its input in Layout::kCHWN (reordering only an input that is
// not already in it), produces kCHWN and returns diff_src in the input's
// layout: BatchNorm, ReLU, pooling and Add keep kCHWN, so a run of sparse
// convolutions and the layers between them never transposes. Each forward
// copies the parameter's values into the packed weight (the optimizer
// updated them in place): one pass over nnz floats, small next to the
// nnz x OH x OW x N multiply-adds of a pass. In dense mode the stored values
// are scattered into a dense weight for oneDNN and the weight gradient is
// gathered back at the stored positions.
//
// Auto modes ask the graph's kernel-choice book once per problem (weight
// geometry, stored count, image size, batch): timed or by the fixed rule,
// or replayed from a record (kernel_choice.h, sparsetrain/kernel_choices.h).
#include "kernels/conv2d/conv2d.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/conv_sparse/conv_sparse.h"
#include "nodes/nodes.h"
#include "nodes/prunable_layer.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {

// NHWC, measured with bench/bench_conv_layout (ResNet-20 convolutions, batch
// 128, 2 threads, oneDNN 2.6): with channels innermost oneDNN runs its AVX-512
// JIT kernels on the activations as they are (brgconv forward, jit
// backward-data and backward-weights), about 80 ms for all convolutions of a
// training step; with NCHW it falls back to im2col + GEMM for every pass,
// about 300 ms.
Layout dense_conv_layout() { return Layout::kNHWC; }

namespace {

class Conv2dNode final : public PrunableLayer<kernels::ConvSparseWeights, Shape>,
                         public StatisticsProducer {
 public:
  Conv2dNode(const std::string& name, int64_t in_channels, const Conv2dOptions& options)
      : PrunableLayer(name, options.bias), in_channels_(in_channels), options_(options) {
    const Shape weight_shape{options.out_channels, in_channels / options.groups, options.kernel,
                             options.kernel};
    weight_ = zero_parameter(name + ".weight", ParamKind::kWeight, weight_shape);
    if (options.bias)
      bias_ = zero_parameter(name + ".bias", ParamKind::kBias, {options.out_channels});
  }

  const char* type() const override { return "conv2d"; }

  Shape output_shape(const std::vector<Shape>& inputs) const override {
    expect_inputs(inputs, 1);
    const Shape& in = inputs[0];
    if (in.size() != 4) {
      throw Error(prefix() + "expects a 4-D input (N, " + std::to_string(in_channels_) +
                  ", H, W), got " + shape_to_string(in));
    }
    if (in[1] != in_channels_) {
      throw Error(prefix() + "expects " + std::to_string(in_channels_) + " input channels, got " +
                  std::to_string(in[1]) + " (input shape " + shape_to_string(in) + ")");
    }
    const int64_t k = options_.kernel, p = options_.padding;
    if (in[2] + 2 * p < k || in[3] + 2 * p < k) {
      throw Error(prefix() + "a " + std::to_string(k) + "x" + std::to_string(k) +
                  " kernel with padding " + std::to_string(p) + " does not fit the " +
                  std::to_string(in[2]) + "x" + std::to_string(in[3]) + " input (input shape " +
                  shape_to_string(in) + ")");
    }
    return kernel_shape(in).dst_shape();
  }

  Tensor forward(const ForwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1);
    output_padded_ = false;
    if (packed_) return forward_compressed(args.inputs[0], args.keep_for_backward);
    if (direct_) return forward_packed(direct_weights(), args.inputs[0], args.keep_for_backward);
    const Layout layout = dense_conv_layout();
    const Tensor src = to_layout(args.inputs[0], layout);
    const Shape dst_shape = output_shape({src.shape()});
    const kernels::Conv2dShape s = kernel_shape(src.shape());
    Tensor dst = Tensor::empty(dst_shape, layout);
    kernels::conv2d_dense().forward(dst.data(), src.data(), weight_.value.data(), bias_data(), s,
                                    layout);
    return dst;
  }

  // diff_src = conv^T(diff_dst), in the layout of the input; weight and bias
  // gradients accumulate.
  std::vector<Tensor> backward(const BackwardArgs& args) override {
    SPARSETRAIN_ASSERT(args.inputs.size() == 1 && args.inputs[0].defined());
    SPARSETRAIN_ASSERT(args.diff_dst != nullptr && args.diff_dst->defined());
    if (packed_) return backward_compressed(args);
    if (direct_) return backward_packed(direct_weights(), args);
    const Layout layout = dense_conv_layout();
    const Tensor& input = args.inputs[0];
    const Tensor src = to_layout(input, layout);
    const Tensor diff_dst = to_layout(*args.diff_dst, layout);
    const kernels::Conv2dShape s = kernel_shape(src.shape());
    SPARSETRAIN_ASSERT(diff_dst.shape() == s.dst_shape());

    const GradTargets grads = grad_targets(args, weight_, bias_param());
    if (grads.run()) {
      kernels::conv2d_dense().backward_weights(grads.weight, grads.bias, diff_dst.data(),
                                               src.data(), s, layout);
      ++weight_grad_passes_;
    }
    std::vector<Tensor> diff_src(1);
    if (args.need_diff_src.empty() || args.need_diff_src[0]) {
      Tensor grad = Tensor::empty(src.shape(), layout);
      kernels::conv2d_dense().backward_data(grad.data(), diff_dst.data(), weight_.value.data(), s,
                                            layout);
      diff_src[0] = to_layout(grad, input.layout());
    }
    return diff_src;
  }

  Saves saves() const override { return {.inputs = true, .output = false}; }
  NodeTraits traits() const override { return {.convolution = true}; }
  // He-normal with fan_in = C/G * KH * KW.
  void reset_parameters(Rng& rng) override {
    reset_he_normal(rng, in_channels_ / options_.groups * options_.kernel * options_.kernel);
  }

  std::string describe() const override {
    const std::string k = std::to_string(options_.kernel);
    std::string text = k + "x" + k + " s" + std::to_string(options_.stride) + " p" +
                       std::to_string(options_.padding) + " " + std::to_string(in_channels_) +
                       "->" + std::to_string(options_.out_channels);
    if (options_.groups > 1) {
      const bool depthwise =
          options_.groups == in_channels_ && options_.groups == options_.out_channels;
      text += depthwise ? " depthwise" : " g" + std::to_string(options_.groups);
    }
    if (!options_.bias) text += " no-bias";
    return text + density_note();
  }

  void compress(const Tensor& mask) override {
    const Shape shape = dense_shape();
    const int64_t size = Tensor::count(shape);
    if (mask.numel() != size) {
      throw Error(prefix() + "compress: the mask has shape " + mask.shape_string() + ", expected " +
                  shape_to_string(shape));
    }
    const Tensor dense = dense_weight();
    const Tensor m = to_layout(mask, mask.rank() == 4 ? Layout::kNCHW : Layout::kPlain);
    std::vector<uint8_t> keep(static_cast<std::size_t>(size));
    for (int64_t i = 0; i < size; ++i) keep[i] = m[i] != 0.0f ? 1 : 0;
    auto packed = std::make_unique<kernels::ConvSparseWeights>(kernels::conv_sparse_pack(
        dense.data(), keep.data(), shape[0], in_channels_, shape[2], shape[3], options_.groups));
    const int64_t nnz = packed->nnz;
    Tensor value = Tensor::empty({nnz});
    if (nnz > 0) {
      std::memcpy(value.data(), packed->values.data(),
                  static_cast<std::size_t>(nnz) * sizeof(float));
    }
    weight_.value = value;
    weight_.grad = Tensor::zeros({nnz});
    weight_.dense_shape = shape;
    weight_.dense_index.assign(packed->position.begin(), packed->position.end());
    weight_.mask = Tensor();
    packed_ = std::move(packed);
    forget_kernels();
  }

  void decompress() override {
    if (!packed_) return;
    weight_.value = dense_weight();
    weight_.grad = Tensor::zeros(dense_shape());
    weight_.dense_shape.clear();
    weight_.dense_index.clear();
    packed_.reset();
    forget_kernels();
  }

  bool runs_direct() const override { return direct_ && !packed_; }

  const Conv2dOptions& options() const { return options_; }

  Layout input_layout(const Shape& input) override {
    if (packed_) return use_sparse(input) ? Layout::kCHWN : dense_conv_layout();
    return direct_ ? Layout::kCHWN : dense_conv_layout();
  }

  // Only for a few input channels (a stem), where the direct kernels cost
  // about what oneDNN does once its reorders are counted: ResNet-20's
  // 3 -> 16 stem at batch 128, `sparsetrain bench conv --cin 3 --cout 16
  // --hw 32 --batch 128 --sparsity 0 --cache warm`, forward 1.38-1.60 ms
  // against 1.12-1.15 ms and backward-weights 1.14-1.39 ms against 0.90 ms
  // (0.55 and 0.80 ms when this was chosen; the build of that commit,
  // e2a029d, gives today's figures too: the machine changed, not the code),
  // while oneDNN would add the 8 MB output's reorder to CHWN and its
  // gradient's back (about 0.6 ms each: README, "Sparse convolutions and
  // the layout domain").
  void set_padded_output(bool on) override { padded_output_ = on; }
  bool padded_output() const override { return output_padded_; }

  void set_direct_dense(bool on) override {
    on = on && in_channels_ <= 4;
    if (on == direct_) return;
    direct_ = on;
    direct_packed_.reset();
    saved_src_ = Tensor();
  }

 private:
  Shape dense_shape() const {
    return {options_.out_channels, in_channels_ / options_.groups, options_.kernel,
            options_.kernel};
  }

  // The OIHW weight: the parameter itself when dense, else the stored values
  // scattered into zeros (a new tensor).
  Tensor dense_weight() const {
    if (!packed_) return weight_.value;
    Tensor dense = Tensor::zeros(dense_shape());
    kernels::conv_sparse_scatter(*packed_, weight_.value.data(), dense.data());
    return dense;
  }

  void forget_kernels() {
    direct_packed_.reset();
    saved_src_ = Tensor();
    dense_scratch_ = Tensor();
    dense_grad_scratch_ = Tensor();
  }

  bool choose_sparse(const Shape& input) override;

  // keep: save the input (in the layout backward reads) for backward.
  Tensor forward_compressed(const Tensor& x, bool keep) {
    sparse_step_ = use_sparse(x.shape());
    last_sparse_ = sparse_step_;
    if (sparse_step_) return forward_packed(*packed_, x, keep);
    const Shape dst_shape = output_shape({x.shape()});
    const kernels::Conv2dShape s = kernel_shape(x.shape());
    const Layout layout = dense_conv_layout();
    if (!dense_scratch_.defined()) dense_scratch_ = Tensor::zeros(dense_shape());
    kernels::conv_sparse_scatter(*packed_, weight_.value.data(), dense_scratch_.data());
    const Tensor src = to_layout(x, layout);
    Tensor dst = Tensor::empty(dst_shape, layout);
    kernels::conv2d_dense().forward(dst.data(), src.data(), dense_scratch_.data(), bias_data(), s,
                                    layout);
    saved_src_ = keep ? src : Tensor();
    return dst;
  }

  // The weight `packed` stores (packed_, or direct_weights() for a dense one)
  // on the sparse kernels, in kCHWN; its values are weight_.value in order.
  Tensor forward_packed(kernels::ConvSparseWeights& packed, const Tensor& x, bool keep) {
    // The optimizer updated the parameter: refresh the kernels' copies.
    if (packed.nnz > 0) {
      std::memcpy(packed.values.data(), weight_.value.data(),
                  static_cast<std::size_t>(packed.nnz) * sizeof(float));
    }
    // A padded input keeps its planes; the output is padded when planned.
    const Tensor src = to_layout(x, Layout::kCHWN);
    const Shape out = output_shape({x.shape()});
    Tensor dst = padded_output_
                     ? Tensor::empty_planes(out, chwn_padded_plane(out[0], out[2], out[3]))
                     : Tensor::empty(out, Layout::kCHWN);
    kernels::Conv2dShape s = kernel_shape(x.shape());
    s.src_plane = src.plane();
    s.dst_plane = dst.plane();
    output_padded_ = dst.padded();
    if (BatchStatistics* st = stats_slot_) {
      // The BatchNorm after this layer takes its batch statistics from here.
      st->mean.resize(static_cast<std::size_t>(packed.out_channels));
      st->var.resize(st->mean.size());
      const bool formed = kernels::conv_sparse_forward_stats(
          dst.data(), st->mean.data(), st->var.data(), src.data(), packed, bias_data(), s);
      st->of = formed ? dst.data() : nullptr;
    } else {
      kernels::conv_sparse_forward(dst.data(), src.data(), packed, bias_data(), s);
    }
    saved_src_ = keep ? src : Tensor();
    return dst;
  }

  void set_output_statistics(BatchStatistics* slot) override { stats_slot_ = slot; }

  std::vector<Tensor> backward_packed(const kernels::ConvSparseWeights& packed,
                                      const BackwardArgs& args) {
    const Tensor& input = args.inputs[0];
    const Tensor src = saved_src_.defined() && saved_src_.layout() == Layout::kCHWN
                           ? saved_src_
                           : to_layout(input, Layout::kCHWN);
    const Tensor diff_dst = to_layout(*args.diff_dst, Layout::kCHWN);
    // Either may have padded planes (Tensor::plane); the gradient of the
    // input gets the input's.
    kernels::Conv2dShape s = kernel_shape(input.shape());
    s.src_plane = src.plane();
    s.dst_plane = diff_dst.plane();
    SPARSETRAIN_ASSERT(diff_dst.shape() == s.dst_shape());
    const GradTargets grads = grad_targets(args, weight_, bias_param());
    if (grads.run()) {
      kernels::conv_sparse_backward_weights(grads.weight, grads.bias, diff_dst.data(), src.data(),
                                            packed, s);
      ++weight_grad_passes_;
    }
    std::vector<Tensor> diff_src(1);
    if (args.need_diff_src.empty() || args.need_diff_src[0]) {
      const Tensor* sum = args.sum_into.empty() ? nullptr : &args.sum_into[0];
      const bool has_sum = sum != nullptr && sum->defined();
      // The backward of the ReLU before this layer, fused into the pass
      // (BackwardArgs::relu_output): when its output is in this layout and
      // this pass writes the ReLU's whole gradient.
      const Tensor* relu = args.relu_output;
      const bool relu_here = relu != nullptr && args.relu_applied != nullptr &&
                             relu->layout() == Layout::kCHWN && relu->shape() == input.shape() &&
                             relu->plane() == src.plane();
      if (has_sum && sum->layout() == Layout::kCHWN && sum->shape() == input.shape() &&
          sum->plane() == src.plane()) {
        // Added into the gradient the input already has (no extra pass).
        Tensor into = *sum;
        kernels::conv_sparse_backward_data_relu(into.data(), diff_dst.data(), packed, s,
                                                /*accumulate=*/true,
                                                relu_here ? relu->data() : nullptr);
        if (relu_here) *args.relu_applied = true;
        diff_src[0] = into;
      } else {
        // Only the whole gradient may be masked: not with another's pending.
        const bool mask = relu_here && !has_sum;
        Tensor grad = Tensor::empty_like(src);
        kernels::conv_sparse_backward_data_relu(grad.data(), diff_dst.data(), packed, s,
                                                /*accumulate=*/false,
                                                mask ? relu->data() : nullptr);
        if (mask) *args.relu_applied = true;
        diff_src[0] = to_layout(grad, input.layout());
      }
    }
    saved_src_ = Tensor();
    return diff_src;
  }

  // The dense weight as the sparse kernels store it, every position kept
  // (built on first use; forward_packed refreshes the values).
  kernels::ConvSparseWeights& direct_weights() {
    if (!direct_packed_) {
      const std::vector<uint8_t> all(static_cast<std::size_t>(weight_.value.numel()), 1);
      direct_packed_ = std::make_unique<kernels::ConvSparseWeights>(kernels::conv_sparse_pack(
          weight_.value.data(), all.data(), options_.out_channels, in_channels_, options_.kernel,
          options_.kernel, options_.groups));
      SPARSETRAIN_ASSERT(direct_packed_->nnz == weight_.value.numel());
    }
    return *direct_packed_;
  }

  std::vector<Tensor> backward_compressed(const BackwardArgs& args) {
    if (sparse_step_) return backward_packed(*packed_, args);
    const Tensor& input = args.inputs[0];
    const bool need = args.need_diff_src.empty() || args.need_diff_src[0];
    const GradTargets grads = grad_targets(args, weight_, bias_param());
    const Layout layout = dense_conv_layout();
    const Tensor src = saved_src_.defined() && saved_src_.layout() == layout
                           ? saved_src_
                           : to_layout(input, layout);
    const Tensor diff_dst = to_layout(*args.diff_dst, layout);
    const kernels::Conv2dShape s = kernel_shape(input.shape());
    SPARSETRAIN_ASSERT(diff_dst.shape() == s.dst_shape());
    std::vector<Tensor> diff_src(1);
    if (grads.run()) {
      if (!dense_grad_scratch_.defined()) dense_grad_scratch_ = Tensor::empty(dense_shape());
      dense_grad_scratch_.zero();
      kernels::conv2d_dense().backward_weights(dense_grad_scratch_.data(), grads.bias,
                                               diff_dst.data(), src.data(), s, layout);
      ++weight_grad_passes_;
    }
    if (grads.weight_learns) {
      float* g = weight_.grad.data();
      const float* dense = dense_grad_scratch_.data();
      const std::vector<uint32_t>& position = packed_->position;
      for (std::size_t k = 0; k < position.size(); ++k) g[k] += dense[position[k]];
    }
    if (need) {
      Tensor grad = Tensor::empty(input.shape(), layout);
      kernels::conv2d_dense().backward_data(grad.data(), diff_dst.data(), dense_scratch_.data(), s,
                                            layout);
      diff_src[0] = to_layout(grad, input.layout());
    }
    saved_src_ = Tensor();
    return diff_src;
  }

  std::string prefix() const { return "conv2d '" + name() + "': "; }

  kernels::Conv2dShape kernel_shape(const Shape& in) const {
    return kernels::Conv2dShape::make(in[0], in[1], in[2], in[3], options_.out_channels,
                                      options_.kernel, options_.stride, options_.padding,
                                      options_.groups);
  }

  int64_t in_channels_;
  Conv2dOptions options_;
  // Dense weight on the direct kernels (set_direct_dense).
  bool direct_ = false;
  // The sparse kernels' output with padded channel planes (set_padded_output),
  // and whether the last forward's was.
  bool padded_output_ = false;
  bool output_padded_ = false;
  std::unique_ptr<kernels::ConvSparseWeights> direct_packed_;
  // The BatchNorm's slot for this forward's statistics (StatisticsProducer).
  BatchStatistics* stats_slot_ = nullptr;
};

// Auto mode: one training step of the layer (forward, backward-data,
// backward-weights) on the sparse kernels in kCHWN against oneDNN in
// dense_conv_layout(), once per problem in the graph. The dense side also
// pays the four reorders it costs inside a run of sparse layers, which is
// where a compressed layer sits (its input and output, and their gradients,
// kCHWN -> NHWC and back): at a density where the two kernels are close, the
// sparse ones win the layer, as they win the step. (ResNet-20 under AC/DC's
// global top-k leaves the 16-channel layers at 35-40% density, where oneDNN
// alone is up to 9% faster but the four 8 MB reorders cost about 3 ms.)
bool Conv2dNode::choose_sparse(const Shape& input) {
  const kernels::ConvSparseWeights& w = *packed_;
  const kernels::Conv2dShape s = kernel_shape(input);
  const auto ll = [](int64_t v) { return static_cast<long long>(v); };
  char key[256], family[256], label[192];
  std::snprintf(key, sizeof key, "conv2d %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld",
                ll(s.out_channels), ll(s.in_channels), ll(s.kernel_h), ll(s.stride_h), ll(s.pad_h),
                ll(s.groups), ll(s.in_h), ll(s.in_w), ll(s.batch), ll(w.nnz),
                ll(options_.bias ? 1 : 0));
  std::snprintf(family, sizeof family, "conv2d %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld",
                ll(s.out_channels), ll(s.in_channels), ll(s.kernel_h), ll(s.stride_h), ll(s.pad_h),
                ll(s.groups), ll(s.in_h), ll(s.in_w), ll(w.nnz), ll(options_.bias ? 1 : 0));
  const std::string groups = s.groups == 1 ? "" : " g" + std::to_string(s.groups);
  std::snprintf(
      label, sizeof label, "%lld->%lld %lldx%lld s%lld p%lld%s %lldx%lld batch %lld density %.3f",
      ll(s.in_channels), ll(s.out_channels), ll(s.kernel_h), ll(s.kernel_w), ll(s.stride_h),
      ll(s.pad_h), groups.c_str(), ll(s.in_h), ll(s.in_w), ll(s.batch), w.density());
  KernelChoice problem;
  problem.layer = name();
  problem.op = "conv2d";
  problem.problem = key;
  problem.family = family;
  problem.shape = label;
  problem.batch = s.batch;
  problem.nnz = w.nnz;
  problem.density = w.density();
  return decide_sparse(kernels_, std::move(problem), [&] {
    const Layout dense_layout = dense_conv_layout();
    Tensor src = Tensor::full(s.src_shape(), 0.5f, Layout::kCHWN);
    Tensor dst = Tensor::empty(s.dst_shape(), Layout::kCHWN);
    Tensor dsrc = Tensor::empty(s.src_shape(), Layout::kCHWN);
    Tensor dvalues = Tensor::zeros({std::max<int64_t>(w.nnz, 1)});
    Tensor dense = Tensor::empty(s.weights_shape());
    Tensor ddense = Tensor::zeros(s.weights_shape());
    kernels::conv_sparse_unpack(w, dense.data());
    TimedSteps steps;
    steps.sparse = [=, &w]() mutable {
      kernels::conv_sparse_forward(dst.data(), src.data(), w, nullptr, s);
      kernels::conv_sparse_backward_data(dsrc.data(), dst.data(), w, s);
      kernels::conv_sparse_backward_weights(dvalues.data(), nullptr, dst.data(), src.data(), w, s);
    };
    steps.dense = [=]() mutable {
      const Tensor src_d = to_layout(src, dense_layout);
      Tensor dst_d = Tensor::empty(s.dst_shape(), dense_layout);
      kernels::conv2d_dense().forward(dst_d.data(), src_d.data(), dense.data(), nullptr, s,
                                      dense_layout);
      const Tensor dst_back = to_layout(dst_d, Layout::kCHWN);
      const Tensor diff_dst_d = to_layout(dst_back, dense_layout);
      Tensor dsrc_d = Tensor::empty(s.src_shape(), dense_layout);
      kernels::conv2d_dense().backward_data(dsrc_d.data(), diff_dst_d.data(), dense.data(), s,
                                            dense_layout);
      const Tensor dsrc_back = to_layout(dsrc_d, Layout::kCHWN);
      kernels::conv2d_dense().backward_weights(ddense.data(), nullptr, diff_dst_d.data(),
                                               src_d.data(), s, dense_layout);
    };
    return steps;
  });
}

}  // namespace

const Conv2dOptions* conv2d_options(Node& node) {
  const auto* conv = dynamic_cast<const Conv2dNode*>(&node);
  return conv != nullptr ? &conv->options() : nullptr;
}

std::unique_ptr<Node> make_conv2d(const std::string& name, int64_t in_channels,
                                  const Conv2dOptions& options) {
  const std::string where = "conv2d '" + name + "': ";
  auto require_positive = [&](int64_t value, const char* what) {
    if (value <= 0) {
      throw Error(where + what + " must be positive, got " + std::to_string(value));
    }
  };
  require_positive(in_channels, "in_channels");
  require_positive(options.out_channels, "out_channels");
  require_positive(options.kernel, "kernel");
  require_positive(options.stride, "stride");
  require_positive(options.groups, "groups");
  if (options.padding < 0) {
    throw Error(where + "padding must be >= 0, got " + std::to_string(options.padding));
  }
  if (in_channels % options.groups != 0 || options.out_channels % options.groups != 0) {
    throw Error(where + "groups (" + std::to_string(options.groups) +
                ") must divide both in_channels (" + std::to_string(in_channels) +
                ") and out_channels (" + std::to_string(options.out_channels) + ")");
  }
  return std::make_unique<Conv2dNode>(name, in_channels, options);
}

}  // namespace sparsetrain::nodes

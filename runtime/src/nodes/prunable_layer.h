// What the conv2d and linear nodes share (conv2d.cc, linear.cc): a weight and
// an optional bias, the weight's compressed form for the sparse kernels
// (Packed), and the choice between the sparse and the dense kernels per Key
// (the input shape, or the batch), asked of the graph's kernel-choice book
// in the auto modes (kernel_choice.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "nodes/nodes.h"
#include "sparsetrain/rng.h"

namespace sparsetrain::nodes {

template <class Packed, class Key>
class PrunableLayer : public PrunableNode {
 public:
  PrunableLayer(const std::string& name, bool bias) : PrunableNode(name), has_bias_(bias) {}

  void clear_saved() override { saved_src_ = Tensor(); }

  std::vector<Parameter*> parameters() override {
    if (has_bias_) return {&weight_, &bias_};
    return {&weight_};
  }

  Parameter& weight() override { return weight_; }

  void set_kernels(SparseKernels kernels) override { kernels_ = kernels; }

  bool runs_sparse() const override {
    if (!packed_ || kernels_ == SparseKernels::kDense) return false;
    if (kernels_ == SparseKernels::kSparse) return true;
    return last_sparse_;  // auto modes
  }

 protected:
  // He-normal (He et al. 2015, "Delving Deep into Rectifiers", sec. 2.2):
  // std = sqrt(2 / fan_in), on the dense weight (a compressed one is
  // decompressed first); the bias zero.
  void reset_he_normal(Rng& rng, int64_t fan_in) {
    const float stddev = static_cast<float>(std::sqrt(2.0 / static_cast<double>(fan_in)));
    if (packed_) decompress();
    float* w = weight_.value.data();
    for (int64_t i = 0; i < weight_.value.numel(); ++i) w[i] = stddev * rng.normal();
    if (has_bias_) bias_.value.zero();
  }

  // Whether the compressed weight runs on the sparse kernels for `key`: as
  // forced, or in the auto modes as choose_sparse(key) says. Asked at every
  // forward (and by the executor for the input's layout); the book decides
  // once per problem.
  bool use_sparse(const Key& key) {
    if (kernels_ == SparseKernels::kSparse || kernels_ == SparseKernels::kDense)
      return kernels_ == SparseKernels::kSparse;
    return choose_sparse(key);
  }
  // Asks the book about `key` (PrunableNode::decide_sparse).
  virtual bool choose_sparse(const Key& key) = 0;

  // " sparse density 0.100" when compressed, else empty: the end of describe().
  std::string density_note() const {
    if (!packed_) return {};
    char buf[64];
    std::snprintf(buf, sizeof buf, " sparse density %.3f", packed_->density());
    return buf;
  }

  const float* bias_data() const { return has_bias_ ? bias_.value.data() : nullptr; }
  Parameter* bias_param() { return has_bias_ ? &bias_ : nullptr; }

  bool has_bias_;
  Parameter weight_;
  Parameter bias_;  // unused without a bias

  // Compressed state (null when dense).
  std::unique_ptr<Packed> packed_;
  SparseKernels kernels_ = SparseKernels::kAuto;
  bool sparse_step_ = true;  // what the last forward ran
  bool last_sparse_ = true;
  Tensor saved_src_;           // the input in the layout of the last forward
  Tensor dense_scratch_;       // dense mode: the scattered weight
  Tensor dense_grad_scratch_;  // dense mode: the dense weight gradient
};

}  // namespace sparsetrain::nodes

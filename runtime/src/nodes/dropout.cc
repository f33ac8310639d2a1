// Inverted dropout (Srivastava et al. 2014, with the 1 / (1 - p) scaling at
// training time so inference is the identity). The mask is drawn from a
// sparsetrain::Rng seeded by the step seed mixed with a hash of the node name,
// so two dropout nodes never share a mask and a run is reproducible. It is
// kept as bits (1/32 of the activation) until backward.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/eltwise/eltwise.h"
#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {
namespace {

// FNV-1a, 64 bit.
uint64_t hash_name(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001b3ULL;
  }
  return h;
}

class Dropout final : public UnaryNode {
 public:
  Dropout(const std::string& name, float p) : UnaryNode(name), p_(p), name_hash_(hash_name(name)) {
    if (!(p >= 0.0f && p < 1.0f)) {
      throw Error("dropout '" + name + "': p must be in [0, 1), got " + std::to_string(p));
    }
  }

  const char* type() const override { return "dropout"; }

  Tensor unary_forward(const Tensor& x, const ForwardArgs& args) override {
    mask_.clear();
    if (!args.training) return x;  // identity: a view, no copy
    const int64_t count = x.numel();
    mask_.resize(static_cast<size_t>(kernels::dropout_mask_words(count)));
    const kernels::EltwiseKernel& k = kernels::eltwise_kernels().pick();
    k.dropout_mask(mask_.data(), count, p_, args.seed ^ name_hash_);
    Tensor y = Tensor::empty(x.shape(), x.layout());
    k.dropout_forward(y.data(), x.data(), mask_.data(), count, p_);
    return y;
  }

  Tensor unary_backward(const BackwardArgs& args) override {
    const Tensor& dy = *args.diff_dst;
    if (mask_.empty()) return dy;  // the forward ran in evaluation mode
    SPARSETRAIN_ASSERT(static_cast<int64_t>(mask_.size()) ==
                       kernels::dropout_mask_words(dy.numel()));
    Tensor dx = Tensor::empty(dy.shape(), dy.layout());
    kernels::eltwise_kernels().pick().dropout_backward(dx.data(), dy.data(), mask_.data(),
                                                       dy.numel(), p_);
    return dx;
  }

  Saves saves() const override { return {}; }

  void clear_saved() override { mask_ = {}; }

  std::string describe() const override { return "p=" + std::to_string(p_); }

 private:
  float p_;
  uint64_t name_hash_;
  std::vector<uint64_t> mask_;  // bits of the last training forward; empty otherwise
};

}  // namespace

std::unique_ptr<Node> make_dropout(const std::string& name, float p) {
  return std::make_unique<Dropout>(name, p);
}

}  // namespace sparsetrain::nodes

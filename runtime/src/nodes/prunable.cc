// What the executor asks of nodes about sparse kernels and layouts.
#include <string>

#include "nodes/nodes.h"
#include "sparsetrain/error.h"

namespace sparsetrain::nodes {

SparseKernels parse_sparse_kernels(const std::string& mode) {
  if (mode == "auto") return SparseKernels::kAuto;
  if (mode == "sparse") return SparseKernels::kSparse;
  if (mode == "dense") return SparseKernels::kDense;
  if (mode == "auto-fixed") return SparseKernels::kAutoFixed;
  throw Error("--kernels: unknown kernels '" + mode +
              "' (expected sparse, dense, auto or auto-fixed)");
}

const char* sparse_kernels_name(SparseKernels kernels) {
  switch (kernels) {
    case SparseKernels::kAuto:
      return "auto";
    case SparseKernels::kAutoFixed:
      return "auto-fixed";
    case SparseKernels::kSparse:
      return "sparse";
    case SparseKernels::kDense:
      return "dense";
  }
  return "auto";
}

bool PrunableNode::decide_sparse(SparseKernels kernels, KernelChoice problem,
                                 const std::function<TimedSteps()>& prepare) {
  if (kernels == SparseKernels::kSparse || kernels == SparseKernels::kDense)
    return kernels == SparseKernels::kSparse;
  if (!book_) book_ = std::make_shared<KernelChoiceBook>();
  problem.kernels = sparse_kernels_name(kernels);
  return book_->choose(std::move(problem), prepare);
}

GradTargets grad_targets(const BackwardArgs& args, Parameter& weight, Parameter* bias) {
  GradTargets t;
  const bool bias_learns = args.param_grads && bias != nullptr && !bias->frozen;
  t.weight_learns = args.param_grads && !weight.frozen;
  if (bias_learns) t.bias = bias->grad.data();
  if (t.weight_learns) {
    t.weight = weight.grad.data();
  } else if (bias_learns) {
    t.scratch = Tensor::zeros(weight.grad.shape());
    t.weight = t.scratch.data();
  }
  return t;
}

PrunableNode* as_prunable(Node& node) { return dynamic_cast<PrunableNode*>(&node); }

ReluFusable* as_relu_fusable(Node& node) { return dynamic_cast<ReluFusable*>(&node); }
ResidualFusable* as_residual_fusable(Node& node) { return dynamic_cast<ResidualFusable*>(&node); }
SumFoldable* as_sum_foldable(Node& node) { return dynamic_cast<SumFoldable*>(&node); }
StatisticsConsumer* as_statistics_consumer(Node& node) {
  return dynamic_cast<StatisticsConsumer*>(&node);
}
StatisticsProducer* as_statistics_producer(Node& node) {
  return dynamic_cast<StatisticsProducer*>(&node);
}

Layout preferred_input_layout(Node& node, std::span<const Tensor> inputs, std::size_t k) {
  SPARSETRAIN_ASSERT(k < inputs.size());
  if (PrunableNode* p = as_prunable(node)) return p->input_layout(inputs[k].shape());
  // Add: the output takes the first input's layout and the second is read in
  // it (see add.cc).
  if (node.traits().sums_inputs) return inputs[0].layout();
  return inputs[k].layout();
}

}  // namespace sparsetrain::nodes

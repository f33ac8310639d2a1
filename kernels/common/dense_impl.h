// Which implementation of the dense ops (conv2d, linear) the runtime's
// nodes call: oneDNN, the fastest here and the default, or the scalar
// reference (a test or a benchmark swaps it with one call, or
// SPARSETRAIN_DENSE=ref for a whole process). The per-op lists
// (kConv2dDenseKernels, kLinearDenseKernels; kernels/common/kernel_list.h)
// hold both.
#pragma once

#include <cstdint>

#include "kernels/common/cpu.h"
#include "kernels/common/kernel_list.h"

namespace sparsetrain::kernels {

enum class DenseImpl : uint8_t { kRef, kDnnl };

// Process-wide; thread-safe. The first read takes SPARSETRAIN_DENSE ("ref"
// or "dnnl") when set; any other value is logged as a warning and ignored.
void set_dense_impl(DenseImpl impl);
DenseImpl dense_impl();
const char* dense_impl_name(DenseImpl impl);  // "ref" | "dnnl"

// One dense variant of an op (conv2d, linear): its three passes, each a
// function pointer type of that op.
template <class ForwardFn, class BackwardDataFn, class BackwardWeightsFn>
struct DenseKernels {
  const char* name;  // "dnnl", "ref"
  Isa isa;           // kernels/common/kernel_list.h
  ForwardFn forward;
  BackwardDataFn backward_data;
  BackwardWeightsFn backward_weights;
};

// The variant the runtime's dense nodes run: the list's reference when
// dense_impl() says so, else its pick.
template <class Kernels>
const Kernels& dense_pick(const KernelList<Kernels>& list) {
  return dense_impl() == DenseImpl::kRef ? list.reference() : list.pick();
}

}  // namespace sparsetrain::kernels

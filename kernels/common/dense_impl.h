// Which implementation of the dense ops (conv2d, linear) the runtime's
// nodes call: oneDNN, the fastest here and the default, or the scalar
// reference (a test or a benchmark swaps it with one call, or
// SPARSETRAIN_DENSE=ref for a whole process). The per-op lists
// (kConv2dDenseKernels, kLinearDenseKernels; kernels/common/kernel_list.h)
// hold both.
#pragma once

#include <cstdint>

namespace sparsetrain::kernels {

enum class DenseImpl : uint8_t { kRef, kDnnl };

// Process-wide; thread-safe. The first read takes SPARSETRAIN_DENSE ("ref"
// or "dnnl") when set; any other value is logged as a warning and ignored.
void set_dense_impl(DenseImpl impl);
DenseImpl dense_impl();
const char* dense_impl_name(DenseImpl impl);  // "ref" | "dnnl"

}  // namespace sparsetrain::kernels

// Declarations of the registered micro-kernels (see linear_sparse.h for the
// contracts). Internal to kernels/linear_sparse: each *_avx2.cc / *_avx512.cc
// defines its own, and only linear_sparse_dispatch.cc takes their addresses.
#pragma once

#include "kernels/linear_sparse/linear_sparse.h"

namespace sparsetrain::kernels::ukernel {

// ref: scalar loops, any tile width.
void f32_spmm__ref(const SpmmArgs& args);
void f32_sddmm__ref(const SddmmArgs& args);

// AVX2 (8 floats per vector).
void f32_spmm_4x8__avx2(const SpmmArgs& args);
void f32_sddmm_4x8__avx2(const SddmmArgs& args);

// AVX-512 (16 floats per vector).
void f32_spmm_4x16__avx512(const SpmmArgs& args);
void f32_sddmm_4x16__avx512(const SddmmArgs& args);

}  // namespace sparsetrain::kernels::ukernel

// The built-in sparsity methods (one file each in this folder). registry.cc
// registers them once, before anything else, in this order: the order
// sparsity_method_names() lists them in. A new built-in is one file here and
// one line in register_builtin_sparsity_methods. Registration is explicit
// because a static library drops an object file nothing refers to,
// self-registration with it.
#pragma once

#include <memory>

#include "sparsetrain/sparsity_method.h"

namespace sparsetrain::detail {

std::unique_ptr<SparsityMethod> make_static_method();  // static.cc
std::unique_ptr<SparsityMethod> make_acdc_method();    // acdc.cc
std::unique_ptr<SparsityMethod> make_gmp_method();     // gmp.cc
std::unique_ptr<SparsityMethod> make_rigl_method();    // rigl.cc

}  // namespace sparsetrain::detail

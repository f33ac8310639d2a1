// The sparsity method registry (sparsetrain/sparsity_method.h).
#include "sparsity/methods/registry.h"

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/named_registry.h"
#include "sparsetrain/error.h"
#include "sparsetrain/sparsity_method.h"
#include "sparsity/sparsity_internal.h"

namespace sparsetrain {
namespace {

// In registration order (the unknown-method message lists them so).
detail::NamedRegistry<SparsityMethodFactory>& registry() {
  static detail::NamedRegistry<SparsityMethodFactory> r("register_sparsity_method",
                                                        "a sparsity method");
  return r;
}

void register_builtin_sparsity_methods() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& r = registry();
    r.add("static", detail::make_static_method);
    r.add("acdc", detail::make_acdc_method);
    r.add("gmp", detail::make_gmp_method);
    r.add("rigl", detail::make_rigl_method);
  });
}

}  // namespace

void register_sparsity_method(const std::string& name, SparsityMethodFactory factory) {
  register_builtin_sparsity_methods();  // the built-ins stay first
  registry().add(name, std::move(factory));
}

std::vector<std::string> sparsity_method_names() {
  register_builtin_sparsity_methods();
  return registry().names();
}

std::unique_ptr<SparsityMethod> make_sparsity_method(const std::string& name) {
  register_builtin_sparsity_methods();
  const SparsityMethodFactory factory = registry().find(name);
  if (!factory) {
    throw Error("--sparsity-method: unknown method '" + name + "' (expected " +
                detail::join_or(sparsity_method_names()) + ")");
  }
  std::unique_ptr<SparsityMethod> method = factory();
  if (method == nullptr)
    throw Error("make_sparsity_method: the factory of '" + name + "' gave none");
  return method;
}

}  // namespace sparsetrain

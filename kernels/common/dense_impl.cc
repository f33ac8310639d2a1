#include "kernels/common/dense_impl.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "kernels/common/log.h"

namespace sparsetrain::kernels {
namespace {

constexpr const char* kDenseEnv = "SPARSETRAIN_DENSE";

DenseImpl from_environment() {
  const char* v = std::getenv(kDenseEnv);
  if (v == nullptr || std::string(v) == "dnnl") return DenseImpl::kDnnl;
  if (std::string(v) == "ref") return DenseImpl::kRef;
  log(LogLevel::kWarning, std::string(kDenseEnv) + "='" + v +
                              "' is not a dense implementation (ref or dnnl); using dnnl");
  return DenseImpl::kDnnl;
}

std::atomic<DenseImpl>& current() {
  static std::atomic<DenseImpl> impl{from_environment()};
  return impl;
}

}  // namespace

void set_dense_impl(DenseImpl impl) { current().store(impl); }
DenseImpl dense_impl() { return current().load(); }
const char* dense_impl_name(DenseImpl impl) { return impl == DenseImpl::kRef ? "ref" : "dnnl"; }

}  // namespace sparsetrain::kernels

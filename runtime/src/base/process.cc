// sparsetrain/log.h: the public face of the kernels' log sink and thread
// count.
#include <string_view>
#include <utility>

#include "kernels/common/dense_impl.h"
#include "kernels/common/log.h"
#include "kernels/common/threads.h"
#include "sparsetrain/error.h"
#include "sparsetrain/log.h"

namespace sparsetrain {

void set_log_sink(LogSink sink) {
  if (!sink) {
    kernels::set_log_sink({});
    return;
  }
  kernels::set_log_sink([sink = std::move(sink)](kernels::LogLevel level, std::string_view line) {
    sink(level == kernels::LogLevel::kWarning ? LogLevel::kWarning : LogLevel::kInfo, line);
  });
}

void set_num_threads(int n) { kernels::set_num_threads(n); }
int num_threads() { return kernels::num_threads(); }

void set_dense_kernels(const std::string& name) {
  if (name == "dnnl") {
    kernels::set_dense_impl(kernels::DenseImpl::kDnnl);
  } else if (name == "ref") {
    kernels::set_dense_impl(kernels::DenseImpl::kRef);
  } else {
    throw Error("dense kernels: unknown implementation '" + name + "' (expected dnnl or ref)");
  }
}

std::string dense_kernels() { return kernels::dense_impl_name(kernels::dense_impl()); }

}  // namespace sparsetrain

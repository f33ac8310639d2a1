// sparsetrain/log.h: the public face of the kernels' log sink and thread
// count.
#include <string_view>
#include <utility>

#include "kernels/common/log.h"
#include "kernels/common/threads.h"
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

}  // namespace sparsetrain

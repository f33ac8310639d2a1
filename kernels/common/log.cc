#include "kernels/common/log.h"

#include <mutex>
#include <utility>

namespace sparsetrain::kernels {
namespace {

std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}

LogSink& sink() {
  static LogSink s;
  return s;
}

}  // namespace

void set_log_sink(LogSink s) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  sink() = std::move(s);
}

void log(LogLevel level, std::string_view message) {
  std::lock_guard<std::mutex> lock(sink_mutex());
  if (sink()) sink()(level, message);
}

}  // namespace sparsetrain::kernels

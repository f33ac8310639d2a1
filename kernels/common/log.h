// Where the library's messages go. The library prints nothing itself: an
// app installs a sink (the command-line program prints each message on
// stderr); without one, messages are dropped. The public face is
// sparsetrain/log.h.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace sparsetrain::kernels {

enum class LogLevel : uint8_t {
  kInfo,     // what the run decided (a kernel choice and its timings)
  kWarning,  // something was ignored or replaced (a bad SPARSETRAIN_ISA)
};

// Receives one message: a single line, without its newline. Called from the
// thread that logs; calls are serialised.
using LogSink = std::function<void(LogLevel, std::string_view)>;

// Replaces the sink (an empty one drops messages). Thread-safe.
void set_log_sink(LogSink sink);

void log(LogLevel level, std::string_view message);

}  // namespace sparsetrain::kernels

// The library's messages (kernel choices, warnings), the process-wide thread
// count and the dense layers' implementation: the settings an app makes once
// for the whole process.
//
// The library prints nothing itself. Install a sink to see its messages:
//
//   sparsetrain::set_log_sink([](sparsetrain::LogLevel level, std::string_view line) {
//     std::cerr << (level == sparsetrain::LogLevel::kWarning ? "warning: " : "") << line << "\n";
//   });
//
// Without one they are dropped. The command-line program prints them on
// stderr. (Trainer::run writes its run log, the per-epoch table, to the
// stream it is given.)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "sparsetrain/core/export.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

enum class LogLevel : uint8_t {
  kInfo,     // what the run decided, e.g. "linear 400->120 batch 50 density 0.023: sparse kernels
             // (sparse 0.010 ms, dense 0.135 ms per step)"
  kWarning,  // something was ignored or replaced, e.g. a bad SPARSETRAIN_ISA
};

// Receives one message: a single line, without its newline, from the thread
// that logged it; calls are serialised.
using LogSink = std::function<void(LogLevel, std::string_view)>;

// Replaces the sink; an empty one drops messages (the default). Thread-safe.
void set_log_sink(LogSink sink);

// Worker threads for every kernel (TBB for the sparse kernels, OpenMP for
// oneDNN, kept at the same size); n <= 0: all hardware threads of the
// process. Trainer sets it from TrainOptions::threads.
void set_num_threads(int n);
// The count last set (the hardware count before any call).
int num_threads();

// The implementation of the dense conv2d and linear layers: "dnnl" (oneDNN,
// the default and the fastest here) or "ref" (the scalar reference, for
// checking a result). $SPARSETRAIN_DENSE sets it for a whole process. Throws
// Error naming the value for another one.
void set_dense_kernels(const std::string& name);
std::string dense_kernels();

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

// The one exception type of the public API. Every user mistake (a bad shape,
// a bad file, a bad option) raises it with a message that names the thing and
// says what is wrong. Kernels and the executor's hot path never throw; broken
// internal invariants use SPARSETRAIN_ASSERT, which aborts with file and line.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "sparsetrain/core/export.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

[[noreturn]] inline void assert_fail(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "sparsetrain: internal error: %s (%s:%d)\n", cond, file, line);
  std::abort();
}

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

#define SPARSETRAIN_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::sparsetrain::assert_fail(#cond, __FILE__, __LINE__))

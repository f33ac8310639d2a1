// sparsetrain::Error and SPARSETRAIN_ASSERT
// (kernels/include/sparsetrain/core/error.h: the kernels' base, below the
// runtime, installed with it).
#pragma once

#include "sparsetrain/core/error.h"

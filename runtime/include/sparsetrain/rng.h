// sparsetrain::Rng (kernels/include/sparsetrain/core/rng.h: the kernels'
// base, below the runtime, installed with it).
#pragma once

#include "sparsetrain/core/rng.h"

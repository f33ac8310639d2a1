// libsparsetrain.so is linked from the static libraries (kernels, runtime,
// model zoo) taken whole; this file only gives the target a source of its
// own. What the library exports: sparsetrain/core/export.h.
namespace sparsetrain {}

// Checkpoint files: the whole reader (safetensors header, tensors, sparse
// encoding, options) and, when it loads, the model it describes, built and
// filled as `eval` does. Seeds: checkpoints the tests' runs write.
#include <cstddef>
#include <cstdint>

#include "sparsetrain/checkpoint.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/models.h"
#include "sparsetrain/trainer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparsetrain;
  const auto path = fuzz::work_dir() / "checkpoint.safetensors";
  fuzz::write_file(path, data, size);
  fuzz::expect_only_errors("fuzz_checkpoint", [&] {
    Graph graph;
    load_model_checkpoint(path.string(), zoo_factory(), graph);
  });
  return 0;
}

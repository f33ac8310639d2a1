// The safetensors container alone (the 8-byte length, the JSON header, the
// tensor table and the byte ranges), without building a model.
#include <cstddef>
#include <cstdint>

#include "sparsetrain/checkpoint.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparsetrain;
  const auto path = fuzz::work_dir() / "header.safetensors";
  fuzz::write_file(path, data, size);
  fuzz::expect_only_errors("fuzz_checkpoint_header", [&] {
    const Checkpoint c = Checkpoint::load(path.string());
    for (const std::string& name : c.names()) (void)c.raw(name);
  });
  return 0;
}

// Model files: YAML in, a graph out; what builds must also run a forward
// pass, and everything else must be refused with the library's error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "sparsetrain/model_file.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparsetrain;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_only_errors("fuzz_model_file", [&] {
    // Small samples, so that a graph that builds is cheap to run.
    Graph g = parse_model_file(text, "fuzz.yaml", ModelOptions{1, 12, 12, 10});
    // A graph too large to run here is the caller's to refuse.
    if (g.parameter_count(true) > 4'000'000) return;
    for (int i = 0; i < g.size(); ++i) {
      int64_t n = 1;
      for (const int64_t d : g.shape_of(NodeId{i}, 2)) n *= d;
      if (n > (int64_t{1} << 22)) return;
    }
    g.initialize(1);
    Tensor x = Tensor::zeros({2, 1, 12, 12});
    (void)g.forward(x, ExecMode::kInference);
  });
  return 0;
}

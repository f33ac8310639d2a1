// Recipes: YAML in, options out; what loads must also validate or be
// refused with the library's error, and write back.
#include <cstddef>
#include <cstdint>
#include <string>

#include "sparsetrain/recipe.h"
#include "sparsetrain/trainer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sparsetrain;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_only_errors("fuzz_recipe", [&] {
    const Recipe recipe = Recipe::parse(text, "fuzz.yaml");
    TrainOptions o = recommended_options("lenet5");
    recipe.apply(o);
    validate(o);
    (void)options_from_json(options_to_json(o));
    (void)recipe_to_yaml(o);
  });
  return 0;
}

// The settings schema (sparsetrain/options.h): every TrainOptions member has
// exactly one row, and a row is all that the options JSON, recipes, the
// command line and validate() need: a setting set to a value other than its
// default comes back from each of them, and a value out of its row's range
// is refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "sparsetrain/error.h"
#include "sparsetrain/options.h"
#include "sparsetrain/recipe.h"
#include "sparsetrain/trainer.h"
#include "tests/cli_runner.h"

namespace sparsetrain {
namespace {

// Converts to anything: T{AnyValue{}, ...} compiles for as many values as
// the aggregate T has members.
struct AnyValue {
  template <class T>
  operator T() const;  // only named in unevaluated contexts
};

template <class T, class... Values>
constexpr std::size_t member_count() {
  if constexpr (requires { T{Values{}..., AnyValue{}}; }) {
    return member_count<T, Values..., AnyValue>();
  } else {
    return sizeof...(Values);
  }
}

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

// A value the row takes (a number in its range, one of its choices) that
// is not the default `d`.
template <class T>
T other_value(const OptionRow& row, const T& d) {
  if constexpr (std::is_same_v<T, std::string>) {
    for (const std::string& c : option_choices(row)) {
      if (c != d) return c;
    }
    return "some-value";
  } else if constexpr (std::is_same_v<T, bool>) {
    return !d;
  } else if constexpr (is_vector<T>::value) {
    using Item = typename T::value_type;
    if constexpr (std::is_same_v<Item, std::string>) {
      return {"activation-stats"};
    } else {
      const Item first = other_value<Item>(row, Item{});
      return {first, static_cast<Item>(first + 2)};
    }
  } else {
    if (row.tristate) return static_cast<T>(d == 1 ? 0 : 1);
    for (const double x : {2.0, 0.25, 0.5, 3.0}) {
      const T v = static_cast<T>(x);
      if (v != d && static_cast<double>(v) == x && option_accepts(row, x)) return v;
    }
    ADD_FAILURE() << row.key << ": no test value in its range";
    return d;
  }
}

// Sets the row's member of `o` to other_value.
void set_other(const OptionRow& row, TrainOptions& o) {
  static const TrainOptions defaults;
  std::visit([&](auto m) { o.*m = other_value(row, defaults.*m); }, row.member);
}

bool same_member(const OptionRow& a, const OptionRow& b) { return a.member == b.member; }

TEST(OptionsSchema, EveryMemberHasExactlyOneRow) {
  // TrainOptions is its concerns and nothing else.
  static_assert(sizeof(TrainOptions) == sizeof(ModelDataOptions) + sizeof(OptimizationOptions) +
                                            sizeof(SparsityOptions) + sizeof(RetrainOptions) +
                                            sizeof(TransferOptions) + sizeof(RunOptions));
  constexpr std::size_t members = member_count<ModelDataOptions>() +
                                  member_count<OptimizationOptions>() +
                                  member_count<SparsityOptions>() + member_count<RetrainOptions>() +
                                  member_count<TransferOptions>() + member_count<RunOptions>();
  static_assert(member_count<ModelDataOptions>() == 9);
  static_assert(member_count<TransferOptions>() == 8);
  const std::vector<OptionRow>& rows = option_rows();
  EXPECT_EQ(rows.size(), members);
  std::set<std::string_view> keys, flags, recipe_keys;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(rows[i].key);
    for (std::size_t j = 0; j < i; ++j) EXPECT_FALSE(same_member(rows[i], rows[j])) << rows[j].key;
    EXPECT_TRUE(keys.insert(rows[i].key).second);
    EXPECT_TRUE(rows[i].flag.empty() || flags.insert(rows[i].flag).second);
    EXPECT_TRUE(rows[i].recipe_key.empty() || recipe_keys.insert(rows[i].recipe_key).second);
    EXPECT_EQ(&option_row(rows[i].key), &rows[i]);
    // Each row's member set to another value changes the options.
    TrainOptions o;
    set_other(rows[i], o);
    EXPECT_FALSE(o == TrainOptions{});
  }
  EXPECT_THROW(option_row("no_such_setting"), Error);
}

TEST(OptionsSchema, JsonHoldsEverySavedRowAndOnlyThose) {
  std::set<std::string> saved;
  for (const OptionRow& row : option_rows()) {
    if (row.saved) saved.insert(std::string(row.key));
  }
  std::set<std::string> keys;
  const nlohmann::json j = nlohmann::json::parse(options_to_json(TrainOptions{}));
  for (const auto& [key, value] : j.items()) keys.insert(key);
  EXPECT_EQ(keys, saved);

  TrainOptions o;
  for (const OptionRow& row : option_rows()) set_other(row, o);
  const TrainOptions back = options_from_json(options_to_json(o));
  const TrainOptions defaults;
  for (const OptionRow& row : option_rows()) {
    std::visit(
        [&](auto m) {
          EXPECT_TRUE(back.*m == (row.saved ? o.*m : defaults.*m)) << row.key;
          EXPECT_FALSE(o.*m == defaults.*m) << row.key;
        },
        row.member);
  }
  // The options of an older checkpoint: the keys it lacks take their defaults.
  const TrainOptions old = options_from_json(R"({"model": "mlp", "lr": 0.25, "retired": 3})");
  TrainOptions expected;
  expected.model = "mlp";
  expected.lr = 0.25f;
  EXPECT_TRUE(old == expected);
}

// Every row with a recipe key, set to another value, is written by
// recipe_to_yaml and read back by Recipe::parse.
// Issue 16, finding 4: text that is not UTF-8 (a legal Linux folder name)
// made options_to_json throw nlohmann's type_error; a recipe holding it
// escaped the library's error type. Now the options store it losslessly and
// every failure is a sparsetrain::Error.
TEST(OptionsSchema, TextThatIsNotUtf8IsKeptExactly) {
  TrainOptions o;
  o.data_dir = "/tmp/data-\xf3\x9f";
  o.out_dir = "runs/\xff";
  o.probes = {"activation-stats"};
  const std::string j = options_to_json(o);
  EXPECT_TRUE(nlohmann::json::accept(j)) << j;
  const TrainOptions r = options_from_json(j);
  EXPECT_EQ(r.data_dir, o.data_dir);
  EXPECT_EQ(r.out_dir, o.out_dir);
  EXPECT_EQ(r.probes, o.probes);
  // UTF-8 stays a plain JSON string.
  o.data_dir =
      "/tmp/donn\xc3\xa9"
      "es";
  EXPECT_NE(options_to_json(o).find("\"data_dir\":\"/tmp/donn\xc3\xa9"
                                    "es\""),
            std::string::npos);
  // A recipe with such a field: loaded, or refused with the library's error.
  for (const char* text : {"model: \x9f\n", "data_dir: \xf3\n",
                           "epochs: 2\ndata_dir: a\xff"
                           "b\n"}) {
    try {
      const Recipe recipe = Recipe::parse(text, "bad.yaml");
      TrainOptions applied = recommended_options("lenet5");
      recipe.apply(applied);
      (void)options_from_json(options_to_json(applied));
      (void)recipe_to_yaml(applied);
    } catch (const Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "an exception other than sparsetrain::Error: " << e.what();
    }
  }
  EXPECT_THROW(options_from_json(R"({"data_dir": {"bytes": "zz"}})"), Error);
}

TEST(OptionsSchema, RecipesWriteAndReadEveryRow) {
  int rows_with_keys = 0;
  for (const OptionRow& row : option_rows()) {
    if (row.recipe_key.empty()) continue;
    ++rows_with_keys;
    TrainOptions o;
    if (row.method_specific) o.sparsity_method = option_methods(row).front();
    set_other(row, o);
    const std::string yaml = recipe_to_yaml(o);
    SCOPED_TRACE(std::string(row.key) + ":\n" + yaml);
    const std::string name(row.recipe_key.substr(row.recipe_key.find('.') + 1));
    EXPECT_NE(yaml.find(name + ": "), std::string::npos);
    TrainOptions back;
    Recipe::parse(yaml, "written").apply(back);
    EXPECT_TRUE(back == o);
  }
  EXPECT_GT(rows_with_keys, 35);
  // The settings without a key of their own: the AC/DC phases.
  TrainOptions acdc;
  acdc.epochs = 10;
  acdc.sparsity_method = "acdc";
  acdc.compress_epochs = {1, 5.5};
  acdc.decompress_epochs = {3};
  TrainOptions back;
  Recipe::parse(recipe_to_yaml(acdc), "written").apply(back);
  EXPECT_TRUE(back == acdc) << recipe_to_yaml(acdc);
}

// A value just outside the row's range, or not one of its choices.
template <class T>
bool out_of_range(const OptionRow& row, T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (option_choices(row).empty() || row.choices_bind_recipes_only) return false;
    value = "no-such-value";
    return true;
  } else if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, std::vector<std::string>>) {
    return false;
  } else if constexpr (is_vector<T>::value) {
    typename T::value_type item{};
    if (!out_of_range(row, item)) return false;
    value = {item};
    return true;
  } else {
    if (row.tristate) {
      value = 2;
      return true;
    }
    // Whether T holds x exactly.
    auto fits = [](double x) {
      return std::isfinite(x) && x >= static_cast<double>(std::numeric_limits<T>::lowest()) &&
             x < static_cast<double>(std::numeric_limits<T>::max()) &&
             static_cast<double>(static_cast<T>(x)) == x;
    };
    double bad = row.open_min ? row.min : row.min - 1;
    if (bad == -1 && !row.minus_one.empty()) bad = -2;
    if (!fits(bad)) bad = row.open_max ? row.max : row.max + 1;
    if (!fits(bad)) return false;
    value = static_cast<T>(bad);
    return true;
  }
}

TEST(OptionsSchema, ValidateRefusesOutOfRangeValuesByName) {
  EXPECT_NO_THROW(validate(TrainOptions{}));
  int checked = 0;
  for (const OptionRow& row : option_rows()) {
    TrainOptions o;
    const bool bad = std::visit([&](auto m) { return out_of_range(row, o.*m); }, row.member);
    if (!bad) continue;
    ++checked;
    SCOPED_TRACE(row.key);
    try {
      validate(o);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(row.name())), std::string::npos) << e.what();
    }
    EXPECT_THROW(check_option(row, o), Error);
  }
  EXPECT_GT(checked, 30);
  TrainOptions o;
  o.milestones = {100, 50};
  try {
    validate(o);
    ADD_FAILURE() << "accepted decreasing milestones";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--lr-milestones must increase"), std::string::npos)
        << e.what();
  }
}

// The value as a command-line argument.
template <class T>
std::string cli_text(const OptionRow& row, const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return value;
  } else if constexpr (is_vector<T>::value) {
    std::string out;
    for (const auto& item : value) out += (out.empty() ? "" : ",") + cli_text(row, item);
    return out;
  } else {
    if (row.tristate) return value < 0 ? "auto" : (value ? "on" : "off");
    std::ostringstream text;
    text << value;
    return text.str();
  }
}

// Every row with a flag: `train FLAG VALUE --print-recipe` parses, and the
// printed recipe holds the value where the row has a recipe key.
TEST(OptionsSchema, TheCommandLineTakesEveryFlag) {
  const TrainOptions defaults;
  for (const OptionRow& row : option_rows()) {
    if (row.flag.empty()) continue;
    SCOPED_TRACE(row.key);
    TrainOptions given;
    set_other(row, given);
    std::string args = std::visit(
        [&](auto m) {
          if constexpr (std::is_same_v<std::remove_cvref_t<decltype(given.*m)>, bool>) {
            return given.*m ? std::string(row.flag) : "--no-" + std::string(row.flag.substr(2));
          } else {
            return std::string(row.flag) + " " + cli_text(row, given.*m);
          }
        },
        row.member);
    if (row.method_specific) args += " --sparsity-method " + option_methods(row).front();
    if (row.member == OptionMember(&TrainOptions::resume_dir) ||
        row.member == OptionMember(&TrainOptions::init_from)) {
      // A checkpoint to read: the missing one is named.
      const testing::RunResult r = testing::run_cli("train " + args + " --print-recipe", true);
      EXPECT_EQ(r.exit_code, 1) << r.out;
      EXPECT_NE(r.out.find("some-value"), std::string::npos) << r.out;
      EXPECT_EQ(r.out.find("not expected"), std::string::npos) << r.out;
      continue;
    }
    const testing::RunResult r = testing::run_cli("train " + args + " --print-recipe", false);
    ASSERT_EQ(r.exit_code, 0) << args << "\n" << r.out;
    if (row.recipe_key.empty()) continue;
    TrainOptions printed;
    Recipe::parse(r.out, "printed").apply(printed);
    std::visit([&](auto m) { EXPECT_TRUE(printed.*m == given.*m) << args << "\n"
                                                                 << r.out; },
               row.member);
  }
}

}  // namespace
}  // namespace sparsetrain

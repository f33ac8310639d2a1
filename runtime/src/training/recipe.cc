// Recipes (sparsetrain/recipe.h): the YAML reader and writer. Both walk the
// settings schema (option_rows(), options.h): a row's recipe_key places it
// ("optimizer.lr" in the optimizer section), its type and range say how the
// value is read and checked. Only the AC/DC phase list (sparsity.phases, for
// compress_epochs and decompress_epochs) has a reader and writer of its own.
#include "sparsetrain/recipe.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <type_traits>

#include "base/yaml_text.h"
#include "sparsetrain/error.h"
#include "training/options_internal.h"

namespace sparsetrain {

namespace {

using detail::float_text;
using detail::join;
using detail::printable;
using detail::quoted;

struct Phase {
  bool compressed = false;
  double start = 0, end = 0;
  int line = 0;
};

// The sparsity methods of sparsity.phases (compress_epochs and
// decompress_epochs have no recipe key of their own).
const std::vector<std::string> kPhaseMethods = {"acdc"};

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

bool contains(const std::vector<std::string>& items, const std::string& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

// "optimizer.lr" -> {"optimizer", "lr"}; "epochs" -> {"", "epochs"}.
std::pair<std::string, std::string> split_key(std::string_view recipe_key) {
  const std::size_t dot = recipe_key.find('.');
  if (dot == std::string_view::npos) return {"", std::string(recipe_key)};
  return {std::string(recipe_key.substr(0, dot)), std::string(recipe_key.substr(dot + 1))};
}

}  // namespace

// Reads a YAML document into a Recipe: every key is looked up in the
// sections the rows make, every value converted and range-checked where it
// stands, so an error can name its line.
class RecipeParser {
 public:
  explicit RecipeParser(Recipe& recipe) : r_(recipe) {}

  void parse(const std::string& text) {
    const YAML::Node root = detail::load_one_document(
        text, [this](int line) { return where_line(line); }, "a recipe",
        "a recipe needs three levels: section, method, setting");
    if (root.IsNull()) return;  // an empty recipe sets nothing
    if (!root.IsMap()) {
      throw Error(where_line(root.Mark().line + 1) +
                  ": a recipe is a mapping of keys (model: ..., optimizer: ...)");
    }
    parse_map(root, "", top_level());
    check_methods();
    check_phases();
  }

 private:
  using Handler = std::function<void(const YAML::Node& value, const std::string& key)>;
  using Section = std::vector<std::pair<std::string, Handler>>;

  std::string where_line(int line) const {
    return "recipe '" + r_.source_ + "', line " + std::to_string(line);
  }
  [[noreturn]] void fail(const YAML::Node& at, const std::string& key,
                         const std::string& problem) const {
    throw Error(where_line(at.Mark().line + 1) + ": " + key + ": " + problem);
  }

  void set(const std::string& key, const YAML::Node& at, std::function<void(TrainOptions&)> fn) {
    set_at_line(key, at.Mark().line + 1, std::move(fn));
  }
  void set_at_line(const std::string& key, int line, std::function<void(TrainOptions&)> fn) {
    r_.keys_.emplace_back(key, line);
    r_.setters_.push_back(std::move(fn));
  }

  void parse_map(const YAML::Node& map, const std::string& prefix, const Section& section) {
    std::set<std::string> seen;
    for (const auto& entry : map) {
      const YAML::Node k = entry.first;
      if (!k.IsScalar())
        fail(k, prefix.empty() ? "(top level)" : prefix, "keys must be plain names");
      const std::string name = k.Scalar();
      const std::string key = prefix.empty() ? name : prefix + "." + name;
      if (!seen.insert(name).second) fail(k, key, "given twice");
      const auto h = std::find_if(section.begin(), section.end(),
                                  [&name](const auto& handler) { return handler.first == name; });
      if (h == section.end()) {
        std::vector<std::string> known;
        for (const auto& handler : section) known.push_back(handler.first);
        fail(k, key, "unknown key (expected one of: " + join(known) + ")");
      }
      const YAML::Node value = entry.second;
      if (value.IsNull()) fail(k, key, "has no value");
      key_line_ = k.Mark().line + 1;
      h->second(value, key);
    }
  }

  // --- scalars --------------------------------------------------------------

  std::string scalar(const YAML::Node& v, const std::string& key, const char* expected) const {
    if (!v.IsScalar())
      fail(v, key,
           std::string("expected ") + expected + ", got a " + (v.IsMap() ? "mapping" : "list"));
    return v.Scalar();
  }

  // An integer that `accepts`; `expected` says which ("an integer >= 1").
  template <class Accepts>
  int64_t integer(const YAML::Node& v, const std::string& key, const std::string& expected,
                  Accepts accepts) const {
    const std::string s = scalar(v, key, expected.c_str());
    int64_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size() || !accepts(static_cast<double>(value))) {
      fail(v, key, "expected " + expected + ", got " + quoted(s));
    }
    return value;
  }

  // A finite number that `accepts`.
  template <class Accepts>
  double number(const YAML::Node& v, const std::string& key, const std::string& expected,
                Accepts accepts) const {
    const std::string s = scalar(v, key, expected.c_str());
    char* end = nullptr;
    const double value = s.empty() ? std::nan("") : std::strtod(s.c_str(), &end);
    const bool parsed = !s.empty() && end == s.c_str() + s.size() && std::isfinite(value);
    if (!parsed || !accepts(value)) fail(v, key, "expected " + expected + ", got " + quoted(s));
    return value;
  }

  bool boolean(const YAML::Node& v, const std::string& key) const {
    std::string s = scalar(v, key, "true or false");
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
    fail(v, key, "expected true or false, got " + quoted(v.Scalar()));
  }

  std::string choice(const YAML::Node& v, const std::string& key,
                     const std::vector<std::string>& choices) const {
    const std::string s = scalar(v, key, ("one of " + join(choices)).c_str());
    if (std::find(choices.begin(), choices.end(), s) == choices.end()) {
      fail(v, key, "unknown value " + quoted(s) + " (expected one of: " + join(choices) + ")");
    }
    return s;
  }

  std::string text(const YAML::Node& v, const std::string& key) const {
    const std::string s = scalar(v, key, "a string");
    if (s.empty()) fail(v, key, "is empty");
    return s;
  }

  // auto | true | false -> -1 | 1 | 0
  int tristate(const YAML::Node& v, const std::string& key) const {
    const std::string s = scalar(v, key, "auto, true or false");
    if (s == "auto") return -1;
    try {
      return boolean(v, key) ? 1 : 0;
    } catch (const Error&) {
      fail(v, key, "expected auto, true or false, got " + quoted(s));
    }
  }

  // --- the rows' values ------------------------------------------------------

  // A value of the row's member type T.
  template <class T>
  T value(const OptionRow& row, const YAML::Node& v, const std::string& key) const {
    if constexpr (std::is_same_v<T, std::string>) {
      const std::vector<std::string> choices = option_choices(row);
      return choices.empty() ? text(v, key) : choice(v, key, choices);
    } else if constexpr (std::is_same_v<T, bool>) {
      return boolean(v, key);
    } else if constexpr (std::is_integral_v<T>) {
      if (row.tristate) return static_cast<T>(tristate(v, key));
      return static_cast<T>(integer(v, key, option_expected(row),
                                    [&row](double x) { return option_accepts(row, x); }));
    } else if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(number(v, key, option_expected(row),
                                   [&row](double x) { return option_accepts(row, x); }));
    } else {
      static_assert(is_vector<T>::value);
      using Item = typename T::value_type;
      if (!v.IsSequence()) {
        fail(v, key,
             std::is_integral_v<Item>         ? "expected a list of integers, e.g. [100, 150]"
             : std::is_floating_point_v<Item> ? "expected a list of numbers, e.g. [1.5, 4.5]"
                                              : "expected a list, e.g. [a, b]");
      }
      T out;
      for (std::size_t i = 0; i < v.size(); ++i) {
        const Item x = value<Item>(row, v[i], key);
        if constexpr (std::is_arithmetic_v<Item>) {
          if (row.increasing && !out.empty() && !(x > out.back())) {
            fail(v[i], key,
                 "must increase: " + std::to_string(x) + " follows " + std::to_string(out.back()));
          }
        }
        out.push_back(x);
      }
      return out;
    }
  }

  // Reads the row's value and sets it; remembers what the checks across
  // keys need (the model, the epochs, the sparsity method and its
  // parameters).
  Handler field(const OptionRow& row) {
    return [this, &row](const YAML::Node& v, const std::string& key) {
      if (row.method_specific) method_params_.push_back({key, key_line_, option_methods(row)});
      std::visit(
          [&](auto m) {
            using T = std::remove_cvref_t<decltype(std::declval<TrainOptions&>().*m)>;
            const T x = value<T>(row, v, key);
            if constexpr (std::is_same_v<T, std::string>) {
              if (m == &TrainOptions::model) r_.model_ = x;
              if (m == &TrainOptions::sparsity_method) {
                method_ = x;
                method_line_ = v.Mark().line + 1;
              }
            } else if constexpr (std::is_same_v<T, int64_t>) {
              if (m == &TrainOptions::epochs) {
                epochs_ = x;
                epochs_line_ = v.Mark().line + 1;
              }
            }
            set(key, v, [m, x](TrainOptions& o) { o.*m = x; });
          },
          row.member);
    };
  }

  Handler section(const std::string& name, Section entries) {
    return [this, name, entries = std::move(entries)](const YAML::Node& v, const std::string& key) {
      if (!v.IsMap()) fail(v, key, "expected a mapping of " + name + " keys");
      parse_map(v, key, entries);
    };
  }

  // The top-level keys and the sections, in the order of the rows.
  Section top_level() {
    Section top = {
        {"description", [this](const YAML::Node& v, const std::string& key) { text(v, key); }}};
    std::vector<std::pair<std::string, Section>> sections;
    auto entries_of = [&sections](const std::string& name) -> Section& {
      for (auto& [n, entries] : sections) {
        if (n == name) return entries;
      }
      return sections.emplace_back(name, Section{}).second;
    };
    for (const OptionRow& row : option_rows()) {
      if (row.recipe_key.empty()) continue;
      const auto [name, key] = split_key(row.recipe_key);
      (name.empty() ? top : entries_of(name)).emplace_back(key, field(row));
    }
    entries_of("sparsity")
        .emplace_back("phases", [this](const YAML::Node& v, const std::string& key) {
          method_params_.push_back({key, key_line_, kPhaseMethods});
          read_phases(v, key);
        });
    for (auto& [name, entries] : sections) top.emplace_back(name, section(name, entries));
    return top;
  }

  // A phase's start or end.
  double epoch(const YAML::Node& v, const std::string& key) const {
    return number(v, key, "a number in [0, inf)", [](double x) { return x >= 0; });
  }

  void read_phases(const YAML::Node& v, const std::string& key) {
    const int key_line = key_line_;
    if (!v.IsSequence() || v.size() == 0) {
      fail(v, key, "expected a list of phases, e.g. - {state: compressed, start: 10, end: 30}");
    }
    for (std::size_t i = 0; i < v.size(); ++i) {
      const YAML::Node& p = v[i];
      const std::string pkey = key + "[" + std::to_string(i + 1) + "]";
      if (!p.IsMap())
        fail(p, pkey, "expected {state: compressed | decompressed, start: E, end: E}");
      Phase phase;
      phase.line = p.Mark().line + 1;
      bool has_state = false, has_start = false, has_end = false;
      parse_map(p, pkey,
                {{"state",
                  [&](const YAML::Node& s, const std::string& k) {
                    phase.compressed = choice(s, k, {"compressed", "decompressed"}) == "compressed";
                    has_state = true;
                  }},
                 {"start",
                  [&](const YAML::Node& s, const std::string& k) {
                    phase.start = epoch(s, k);
                    has_start = true;
                  }},
                 {"end", [&](const YAML::Node& s, const std::string& k) {
                    phase.end = epoch(s, k);
                    has_end = true;
                  }}});
      if (!has_state || !has_start || !has_end) {
        fail(p, pkey,
             std::string("needs ") +
                 (!has_state   ? "'state'"
                  : !has_start ? "'start'"
                               : "'end'") +
                 " (each phase is {state: compressed | decompressed, start: E, end: E})");
      }
      if (!(phase.end > phase.start)) {
        fail(p, pkey,
             "ends at epoch " + float_text(phase.end, false) + ", not after its start " +
                 float_text(phase.start, false));
      }
      phases_.push_back(phase);
    }
    phases_key_ = key;
    std::vector<double> compress, decompress;
    for (const Phase& p : phases_) (p.compressed ? compress : decompress).push_back(p.start);
    set_at_line(key, key_line, [compress, decompress](TrainOptions& o) {
      o.compress_epochs = compress;
      o.decompress_epochs = decompress;
    });
  }

  // AC/DC phases: in order, contiguous, alternating, compressed first and
  // last, ending with the run.
  void check_phases() const {
    if (phases_.empty()) return;
    auto fail_at = [this](const Phase& p, std::size_t i, const std::string& problem) {
      throw Error(where_line(p.line) + ": " + phases_key_ + "[" + std::to_string(i + 1) +
                  "]: " + problem);
    };
    auto range = [](const Phase& p) {
      return "[" + float_text(p.start, false) + ", " + float_text(p.end, false) + ")";
    };
    for (std::size_t i = 0; i < phases_.size(); ++i) {
      const Phase& p = phases_[i];
      if (i == 0) {
        if (!p.compressed) {
          fail_at(p, i,
                  "AC/DC begins with a compressed phase (dense warm-up before it), not a "
                  "decompressed one");
        }
        continue;
      }
      const Phase& q = phases_[i - 1];
      const std::string prev = "phase " + std::to_string(i) + " " + range(q);
      if (p.start < q.start) {
        fail_at(p, i, "phases are out of order: " + range(p) + " starts before " + prev);
      }
      if (p.start < q.end) fail_at(p, i, "overlaps " + prev);
      if (p.start > q.end) {
        fail_at(p, i,
                "leaves epochs [" + float_text(q.end, false) + ", " + float_text(p.start, false) +
                    ") without a phase after " + prev + " (phases must be contiguous)");
      }
      if (p.compressed == q.compressed) {
        fail_at(p, i,
                std::string("two ") + (p.compressed ? "compressed" : "decompressed") +
                    " phases in a row (" + prev + "): merge them");
      }
    }
    const Phase& last = phases_.back();
    if (!last.compressed) {
      fail_at(last, phases_.size() - 1, "AC/DC ends with a compressed phase");
    }
    if (epochs_ > 0 && last.end != static_cast<double>(epochs_)) {
      fail_at(last, phases_.size() - 1,
              "the last phase ends at epoch " + float_text(last.end, false) + " but the run has " +
                  std::to_string(epochs_) + " epochs (line " + std::to_string(epochs_line_) + ")");
    }
  }

  // A method's parameters with another method named.
  void check_methods() const {
    if (method_.empty()) return;
    for (const MethodParam& p : method_params_) {
      if (contains(p.methods, method_)) continue;
      throw Error(where_line(p.line) + ": " + p.key + ": applies to method " + join(p.methods) +
                  " only, but sparsity.method is " + method_ + " (line " +
                  std::to_string(method_line_) + ")");
    }
  }

  struct MethodParam {
    std::string key;
    int line = 0;
    std::vector<std::string> methods;
  };

  Recipe& r_;
  int key_line_ = 0;  // of the key whose value is being read
  int64_t epochs_ = 0;
  int epochs_line_ = 0;
  std::string method_;
  int method_line_ = 0;
  std::vector<MethodParam> method_params_;
  std::vector<Phase> phases_;
  std::string phases_key_;
};

Recipe Recipe::parse(const std::string& text, const std::string& source) {
  Recipe r;
  r.source_ = source;
  RecipeParser parser(r);
  try {
    parser.parse(text);
  } catch (const YAML::Exception& e) {
    // Anything yaml-cpp raises beyond the parse errors handled where they
    // occur.
    throw Error("recipe '" + source + "', line " + std::to_string(e.mark.line + 1) + ": " +
                printable(e.msg));
  }
  return r;
}

Recipe Recipe::load(const std::string& path) {
  return parse(detail::read_text_file(path, "recipe"), path);
}

void Recipe::apply(TrainOptions& options) const {
  for (const auto& set : setters_) set(options);
}

std::string Recipe::where(const std::string& key) const {
  for (const auto& [k, line] : keys_) {
    if (k == key)
      return "recipe '" + source_ + "', line " + std::to_string(line) + " (" + key + ")";
  }
  return "recipe '" + source_ + "'";
}

// --- writing -------------------------------------------------------------------

namespace {

std::string yaml_string(const std::string& s) {
  YAML::Emitter e;
  e << s;
  return e.c_str();
}

template <class T>
std::string yaml_value(const OptionRow& row, const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    return yaml_string(value);
  } else if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_floating_point_v<T>) {
    return float_text(static_cast<double>(value), std::is_same_v<T, float>);
  } else if constexpr (std::is_integral_v<T>) {
    if (row.tristate) return value < 0 ? "auto" : (value ? "true" : "false");
    return std::to_string(value);
  } else {
    std::string out = "[";
    for (std::size_t i = 0; i < value.size(); ++i) {
      out += (i ? ", " : "") + yaml_value(row, value[i]);
    }
    return out + "]";
  }
}

// sparsity.phases: the phase starts merged in order; each phase ends where
// the next begins, the last with the run.
std::string phases_yaml(const TrainOptions& o) {
  if (!contains(kPhaseMethods, o.sparsity_method) || o.compress_epochs.empty()) return "";
  std::vector<std::pair<double, bool>> starts;
  for (const double e : o.compress_epochs) starts.emplace_back(e, true);
  for (const double e : o.decompress_epochs) starts.emplace_back(e, false);
  std::sort(starts.begin(), starts.end());
  std::string y = "  phases:\n";
  for (std::size_t i = 0; i < starts.size(); ++i) {
    const double end = i + 1 < starts.size() ? starts[i + 1].first : static_cast<double>(o.epochs);
    y += std::string("    - {state: ") + (starts[i].second ? "compressed" : "decompressed") +
         ", start: " + float_text(starts[i].first, false) + ", end: " + float_text(end, false) +
         "}\n";
  }
  return y;
}

}  // namespace

std::string recipe_to_yaml(const TrainOptions& o) {
  static const TrainOptions defaults;
  // The lines of each section in the order the rows first name it; the top
  // level ("") first.
  std::vector<std::pair<std::string, std::string>> sections = {{"", ""}};
  auto lines_of = [&sections](const std::string& name) -> std::string& {
    for (auto& [n, lines] : sections) {
      if (n == name) return lines;
    }
    return sections.emplace_back(name, "").second;
  };
  for (const OptionRow& row : option_rows()) {
    if (row.recipe_key.empty()) continue;
    if (row.method_specific && !contains(option_methods(row), o.sparsity_method)) continue;
    // Named copies, not structured bindings: the lambda below uses them
    // (clang before 16 cannot capture a binding).
    const auto split = split_key(row.recipe_key);
    const std::string& name = split.first;
    const std::string& key = split.second;
    std::visit(
        [&](auto m) {
          if (row.omit_default && o.*m == defaults.*m) return;
          lines_of(name) += (name.empty() ? "" : "  ") + key + ": " + yaml_value(row, o.*m) + "\n";
        },
        row.member);
  }
  lines_of("sparsity") += phases_yaml(o);
  std::string y;
  for (const auto& [name, lines] : sections) {
    if (!name.empty() && !lines.empty()) y += name + ":\n";
    y += lines;
  }
  return y;
}

}  // namespace sparsetrain

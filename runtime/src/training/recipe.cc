#include "sparsetrain/recipe.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "sparsetrain/data.h"
#include "sparsetrain/error.h"

namespace sparsetrain {

namespace {

constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
// Longest piece of recipe text quoted in an error message.
constexpr std::size_t kMaxQuoted = 60;

std::string quoted(const std::string& text) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kMaxQuoted; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?';
  }
  if (text.size() > kMaxQuoted) out += "...";
  return out + "'";
}

// yaml-cpp's messages may quote the offending byte.
std::string printable(const std::string& text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    out += u >= 0x20 && u < 0x7f ? c : '?';
  }
  return out;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// The shortest decimal text that reads back as the same value (as a float
// when `single`).
std::string float_text(double value, bool single) {
  char text[64];
  const auto result = single ? std::to_chars(text, text + sizeof text, static_cast<float>(value))
                             : std::to_chars(text, text + sizeof text, value);
  std::string s(text, result.ptr);
  // YAML 1.1 readers take "1e-08" as a string; "1.0e-08" is a float everywhere.
  const std::size_t e = s.find('e');
  if (e != std::string::npos && s.find('.') == std::string::npos) s.insert(e, ".0");
  return s;
}

struct Phase {
  bool compressed = false;
  double start = 0, end = 0;
  int line = 0;
};

}  // namespace

// Reads a YAML document into a Recipe: every key is looked up in a table of
// sections, every value converted and range-checked where it stands, so an
// error can name its line.
class RecipeParser {
 public:
  explicit RecipeParser(Recipe& recipe) : r_(recipe) {}

  void parse(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::ParserException& e) {
      throw Error(where_line(e.mark.line + 1) + ": not valid YAML: " + printable(e.msg));
    }
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

  int64_t integer(const YAML::Node& v, const std::string& key, int64_t min,
                  int64_t max = kNoMax) const {
    const std::string expected =
        max == kNoMax ? "an integer >= " + std::to_string(min)
                      : "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    const std::string s = scalar(v, key, expected.c_str());
    int64_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size() || value < min || value > max) {
      fail(v, key, "expected " + expected + ", got " + quoted(s));
    }
    return value;
  }

  // A finite number in [min, max] (an open end where `open_min` / `open_max`).
  double number(const YAML::Node& v, const std::string& key, double min, double max,
                bool open_min = false, bool open_max = false) const {
    std::ostringstream range;
    range << (open_min ? "(" : "[") << float_text(min, false) << ", "
          << (std::isinf(max) ? "inf" : float_text(max, false))
          << (open_max || std::isinf(max) ? ")" : "]");
    const std::string expected = "a number in " + range.str();
    const std::string s = scalar(v, key, expected.c_str());
    char* end = nullptr;
    const double value = s.empty() ? std::nan("") : std::strtod(s.c_str(), &end);
    const bool parsed = !s.empty() && end == s.c_str() + s.size() && std::isfinite(value);
    if (!parsed || value < min || value > max || (open_min && value == min) ||
        (open_max && value == max)) {
      fail(v, key, "expected " + expected + ", got " + quoted(s));
    }
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

  std::vector<int64_t> integers(const YAML::Node& v, const std::string& key, int64_t min,
                                bool increasing) const {
    if (!v.IsSequence()) fail(v, key, "expected a list of integers, e.g. [100, 150]");
    std::vector<int64_t> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const int64_t x = integer(v[i], key, min);
      if (increasing && !out.empty() && x <= out.back()) {
        fail(v[i], key,
             "must increase: " + std::to_string(x) + " follows " + std::to_string(out.back()));
      }
      out.push_back(x);
    }
    return out;
  }

  // --- sections -----------------------------------------------------------------

  template <class T>
  Handler field(T TrainOptions::*member,
                std::function<T(const YAML::Node&, const std::string&)> read) {
    return [this, member, read](const YAML::Node& v, const std::string& key) {
      const T value = read(v, key);
      set(key, v, [member, value](TrainOptions& o) { o.*member = value; });
    };
  }
  Handler int_field(int64_t TrainOptions::*member, int64_t min) {
    return field<int64_t>(member, [this, min](const YAML::Node& v, const std::string& key) {
      return integer(v, key, min);
    });
  }
  Handler float_field(float TrainOptions::*member, double min, double max, bool open_min,
                      bool open_max) {
    return field<float>(member, [=, this](const YAML::Node& v, const std::string& key) {
      return static_cast<float>(number(v, key, min, max, open_min, open_max));
    });
  }
  Handler choice_field(std::string TrainOptions::*member, std::vector<std::string> choices) {
    return field<std::string>(member, [this, choices](const YAML::Node& v, const std::string& key) {
      return choice(v, key, choices);
    });
  }
  Handler text_field(std::string TrainOptions::*member) {
    return field<std::string>(
        member, [this](const YAML::Node& v, const std::string& key) { return text(v, key); });
  }
  Handler limit_field(int64_t TrainOptions::*member) {
    return field<int64_t>(member, [this](const YAML::Node& v, const std::string& key) {
      const int64_t n = integer(v, key, -1);
      if (n == 0) fail(v, key, "expected -1 (all images) or a positive count, got 0");
      return n;
    });
  }
  Handler section(const std::string& name, Section entries) {
    return [this, name, entries = std::move(entries)](const YAML::Node& v, const std::string& key) {
      if (!v.IsMap()) fail(v, key, "expected a mapping of " + name + " keys");
      parse_map(v, key, entries);
    };
  }

  Section top_level() {
    constexpr double kInf = std::numeric_limits<double>::infinity();
    return {
        {"description", [this](const YAML::Node& v, const std::string& key) { text(v, key); }},
        {"model",
         [this](const YAML::Node& v, const std::string& key) {
           const std::string model = text(v, key);
           r_.model_ = model;
           set(key, v, [model](TrainOptions& o) { o.model = model; });
         }},
        {"dataset", choice_field(&TrainOptions::dataset, dataset_names())},
        {"data_dir", text_field(&TrainOptions::data_dir)},
        {"epochs",
         [this](const YAML::Node& v, const std::string& key) {
           const int64_t epochs = integer(v, key, 1);
           epochs_ = epochs;
           epochs_line_ = v.Mark().line + 1;
           set(key, v, [epochs](TrainOptions& o) { o.epochs = epochs; });
         }},
        {"batch_size", int_field(&TrainOptions::batch_size, 1)},
        {"eval_batch_size", int_field(&TrainOptions::eval_batch_size, 1)},
        {"seed", field<uint64_t>(&TrainOptions::seed,
                                 [this](const YAML::Node& v, const std::string& key) {
                                   return static_cast<uint64_t>(integer(v, key, 0));
                                 })},
        {"threads", field<int>(&TrainOptions::threads,
                               [this](const YAML::Node& v, const std::string& key) {
                                 return static_cast<int>(integer(v, key, 0, 1024));
                               })},
        {"augment", field<int>(&TrainOptions::augment,
                               [this](const YAML::Node& v, const std::string& key) {
                                 return tristate(v, key);
                               })},
        {"train_limit", limit_field(&TrainOptions::train_limit)},
        {"test_limit", limit_field(&TrainOptions::test_limit)},
        {"clip_grad_norm", float_field(&TrainOptions::clip_grad_norm, 0, kInf, false, false)},
        {"kernels", choice_field(&TrainOptions::kernels, {"auto", "sparse", "dense"})},
        {"save_epochs",
         field<std::vector<int64_t>>(&TrainOptions::save_epochs,
                                     [this](const YAML::Node& v, const std::string& key) {
                                       return integers(v, key, 0, /*increasing=*/true);
                                     })},
        {"optimizer",
         section("optimizer",
                 {{"name", choice_field(&TrainOptions::optimizer, {"sgd", "adamw"})},
                  {"lr", float_field(&TrainOptions::lr, 0, kInf, true, false)},
                  {"momentum", float_field(&TrainOptions::momentum, 0, 1, false, true)},
                  {"nesterov", field<bool>(&TrainOptions::nesterov,
                                           [this](const YAML::Node& v, const std::string& key) {
                                             return boolean(v, key);
                                           })},
                  {"weight_decay", float_field(&TrainOptions::weight_decay, 0, kInf, false, false)},
                  {"beta1", float_field(&TrainOptions::beta1, 0, 1, false, true)},
                  {"beta2", float_field(&TrainOptions::beta2, 0, 1, false, true)},
                  {"eps", float_field(&TrainOptions::adam_eps, 0, kInf, true, false)}})},
        {"lr_schedule",
         section("lr_schedule",
                 {{"name", choice_field(&TrainOptions::lr_schedule,
                                        {"constant", "multistep", "cosine", "onecycle"})},
                  {"milestones",
                   field<std::vector<int64_t>>(&TrainOptions::milestones,
                                               [this](const YAML::Node& v, const std::string& key) {
                                                 return integers(v, key, 1, /*increasing=*/true);
                                               })},
                  {"gamma", float_field(&TrainOptions::lr_gamma, 0, kInf, true, false)},
                  {"warmup_epochs", int_field(&TrainOptions::warmup_epochs, 0)},
                  {"span_epochs", int_field(&TrainOptions::lr_schedule_epochs, 0)},
                  {"offset_epochs", int_field(&TrainOptions::lr_schedule_offset_epochs, 0)}})},
        {"sparsity", section("sparsity", sparsity_section())},
        {"retrain",
         section("retrain", {{"init_from", text_field(&TrainOptions::init_from)},
                             {"mode", choice_field(&TrainOptions::retrain,
                                                   {"finetune", "lr-rewind", "weight-rewind"})},
                             {"rewind_epoch", int_field(&TrainOptions::rewind_epoch, 0)},
                             {"rewind_from", text_field(&TrainOptions::rewind_from)}})},
    };
  }

  // Remembers where a method parameter was given, for check_methods.
  Handler method_param(const std::string& name, Handler inner) {
    return [this, name, inner](const YAML::Node& v, const std::string& key) {
      method_params_.emplace_back(name, key_line_);
      inner(v, key);
    };
  }

  Section sparsity_section() {
    auto epoch = [this](double TrainOptions::*member) {
      return field<double>(member, [this](const YAML::Node& v, const std::string& key) {
        return number(v, key, 0, std::numeric_limits<double>::max());
      });
    };
    return {
        {"method",
         [this](const YAML::Node& v, const std::string& key) {
           method_ = choice(v, key, {"static", "acdc", "gmp", "rigl"});
           method_line_ = v.Mark().line + 1;
           const std::string m = method_;
           set(key, v, [m](TrainOptions& o) { o.sparsity_method = m; });
         }},
        {"target", float_field(&TrainOptions::sparsity, 0, 1, false, true)},
        {"distribution", choice_field(&TrainOptions::distribution, {"global", "uniform", "erk"})},
        {"dense_first_last", field<int>(&TrainOptions::dense_first_last,
                                        [this](const YAML::Node& v, const std::string& key) {
                                          return tristate(v, key);
                                        })},
        {"storage", choice_field(&TrainOptions::sparse_storage, {"compressed", "masked"})},
        {"phases", method_param("phases", [this](const YAML::Node& v,
                                                 const std::string& key) { read_phases(v, key); })},
        {"initial_sparsity",
         method_param("initial_sparsity",
                      float_field(&TrainOptions::initial_sparsity, 0, 1, false, true))},
        {"start_epoch", method_param("start_epoch", epoch(&TrainOptions::prune_start_epoch))},
        {"end_epoch", method_param("end_epoch", epoch(&TrainOptions::prune_end_epoch))},
        {"every_steps",
         method_param("every_steps", int_field(&TrainOptions::prune_every_steps, 1))},
        {"drop_fraction", method_param("drop_fraction", float_field(&TrainOptions::drop_fraction, 0,
                                                                    1, false, true))},
    };
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
                    phase.start = number(s, k, 0, std::numeric_limits<double>::max());
                    has_start = true;
                  }},
                 {"end", [&](const YAML::Node& s, const std::string& k) {
                    phase.end = number(s, k, 0, std::numeric_limits<double>::max());
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
    const std::map<std::string, std::vector<std::string>> users = {
        {"phases", {"acdc"}},
        {"initial_sparsity", {"gmp"}},
        {"start_epoch", {"gmp", "rigl"}},
        {"end_epoch", {"gmp", "rigl"}},
        {"every_steps", {"gmp", "rigl"}},
        {"drop_fraction", {"rigl"}},
    };
    for (const auto& [name, line] : method_params_) {
      const std::vector<std::string>& methods = users.at(name);
      if (std::find(methods.begin(), methods.end(), method_) != methods.end()) continue;
      throw Error(where_line(line) + ": sparsity." + name + ": applies to method " + join(methods) +
                  " only, but sparsity.method is " + method_ + " (line " +
                  std::to_string(method_line_) + ")");
    }
  }

  Recipe& r_;
  int key_line_ = 0;  // of the key whose value is being read
  int64_t epochs_ = 0;
  int epochs_line_ = 0;
  std::string method_;
  int method_line_ = 0;
  std::vector<std::pair<std::string, int>> method_params_;  // name, line
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
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error("recipe '" + path + "': " +
                (std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("recipe '" + path + "': cannot open it");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error("recipe '" + path + "': cannot read it");
  return parse(text.str(), path);
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

std::string int_list(const std::vector<int64_t>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(values[i]);
  }
  return out + "]";
}

std::string tristate_text(int value) { return value < 0 ? "auto" : (value ? "true" : "false"); }

}  // namespace

std::string recipe_to_yaml(const TrainOptions& o) {
  std::ostringstream y;
  auto f = [](float v) { return float_text(static_cast<double>(v), true); };
  auto d = [](double v) { return float_text(v, false); };
  y << "model: " << yaml_string(o.model) << "\n"
    << "dataset: " << yaml_string(o.dataset) << "\n";
  // No data_dir: the datasets are searched for (data_search_places).
  if (!o.data_dir.empty()) y << "data_dir: " << yaml_string(o.data_dir) << "\n";
  y << "epochs: " << o.epochs << "\n"
    << "batch_size: " << o.batch_size << "\n"
    << "eval_batch_size: " << o.eval_batch_size << "\n"
    << "seed: " << o.seed << "\n"
    << "threads: " << o.threads << "\n"
    << "augment: " << tristate_text(o.augment) << "\n"
    << "train_limit: " << o.train_limit << "\n"
    << "test_limit: " << o.test_limit << "\n"
    << "clip_grad_norm: " << f(o.clip_grad_norm) << "\n"
    << "kernels: " << o.kernels << "\n";
  if (!o.save_epochs.empty()) y << "save_epochs: " << int_list(o.save_epochs) << "\n";
  y << "optimizer:\n"
    << "  name: " << o.optimizer << "\n"
    << "  lr: " << f(o.lr) << "\n"
    << "  momentum: " << f(o.momentum) << "\n"
    << "  nesterov: " << (o.nesterov ? "true" : "false") << "\n"
    << "  weight_decay: " << f(o.weight_decay) << "\n"
    << "  beta1: " << f(o.beta1) << "\n"
    << "  beta2: " << f(o.beta2) << "\n"
    << "  eps: " << f(o.adam_eps) << "\n"
    << "lr_schedule:\n"
    << "  name: " << o.lr_schedule << "\n";
  if (!o.milestones.empty()) y << "  milestones: " << int_list(o.milestones) << "\n";
  y << "  gamma: " << f(o.lr_gamma) << "\n"
    << "  warmup_epochs: " << o.warmup_epochs << "\n";
  if (o.lr_schedule_epochs != 0) y << "  span_epochs: " << o.lr_schedule_epochs << "\n";
  if (o.lr_schedule_offset_epochs != 0)
    y << "  offset_epochs: " << o.lr_schedule_offset_epochs << "\n";
  y << "sparsity:\n"
    << "  method: " << o.sparsity_method << "\n"
    << "  target: " << f(o.sparsity) << "\n";
  if (!o.distribution.empty()) y << "  distribution: " << o.distribution << "\n";
  y << "  dense_first_last: " << tristate_text(o.dense_first_last) << "\n"
    << "  storage: " << o.sparse_storage << "\n";
  if (o.sparsity_method == "acdc" && !o.compress_epochs.empty()) {
    // Phase starts merged in order; each phase ends where the next begins,
    // the last with the run.
    std::vector<std::pair<double, bool>> starts;
    for (const double e : o.compress_epochs) starts.emplace_back(e, true);
    for (const double e : o.decompress_epochs) starts.emplace_back(e, false);
    std::sort(starts.begin(), starts.end());
    y << "  phases:\n";
    for (std::size_t i = 0; i < starts.size(); ++i) {
      const double end =
          i + 1 < starts.size() ? starts[i + 1].first : static_cast<double>(o.epochs);
      y << "    - {state: " << (starts[i].second ? "compressed" : "decompressed")
        << ", start: " << d(starts[i].first) << ", end: " << d(end) << "}\n";
    }
  }
  if (o.sparsity_method == "gmp") y << "  initial_sparsity: " << f(o.initial_sparsity) << "\n";
  if (o.sparsity_method == "gmp" || o.sparsity_method == "rigl") {
    if (o.prune_start_epoch >= 0) y << "  start_epoch: " << d(o.prune_start_epoch) << "\n";
    if (o.prune_end_epoch >= 0) y << "  end_epoch: " << d(o.prune_end_epoch) << "\n";
    y << "  every_steps: " << o.prune_every_steps << "\n";
  }
  if (o.sparsity_method == "rigl") y << "  drop_fraction: " << f(o.drop_fraction) << "\n";
  if (!o.init_from.empty()) {
    y << "retrain:\n"
      << "  init_from: " << yaml_string(o.init_from) << "\n";
    if (!o.retrain.empty()) y << "  mode: " << o.retrain << "\n";
    if (o.rewind_epoch >= 0) y << "  rewind_epoch: " << o.rewind_epoch << "\n";
    if (!o.rewind_from.empty()) y << "  rewind_from: " << yaml_string(o.rewind_from) << "\n";
  }
  return y.str();
}

}  // namespace sparsetrain

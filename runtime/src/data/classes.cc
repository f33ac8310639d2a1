// Class subsets of a dataset (sparsetrain/data.h): parse_class_list,
// select_classes and the load_dataset overload that applies them.

#include <algorithm>
#include <charconv>
#include <string>
#include <vector>

#include "sparsetrain/data.h"
#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

// A whole non-negative integer, or -1.
int parse_class(std::string_view text) {
  int v = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0) return -1;
  return v;
}

std::string trimmed(std::string_view s) {
  const auto first = s.find_first_not_of(' ');
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(' ');
  return std::string(s.substr(first, last - first + 1));
}

}  // namespace

std::vector<int> parse_class_list(const std::string& spec, int num_classes) {
  const auto fail = [&](const std::string& problem) -> void {
    throw Error("--classes '" + spec + "': " + problem);
  };
  std::vector<int> out;
  size_t at = 0;
  while (at <= spec.size()) {
    const size_t comma = std::min(spec.find(',', at), spec.size());
    const std::string item = trimmed(std::string_view(spec).substr(at, comma - at));
    at = comma + 1;
    if (item.empty()) {
      if (spec.find_first_not_of(" ,") == std::string::npos) fail("an empty class list");
      fail("an empty item (expected a class like 3, or a range like 0-4)");
    }
    const size_t dash = item.find('-', 1);
    const int first = parse_class(dash == std::string::npos ? item : trimmed(item.substr(0, dash)));
    const int last =
        dash == std::string::npos ? first : parse_class(trimmed(item.substr(dash + 1)));
    if (first < 0 || last < 0) {
      fail("'" + item + "' is not a class number or a range like 0-4");
    }
    const int step = last >= first ? 1 : -1;
    for (int c = first;; c += step) {
      if (c >= num_classes) {
        fail("class " + std::to_string(c) + " is out of range (the dataset has classes 0.." +
             std::to_string(num_classes - 1) + ")");
      }
      if (std::find(out.begin(), out.end(), c) != out.end()) {
        fail("class " + std::to_string(c) + " is given twice");
      }
      out.push_back(c);
      if (c == last) break;
    }
  }
  return out;
}

Dataset select_classes(const Dataset& data, const std::vector<int>& classes, int64_t limit) {
  if (classes.empty()) throw Error("select_classes: an empty class list");
  std::vector<int> new_label(static_cast<size_t>(data.num_classes), -1);
  for (size_t i = 0; i < classes.size(); ++i) {
    const int c = classes[i];
    if (c < 0 || c >= data.num_classes || new_label[c] >= 0) {
      throw Error("select_classes: class " + std::to_string(c) +
                  (c < 0 || c >= data.num_classes ? " is out of range" : " is given twice") +
                  " for dataset " + data.name);
    }
    new_label[c] = static_cast<int>(i);
  }
  Dataset out;
  out.name = data.name;
  out.channels = data.channels;
  out.height = data.height;
  out.width = data.width;
  out.num_classes = static_cast<int>(classes.size());
  out.mean = data.mean;
  out.stddev = data.stddev;
  out.folder = data.folder;
  out.files = data.files;
  for (const int c : classes) {
    out.class_names.push_back(static_cast<size_t>(c) < data.class_names.size() ? data.class_names[c]
                                                                               : std::to_string(c));
  }
  const int64_t numel = data.image_numel();
  for (int64_t i = 0; i < data.size() && (limit < 0 || out.size() < limit); ++i) {
    const int label = new_label[data.labels[i]];
    if (label < 0) continue;
    out.labels.push_back(label);
    out.pixels.insert(out.pixels.end(), data.pixels.begin() + i * numel,
                      data.pixels.begin() + (i + 1) * numel);
  }
  return out;
}

Dataset load_dataset(const std::string& name, const std::string& data_dir, Split split,
                     int64_t limit, const std::string& classes) {
  if (classes.empty()) return load_dataset(name, data_dir, split, limit);
  const std::vector<int> kept = parse_class_list(classes, dataset_geometry(name).num_classes);
  return select_classes(load_dataset(name, data_dir, split), kept, limit);
}

}  // namespace sparsetrain

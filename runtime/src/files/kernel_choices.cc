// The kernel-choices file (sparsetrain/kernel_choices.h): written in run
// folders and checkpoints, read by --kernel-choices and --resume.
#include "sparsetrain/kernel_choices.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "sparsetrain/error.h"
#include "sparsetrain/files.h"

namespace sparsetrain {
namespace {

using json = nlohmann::json;

constexpr const char* kFormat = "sparsetrain-kernel-choices-1";
constexpr const char* kFileName = "kernel_choices.json";
// A model has a few dozen prunable layers, each meeting a few problems (train
// and eval batches, one stored count per phase); far more is not a choices
// file.
constexpr std::size_t kMaxChoices = 65536;
constexpr std::uintmax_t kMaxFileBytes = 64u << 20;

using ordered_json = nlohmann::ordered_json;

// Timings to the microsecond: finer digits are noise.
ordered_json ms_json(double ms) {
  return ms < 0 ? ordered_json(nullptr) : ordered_json(std::round(ms * 1e3) / 1e3);
}

// Field `key` of entry `e` as a T, or `fallback` when absent; Error naming
// the entry and the field on a value of another type.
template <class T>
T field(const json& e, const char* key, const std::string& entry, const char* what, T fallback,
        bool required = false) {
  const auto it = e.find(key);
  if (it == e.end()) {
    if (required) throw Error(entry + ": missing \"" + key + "\" (" + what + ")");
    return fallback;
  }
  try {
    return it->template get<T>();
  } catch (const json::exception&) {
    throw Error(entry + ": \"" + key + "\" must be " + what + ", got " + it->dump());
  }
}

}  // namespace

std::string kernel_choices_to_json(const std::vector<KernelChoice>& choices) {
  ordered_json list = ordered_json::array();
  for (const KernelChoice& c : choices) {
    ordered_json e = {{"layer", c.layer},
                      {"op", c.op},
                      {"problem", c.problem},
                      {"shape", c.shape},
                      {"batch", c.batch},
                      {"nnz", c.nnz},
                      {"density", c.density},
                      {"kernels", c.kernels},
                      {"decided_by", c.decided_by},
                      {"choice", c.sparse ? "sparse" : "dense"},
                      {"sparse_ms", ms_json(c.sparse_ms)},
                      {"dense_ms", ms_json(c.dense_ms)},
                      {"step", c.step}};
    if (!c.family.empty()) e["family"] = c.family;
    if (c.from_batch > 0) e["from_batch"] = c.from_batch;
    if (c.replayed) e["replayed"] = true;
    list.push_back(std::move(e));
  }
  const ordered_json doc = {{"format", kFormat}, {"choices", std::move(list)}};
  return doc.dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n";
}

std::vector<KernelChoice> kernel_choices_from_json(const std::string& text,
                                                   const std::string& where) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(where + ": not valid JSON (" + std::string(e.what()) +
                "); expected a kernel-choices file as the run folder's kernel_choices.json");
  }
  if (!doc.is_object() || !doc.contains("choices")) {
    throw Error(where +
                ": not a kernel-choices file (expected a JSON object with a \"choices\" "
                "list, as the run folder's kernel_choices.json)");
  }
  if (const auto f = doc.find("format"); f != doc.end() && *f != kFormat) {
    throw Error(where + ": unknown format " + f->dump() + " (expected \"" + kFormat + "\")");
  }
  const json& list = doc["choices"];
  if (!list.is_array()) throw Error(where + ": \"choices\" must be a list, got " + list.dump());
  if (list.size() > kMaxChoices) {
    throw Error(where + ": " + std::to_string(list.size()) + " choices; at most " +
                std::to_string(kMaxChoices) + " are read");
  }
  std::vector<KernelChoice> out;
  std::map<std::pair<std::string, std::string>, std::size_t> seen;
  for (std::size_t k = 0; k < list.size(); ++k) {
    const json& e = list[k];
    std::string entry = where + ": choice " + std::to_string(k + 1);
    if (!e.is_object()) throw Error(entry + ": must be a JSON object, got " + e.dump());
    KernelChoice c;
    c.layer = field<std::string>(e, "layer", entry, "a layer name (string)", "", true);
    if (c.layer.empty()) throw Error(entry + ": \"layer\" is empty");
    entry += " (layer '" + c.layer + "')";
    c.problem = field<std::string>(e, "problem", entry, "a string", "", true);
    const std::string choice =
        field<std::string>(e, "choice", entry, "\"sparse\" or \"dense\"", "", true);
    if (choice != "sparse" && choice != "dense") {
      throw Error(entry + ": \"choice\" must be \"sparse\" or \"dense\", got \"" + choice + "\"");
    }
    c.sparse = choice == "sparse";
    c.op = field<std::string>(e, "op", entry, "\"conv2d\" or \"linear\"", "");
    if (!c.op.empty() && c.op != "conv2d" && c.op != "linear") {
      throw Error(entry + ": \"op\" must be \"conv2d\" or \"linear\", got \"" + c.op + "\"");
    }
    c.shape = field<std::string>(e, "shape", entry, "a string", "");
    c.batch = field<int64_t>(e, "batch", entry, "an integer", 0);
    c.nnz = field<int64_t>(e, "nnz", entry, "an integer", 0);
    c.density = field<double>(e, "density", entry, "a number", 0.0);
    c.kernels = field<std::string>(e, "kernels", entry, "a string", "");
    c.decided_by = field<std::string>(e, "decided_by", entry, "a string", "");
    const auto ms = [&](const char* key) {
      const auto it = e.find(key);
      return it == e.end() || it->is_null() ? -1.0
                                            : field<double>(e, key, entry, "a number or null", -1);
    };
    c.sparse_ms = ms("sparse_ms");
    c.dense_ms = ms("dense_ms");
    c.step = field<int64_t>(e, "step", entry, "an integer", 0);
    c.replayed = field<bool>(e, "replayed", entry, "true or false", false);
    c.family = field<std::string>(e, "family", entry, "a string", "");
    c.from_batch = field<int64_t>(e, "from_batch", entry, "an integer", 0);
    const auto [at, fresh] = seen.emplace(std::pair{c.layer, c.problem}, out.size());
    if (!fresh) {
      if (out[at->second].sparse != c.sparse) {
        throw Error(entry + ": disagrees with choice " + std::to_string(at->second + 1) +
                    " for the same layer and problem \"" + c.problem + "\"");
      }
      continue;
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::string kernel_choices_file(const std::string& path) {
  std::filesystem::path p(path);
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) p /= kFileName;
  return p.string();
}

std::vector<KernelChoice> read_kernel_choices(const std::string& path) {
  const std::string file = kernel_choices_file(path);
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(file, ec);
  if (ec) throw Error(file + ": cannot read the kernel choices: " + ec.message());
  if (size > kMaxFileBytes) {
    throw Error(file + ": " + std::to_string(size) + " bytes; a kernel-choices file is at most " +
                std::to_string(kMaxFileBytes) + " bytes");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file + ": cannot open the kernel choices for reading");
  std::ostringstream text;
  text << in.rdbuf();
  return kernel_choices_from_json(text.str(), file);
}

void write_kernel_choices(const std::string& path, const std::vector<KernelChoice>& choices) {
  write_file_atomic(path, kernel_choices_to_json(choices), "kernel choices " + path);
}

}  // namespace sparsetrain

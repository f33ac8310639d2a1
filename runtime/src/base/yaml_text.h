// Shared by the YAML readers (recipes, model files): a guard against a
// yaml-cpp 0.7 parser loop, and quoting of user text in error messages.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace sparsetrain::detail {

// Where the first node of each document starts, for up to `most`
// documents. yaml-cpp 0.7's own LoadAll never returns, allocating without
// bound, on some invalid streams such as "," (found by tests/fuzz/
// fuzz_recipe; fixed upstream after 0.7): the parser then yields documents
// that consume no input, which this stops at.
std::vector<YAML::Mark> document_starts(const std::string& text, std::size_t most);

// Parses one YAML document. Throws Error "`where_line(line)`: not valid
// YAML: ..." for a syntax error, a second document, nesting deeper than the
// parser allows (`deep_hint` says what depth the format needs), and for the
// stream on which yaml-cpp 0.7 would loop.
// `kind` names the format ("a recipe").
YAML::Node load_one_document(const std::string& text,
                             const std::function<std::string(int line)>& where_line,
                             const std::string& kind, const std::string& deep_hint);

// The whole of the regular file at `path`. Throws Error "`kind` 'PATH': no
// such file" (not a regular file, cannot open it, cannot read it).
std::string read_text_file(const std::string& path, const std::string& kind);

// 'text' with bytes outside printable ASCII as '?', cut to 60 characters.
std::string quoted(const std::string& text);
// yaml-cpp's messages may quote the offending byte: the same without quotes
// or cut.
std::string printable(const std::string& text);

}  // namespace sparsetrain::detail

#include "base/yaml_text.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "sparsetrain/error.h"

namespace sparsetrain::detail {

namespace {

// Longest piece of user text quoted in an error message.
constexpr std::size_t kMaxQuoted = 60;

class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override {
    start_ = mark;
    first_node_ = false;
  }
  void OnDocumentEnd() override {
    if (start_) marks.push_back(*start_);
    start_.reset();
  }
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

 private:
  void node(const YAML::Mark& mark) {
    if (!first_node_) {
      first_node_ = true;
      start_ = mark;
    }
  }
  std::optional<YAML::Mark> start_;
  bool first_node_ = false;
};

}  // namespace

std::vector<YAML::Mark> document_starts(const std::string& text, std::size_t most) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts starts;
  for (std::size_t i = 0; i < most; ++i) {
    const std::size_t before = starts.marks.size();
    if (!parser.HandleNextDocument(starts)) break;
    if (starts.marks.size() == before) break;  // a document without a node
  }
  return starts.marks;
}

YAML::Node load_one_document(const std::string& text,
                             const std::function<std::string(int line)>& where_line,
                             const std::string& kind, const std::string& deep_hint) {
  try {
    const std::vector<YAML::Mark> starts = document_starts(text, 2);
    if (starts.size() > 1 && starts[1].pos <= starts[0].pos) {
      // The parser went round without reading anything (see document_starts).
      const auto at = static_cast<std::size_t>(std::max(starts[1].pos, 0));
      throw Error(where_line(starts[1].line + 1) + ": not valid YAML: " +
                  (at < text.size() ? "'" + printable(text.substr(at, 1)) + "'" : "the end") +
                  " where a key or a value should start");
    }
    if (starts.size() > 1) {
      throw Error(where_line(starts[1].line + 1) + ": a second YAML document; " + kind +
                  " is one document (remove the '---')");
    }
    return YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own message for this is "bad file".
    throw Error(where_line(e.mark.line + 1) +
                ": not valid YAML: nested too deeply for the YAML parser (" + deep_hint + ")");
  } catch (const YAML::ParserException& e) {
    throw Error(where_line(e.mark.line + 1) + ": not valid YAML: " + printable(e.msg));
  }
}

std::string read_text_file(const std::string& path, const std::string& kind) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(kind + " '" + path + "': " +
                (std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(kind + " '" + path + "': cannot open it");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(kind + " '" + path + "': cannot read it");
  return text.str();
}

std::string quoted(const std::string& text) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kMaxQuoted; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?';
  }
  if (text.size() > kMaxQuoted) out += "...";
  return out + "'";
}

std::string printable(const std::string& text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    out += u >= 0x20 && u < 0x7f ? c : '?';
  }
  return out;
}

}  // namespace sparsetrain::detail

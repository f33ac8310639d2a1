// Text in JSON without loss (internal). JSON strings must be UTF-8, but a
// path on Linux is any bytes: a legal non-UTF-8 folder name would make
// nlohmann::json throw its own exception when dumped. Valid UTF-8 is stored
// as a JSON string; anything else as {"bytes": "<hex>"}, read back exactly.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sparsetrain::detail {

bool is_utf8(std::string_view s);
nlohmann::json text_to_json(const std::string& s);
// `s` with every byte that is not part of valid UTF-8 replaced by U+FFFD:
// for text shown to people (a recipe in a checkpoint's metadata), where the
// exact bytes are kept elsewhere.
std::string utf8_lossy(std::string_view s);
// A string or {"bytes": hex}; throws nlohmann::json::exception (type_error)
// on anything else, as get<std::string>() would.
std::string json_to_text(const nlohmann::json& j);

}  // namespace sparsetrain::detail

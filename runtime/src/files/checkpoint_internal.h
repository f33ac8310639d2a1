// What the safetensors container (checkpoint.cc) and the training state
// stored in it (checkpoint_state.cc) share: names, limits and the helpers
// that quote file-provided text safely.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sparsetrain::ckpt {

using json = nlohmann::json;

// No dimension or element count may exceed this (keeps products in range).
inline constexpr uint64_t kMaxElements = uint64_t{1} << 62;
// Longest piece of file-provided text quoted in an error message.
inline constexpr std::size_t kMaxQuoted = 120;
inline constexpr const char* kParamPrefix = "param/";
inline constexpr const char* kOptimPrefix = "optim/";
inline constexpr const char* kOptimKindKey = "optim.kind";
inline constexpr const char* kOptimStepKey = "optim.step_count";

// File-provided text made safe for a one-line message: control and
// non-ASCII bytes escaped, length capped.
inline std::string printable(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < kMaxQuoted; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > kMaxQuoted) out += "...";
  return out;
}

inline std::string quote_text(std::string_view s) {
  // Appended piecewise: "'" + std::string&& trips GCC 12's -Wrestrict at -O3.
  std::string out(1, '\'');
  out += printable(s);
  out += '\'';
  return out;
}

// Reads a non-negative JSON integer; returns false when `v` is anything else.
inline bool as_count(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v.get<int64_t>());
    return true;
  }
  return false;
}

template <class T>
std::vector<uint8_t> to_bytes(const std::vector<T>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(T));
  if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

template <class T>
std::vector<T> from_bytes(const std::vector<uint8_t>& bytes) {
  std::vector<T> values(bytes.size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
  return values;
}

}  // namespace sparsetrain::ckpt

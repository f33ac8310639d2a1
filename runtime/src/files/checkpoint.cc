#include "sparsetrain/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "files/checkpoint_internal.h"
#include "sparsetrain/error.h"
#include "sparsetrain/files.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/optim.h"

namespace sparsetrain {

static_assert(std::endian::native == std::endian::little,
              "checkpoints store little-endian bytes; a big-endian port must swap them");

namespace {

using namespace ckpt;  // shared with checkpoint_state.cc

constexpr uint64_t kHeaderLengthBytes = 8;
// The safetensors reference implementation refuses larger headers too.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} * 1000 * 1000;
// The data section starts at a multiple of this (header padded with spaces).
constexpr uint64_t kDataAlignment = 8;
// A valid header nests 3 levels ({ -> { -> [); anything much deeper is junk.
constexpr int kMaxJsonDepth = 16;
constexpr const char* kMetadataKey = "__metadata__";
// Entries (tensors, and metadata fields) a header may hold. A model here
// has a few hundred tensors with their optimizer state and sparse encoding;
// a header claiming more is not one of ours, and is refused before it is
// turned into objects.
constexpr int64_t kMaxHeaderEntries = 65536;

// One linear pass over the header's JSON (SAX, no document built): the first
// key repeated within one object, and the number of top-level entries and of
// metadata fields. (nlohmann's parser with a callback rescans the parent
// object whenever a child object ends: quadratic in the entries.)
class HeaderKeys : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::string repeated;
  int64_t entries = 0;   // keys of the top-level object
  int64_t metadata = 0;  // keys of "__metadata__"
  bool too_many = false;

  bool start_object(std::size_t) override {
    objects_.emplace_back();
    in_metadata_.push_back(objects_.size() == 2 && last_key_ == kMetadataKey);
    return true;
  }
  bool end_object() override {
    objects_.pop_back();
    in_metadata_.pop_back();
    return true;
  }
  bool key(string_t& k) override {
    if (objects_.size() == 1) ++entries;
    if (!in_metadata_.empty() && in_metadata_.back()) ++metadata;
    if (entries > kMaxHeaderEntries || metadata > kMaxHeaderEntries) {
      too_many = true;
      return false;  // stop reading
    }
    if (repeated.empty() && !objects_.back().insert(k).second) repeated = k;
    last_key_ = k;
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  // The real parse below reports the error with its position.
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  std::vector<std::unordered_set<std::string>> objects_;
  std::vector<bool> in_metadata_;
  std::string last_key_;
};

struct DtypeInfo {
  const char* name;
  int64_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", 8},     {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1},
    {"F8_E5M2", 1}, {"I64", 8}, {"I32", 4}, {"I16", 2},  {"I8", 1},
    {"U64", 8},     {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1},
};

std::string errno_text(int err) { return std::strerror(err); }

// Deepest nesting of objects / arrays, ignoring brackets inside strings.
int json_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > kMaxJsonDepth) return deepest;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports the result (close can report a failed write).
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

// Reads exactly `size` bytes at `offset`; returns 0, an errno value, or -1
// when the file ends first.
int read_at(int fd, void* data, std::size_t size, uint64_t offset) {
  auto* p = static_cast<uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return -1;
    p += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

// One tensor entry of a header while it is being validated.
struct Entry {
  std::string name;
  CheckpointTensor tensor;
  uint64_t begin = 0, end = 0;
};

std::string offsets_string(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

}  // namespace

int64_t checkpoint_dtype_size(const std::string& dtype) {
  for (const DtypeInfo& d : kDtypes) {
    if (dtype == d.name) return d.size;
  }
  return 0;
}

// --- building and reading in memory -----------------------------------------

std::string Checkpoint::where() const {
  return source_.empty() ? std::string("checkpoint (in memory)") : "checkpoint '" + source_ + "'";
}

void Checkpoint::put(const std::string& name, const Tensor& t) {
  if (!t.defined()) throw Error(where() + ": tensor '" + name + "' is undefined");
  const bool plain = t.layout() == Layout::kPlain || t.layout() == Layout::kNCHW;
  const Tensor src = plain ? t : to_layout(t, Layout::kPlain);
  std::vector<uint8_t> bytes(static_cast<std::size_t>(src.bytes()));
  if (!bytes.empty()) std::memcpy(bytes.data(), src.data(), bytes.size());
  put_raw(name, "F32", src.shape(), std::move(bytes));
}

void Checkpoint::put_raw(const std::string& name, const std::string& dtype, const Shape& shape,
                         std::vector<uint8_t> bytes) {
  if (name == kMetadataKey) {
    throw Error(where() + ": '" + name + "' is reserved for metadata, not a tensor name");
  }
  const int64_t size = checkpoint_dtype_size(dtype);
  if (size == 0) throw Error(where() + ": tensor '" + name + "': unknown dtype '" + dtype + "'");
  const int64_t count = Tensor::count(shape);
  if (static_cast<uint64_t>(count) * static_cast<uint64_t>(size) != bytes.size()) {
    throw Error(where() + ": tensor '" + name + "': " + std::to_string(bytes.size()) +
                " bytes for " + dtype + " shape " + shape_to_string(shape));
  }
  tensors_[name] = CheckpointTensor{dtype, shape, std::move(bytes)};
}

void Checkpoint::put_i32(const std::string& name, const Shape& shape,
                         const std::vector<int32_t>& values) {
  put_raw(name, "I32", shape, to_bytes(values));
}

void Checkpoint::put_i64(const std::string& name, const Shape& shape,
                         const std::vector<int64_t>& values) {
  put_raw(name, "I64", shape, to_bytes(values));
}

void Checkpoint::put_u8(const std::string& name, const Shape& shape,
                        const std::vector<uint8_t>& values) {
  put_raw(name, "U8", shape, values);
}

void Checkpoint::remove(const std::string& name) { tensors_.erase(name); }

bool Checkpoint::has(const std::string& name) const { return tensors_.count(name) != 0; }

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, tensor] : tensors_) out.push_back(name);
  return out;
}

const CheckpointTensor& Checkpoint::raw(const std::string& name) const {
  return find(name, "", nullptr);
}

const CheckpointTensor& Checkpoint::find(const std::string& name, const std::string& dtype,
                                         const Shape* expected_shape) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    throw Error(where() + ": missing tensor " + quote_text(name) + " (it holds " +
                std::to_string(tensors_.size()) + " tensors)");
  }
  const CheckpointTensor& t = it->second;
  if (!dtype.empty() && t.dtype != dtype) {
    throw Error(where() + ": tensor " + quote_text(name) + " has dtype " + t.dtype + ", expected " +
                dtype);
  }
  if (expected_shape != nullptr && t.shape != *expected_shape) {
    throw Error(where() + ": tensor " + quote_text(name) + " has shape " +
                shape_to_string(t.shape) + ", expected " + shape_to_string(*expected_shape));
  }
  return t;
}

Tensor Checkpoint::get(const std::string& name, const Shape& expected_shape) const {
  const CheckpointTensor& t = find(name, "F32", &expected_shape);
  Tensor out = Tensor::empty(t.shape);
  if (!t.bytes.empty()) std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
  return out;
}

Tensor Checkpoint::get(const std::string& name) const {
  return get(name, find(name, "F32", nullptr).shape);
}

std::vector<int32_t> Checkpoint::get_i32(const std::string& name,
                                         const Shape& expected_shape) const {
  return from_bytes<int32_t>(find(name, "I32", &expected_shape).bytes);
}

std::vector<int64_t> Checkpoint::get_i64(const std::string& name,
                                         const Shape& expected_shape) const {
  return from_bytes<int64_t>(find(name, "I64", &expected_shape).bytes);
}

std::vector<uint8_t> Checkpoint::get_u8(const std::string& name,
                                        const Shape& expected_shape) const {
  return find(name, "U8", &expected_shape).bytes;
}

const std::string& Checkpoint::meta(const std::string& key) const {
  const auto it = metadata_.find(key);
  if (it == metadata_.end()) throw Error(where() + ": missing metadata '" + key + "'");
  return it->second;
}

// --- saving ------------------------------------------------------------------

void Checkpoint::save(const std::string& path) const {
  const std::string what = "checkpoint '" + path + "'";
  if (path.empty()) throw Error("checkpoint: empty output path");

  // Header: tensors packed in name order.
  std::string header;
  try {
    json h = json::object();
    json meta = json::object();
    for (const auto& [key, value] : metadata_) meta[key] = value;
    h[kMetadataKey] = std::move(meta);
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors_) {
      const uint64_t end = offset + t.bytes.size();
      h[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
      offset = end;
    }
    header = h.dump();
  } catch (const json::exception& e) {
    // dump() rejects strings that are not valid UTF-8.
    throw Error(what + ": cannot encode the header (tensor names and metadata must be UTF-8): " +
                printable(e.what()));
  }
  header.append((kDataAlignment - header.size() % kDataAlignment) % kDataAlignment, ' ');
  if (header.size() > kMaxHeaderBytes) {
    throw Error(what + ": header of " + std::to_string(header.size()) +
                " bytes exceeds the 100 MB limit of readers");
  }
  uint8_t length[kHeaderLengthBytes];
  for (std::size_t i = 0; i < kHeaderLengthBytes; ++i) {
    length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  }

  std::vector<std::string_view> parts;
  parts.emplace_back(reinterpret_cast<const char*>(length), sizeof length);
  parts.emplace_back(header);
  for (const auto& [name, t] : tensors_) {
    parts.emplace_back(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  }
  write_file_atomic(path, parts, what);
}

// --- loading -----------------------------------------------------------------

Checkpoint Checkpoint::load(const std::string& path) {
  const std::string what = "checkpoint '" + path + "'";
  auto bad = [&](const std::string& problem) -> Error { return Error(what + ": " + problem); };

  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw bad("cannot open: " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw bad("cannot stat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) throw bad("not a regular file");
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < kHeaderLengthBytes) {
    throw bad("file is " + std::to_string(file_size) +
              " bytes, shorter than the 8-byte header length (truncated or not a safetensors "
              "file)");
  }

  auto read_or_throw = [&](void* data, std::size_t size, uint64_t offset, const char* part) {
    const int err = read_at(fd.get(), data, size, offset);
    if (err == -1) throw bad(std::string("unexpected end of file while reading the ") + part);
    if (err != 0) throw bad(std::string("cannot read the ") + part + ": " + errno_text(err));
  };

  uint8_t length_bytes[kHeaderLengthBytes];
  read_or_throw(length_bytes, sizeof length_bytes, 0, "header length");
  uint64_t header_size = 0;
  for (std::size_t i = 0; i < kHeaderLengthBytes; ++i) {
    header_size |= static_cast<uint64_t>(length_bytes[i]) << (8 * i);
  }
  if (header_size > kMaxHeaderBytes) {
    throw bad("header length " + std::to_string(header_size) +
              " is absurd (limit 100 MB; not a safetensors file?)");
  }
  if (header_size > file_size - kHeaderLengthBytes) {
    throw bad("header length " + std::to_string(header_size) + " is larger than the file (" +
              std::to_string(file_size) + " bytes; truncated?)");
  }
  std::string header(static_cast<std::size_t>(header_size), '\0');
  read_or_throw(header.data(), header.size(), kHeaderLengthBytes, "header");
  const uint64_t data_start = kHeaderLengthBytes + header_size;
  const uint64_t data_size = file_size - data_start;

  if (json_depth(header) > kMaxJsonDepth) {
    throw bad("header is not a safetensors header (JSON nested deeper than " +
              std::to_string(kMaxJsonDepth) + " levels)");
  }
  // JSON itself allows repeated keys (the parser keeps the last); a header
  // that names a tensor or a field twice is ambiguous, so it is refused.
  HeaderKeys keys;
  json::sax_parse(header, &keys);
  if (keys.too_many) {
    throw bad("header holds more than " + std::to_string(kMaxHeaderEntries) +
              " entries (tensors or metadata fields); no sparsetrain model needs that many");
  }
  json h;
  try {
    h = json::parse(header);
  } catch (const json::exception& e) {
    throw bad("header is not valid JSON: " + printable(e.what()));
  } catch (const std::bad_alloc&) {
    throw bad("header of " + std::to_string(header_size) + " bytes is too large to parse");
  }
  if (!h.is_object()) throw bad("header is not a JSON object");
  if (!keys.repeated.empty())
    throw bad("key " + quote_text(keys.repeated) + " appears twice in the header");

  Checkpoint ckpt;
  ckpt.source_ = path;
  std::vector<Entry> entries;
  for (const auto& [key, value] : h.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) throw bad("'__metadata__' is not an object");
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string()) {
          throw bad("metadata " + quote_text(mkey) +
                    " is not a string (safetensors metadata "
                    "values are strings)");
        }
        ckpt.metadata_[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    const std::string tname = "tensor " + quote_text(key);
    if (!value.is_object()) throw bad(tname + " is not an object");
    for (const auto& [field, unused] : value.items()) {
      if (field != "dtype" && field != "shape" && field != "data_offsets") {
        throw bad(tname + " has an unexpected field " + quote_text(field));
      }
    }
    Entry e;
    e.name = key;
    const auto dtype = value.find("dtype");
    if (dtype == value.end()) throw bad(tname + " has no 'dtype'");
    if (!dtype->is_string()) throw bad(tname + ": 'dtype' is not a string");
    e.tensor.dtype = dtype->get<std::string>();
    const int64_t esize = checkpoint_dtype_size(e.tensor.dtype);
    if (esize == 0) throw bad(tname + " has unknown dtype " + quote_text(e.tensor.dtype));

    const auto shape = value.find("shape");
    if (shape == value.end()) throw bad(tname + " has no 'shape'");
    if (!shape->is_array()) throw bad(tname + ": 'shape' is not an array");
    uint64_t count = 1;
    for (const json& d : *shape) {
      uint64_t dim = 0;
      if (!as_count(d, &dim)) throw bad(tname + ": 'shape' holds a non-integer or negative value");
      if (dim > kMaxElements || (dim != 0 && count > kMaxElements / dim)) {
        throw bad(tname + ": shape is too large");
      }
      count *= dim;
      e.tensor.shape.push_back(static_cast<int64_t>(dim));
    }

    const auto offsets = value.find("data_offsets");
    if (offsets == value.end()) throw bad(tname + " has no 'data_offsets'");
    if (!offsets->is_array() || offsets->size() != 2 || !as_count((*offsets)[0], &e.begin) ||
        !as_count((*offsets)[1], &e.end)) {
      throw bad(tname + ": 'data_offsets' is not a pair of non-negative integers");
    }
    if (e.begin > e.end) {
      throw bad(tname + ": data_offsets " + offsets_string(e.begin, e.end) +
                " end before they begin");
    }
    if (e.end > data_size) {
      throw bad(tname + ": data_offsets " + offsets_string(e.begin, e.end) +
                " run past the end of the data (" + std::to_string(data_size) + " bytes)");
    }
    // count <= 2^62 and esize <= 8, so the product cannot overflow.
    const uint64_t expected = count * static_cast<uint64_t>(esize);
    if (expected != e.end - e.begin) {
      throw bad(tname + ": " + e.tensor.dtype + " shape " + shape_to_string(e.tensor.shape) +
                " needs " + std::to_string(expected) + " bytes but data_offsets " +
                offsets_string(e.begin, e.end) + " span " + std::to_string(e.end - e.begin));
    }
    entries.push_back(std::move(e));
  }

  // The tensors must tile the data section exactly: no overlap, no gap, no
  // trailing bytes.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t position = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < position) {
      throw bad("tensor " + quote_text(e.name) + " data_offsets " + offsets_string(e.begin, e.end) +
                " overlap tensor " + quote_text(previous->name) + " " +
                offsets_string(previous->begin, previous->end));
    }
    if (e.begin > position) {
      throw bad("data bytes [" + std::to_string(position) + ", " + std::to_string(e.begin) +
                ") belong to no tensor (gap before tensor " + quote_text(e.name) + ")");
    }
    position = e.end;
    previous = &e;
  }
  if (position != data_size) {
    throw bad(std::to_string(data_size - position) +
              " bytes of trailing garbage after the last tensor's data");
  }

  for (Entry& e : entries) {
    e.tensor.bytes.resize(static_cast<std::size_t>(e.end - e.begin));
    read_or_throw(e.tensor.bytes.data(), e.tensor.bytes.size(), data_start + e.begin,
                  "tensor data");
    ckpt.tensors_[e.name] = std::move(e.tensor);
  }
  return ckpt;
}

}  // namespace sparsetrain

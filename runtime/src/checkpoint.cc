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
#include <utility>

#include "sparsetrain/error.h"
#include "sparsetrain/files.h"
#include "sparsetrain/graph.h"
#include "sparsetrain/optim.h"

namespace sparsetrain {

static_assert(std::endian::native == std::endian::little,
              "checkpoints store little-endian bytes; a big-endian port must swap them");

namespace {

using json = nlohmann::json;

constexpr uint64_t kHeaderLengthBytes = 8;
// The safetensors reference implementation refuses larger headers too.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} * 1000 * 1000;
// The data section starts at a multiple of this (header padded with spaces).
constexpr uint64_t kDataAlignment = 8;
// A valid header nests 3 levels ({ -> { -> [); anything much deeper is junk.
constexpr int kMaxJsonDepth = 16;
// No dimension or element count may exceed this (keeps products in range).
constexpr uint64_t kMaxElements = uint64_t{1} << 62;
// Longest piece of file-provided text quoted in an error message.
constexpr std::size_t kMaxQuoted = 120;
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kParamPrefix = "param/";
constexpr const char* kOptimPrefix = "optim/";
constexpr const char* kOptimKindKey = "optim.kind";
constexpr const char* kOptimStepKey = "optim.step_count";

struct DtypeInfo {
  const char* name;
  int64_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", 8},     {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1},
    {"F8_E5M2", 1}, {"I64", 8}, {"I32", 4}, {"I16", 2},  {"I8", 1},
    {"U64", 8},     {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1},
};

// File-provided text made safe for a one-line message: control and
// non-ASCII bytes escaped, length capped.
std::string printable(std::string_view s) {
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

std::string quote_text(std::string_view s) {
  // Appended piecewise: "'" + std::string&& trips GCC 12's -Wrestrict at -O3.
  std::string out(1, '\'');
  out += printable(s);
  out += '\'';
  return out;
}

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

// One tensor entry of a header while it is being validated.
struct Entry {
  std::string name;
  CheckpointTensor tensor;
  uint64_t begin = 0, end = 0;
};

// Reads a non-negative JSON integer; returns false when `v` is anything else.
bool as_count(const json& v, uint64_t* out) {
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
  std::vector<std::set<std::string>> keys_at_depth(kMaxJsonDepth + 2);
  std::string repeated_key;
  auto note_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    const auto d = static_cast<std::size_t>(depth);
    if (d + 1 >= keys_at_depth.size()) return true;
    if (event == json::parse_event_t::object_start) {
      keys_at_depth[d + 1].clear();
    } else if (event == json::parse_event_t::key && parsed.is_string() && repeated_key.empty() &&
               !keys_at_depth[d].insert(parsed.get<std::string>()).second) {
      repeated_key = parsed.get<std::string>();
    }
    return true;
  };
  json h;
  try {
    h = json::parse(header, note_keys);
  } catch (const json::exception& e) {
    throw bad("header is not valid JSON: " + printable(e.what()));
  } catch (const std::bad_alloc&) {
    throw bad("header of " + std::to_string(header_size) + " bytes is too large to parse");
  }
  if (!h.is_object()) throw bad("header is not a JSON object");
  if (!repeated_key.empty())
    throw bad("key " + quote_text(repeated_key) + " appears twice in the header");

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

// --- parameters ----------------------------------------------------------------

namespace {

constexpr const char* kSparsePrefix = "sparse/";
constexpr const char* kSparseMetaKey = "sparse";
constexpr const char* kLegacyMaskPrefix = "mask/";
constexpr const char* kOptimOrderKey = "optim.order";
// The value of kOptimOrderKey: compressed state in increasing flat position.
constexpr const char* kOptimOrderDense = "dense-position";
constexpr const char* kCompressed = "compressed";
constexpr const char* kMasked = "masked";
constexpr int kBitsPerByte = 8;

std::string where_of(const Checkpoint& ckpt) {
  return ckpt.source().empty() ? std::string("checkpoint (in memory)")
                               : "checkpoint '" + ckpt.source() + "'";
}

std::string values_name(const std::string& param) { return kSparsePrefix + param + "/values"; }
std::string bitmask_name(const std::string& param) { return kSparsePrefix + param + "/bitmask"; }

// The node owning a prunable weight "<node>.weight".
std::string node_of(const std::string& param) {
  const std::string suffix = ".weight";
  if (param.size() > suffix.size() &&
      param.compare(param.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return param.substr(0, param.size() - suffix.size());
  }
  return param;
}

int64_t bitmask_bytes(int64_t numel) { return (numel + kBitsPerByte - 1) / kBitsPerByte; }

// Sorted flat positions -> bitmask of `numel` bits.
std::vector<uint8_t> pack_bits(const std::vector<int64_t>& positions, int64_t numel) {
  std::vector<uint8_t> bits(static_cast<std::size_t>(bitmask_bytes(numel)), 0);
  for (const int64_t i : positions) {
    bits[static_cast<std::size_t>(i / kBitsPerByte)] |=
        static_cast<uint8_t>(1u << (i % kBitsPerByte));
  }
  return bits;
}

// The order that sorts a compressed parameter's stored entries by flat
// position: entry order[j] sits at the j-th smallest position.
std::vector<int64_t> position_order(const Parameter& p) {
  std::vector<int64_t> order(p.dense_index.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = static_cast<int64_t>(k);
  std::sort(order.begin(), order.end(), [&p](int64_t a, int64_t b) {
    return p.dense_index[static_cast<std::size_t>(a)] < p.dense_index[static_cast<std::size_t>(b)];
  });
  return order;
}

// A masked or compressed parameter as read from a file, validated.
struct SparseEntry {
  bool compressed = false;
  Shape shape;                     // dense shape
  std::vector<int64_t> positions;  // stored flat positions, increasing
  Tensor dense;                    // dense values, pruned entries zero
};

// Reads a bitmask tensor of a `numel`-entry parameter into positions.
std::vector<int64_t> read_bitmask(const Checkpoint& ckpt, const std::string& param, int64_t numel,
                                  int64_t nnz) {
  const std::string name = bitmask_name(param);
  const std::string what = where_of(ckpt) + ": tensor " + quote_text(name);
  if (!ckpt.has(name)) {
    throw Error(where_of(ckpt) + ": " + quote_text(param) +
                " is listed in the 'sparse' metadata but tensor " + quote_text(name) +
                " is missing");
  }
  const CheckpointTensor& t = ckpt.raw(name);
  const Shape expected{bitmask_bytes(numel)};
  if (t.dtype != "U8" || t.shape != expected) {
    throw Error(what + " is " + t.dtype + " " + shape_to_string(t.shape) + ", expected U8 " +
                shape_to_string(expected) + " (one bit per entry of the " + std::to_string(numel) +
                "-entry weight)");
  }
  std::vector<int64_t> positions;
  positions.reserve(static_cast<std::size_t>(std::max<int64_t>(nnz, 0)));
  for (std::size_t b = 0; b < t.bytes.size(); ++b) {
    unsigned byte = t.bytes[b];
    while (byte != 0) {
      const int bit = std::countr_zero(byte);
      const int64_t i = static_cast<int64_t>(b) * kBitsPerByte + bit;
      if (i >= numel) {
        throw Error(what + " sets bit " + std::to_string(i) + " past the weight's " +
                    std::to_string(numel) + " entries (corrupt bitmask)");
      }
      positions.push_back(i);
      byte &= byte - 1;
    }
  }
  if (static_cast<int64_t>(positions.size()) != nnz) {
    throw Error(what + " marks " + std::to_string(positions.size()) +
                " stored entries but the 'sparse' metadata says nnz " + std::to_string(nnz) +
                " (inconsistent sparse tensor " + quote_text(param) + ")");
  }
  return positions;
}

// Parses the "sparse" metadata and checks every tensor it names. Format-1
// files (no "sparse" metadata) give their "mask/<name>" tensors as masked
// entries with `legacy` set.
std::map<std::string, SparseEntry> read_sparse_entries(const Checkpoint& ckpt, bool* legacy) {
  const std::string where = where_of(ckpt);
  std::map<std::string, SparseEntry> entries;
  *legacy = false;
  const auto meta = ckpt.metadata().find(kSparseMetaKey);
  if (meta == ckpt.metadata().end()) {
    for (const std::string& name : ckpt.names()) {
      if (name.rfind(kSparsePrefix, 0) == 0) {
        throw Error(where + ": tensor " + quote_text(name) +
                    " belongs to no entry of the 'sparse' metadata (which is missing)");
      }
      if (name.rfind(kLegacyMaskPrefix, 0) != 0) continue;
      const std::string param = name.substr(std::strlen(kLegacyMaskPrefix));
      const std::string value_name = kParamPrefix + param;
      const Tensor dense = ckpt.get(value_name);
      const std::vector<uint8_t> mask = ckpt.get_u8(name, dense.shape());
      SparseEntry e;
      e.shape = dense.shape();
      e.dense = dense;
      for (std::size_t i = 0; i < mask.size(); ++i) {
        if (mask[i] != 0) e.positions.push_back(static_cast<int64_t>(i));
      }
      entries[param] = std::move(e);
      *legacy = true;
    }
    return entries;
  }

  json j;
  try {
    j = json::parse(meta->second);
  } catch (const json::exception& e) {
    throw Error(where + ": metadata 'sparse' is not valid JSON: " + printable(e.what()));
  }
  if (!j.is_object()) throw Error(where + ": metadata 'sparse' is not a JSON object");
  for (const auto& [param, d] : j.items()) {
    const std::string what = where + ": sparse tensor " + quote_text(param);
    if (!d.is_object()) throw Error(what + ": its 'sparse' metadata entry is not an object");
    for (const auto& [field, unused] : d.items()) {
      if (field != "state" && field != "shape" && field != "nnz") {
        throw Error(what + ": unexpected field " + quote_text(field) + " in the 'sparse' metadata");
      }
    }
    SparseEntry e;
    const auto state = d.find("state");
    if (state == d.end() || !state->is_string() ||
        (state->get<std::string>() != kCompressed && state->get<std::string>() != kMasked)) {
      throw Error(what + ": 'state' must be \"compressed\" or \"masked\"");
    }
    e.compressed = state->get<std::string>() == kCompressed;
    const auto shape = d.find("shape");
    if (shape == d.end() || !shape->is_array() || shape->empty()) {
      throw Error(what + ": 'shape' must be a non-empty array of dimensions");
    }
    uint64_t numel = 1;
    for (const json& dim : *shape) {
      uint64_t v = 0;
      if (!as_count(dim, &v) || v == 0 || v > kMaxElements || numel > kMaxElements / v) {
        throw Error(what + ": 'shape' holds a dimension that is not a positive integer in range");
      }
      numel *= v;
      e.shape.push_back(static_cast<int64_t>(v));
    }
    uint64_t nnz = 0;
    const auto nnz_it = d.find("nnz");
    if (nnz_it == d.end() || !as_count(*nnz_it, &nnz) || nnz > numel) {
      throw Error(what + ": 'nnz' must be an integer between 0 and the " + std::to_string(numel) +
                  " entries of its shape");
    }
    e.positions = read_bitmask(ckpt, param, static_cast<int64_t>(numel), static_cast<int64_t>(nnz));
    if (e.compressed) {
      if (ckpt.has(kParamPrefix + param)) {
        throw Error(what + " is compressed but tensor " + quote_text(kParamPrefix + param) +
                    " holds it dense as well (ambiguous)");
      }
      const std::string vname = values_name(param);
      if (!ckpt.has(vname)) throw Error(what + ": tensor " + quote_text(vname) + " is missing");
      const CheckpointTensor& vt = ckpt.raw(vname);
      if (vt.dtype != "F32" || vt.shape != Shape{static_cast<int64_t>(nnz)}) {
        throw Error(where + ": tensor " + quote_text(vname) + " is " + vt.dtype + " " +
                    shape_to_string(vt.shape) + ", expected F32 (" + std::to_string(nnz) +
                    "): one value per bit set in " + quote_text(bitmask_name(param)));
      }
      const Tensor values = ckpt.get(vname);
      e.dense = Tensor::zeros(e.shape);
      for (std::size_t k = 0; k < e.positions.size(); ++k) {
        e.dense[e.positions[k]] = values[static_cast<int64_t>(k)];
      }
    } else {
      if (ckpt.has(values_name(param))) {
        throw Error(what + " is masked but tensor " + quote_text(values_name(param)) +
                    " holds compressed values too (ambiguous)");
      }
      e.dense = ckpt.get(kParamPrefix + param, e.shape);
      std::size_t next = 0;
      for (int64_t i = 0; i < e.dense.numel(); ++i) {
        const bool kept = next < e.positions.size() && e.positions[next] == i;
        if (kept) {
          ++next;
        } else if (e.dense[i] != 0.0f) {
          throw Error(where + ": tensor " + quote_text(kParamPrefix + param) +
                      " holds a nonzero value at flat position " + std::to_string(i) +
                      ", which its bitmask prunes (inconsistent masked tensor)");
        }
      }
    }
    entries[param] = std::move(e);
  }
  for (const std::string& name : ckpt.names()) {
    if (name.rfind(kSparsePrefix, 0) != 0) continue;
    const std::string rest = name.substr(std::strlen(kSparsePrefix));
    const std::size_t slash = rest.rfind('/');
    const std::string param = slash == std::string::npos ? rest : rest.substr(0, slash);
    const auto it = entries.find(param);
    if (it == entries.end() ||
        (name != bitmask_name(param) && !(it->second.compressed && name == values_name(param)))) {
      throw Error(where + ": tensor " + quote_text(name) +
                  " belongs to no entry of the 'sparse' metadata");
    }
  }
  return entries;
}

}  // namespace

void save_parameters(Checkpoint& ckpt, const std::vector<Parameter*>& params) {
  json sparse = json::object();
  for (const Parameter* p : params) {
    ckpt.remove(kParamPrefix + p->name);
    ckpt.remove(values_name(p->name));
    ckpt.remove(bitmask_name(p->name));
    if (p->compressed()) {
      const auto nnz = static_cast<int64_t>(p->dense_index.size());
      const int64_t numel = Tensor::count(p->dense_shape);
      SPARSETRAIN_ASSERT(p->value.numel() == nnz);
      const std::vector<int64_t> order = position_order(*p);
      std::vector<int64_t> positions(order.size());
      Tensor values = Tensor::empty({nnz});
      for (std::size_t j = 0; j < order.size(); ++j) {
        positions[j] = p->dense_index[static_cast<std::size_t>(order[j])];
        SPARSETRAIN_ASSERT(positions[j] >= 0 && positions[j] < numel);
        SPARSETRAIN_ASSERT(j == 0 || positions[j] > positions[j - 1]);
        values[static_cast<int64_t>(j)] = p->value[order[j]];
      }
      ckpt.put(values_name(p->name), values);
      ckpt.put_u8(bitmask_name(p->name), {bitmask_bytes(numel)}, pack_bits(positions, numel));
      sparse[p->name] = {{"state", kCompressed}, {"shape", p->dense_shape}, {"nnz", nnz}};
      continue;
    }
    ckpt.put(kParamPrefix + p->name, p->value);
    if (p->masked()) {
      const Tensor mask = to_layout(p->mask, Layout::kPlain);
      std::vector<int64_t> positions;
      for (int64_t i = 0; i < mask.numel(); ++i) {
        if (mask[i] != 0.0f) positions.push_back(i);
      }
      ckpt.put_u8(bitmask_name(p->name), {bitmask_bytes(mask.numel())},
                  pack_bits(positions, mask.numel()));
      sparse[p->name] = {{"state", kMasked},
                         {"shape", p->value.shape()},
                         {"nnz", static_cast<int64_t>(positions.size())}};
    }
  }
  if (sparse.empty()) {
    ckpt.metadata().erase(kSparseMetaKey);
  } else {
    ckpt.metadata()[kSparseMetaKey] = sparse.dump();
  }
}

void load_parameters(const Checkpoint& ckpt, const std::vector<Parameter*>& params) {
  const auto meta = ckpt.metadata().find(kSparseMetaKey);
  if (meta != ckpt.metadata().end()) {
    for (const Parameter* p : params) {
      if (!ckpt.has(kParamPrefix + p->name) && ckpt.has(values_name(p->name))) {
        throw Error(where_of(ckpt) + ": " + quote_text(p->name) +
                    " is stored compressed; load it into a graph (load_graph_parameters)");
      }
    }
  }
  std::vector<Tensor> values;
  values.reserve(params.size());
  for (const Parameter* p : params) {
    const std::string name = kParamPrefix + p->name;
    values.push_back(p->value.defined() ? ckpt.get(name, p->value.shape()) : ckpt.get(name));
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    Parameter& p = *params[i];
    if (!p.value.defined()) {
      p.value = values[i];
    } else if (p.value.layout() == Layout::kPlain || p.value.layout() == Layout::kNCHW) {
      p.value.copy_from(values[i]);
    } else {
      p.value.copy_from(to_layout(values[i], p.value.layout()));
    }
  }
}

void load_graph_parameters(const Checkpoint& ckpt, Graph& graph, SparseLoad mode) {
  const std::string where = where_of(ckpt);
  bool legacy = false;
  std::map<std::string, SparseEntry> entries = read_sparse_entries(ckpt, &legacy);
  const std::vector<Parameter*> params = graph.parameters();

  // Check everything against the model before changing it.
  std::map<std::string, const Parameter*> by_name;
  for (const Parameter* p : params) by_name[p->name] = p;
  for (const auto& [name, e] : entries) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      throw Error(where + ": sparse tensor " + quote_text(name) +
                  " is not a parameter of the model");
    }
    if (!it->second->prunable()) {
      throw Error(where + ": sparse tensor " + quote_text(name) +
                  " is not a prunable weight (only conv and linear weights are pruned)");
    }
  }
  std::vector<Tensor> dense(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Parameter& p = *params[i];
    const Shape shape = p.compressed() ? p.dense_shape : p.value.shape();
    const auto it = entries.find(p.name);
    if (it == entries.end()) {
      if (!ckpt.has(kParamPrefix + p.name) && ckpt.has(values_name(p.name))) {
        throw Error(where + ": tensor " + quote_text(values_name(p.name)) +
                    " has no entry in the 'sparse' metadata");
      }
      dense[i] = ckpt.get(kParamPrefix + p.name, shape);
      continue;
    }
    if (it->second.shape != shape) {
      throw Error(where + ": sparse tensor " + quote_text(p.name) + " has shape " +
                  shape_to_string(it->second.shape) + ", the model's is " + shape_to_string(shape));
    }
    dense[i] = it->second.dense;
  }

  for (std::size_t i = 0; i < params.size(); ++i) {
    Parameter& p = *params[i];
    const auto it = entries.find(p.name);
    if (p.prunable()) {
      if (p.compressed()) graph.decompress(node_of(p.name));
      if (p.masked()) graph.unmask(node_of(p.name));
    }
    if (p.value.layout() == Layout::kPlain || p.value.layout() == Layout::kNCHW) {
      p.value.copy_from(dense[i]);
    } else {
      p.value.copy_from(to_layout(dense[i], p.value.layout()));
    }
    if (it == entries.end()) continue;
    const SparseEntry& e = it->second;
    Tensor mask = Tensor::zeros(e.shape);
    for (const int64_t pos : e.positions) mask[pos] = 1.0f;
    const bool compress = mode == SparseLoad::kCompressed ||
                          (mode == SparseLoad::kAsSaved && (e.compressed || legacy));
    if (compress) {
      graph.compress(node_of(p.name), mask);
    } else {
      graph.mask(node_of(p.name), mask);
    }
  }
}

void save_optimizer_state(Checkpoint& ckpt, const Optimizer& optimizer,
                          const std::vector<Parameter*>& params) {
  for (const std::string& name : ckpt.names()) {
    if (name.rfind(kOptimPrefix, 0) == 0) ckpt.remove(name);
  }
  std::map<std::string, const Parameter*> compressed;
  for (const Parameter* p : params) {
    if (p->compressed()) compressed[p->name] = p;
  }
  for (const auto& [name, tensor] : optimizer.state_tensors()) {
    const std::size_t dot = name.rfind('.');
    const auto it =
        dot == std::string::npos ? compressed.end() : compressed.find(name.substr(0, dot));
    if (it == compressed.end() || tensor.numel() != it->second->value.numel()) {
      ckpt.put(kOptimPrefix + name, tensor);
      continue;
    }
    // Per-entry state, in increasing flat position like the values.
    const std::vector<int64_t> order = position_order(*it->second);
    Tensor sorted = Tensor::empty(tensor.shape());
    for (std::size_t j = 0; j < order.size(); ++j) {
      sorted[static_cast<int64_t>(j)] = tensor[order[j]];
    }
    ckpt.put(kOptimPrefix + name, sorted);
  }
  ckpt.metadata()[kOptimKindKey] = optimizer.kind();
  ckpt.metadata()[kOptimStepKey] = std::to_string(optimizer.step_count());
  if (params.empty()) {
    ckpt.metadata().erase(kOptimOrderKey);
  } else {
    ckpt.metadata()[kOptimOrderKey] = kOptimOrderDense;
  }
}

void load_optimizer_state(const Checkpoint& ckpt, Optimizer& optimizer,
                          const std::vector<Parameter*>& params) {
  const std::string where = where_of(ckpt);
  const auto kind = ckpt.metadata().find(kOptimKindKey);
  if (kind == ckpt.metadata().end()) {
    throw Error(where + ": holds no optimizer state (metadata '" + std::string(kOptimKindKey) +
                "' is missing)");
  }
  if (kind->second != optimizer.kind()) {
    throw Error(where + ": optimizer state is for '" + printable(kind->second) +
                "' but this run uses '" + optimizer.kind() + "'");
  }
  const std::string& steps_text = ckpt.meta(kOptimStepKey);
  int64_t steps = -1;
  const auto [end, ec] =
      std::from_chars(steps_text.data(), steps_text.data() + steps_text.size(), steps);
  if (ec != std::errc() || end != steps_text.data() + steps_text.size() || steps < 0) {
    throw Error(where + ": metadata '" + std::string(kOptimStepKey) + "' is " +
                quote_text(steps_text) + ", expected a non-negative integer");
  }
  const auto order_meta = ckpt.metadata().find(kOptimOrderKey);
  const bool by_position = order_meta != ckpt.metadata().end();
  if (by_position && order_meta->second != kOptimOrderDense) {
    throw Error(where + ": metadata '" + std::string(kOptimOrderKey) + "' is " +
                quote_text(order_meta->second) + ", expected '" + kOptimOrderDense + "'");
  }
  std::map<std::string, const Parameter*> compressed;
  for (const Parameter* p : params) {
    if (p->compressed()) compressed[p->name] = p;
  }
  std::vector<std::pair<std::string, Tensor>> state;
  const std::string prefix = kOptimPrefix;
  for (const std::string& name : ckpt.names()) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string slot_name = name.substr(prefix.size());
    Tensor t = ckpt.get(name);
    const std::size_t dot = slot_name.rfind('.');
    const auto it = !by_position || dot == std::string::npos
                        ? compressed.end()
                        : compressed.find(slot_name.substr(0, dot));
    if (it != compressed.end() && t.shape() == it->second->value.shape()) {
      // Back from increasing flat position to the kernels' order.
      const std::vector<int64_t> order = position_order(*it->second);
      Tensor stored = Tensor::empty(t.shape());
      for (std::size_t j = 0; j < order.size(); ++j) stored[order[j]] = t[static_cast<int64_t>(j)];
      t = stored;
    }
    state.emplace_back(slot_name, t);
  }
  try {
    optimizer.load_state_tensors(state, params);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  optimizer.set_step_count(steps);
}

void save_rng(Checkpoint& ckpt, const std::string& name, const Rng& rng) {
  const auto& s = rng.state();
  std::vector<uint8_t> bytes(sizeof(uint64_t) * s.size());
  std::memcpy(bytes.data(), s.data(), bytes.size());
  ckpt.put_raw(name, "U64", {static_cast<int64_t>(s.size())}, std::move(bytes));
}

void load_rng(const Checkpoint& ckpt, const std::string& name, Rng& rng) {
  std::array<uint64_t, 4> s{};
  const Shape shape{static_cast<int64_t>(s.size())};
  const CheckpointTensor& t = ckpt.raw(name);
  const std::string where = ckpt.source().empty() ? std::string("checkpoint (in memory)")
                                                  : "checkpoint '" + ckpt.source() + "'";
  if (t.dtype != "U64" || t.shape != shape) {
    throw Error(where + ": tensor '" + name + "' is " + t.dtype + " " + shape_to_string(t.shape) +
                ", expected U64 (4) generator state");
  }
  std::memcpy(s.data(), t.bytes.data(), sizeof(uint64_t) * s.size());
  if (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0) {
    throw Error(where + ": tensor '" + name + "' is an all-zero generator state");
  }
  rng.set_state(s);
}

}  // namespace sparsetrain

// fetch_dataset(), list_datasets(): download with libcurl, verify with
// OpenSSL's MD5, unpack CIFAR-10's archive with libarchive.

#include "sparsetrain/fetch.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "data/fetch_internal.h"
#include "sparsetrain/data.h"
#include "sparsetrain/error.h"
#include "sparsetrain/trainer.h"

namespace sparsetrain {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPartSuffix = ".part";
constexpr int64_t kCifarBatchBytes = 10000 * 3073;  // 10,000 records of 1 + 3072 bytes
constexpr size_t kReadChunk = size_t{1} << 20;

// The four gzipped IDX files of an MNIST-style dataset, as on the servers.
constexpr const char* kIdxFiles[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};

struct SizeAndMd5 {
  int64_t bytes;
  const char* md5;
};

// A dataset of the four kIdxFiles, in their order, kept in a folder named
// like the dataset.
DatasetSource idx_dataset(const std::string& name, std::vector<std::string> bases,
                          const std::array<SizeAndMd5, std::size(kIdxFiles)>& sums) {
  DatasetSource source{name, name, std::move(bases), {}, {}, {}};
  for (std::size_t i = 0; i < sums.size(); ++i)
    source.files.push_back({kIdxFiles[i], sums[i].bytes, sums[i].md5});
  return source;
}

}  // namespace

// The official files. Sizes and MD5s:
// - MNIST: the MD5s published with the files and listed by torchvision's
//   MNIST class and by ../shared/data/README.md, whose copies match them.
// - Fashion-MNIST: the table of zalandoresearch/fashion-mnist's README.
// - CIFAR-10: the binary version's MD5 on the dataset's page,
//   https://www.cs.toronto.edu/~kriz/cifar.html (170,052,171 bytes).
// MNIST's original site now often refuses downloads; the ossci-datasets copy
// (the one torchvision tries first) holds the same files.
const std::vector<DatasetSource>& dataset_sources() {
  static const std::vector<DatasetSource> sources = {
      idx_dataset(
          "mnist",
          {"https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"},
          {{{9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"},
            {28881, "d53e105ee54ea40749a09fcbcd1e9432"},
            {1648877, "9fb629c4189551a2d022fa330f9573f3"},
            {4542, "ec29112dd5afa0611ce80d1b7f02629c"}}}),
      idx_dataset("fashion-mnist", {"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"},
                  {{{26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
                    {29515, "25c81989df183df01b3e8a0aad5dffbe"},
                    {4422102, "bef4ecab320f06d8554ea6380940ec79"},
                    {5148, "bb300cfdad3c16e7a12a480ee83cd310"}}}),
      {"cifar10",
       "cifar-10-batches-bin",
       {"https://www.cs.toronto.edu/~kriz/"},
       {{"cifar-10-binary.tar.gz", 170052171, "c32a1d4ab5d03f1284b67883e8d87530"}},
       {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
        "data_batch_5.bin", "test_batch.bin", "batches.meta.txt"},
       "cifar-10-batches-bin/",
       kCifarBatchBytes},
  };
  return sources;
}

const DatasetSource& dataset_source(const std::string& name) {
  for (const DatasetSource& s : dataset_sources()) {
    if (s.name == name) return s;
  }
  std::string known;
  for (const DatasetSource& s : dataset_sources()) known += (known.empty() ? "" : ", ") + s.name;
  throw Error("unknown dataset '" + name + "' (expected " + known + ")");
}

std::string file_md5(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) != 1) {
    throw Error("MD5 is not available from OpenSSL");
  }
  std::vector<char> buf(kReadChunk);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
  }
  if (in.bad()) throw Error(path + ": read error");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

namespace {

int64_t size_or(const fs::path& p, int64_t fallback) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? fallback : static_cast<int64_t>(n);
}

std::string join_url(const std::string& base, const std::string& file) {
  if (!base.empty() && base.back() == '/') return base + file;
  return base + "/" + file;
}

void curl_global_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw Error("libcurl could not be initialised");
    }
  });
}

// One HTTP transfer into an open .part file, appending from `offset`.
struct Transfer {
  std::FILE* out = nullptr;
  int64_t offset = 0;   // bytes already in the file when it started
  int64_t written = 0;  // bytes written by this transfer
  int64_t expected = 0;
  int write_errno = 0;
  bool too_long = false;
  const FetchOptions* options = nullptr;
  std::string file;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t->offset + t->written + static_cast<int64_t>(n) > t->expected) {
    t->too_long = true;
    return 0;
  }
  if (std::fwrite(data, 1, n, t->out) != n) {
    t->write_errno = errno != 0 ? errno : EIO;
    return 0;
  }
  t->written += static_cast<int64_t>(n);
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (stop_requested()) return 1;  // Ctrl-C: abandon, keeping the .part
  if (t->options->on_progress) {
    t->options->on_progress({t->file, t->offset + t->written, t->expected, false});
  }
  return 0;
}

enum class Outcome {
  kComplete,    // the whole file is in the .part
  kCut,         // the transfer stopped early: worth resuming at once
  kNoRange,     // the server ignored the range request: restart from zero
  kBadAddress,  // this address cannot serve it (HTTP error, host unreachable)
};

struct AttemptResult {
  Outcome outcome;
  std::string problem;  // for anything but kComplete
};

std::string describe_curl_error(CURLcode code, const char* errbuf) {
  std::string what = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(code);
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
      return "cannot reach the server (" + what +
             "): no network? behind a proxy? (set https_proxy, or use --mirror)";
    case CURLE_OPERATION_TIMEDOUT:
      return "timed out (" + what + ")";
    default:
      return what;
  }
}

AttemptResult attempt(const std::string& url, const fs::path& part, const RemoteFile& file,
                      const FetchOptions& options) {
  const int64_t have = size_or(part, 0);
  std::FILE* out = std::fopen(part.c_str(), have > 0 ? "ab" : "wb");
  if (out == nullptr) {
    throw Error(part.string() + ": cannot write (" + std::strerror(errno) + ")");
  }
  Transfer t;
  t.out = out;
  t.offset = have;
  t.expected = file.bytes;
  t.options = &options;
  t.file = file.name;

  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) {
    std::fclose(out);
    throw Error("libcurl could not start a transfer");
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "sparsetrain-data-fetch/" SPARSETRAIN_VERSION);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_seconds);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, options.stall_seconds);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  if (have > 0) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(have));

  const CURLcode code = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  const bool closed_ok = std::fclose(out) == 0;
  if (t.offset + t.written == 0) fs::remove(part);  // nothing to resume: leave no file
  if (code == CURLE_OK && !closed_ok) {
    throw Error(part.string() + ": cannot write (" + std::strerror(errno) + ")");
  }
  if (t.write_errno != 0) {
    std::string why = std::strerror(t.write_errno);
    if (t.write_errno == ENOSPC) why += ": the disk is full";
    throw Error(part.string() + ": cannot write (" + why + "); " +
                std::to_string(t.offset + t.written) + " bytes kept, run again to resume");
  }
  if (t.too_long) {
    fs::remove(part);
    return {Outcome::kBadAddress, url + " sent more than the " + std::to_string(file.bytes) +
                                      " bytes of the official file (removed)"};
  }
  if (code == CURLE_ABORTED_BY_CALLBACK && stop_requested()) {
    throw Error("interrupted: " + std::to_string(t.offset + t.written) + " of " +
                std::to_string(file.bytes) + " bytes of " + file.name + " kept in " +
                part.string() + "; run again to resume");
  }
  if (code == CURLE_RANGE_ERROR || (code == CURLE_OK && have > 0 && status == 200)) {
    return {Outcome::kNoRange, "the server does not resume downloads"};
  }
  if (code == CURLE_HTTP_RETURNED_ERROR) {
    return {Outcome::kBadAddress, "HTTP " + std::to_string(status) + " from " + url};
  }
  const int64_t now = t.offset + t.written;
  if (code == CURLE_OK) {
    if (now == file.bytes) return {Outcome::kComplete, {}};
    // The server finished what it meant to send: its copy is not the file.
    fs::remove(part);
    return {Outcome::kBadAddress, url + ": the server's file ends after " + std::to_string(now) +
                                      " bytes, the official one has " + std::to_string(file.bytes) +
                                      " (a truncated copy?)"};
  }
  const bool cut = code == CURLE_PARTIAL_FILE || code == CURLE_RECV_ERROR ||
                   code == CURLE_GOT_NOTHING || code == CURLE_SEND_ERROR ||
                   (code == CURLE_OPERATION_TIMEDOUT && t.written > 0);
  if (cut) {
    return {Outcome::kCut, "the connection to " + url + " ended after " + std::to_string(now) +
                               " of " + std::to_string(file.bytes) + " bytes (" +
                               describe_curl_error(code, errbuf) + ")"};
  }
  return {Outcome::kBadAddress, url + ": " + describe_curl_error(code, errbuf)};
}

// Downloads one file to `target` through `target`.part, trying each base in
// turn; verifies size and MD5 before the rename.
std::string download(const RemoteFile& file, const std::vector<std::string>& bases,
                     const fs::path& target, const FetchOptions& options) {
  const fs::path part(target.string() + kPartSuffix);
  if (size_or(part, 0) > file.bytes) fs::remove(part);  // not a prefix of this file
  std::string failures;
  for (const std::string& base : bases) {
    const std::string url = join_url(base, file.name);
    AttemptResult r{Outcome::kBadAddress, {}};
    // A .part that already holds the whole file (a run stopped before its
    // check) needs no transfer.
    if (size_or(part, 0) == file.bytes) r.outcome = Outcome::kComplete;
    for (int tries = 0; r.outcome != Outcome::kComplete && tries < std::max(1, options.attempts);
         ++tries) {
      r = attempt(url, part, file, options);
      if (r.outcome == Outcome::kNoRange) {
        if (options.on_message) options.on_message(file.name + ": " + r.problem + ", restarting");
        fs::remove(part);
        r = attempt(url, part, file, options);
      }
      if (r.outcome != Outcome::kCut) break;
      if (options.on_message) options.on_message(file.name + ": " + r.problem + "; resuming");
    }
    if (r.outcome == Outcome::kComplete) {
      if (options.on_progress) options.on_progress({file.name, file.bytes, file.bytes, true});
      const std::string md5 = file_md5(part.string());
      if (md5 != file.md5) {
        fs::remove(part);
        failures += "\n  " + url + ": checksum mismatch: MD5 " + md5 + ", the official file's is " +
                    file.md5 + " (the download was removed)";
        continue;
      }
      std::error_code ec;
      fs::rename(part, target, ec);
      if (ec)
        throw Error(target.string() + ": cannot move the download into place (" + ec.message() +
                    ")");
      return url;
    }
    if (r.outcome == Outcome::kCut) {
      throw Error(file.name + ": " + r.problem + "; tried " + std::to_string(options.attempts) +
                  " times, " + std::to_string(size_or(part, 0)) + " bytes kept in " +
                  part.string() + ": run again to resume");
    }
    failures += "\n  " + r.problem;
  }
  throw Error(file.name + ": could not be downloaded:" + failures);
}

// An already present file is kept only when it verifies.
bool verified_in_place(const fs::path& target, const RemoteFile& file) {
  return size_or(target, -1) == file.bytes && file_md5(target.string()) == file.md5;
}

struct ArchiveReader {
  archive* a = archive_read_new();
  ~ArchiveReader() { archive_read_free(a); }
};

}  // namespace

void data::unpack_archive(const fs::path& archive_path, const DatasetSource& src,
                          const fs::path& folder) {
  ArchiveReader r;
  archive_read_support_filter_gzip(r.a);
  archive_read_support_format_tar(r.a);
  if (archive_read_open_filename(r.a, archive_path.c_str(), kReadChunk) != ARCHIVE_OK) {
    throw Error(archive_path.string() + ": cannot open as a .tar.gz (" + archive_error_string(r.a) +
                ")");
  }
  std::vector<bool> seen(src.members.size(), false);
  archive_entry* entry = nullptr;
  std::vector<char> buf(kReadChunk);
  int rc;
  while ((rc = archive_read_next_header(r.a, &entry)) == ARCHIVE_OK) {
    const std::string path = archive_entry_pathname(entry);
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    if (path.rfind(src.member_prefix, 0) != 0) continue;
    const std::string name = path.substr(src.member_prefix.size());
    size_t index = src.members.size();
    for (size_t i = 0; i < src.members.size(); ++i) {
      if (src.members[i] == name) index = i;
    }
    if (index == src.members.size()) continue;  // e.g. readme.html
    const fs::path target = folder / name;
    const fs::path part(target.string() + kPartSuffix);
    std::FILE* out = std::fopen(part.c_str(), "wb");
    if (out == nullptr)
      throw Error(part.string() + ": cannot write (" + std::strerror(errno) + ")");
    la_ssize_t n;
    int64_t total = 0;
    bool write_failed = false;
    while ((n = archive_read_data(r.a, buf.data(), buf.size())) > 0) {
      if (std::fwrite(buf.data(), 1, static_cast<size_t>(n), out) != static_cast<size_t>(n)) {
        write_failed = true;
        break;
      }
      total += n;
    }
    const int saved_errno = errno;
    const bool closed = std::fclose(out) == 0;
    if (write_failed || !closed) {
      fs::remove(part);
      throw Error(part.string() + ": cannot write (" + std::strerror(saved_errno) + ")");
    }
    if (n < 0) {
      fs::remove(part);
      throw Error(archive_path.string() + ": " + path + " is damaged (" +
                  archive_error_string(r.a) + ")");
    }
    if (name.ends_with(".bin") && src.member_bin_bytes > 0 && total != src.member_bin_bytes) {
      fs::remove(part);
      throw Error(archive_path.string() + ": " + path + " holds " + std::to_string(total) +
                  " bytes, not " + std::to_string(src.member_bin_bytes));
    }
    fs::rename(part, target);
    seen[index] = true;
  }
  if (rc != ARCHIVE_EOF) {
    throw Error(archive_path.string() + ": damaged archive (" + archive_error_string(r.a) + ")");
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) {
      throw Error(archive_path.string() + ": holds no " + src.member_prefix + src.members[i]);
    }
  }
}

namespace {

bool members_present(const DatasetSource& src, const fs::path& folder) {
  for (const std::string& m : src.members) {
    if (size_or(folder / m, -1) < 0) return false;
    if (m.ends_with(".bin") && src.member_bin_bytes > 0 &&
        size_or(folder / m, -1) != src.member_bin_bytes) {
      return false;
    }
  }
  return true;
}

}  // namespace

FetchResult fetch_dataset(const std::string& name, const FetchOptions& options) {
  const DatasetSource& src = dataset_source(name);
  const std::string dir = options.dir.empty() ? default_fetch_dir() : options.dir;
  if (dir.empty()) {
    throw Error("no folder to download into: give --dir, or set $SPARSETRAIN_DATA or $HOME");
  }
  const std::vector<std::string> bases =
      options.mirror.empty() ? src.bases : std::vector<std::string>{options.mirror};
  const bool archive = !src.members.empty();
  const fs::path folder = fs::path(dir) / src.folder;
  // An archive is kept beside the folder it unpacks into.
  const fs::path file_dir = archive ? fs::path(dir) : folder;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw Error(folder.string() + ": cannot create (" + ec.message() + ")");
  curl_global_once();

  FetchResult result;
  result.dataset_folder = folder.string();
  for (const RemoteFile& file : src.files) {
    const fs::path target = file_dir / file.name;
    FetchedFile f{target.string(), file.bytes, false, {}};
    if (size_or(target, -1) >= 0) {
      if (verified_in_place(target, file)) {
        if (options.on_message) options.on_message(file.name + ": already here, MD5 ok");
        result.files.push_back(f);
        continue;
      }
      if (options.on_message) {
        options.on_message(file.name + ": the copy here does not match the official MD5, " +
                           "downloading it again");
      }
      fs::remove(target);
    }
    try {
      f.url = download(file, bases, target, options);
    } catch (const Error& e) {
      throw Error(name + ": " + e.what());
    }
    f.downloaded = true;
    if (options.on_message) {
      options.on_message(file.name + ": " + std::to_string(file.bytes) + " bytes, MD5 ok");
    }
    result.files.push_back(f);
  }
  if (archive) {
    const fs::path archive_path = file_dir / src.files.front().name;
    if (result.files.front().downloaded || !members_present(src, folder)) {
      data::unpack_archive(archive_path, src, folder);
      if (options.on_message) {
        options.on_message("unpacked " + std::to_string(src.members.size()) + " files into " +
                           folder.string());
      }
    }
  }
  return result;
}

std::vector<DatasetStatus> list_datasets(const std::string& data_dir) {
  std::vector<DatasetStatus> out;
  for (const std::string& name : dataset_names()) {
    DatasetStatus st;
    st.name = name;
    DatasetLocation loc;
    try {
      loc = locate_dataset(name, data_dir);
    } catch (const Error& e) {
      st.problem = e.what();
      out.push_back(st);
      continue;
    }
    const DatasetSource& src = dataset_source(name);
    const fs::path folder(loc.folder);
    // A folder given with --data-dir is taken as it is: it counts as the
    // dataset's only when it holds one of its files.
    bool any = false;
    std::vector<std::string> expected;
    for (const RemoteFile& f : src.files) expected.push_back(f.name);
    for (const std::string& m : src.members) expected.push_back(m);
    for (const std::string& e : expected) {
      const std::string raw = e.ends_with(".gz") ? e.substr(0, e.size() - 3) : e;
      any = any || size_or(folder / e, -1) >= 0 || size_or(folder / raw, -1) >= 0 ||
            size_or(folder / (raw + ".gz"), -1) >= 0;
    }
    if (!any) {
      st.problem = "no " + name + " files in " + loc.folder + " (" + loc.origin + ")";
      out.push_back(st);
      continue;
    }
    st.found = true;
    st.folder = loc.folder;
    st.origin = loc.origin;
    bool files_ok = true;
    if (src.members.empty()) {
      for (const RemoteFile& file : src.files) {
        DataFileStatus fst;
        const std::string raw = file.name.substr(0, file.name.size() - 3);  // without .gz
        fst.name = file.name;
        if (size_or(folder / file.name, -1) >= 0) {
          fst.present = true;
          fst.bytes = size_or(folder / file.name, 0);
          fst.ok = fst.bytes == file.bytes && file_md5((folder / file.name).string()) == file.md5;
          fst.check = fst.ok ? "MD5 ok (official)" : "MD5 mismatch: not the official file";
        } else if (size_or(folder / raw, -1) >= 0) {
          fst.name = raw;
          fst.present = true;
          fst.bytes = size_or(folder / raw, 0);
          fst.ok = true;  // the readers below check it
          fst.check = "uncompressed: no official checksum, read and checked below";
        } else {
          fst.check = "missing";
        }
        files_ok = files_ok && fst.ok;
        st.files.push_back(fst);
      }
    } else {
      for (const std::string& m : src.members) {
        DataFileStatus fst;
        fst.name = m;
        for (const std::string& candidate : {m, m + ".gz"}) {
          if (size_or(folder / candidate, -1) >= 0) {
            fst.name = candidate;
            fst.present = true;
            fst.bytes = size_or(folder / candidate, 0);
          }
        }
        const bool optional = m == "test_batch.bin" || m == "batches.meta.txt";
        fst.ok = fst.present || optional;
        fst.check = fst.present ? (m.ends_with(".bin") ? "record layout checked below" : "present")
                                : (optional ? "absent (optional)" : "missing");
        if (!fst.present && m == "test_batch.bin") {
          fst.check = "absent: data_batch_5.bin is the test set";
        }
        files_ok = files_ok && fst.ok;
        st.files.push_back(fst);
      }
    }
    try {
      const Dataset train = load_dataset(name, loc.folder, Split::kTrain);
      const Dataset test = load_dataset(name, loc.folder, Split::kTest);
      st.train_images = train.size();
      st.test_images = test.size();
      st.test_files = test.files;
    } catch (const Error& e) {
      st.problem = e.what();
      files_ok = false;
    }
    st.ok = files_ok;
    out.push_back(st);
  }
  return out;
}

}  // namespace sparsetrain

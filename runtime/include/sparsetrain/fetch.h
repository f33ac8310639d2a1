// Getting the datasets: download, verify and list (`sparsetrain data fetch`
// and `sparsetrain data list`).
//
// fetch_dataset() downloads a dataset's official files over HTTP(S) with
// libcurl into <dir>/<folder>/, checks each against its official size and
// MD5, and only then moves it into place (download to "<file>.part", rename),
// so a file under its real name is always a whole, verified one. A partial
// download is resumed with an HTTP range request, or restarted from zero when
// the server does not do ranges. CIFAR-10 comes as one archive
// (cifar-10-binary.tar.gz) that is verified, then unpacked with libarchive
// into <dir>/cifar-10-batches-bin/, the official layout.
//
// Every failure raises sparsetrain::Error naming the file and the cause: no
// network (host not found, connection refused, time-out), an HTTP status,
// a transfer cut short (the .part is kept: run again to resume), a checksum
// mismatch (the bad file is removed), a write error such as a full disk.
// libcurl honours the usual proxy variables (https_proxy, http_proxy,
// no_proxy).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sparsetrain/core/export.h"

namespace sparsetrain {
SPARSETRAIN_PUBLIC_BEGIN

// One official file of a dataset.
struct RemoteFile {
  std::string name;  // file name, as on the server
  int64_t bytes = 0;
  std::string md5;  // lower-case hex
};

struct DatasetSource {
  std::string name;                // "mnist" | "fashion-mnist" | "cifar10"
  std::string folder;              // where the files go under the data folder
  std::vector<std::string> bases;  // base addresses tried in order
  std::vector<RemoteFile> files;
  // For an archive (CIFAR-10): the files it must hold, unpacked into
  // `folder` (the archive itself is kept beside `folder`).
  std::vector<std::string> members;
  std::string member_prefix;     // the archive's folder, e.g. "cifar-10-batches-bin/"
  int64_t member_bin_bytes = 0;  // the size of each .bin member (0: not checked)
};

// The datasets `data fetch` knows, with where their official checksums come
// from in fetch.cc.
const std::vector<DatasetSource>& dataset_sources();
const DatasetSource& dataset_source(const std::string& name);  // throws Error for others

struct FetchProgress {
  std::string file;
  int64_t done = 0;   // bytes on disk so far, resumed part included
  int64_t total = 0;  // the file's official size
  bool finished = false;
};

struct FetchOptions {
  std::string dir;     // the data folder; empty: default_fetch_dir() (data.h)
  std::string mirror;  // a base address used instead of the official ones
  long connect_timeout_seconds = 30;
  // A transfer slower than 1 byte/s for this long is abandoned (kept for
  // resuming).
  long stall_seconds = 60;
  int attempts = 3;  // tries per address for a transfer that is cut short
  std::function<void(const FetchProgress&)> on_progress;
  std::function<void(const std::string&)> on_message;  // one line, no newline
};

struct FetchedFile {
  std::string path;
  int64_t bytes = 0;
  bool downloaded = false;  // false: it was already there and verified
  std::string url;          // where it came from (when downloaded)
};

struct FetchResult {
  std::string dataset_folder;  // what load_dataset() reads
  std::vector<FetchedFile> files;
};

// Downloads (or finds already verified) every file of a dataset.
FetchResult fetch_dataset(const std::string& name, const FetchOptions& options);

// The MD5 of a file, lower-case hex. Throws Error when it cannot be read.
std::string file_md5(const std::string& path);

// What `data list` reports for one dataset.
struct DataFileStatus {
  std::string name;  // as found (with .gz if compressed), or the expected name
  bool present = false;
  int64_t bytes = 0;
  std::string check;  // "MD5 ok (official)", "readable, 10000 records", ...
  bool ok = false;
};

struct DatasetStatus {
  std::string name;
  bool found = false;
  std::string folder;   // where it was found
  std::string origin;   // DataPlace::origin of that folder
  std::string problem;  // not found: the places tried; found: what failed
  std::vector<DataFileStatus> files;
  std::string test_files;  // what the test split is read from (Dataset::files)
  int64_t train_images = 0, test_images = 0;
  bool ok = false;  // found, and every file present and checked
};

// Locates every dataset as load_dataset() would (data_dir as there), checks
// the MD5 of files that have an official one and reads both splits through
// the validating readers.
std::vector<DatasetStatus> list_datasets(const std::string& data_dir);

SPARSETRAIN_PUBLIC_END
}  // namespace sparsetrain

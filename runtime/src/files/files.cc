#include "sparsetrain/files.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "sparsetrain/error.h"

namespace sparsetrain {
namespace {

// Writes all of `data`; returns 0 or an errno value.
int write_all(int fd, std::string_view data) {
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return 0;
}

}  // namespace

void write_file_atomic(const std::string& path, std::span<const std::string_view> parts,
                       const std::string& what_in) {
  namespace fs = std::filesystem;
  const std::string what = what_in.empty() ? path : what_in;
  if (path.empty()) throw Error(what + ": empty output path");
  const fs::path target(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw Error(what + ": cannot create temporary file '" + tmp + "': " + std::strerror(errno));
  }
  auto fail = [&](const std::string& step, int err) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(what + ": " + step + " '" + tmp + "' failed: " + std::strerror(err));
  };
  int err = 0;
  for (std::size_t i = 0; err == 0 && i < parts.size(); ++i) err = write_all(fd, parts[i]);
  if (err != 0) fail("writing", err);
  if (::fsync(fd) != 0) fail("syncing", errno);
  if (::close(fd) != 0) {
    const int close_err = errno;
    ::unlink(tmp.c_str());
    throw Error(what + ": closing '" + tmp + "' failed: " + std::strerror(close_err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int rename_err = errno;
    ::unlink(tmp.c_str());
    throw Error(what + ": cannot rename '" + tmp + "' onto it: " + std::strerror(rename_err));
  }
  // Make the rename itself durable.
  std::string dir = target.parent_path().string();
  if (dir.empty()) dir = ".";
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool synced = dir_fd >= 0 && (::fsync(dir_fd) == 0 || errno == EINVAL);
  const int sync_err = errno;
  if (dir_fd >= 0) ::close(dir_fd);
  if (!synced) {
    throw Error(what + ": written, but syncing folder '" + dir +
                "' failed: " + std::strerror(sync_err));
  }
}

void write_file_atomic(const std::string& path, std::string_view text, const std::string& what) {
  const std::string_view parts[] = {text};
  write_file_atomic(path, parts, what);
}

int remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  int removed = 0;
  const auto sweep = [&removed](const fs::path& folder) {
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator(folder, ec)) {
      const std::string name = e.path().filename().string();
      const std::size_t at = name.rfind(".tmp.");
      if (at == std::string::npos || at + 5 == name.size()) continue;
      const std::string digits = name.substr(at + 5);
      if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9)
        continue;
      const auto pid = static_cast<pid_t>(std::stol(digits));
      // Still being written by a live process (or one we may not signal).
      if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
      std::error_code rm;
      if (e.is_regular_file(rm) && fs::remove(e.path(), rm)) ++removed;
    }
  };
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  sweep(dir);
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
    if (e.is_directory(ec)) sweep(e.path());
  return removed;
}

}  // namespace sparsetrain

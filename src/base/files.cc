#include "base/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "base/strings.h"

namespace custos {

absl::Status SyncDirectoryOf(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  const std::string dir = parent.empty() ? std::string(".") : parent;
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::UnavailableError(
        StrCat("cannot open directory ", dir, ": ", std::generic_category().message(errno)));
  }
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  if (::fsync(fd) != 0) {
    return absl::UnavailableError(
        StrCat("cannot fsync directory ", dir, ": ", std::generic_category().message(errno)));
  }
  return absl::OkStatus();
}

}  // namespace custos

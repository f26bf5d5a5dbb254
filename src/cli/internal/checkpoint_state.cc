#include "cli/internal/checkpoint_state.h"
#include "base/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "base/strings.h"

namespace custos::cli::internal {
namespace {

namespace fs = std::filesystem;
constexpr size_t kMaxSmallFileBytes = 64 << 10;

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::UnavailableError(StrCat("cannot read ", path));
  std::string data(kMaxSmallFileBytes + 1, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (in.bad()) return absl::UnavailableError(StrCat("cannot read ", path));
  data.resize(static_cast<size_t>(in.gcount()));
  if (data.size() > kMaxSmallFileBytes) {
    return absl::InvalidArgumentError(StrCat(path, " is larger than 64 KiB"));
  }
  return data;
}

// The contents of the state file `path`, or nullopt when no path is given or no file is there yet
// (the first run): what every saved state of the verifier starts from.
absl::StatusOr<std::optional<std::string>> ReadStateFile(const std::string& path) {
  if (path.empty()) return std::nullopt;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (ec) return absl::UnavailableError(StrCat("cannot read ", path, ": ", ec.message()));
    return std::nullopt;
  }
  auto data = ReadSmallFile(path);
  if (!data.ok()) return data.status();
  return std::optional<std::string>(*std::move(data));
}

// std::strerror may share one buffer between threads (clang-tidy concurrency-mt-unsafe);
// std::generic_category().message does not.
absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::UnavailableError(
      StrCat("cannot ", what, " ", path, ": ", std::generic_category().message(errno)));
}

absl::Status WriteAndSync(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create", path);
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) return Errno("sync", path);
  return absl::OkStatus();
}

// Replaces `path` with `data` atomically: a temporary file, fsync, rename, fsync of the folder.
absl::Status ReplaceFile(const std::string& path, std::string_view data) {
  const std::string tmp = StrCat(path, ".tmp");
  if (auto s = WriteAndSync(tmp, data); !s.ok()) return s;
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("replace", path);
  return SyncDirectoryOf(path);
}

}  // namespace

absl::StatusOr<std::string> ValueOrFile(std::string_view value_or_path, std::string_view what) {
  std::string value(value_or_path);
  std::error_code ec;
  if (!value.empty() && fs::is_regular_file(value, ec)) {
    auto data = ReadSmallFile(value);
    if (!data.ok()) return data.status();
    value = std::move(*data);
  }
  std::string trimmed(StdView(absl::StripAsciiWhitespace(value)));
  if (trimmed.empty()) return absl::InvalidArgumentError(StrCat(what, " is empty"));
  return trimmed;
}

absl::StatusOr<ledger::VerifierKey> LoadVerifierKey(std::string_view value_or_path) {
  auto text = ValueOrFile(value_or_path, "--vkey");
  if (!text.ok()) return text.status();
  auto key = ledger::ParseVerifierKey(*text);
  if (!key.ok()) {
    return absl::InvalidArgumentError(StrCat(
        "--vkey is neither a verifier key nor a file holding one: ", key.status().message()));
  }
  return key;
}

absl::StatusOr<SignedCheckpoint> OpenSignedCheckpoint(std::string note,
                                                      const ledger::VerifierKey& key,
                                                      std::string_view what) {
  auto cp = ledger::OpenCheckpoint(note, key, key.name);
  if (absl::IsUnauthenticated(cp.status())) {
    return absl::UnauthenticatedError(
        StrCat(what, " signature does not verify with the given key (", key.name, ")"));
  }
  if (!cp.ok()) {
    return absl::InvalidArgumentError(
        StrCat(what, " is not a valid checkpoint of log ", key.name, ": ", cp.status().message()));
  }
  return SignedCheckpoint{std::move(note), *std::move(cp)};
}

absl::StatusOr<std::optional<SignedCheckpoint>> LoadSavedCheckpoint(
    const std::string& path, const ledger::VerifierKey& key) {
  auto note = ReadStateFile(path);
  if (!note.ok()) return note.status();
  if (!note->has_value()) return std::nullopt;
  auto saved =
      OpenSignedCheckpoint(**std::move(note), key, StrCat("the saved checkpoint in ", path));
  if (absl::IsUnauthenticated(saved.status())) {
    return absl::UnauthenticatedError(
        StrCat("the saved checkpoint in ", path, " does not verify with the given key (", key.name,
               "): it is a checkpoint of another log, or was altered"));
  }
  if (!saved.ok()) return saved.status();
  return std::optional<SignedCheckpoint>(*std::move(saved));
}

absl::Status SaveCheckpoint(const std::string& path, std::string_view note) {
  return ReplaceFile(path, note);
}

absl::StatusOr<PseudonymPins> LoadPseudonymPins(const std::string& path) {
  PseudonymPins pins;
  auto text = ReadStateFile(path);
  if (!text.ok()) return text.status();
  if (!text->has_value()) return pins;
  std::istringstream lines(**text);
  std::string line;
  for (int n = 1; std::getline(lines, line); ++n) {
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || line.find(' ', space + 1) != line.npos ||
        !pins.emplace(line.substr(0, space), line.substr(space + 1)).second) {
      return absl::InvalidArgumentError(
          StrCat(path, " line ", n, " is not \"tenant_id pseudonym\" for a new tenant"));
    }
  }
  return pins;
}

absl::Status SavePseudonymPins(const std::string& path, const PseudonymPins& pins) {
  std::string text;
  for (const auto& [tenant, pseudonym] : pins) text += StrCat(tenant, " ", pseudonym, "\n");
  return ReplaceFile(path, text);
}

}  // namespace custos::cli::internal

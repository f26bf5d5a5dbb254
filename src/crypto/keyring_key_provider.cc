// The embedded key provider: named 256-bit keys in one blob sealed by a master key, kept in a
// file (FileKeyringStorage) or another KeyringStorage.
//
// Blob: "CUSTOS-KEYRING-1\n" || AeadSeal(master_key, json, aad = "custos keyring v1"), where json
// is {"<key id>": "<base64 of the 32-byte key>", ...}. A wrapped value is AeadSeal(key, plaintext,
// aad = key_id || 0x00 || caller_aad): binding the key id means a value wrapped under one tenant's
// key cannot be presented as another's even if the caller's aad were the same.
//
// The keyring is owned by one process: writes are serialized by the mutex, not by a file lock, so
// two processes writing the same keyring would lose each other's changes, and keys are read
// once, at Open.
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <filesystem>
#include <map>
#include <new>
#include <shared_mutex>
#include <system_error>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "crypto/crypto.h"
#include "crypto/key_provider.h"

namespace custos::crypto {
namespace {

constexpr std::string_view kMagic = "CUSTOS-KEYRING-1\n";
constexpr std::string_view kFileAad = "custos keyring v1";
constexpr size_t kMaxKeyIdSize = 256;

using KeyMap = std::map<std::string, std::string, std::less<>>;

// Debian's Abseil is built with its own absl::string_view, which does not convert from
// std::string_view.
absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

void Wipe(std::string& secret) {
  OPENSSL_cleanse(secret.data(), secret.size());
  secret.clear();
}

void WipeAll(KeyMap& keys) {
  for (auto& [id, key] : keys) Wipe(key);
  keys.clear();
}

// Key ids are stored as JSON object keys and joined to the caller's aad with a NUL separator, so
// they are restricted to printable ASCII without spaces: always valid UTF-8, never ambiguous.
bool ValidKeyId(std::string_view id) {
  if (id.empty() || id.size() > kMaxKeyIdSize) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

std::string BoundAad(std::string_view key_id, std::string_view aad) {
  return absl::StrCat(Absl(key_id), absl::string_view("\0", 1), Absl(aad));
}

absl::Status IoError(std::string_view what, const std::string& path) {
  const std::string reason = std::error_code(errno, std::generic_category()).message();
  return absl::UnavailableError(absl::StrCat("keyring: ", Absl(what), " ", path, ": ", reason));
}

// Boost.JSON storage that wipes every block it frees, so key material held by the DOM while the
// keyring is serialized or parsed does not linger in freed heap memory.
class WipingResource final : public boost::json::memory_resource {
 private:
  void* do_allocate(size_t n, size_t align) override {
    return ::operator new(n, std::align_val_t(align));
  }
  void do_deallocate(void* p, size_t n, size_t align) override {
    OPENSSL_cleanse(p, n);
    ::operator delete(p, std::align_val_t(align));
  }
  bool do_is_equal(const boost::json::memory_resource& other) const noexcept override {
    return this == &other;
  }
};

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now, reporting the error: a failed close can mean a failed write.
  bool Close() {
    const int fd = std::exchange(fd_, -1);
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

std::string Serialize(const KeyMap& keys) {
  WipingResource resource;
  boost::json::object object(&resource);
  size_t bound = 2;  // "{}"
  for (const auto& [id, key] : keys) {
    std::string encoded = absl::Base64Escape(key);
    absl::Cleanup wipe = [&encoded] { Wipe(encoded); };
    object.emplace(id, boost::json::string(encoded, &resource));
    bound += 2 * id.size() + encoded.size() + 6;  // quotes, ':' and ','; escapes at most double
  }
  // Serialize into a buffer sized up front: a growing std::string would leave copies of the keys
  // behind in the blocks it frees.
  std::string out(bound, '\0');
  boost::json::serializer serializer;
  serializer.reset(&object);
  size_t used = 0;
  while (!serializer.done()) {
    // Only a wrong bound above gets here; grow rather than spin in a release build.
    assert(used < out.size());
    if (used == out.size()) out.resize(2 * out.size());
    used += serializer.read(out.data() + used, out.size() - used).size();
  }
  out.resize(used);
  return out;
}

absl::StatusOr<KeyMap> Parse(std::string_view json) {
  WipingResource resource;
  boost::json::parser parser(&resource);
  parser.reset(&resource);
  boost::system::error_code ec;
  parser.write(json, ec);
  if (ec) return absl::DataLossError("keyring: sealed contents are not JSON");
  const boost::json::value value = parser.release();
  if (!value.is_object()) return absl::DataLossError("keyring: sealed contents not an object");
  KeyMap keys;
  absl::Cleanup wipe_on_error = [&keys] { WipeAll(keys); };
  for (const auto& [id, encoded] : value.as_object()) {
    std::string key;
    if (!ValidKeyId(id) || !encoded.is_string() ||
        !absl::Base64Unescape(Absl(encoded.as_string()), &key) || key.size() != kAeadKeySize) {
      Wipe(key);
      return absl::DataLossError("keyring: malformed key entry");
    }
    keys.emplace(std::string(id), std::move(key));
  }
  std::move(wipe_on_error).Cancel();
  return keys;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("keyring: no file at ", path));
    return IoError("cannot open", path);
  }
  std::string contents;
  char buffer[1 << 14];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("cannot read", path);
    if (n == 0) return contents;
    contents.append(buffer, static_cast<size_t>(n));
  }
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("cannot write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SyncDirectoryOf(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  const std::string dir = parent.empty() ? std::string(".") : parent;
  ScopedFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return IoError("cannot open directory", dir);
  if (::fsync(fd.get()) != 0) return IoError("cannot fsync directory", dir);
  return absl::OkStatus();
}

// Makes `contents` the durable contents of `path`: a reader sees the old file or the new one,
// never a mix. With `replace` false the final step refuses an existing file (kAlreadyExists)
// atomically, by link() instead of rename().
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents, bool replace) {
  const std::string tmp = path + ".tmp";
  // A tmp left by a crash is garbage: the real file was never replaced by it.
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) return IoError("cannot remove", tmp);
  ScopedFd fd(::open(tmp.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return IoError("cannot create", tmp);
  absl::Cleanup remove_tmp = [&tmp] { ::unlink(tmp.c_str()); };
  // open() applied the umask, which may have taken more than group and other bits.
  if (::fchmod(fd.get(), 0600) != 0) return IoError("cannot chmod", tmp);
  if (absl::Status s = WriteAll(fd.get(), contents, tmp); !s.ok()) return s;
  if (::fsync(fd.get()) != 0) return IoError("cannot fsync", tmp);
  if (!fd.Close()) return IoError("cannot close", tmp);
  if (replace) {
    if (::rename(tmp.c_str(), path.c_str()) != 0) return IoError("cannot rename onto", path);
  } else {
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      if (errno == EEXIST) return absl::AlreadyExistsError(absl::StrCat("keyring exists: ", path));
      return IoError("cannot link", path);
    }
    ::unlink(tmp.c_str());  // the data lives on under `path`; a leftover tmp is harmless
  }
  std::move(remove_tmp).Cancel();
  return SyncDirectoryOf(path);
}

absl::Status CheckMasterKey(std::string_view master_key) {
  if (master_key.size() != kAeadKeySize) {
    return absl::InvalidArgumentError("keyring: master key must be 32 bytes");
  }
  return absl::OkStatus();
}

class FileStorage final : public KeyringStorage {
 public:
  explicit FileStorage(std::string path) : path_(std::move(path)) {}

  absl::StatusOr<std::string> Load() override { return ReadFile(path_); }

  absl::Status Save(std::string_view blob, bool create) override {
    if (create) {
      struct stat st;
      if (::lstat(path_.c_str(), &st) == 0) {
        return absl::AlreadyExistsError(absl::StrCat("keyring exists: ", path_));
      }
      if (errno != ENOENT) return IoError("cannot stat", path_);
    }
    return WriteFileAtomically(path_, blob, /*replace=*/!create);
  }

 private:
  const std::string path_;
};

absl::StatusOr<KeyMap> Unseal(std::string_view master_key, std::string_view body) {
  if (!body.starts_with(kMagic)) return absl::DataLossError("keyring: not a Custos keyring");
  body.remove_prefix(kMagic.size());
  absl::StatusOr<std::string> json = AeadOpen(master_key, body, kFileAad);
  if (!json.ok()) {
    return absl::DataLossError("keyring: wrong master key, or the keyring was altered");
  }
  absl::StatusOr<KeyMap> keys = Parse(*json);
  Wipe(*json);
  return keys;
}

}  // namespace

std::unique_ptr<KeyringStorage> FileKeyringStorage(std::string path) {
  return std::make_unique<FileStorage>(std::move(path));
}

struct KeyringKeyProvider::State {
  State(std::unique_ptr<KeyringStorage> storage, std::string master_key, Random& random)
      : storage(std::move(storage)), master_key(std::move(master_key)), random(random) {}
  ~State() {
    Wipe(master_key);
    std::lock_guard lock(mu);
    WipeAll(keys);
  }

  // Seals the whole keyring and replaces the stored one (or, with `replace` false, creates it).
  // The caller holds mu.
  absl::Status PersistLocked(bool replace) {
    std::string json = Serialize(keys);
    absl::StatusOr<std::string> sealed = AeadSeal(master_key, json, kFileAad, random);
    Wipe(json);
    if (!sealed.ok()) return sealed.status();
    return storage->Save(absl::StrCat(Absl(kMagic), *sealed), /*create=*/!replace);
  }

  const std::unique_ptr<KeyringStorage> storage;
  std::string master_key;
  Random& random;
  std::shared_mutex mu;
  KeyMap keys;  // guarded by mu
};

KeyringKeyProvider::KeyringKeyProvider(std::unique_ptr<KeyringStorage> storage,
                                       std::string master_key, Random& random)
    : state_(std::make_unique<State>(std::move(storage), std::move(master_key), random)) {}

KeyringKeyProvider::~KeyringKeyProvider() = default;

absl::StatusOr<std::unique_ptr<KeyringKeyProvider>> KeyringKeyProvider::Create(
    std::string path, std::string master_key, Random& random) {
  return Create(FileKeyringStorage(std::move(path)), std::move(master_key), random);
}

absl::StatusOr<std::unique_ptr<KeyringKeyProvider>> KeyringKeyProvider::Create(
    std::unique_ptr<KeyringStorage> storage, std::string master_key, Random& random) {
  if (absl::Status s = CheckMasterKey(master_key); !s.ok()) return s;
  std::unique_ptr<KeyringKeyProvider> provider(
      new KeyringKeyProvider(std::move(storage), std::move(master_key), random));
  State& s = *provider->state_;
  std::lock_guard lock(s.mu);
  if (absl::Status status = s.PersistLocked(/*replace=*/false); !status.ok()) return status;
  return provider;
}

absl::StatusOr<std::unique_ptr<KeyringKeyProvider>> KeyringKeyProvider::Open(std::string path,
                                                                             std::string master_key,
                                                                             Random& random) {
  return Open(FileKeyringStorage(std::move(path)), std::move(master_key), random);
}

absl::StatusOr<std::unique_ptr<KeyringKeyProvider>> KeyringKeyProvider::Open(
    std::unique_ptr<KeyringStorage> storage, std::string master_key, Random& random) {
  if (absl::Status s = CheckMasterKey(master_key); !s.ok()) return s;
  absl::StatusOr<std::string> contents = storage->Load();
  if (!contents.ok()) return contents.status();
  absl::StatusOr<KeyMap> keys = Unseal(master_key, *contents);
  if (!keys.ok()) return keys.status();
  std::unique_ptr<KeyringKeyProvider> provider(
      new KeyringKeyProvider(std::move(storage), std::move(master_key), random));
  std::lock_guard lock(provider->state_->mu);
  provider->state_->keys = *std::move(keys);
  return provider;
}

absl::Status KeyringKeyProvider::CreateKey(std::string_view key_id) {
  if (!ValidKeyId(key_id)) {
    return absl::InvalidArgumentError("key id must be 1-256 printable ASCII bytes, no spaces");
  }
  State& s = *state_;
  std::lock_guard lock(s.mu);
  if (s.keys.contains(key_id)) return absl::AlreadyExistsError(absl::StrCat("key ", Absl(key_id)));
  auto [it, inserted] = s.keys.emplace(std::string(key_id), s.random.Bytes(kAeadKeySize));
  assert(inserted);
  if (it->second.size() != kAeadKeySize) {
    s.keys.erase(it);
    return absl::InternalError("Random returned a short key");
  }
  if (absl::Status status = s.PersistLocked(/*replace=*/true); !status.ok()) {
    // Memory follows the file: a key that is not durable was never created.
    Wipe(it->second);
    s.keys.erase(it);
    return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> KeyringKeyProvider::Wrap(std::string_view key_id,
                                                     std::string_view plaintext,
                                                     std::string_view aad) {
  State& s = *state_;
  std::shared_lock lock(s.mu);
  const auto it = s.keys.find(key_id);
  if (it == s.keys.end()) return absl::NotFoundError(absl::StrCat("no key ", Absl(key_id)));
  return AeadSeal(it->second, plaintext, BoundAad(key_id, aad), s.random);
}

absl::StatusOr<std::string> KeyringKeyProvider::Unwrap(std::string_view key_id,
                                                       std::string_view wrapped,
                                                       std::string_view aad) {
  State& s = *state_;
  std::shared_lock lock(s.mu);
  const auto it = s.keys.find(key_id);
  if (it == s.keys.end()) return absl::NotFoundError(absl::StrCat("no key ", Absl(key_id)));
  return AeadOpen(it->second, wrapped, BoundAad(key_id, aad));
}

absl::Status KeyringKeyProvider::DestroyKey(std::string_view key_id) {
  State& s = *state_;
  std::lock_guard lock(s.mu);
  const auto it = s.keys.find(key_id);
  if (it == s.keys.end()) return absl::NotFoundError(absl::StrCat("no key ", Absl(key_id)));
  // Extracting keeps the key's buffer, so a failed write can put it back unchanged.
  KeyMap::node_type node = s.keys.extract(it);
  if (absl::Status status = s.PersistLocked(/*replace=*/true); !status.ok()) {
    s.keys.insert(std::move(node));
    return status;
  }
  Wipe(node.mapped());
  return absl::OkStatus();
}

bool KeyringKeyProvider::HasKey(std::string_view key_id) {
  std::shared_lock lock(state_->mu);
  return state_->keys.contains(key_id);
}

}  // namespace custos::crypto

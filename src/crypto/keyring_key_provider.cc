// The embedded key provider: named 256-bit keys in one blob sealed by a master key, kept in a
// file (FileKeyringStorage) or another KeyringStorage.
//
// Blob: "CUSTOS-KEYRING-1\n" || AeadSeal(master_key, json, aad = "custos keyring v1"), where json
// is {"<key id>": "<base64 of the 32-byte key>", ...}. A wrapped value is AeadSeal(key, plaintext,
// aad = key_id || 0x00 || caller_aad): binding the key id means a value wrapped under one tenant's
// key cannot be presented as another's even if the caller's aad were the same.
//
// Several processes may share the storage: every save is conditional on the blob this process
// last saw, and a lost race reloads and redoes the change (see key_provider.h). The file storage
// checks that condition without a file lock, so it is safe for one process at a time; the
// control-store storage (cli/) checks it in one transaction, safe for any number.
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <shared_mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
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

  absl::Status Save(std::string_view blob, std::optional<std::string_view> previous) override {
    // Writers in other processes (several instances given one --keyring) compare and write
    // under one lock: unlocked, two could both see the blob they expect and the second rename
    // would drop the first one's keys — and they would share the temporary file.
    const std::string lock_path = path_ + ".lock";
    ScopedFd lock(::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (lock.get() < 0) return IoError("cannot open", lock_path);
    while (::flock(lock.get(), LOCK_EX) != 0) {
      if (errno != EINTR) return IoError("cannot lock", lock_path);
    }
    if (!previous) {
      struct stat st;
      if (::lstat(path_.c_str(), &st) == 0) {
        return absl::AlreadyExistsError(absl::StrCat("keyring exists: ", path_));
      }
      if (errno != ENOENT) return IoError("cannot stat", path_);
    } else {
      absl::StatusOr<std::string> current = ReadFile(path_);
      if (!current.ok()) return current.status();
      if (*current != *previous) {
        return absl::AbortedError(
            absl::StrCat("keyring ", path_, " was changed by another writer"));
      }
    }
    return WriteFileAtomically(path_, blob, /*replace=*/previous.has_value());
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

  absl::StatusOr<std::string> Seal(const KeyMap& map) {
    std::string json = Serialize(map);
    absl::StatusOr<std::string> sealed = AeadSeal(master_key, json, kFileAad, random);
    Wipe(json);
    if (!sealed.ok()) return sealed.status();
    return absl::StrCat(Absl(kMagic), *sealed);
  }

  // Makes the stored keyring the one in memory. Cheap when nothing changed (one read).
  // The caller holds io_mu.
  absl::Status ReloadLocked() {
    absl::StatusOr<std::string> blob = storage->Load();
    if (!blob.ok()) return blob.status();
    if (stored && *blob == *stored) return absl::OkStatus();
    absl::StatusOr<KeyMap> loaded = Unseal(master_key, *blob);
    if (!loaded.ok()) return loaded.status();
    {
      std::lock_guard lock(mu);
      WipeAll(keys);
      keys = *std::move(loaded);
    }
    stored = *std::move(blob);
    return absl::OkStatus();
  }

  // Applies `change` to a copy of the keys and saves it over the blob last seen; when another
  // process saved in between, reloads and redoes the change on what it stored. `change` returns
  // a non-OK status to give up (e.g. the key exists after all).
  template <typename Change>
  absl::Status Update(Change&& change) {
    std::lock_guard io(io_mu);
    constexpr int kAttempts = 50;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      KeyMap next;
      absl::Cleanup wipe = [&next] { WipeAll(next); };
      {
        std::shared_lock lock(mu);
        next = keys;
      }
      if (absl::Status s = change(next); !s.ok()) return s;
      absl::StatusOr<std::string> blob = Seal(next);
      if (!blob.ok()) return blob.status();
      if (!stored) return absl::InternalError("keyring: saving before loading");
      absl::Status saved = storage->Save(*blob, *stored);
      if (saved.ok()) {
        // Memory follows the storage: a key that is not durable was never created.
        {
          std::lock_guard lock(mu);
          keys.swap(next);
        }
        stored = *std::move(blob);
        return absl::OkStatus();
      }
      if (!absl::IsAborted(saved)) return saved;
      if (absl::Status s = ReloadLocked(); !s.ok()) return s;
      // Several processes losing to each other in lockstep would starve: back off a random
      // while, up to 64 ms, before the next try.
      if (attempt > 0) {
        const int cap_ms = 1 << std::min(attempt, 6);
        std::this_thread::sleep_for(std::chrono::microseconds(jitter() % (cap_ms * 1000)));
      }
    }
    return absl::UnavailableError("keyring: too many concurrent writers; retry later");
  }

  // After a miss: the key may have been created by another process since the last load.
  absl::Status ReloadAfterMiss(std::string_view key_id) {
    std::lock_guard io(io_mu);
    {
      std::shared_lock lock(mu);
      if (keys.contains(key_id)) return absl::OkStatus();  // another thread reloaded
    }
    return ReloadLocked();
  }

  // Finds `key_id` and calls fn(key) under the reader lock; on a miss, reloads once from the
  // storage first (another process may have created the key).
  template <typename Fn>
  auto WithKey(std::string_view key_id, Fn&& fn)
      -> decltype(fn(std::declval<const std::string&>())) {
    for (int attempt = 0;; ++attempt) {
      {
        std::shared_lock lock(mu);
        const auto it = keys.find(key_id);
        if (it != keys.end()) return fn(it->second);
      }
      if (attempt == 1) return absl::NotFoundError(absl::StrCat("no key ", Absl(key_id)));
      if (absl::Status status = ReloadAfterMiss(key_id); !status.ok()) return status;
    }
  }

  const std::unique_ptr<KeyringStorage> storage;
  std::string master_key;
  Random& random;
  // Serialises this process's storage calls (lock order: io_mu, then mu), so `stored` only moves
  // forward; `mu` guards the keys only briefly, so wraps never wait on storage I/O.
  std::mutex io_mu;
  std::minstd_rand jitter{std::random_device{}()};  // guarded by io_mu
  std::optional<std::string> stored;  // guarded by io_mu: the blob last loaded or saved
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
  std::lock_guard io(s.io_mu);
  absl::StatusOr<std::string> blob = s.Seal(KeyMap{});
  if (!blob.ok()) return blob.status();
  if (absl::Status status = s.storage->Save(*blob, std::nullopt); !status.ok()) return status;
  s.stored = *std::move(blob);
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
  std::unique_ptr<KeyringKeyProvider> provider(
      new KeyringKeyProvider(std::move(storage), std::move(master_key), random));
  State& s = *provider->state_;
  std::lock_guard io(s.io_mu);
  if (absl::Status status = s.ReloadLocked(); !status.ok()) return status;
  return provider;
}

absl::Status KeyringKeyProvider::Refresh() {
  std::lock_guard io(state_->io_mu);
  return state_->ReloadLocked();
}

absl::Status KeyringKeyProvider::CreateKey(std::string_view key_id) {
  if (!ValidKeyId(key_id)) {
    return absl::InvalidArgumentError("key id must be 1-256 printable ASCII bytes, no spaces");
  }
  State& s = *state_;
  return s.Update([&](KeyMap& keys) -> absl::Status {
    if (keys.contains(key_id)) return absl::AlreadyExistsError(absl::StrCat("key ", Absl(key_id)));
    std::string key = s.random.Bytes(kAeadKeySize);
    if (key.size() != kAeadKeySize) return absl::InternalError("Random returned a short key");
    keys.emplace(std::string(key_id), std::move(key));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::string> KeyringKeyProvider::Wrap(std::string_view key_id,
                                                     std::string_view plaintext,
                                                     std::string_view aad) {
  State& s = *state_;
  return s.WithKey(key_id, [&](const std::string& key) -> absl::StatusOr<std::string> {
    return AeadSeal(key, plaintext, BoundAad(key_id, aad), s.random);
  });
}

absl::StatusOr<std::string> KeyringKeyProvider::Unwrap(std::string_view key_id,
                                                       std::string_view wrapped,
                                                       std::string_view aad) {
  return state_->WithKey(key_id, [&](const std::string& key) -> absl::StatusOr<std::string> {
    return AeadOpen(key, wrapped, BoundAad(key_id, aad));
  });
}

absl::Status KeyringKeyProvider::DestroyKey(std::string_view key_id) {
  State& s = *state_;
  // The storage decides whether the key exists: another process may have created it.
  if (absl::Status status = s.ReloadAfterMiss(key_id); !status.ok()) return status;
  return s.Update([&](KeyMap& keys) -> absl::Status {
    const auto it = keys.find(key_id);
    if (it == keys.end()) return absl::NotFoundError(absl::StrCat("no key ", Absl(key_id)));
    Wipe(it->second);
    keys.erase(it);
    return absl::OkStatus();
  });
}

bool KeyringKeyProvider::HasKey(std::string_view key_id) {
  return state_->WithKey(key_id, [](const std::string&) { return absl::OkStatus(); }).ok();
}

}  // namespace custos::crypto

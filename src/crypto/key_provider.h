// Key providers hold the tenant key-encryption keys (KEKs) and never reveal them: callers only
// wrap and unwrap small secrets (data keys, sealed tenant metadata) under a named key.
// Destroying a tenant's KEK crypto-shreds everything wrapped under it, wherever it is stored.
//
// Implementations: KeyringKeyProvider (a file sealed by a master key; embedded default) and,
// later, a PKCS#11 provider (SoftHSM2 in tests). All methods are thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/random.h"

namespace custos::crypto {

// The key-provider name of a tenant's KEK.
inline std::string TenantKeyId(std::string_view tenant_id) {
  return "tenant/" + std::string(tenant_id);
}

class KeyProvider {
 public:
  virtual ~KeyProvider() = default;

  // Creates a new random 256-bit key named `key_id` and makes it durable before returning.
  // kAlreadyExists if the name is taken; kUnavailable if it cannot be persisted;
  // kInvalidArgument unless key_id is 1-256 bytes of printable ASCII without spaces.
  virtual absl::Status CreateKey(std::string_view key_id) = 0;

  // Seals `plaintext` under key `key_id` with AES-256-GCM, binding `aad`.
  // kNotFound if the key does not exist (never created, or destroyed).
  virtual absl::StatusOr<std::string> Wrap(std::string_view key_id, std::string_view plaintext,
                                           std::string_view aad) = 0;

  // Inverse of Wrap. kNotFound if the key does not exist; kDataLoss if authentication fails.
  virtual absl::StatusOr<std::string> Unwrap(std::string_view key_id, std::string_view wrapped,
                                             std::string_view aad) = 0;

  // Destroys the key durably (crypto-shredding). kNotFound if it does not exist.
  virtual absl::Status DestroyKey(std::string_view key_id) = 0;

  virtual bool HasKey(std::string_view key_id) = 0;
};

// Where a keyring keeps its sealed blob: a file (the default, below) or, e.g., a row of the
// control store (cli/ provides that one for the PostgreSQL backend, shared by every instance).
// Thread-compatible: the keyring serialises its calls.
class KeyringStorage {
 public:
  virtual ~KeyringStorage() = default;
  // The stored blob. kNotFound if there is none; kUnavailable if it cannot be read.
  virtual absl::StatusOr<std::string> Load() = 0;
  // Makes `blob` the durable blob, replacing the old one atomically (a reader sees the old blob
  // or the new one), iff the stored blob is still `previous`: another writer (another process
  // sharing the storage) may have saved since. With `previous` nullopt, creates the blob:
  // kAlreadyExists if one exists. kAborted if the stored blob is not `previous` (reload, redo
  // the change, retry); kUnavailable if it cannot be written.
  virtual absl::Status Save(std::string_view blob, std::optional<std::string_view> previous) = 0;
};

// The file storage: the blob is the file at `path`, rewritten atomically (temp file, fsync,
// rename, fsync of the directory) with mode 0600.
std::unique_ptr<KeyringStorage> FileKeyringStorage(std::string path);

// A keyring holding named 256-bit keys, the whole keyring sealed with AES-256-GCM under a
// 32-byte master key and kept in a KeyringStorage (by default a file). Every change rewrites
// the sealed keyring.
//
// Several processes may share one storage (the PostgreSQL layout: every instance reads the
// keyring from the control store): a change is saved only over the blob this process last saw
// (KeyringStorage::Save's `previous`), and when another process saved since, the keyring
// reloads and redoes the change on what is stored, so no process loses another's keys. A key
// missing here is looked for in the storage before the answer is kNotFound, so a key another
// process created is usable here at once. A key another process destroyed stays usable here
// until this process next reloads (a miss or a change of its own); Refresh() forces that.
class KeyringKeyProvider final : public KeyProvider {
 public:
  // As below, with the keyring kept in `storage` instead of a file.
  static absl::StatusOr<std::unique_ptr<KeyringKeyProvider>> Create(
      std::unique_ptr<KeyringStorage> storage, std::string master_key, Random& random);
  static absl::StatusOr<std::unique_ptr<KeyringKeyProvider>> Open(
      std::unique_ptr<KeyringStorage> storage, std::string master_key, Random& random);

  // Creates a new, empty keyring at `path`. kAlreadyExists if the file exists; kInvalidArgument
  // unless master_key is 32 bytes; kUnavailable if the file cannot be written.
  static absl::StatusOr<std::unique_ptr<KeyringKeyProvider>> Create(std::string path,
                                                                    std::string master_key,
                                                                    Random& random);
  // Opens an existing keyring. kNotFound if missing; kDataLoss if the master key is wrong or the
  // file was altered; kInvalidArgument unless master_key is 32 bytes; kUnavailable if unreadable.
  static absl::StatusOr<std::unique_ptr<KeyringKeyProvider>> Open(std::string path,
                                                                  std::string master_key,
                                                                  Random& random);
  ~KeyringKeyProvider() override;

  absl::Status CreateKey(std::string_view key_id) override;
  absl::StatusOr<std::string> Wrap(std::string_view key_id, std::string_view plaintext,
                                   std::string_view aad) override;
  absl::StatusOr<std::string> Unwrap(std::string_view key_id, std::string_view wrapped,
                                     std::string_view aad) override;
  absl::Status DestroyKey(std::string_view key_id) override;
  bool HasKey(std::string_view key_id) override;

  // Reloads the keyring from the storage (picking up keys created or destroyed by other
  // processes). kUnavailable if the storage cannot be read; kDataLoss if it was altered.
  absl::Status Refresh();

 private:
  struct State;
  KeyringKeyProvider(std::unique_ptr<KeyringStorage> storage, std::string master_key,
                     Random& random);
  std::unique_ptr<State> state_;
};

}  // namespace custos::crypto

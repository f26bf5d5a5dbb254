// Cryptographic primitives for Custos, composed from OpenSSL 3 (never hand-rolled).
//
// Bytes are carried in std::string / std::string_view (raw bytes, not text). All functions are
// thread-safe. Errors: kInvalidArgument for bad sizes given by a caller, kDataLoss when
// authentication of sealed bytes fails (tampered or wrong key/AAD), kInternal when OpenSSL fails
// unexpectedly.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/random.h"

namespace custos::crypto {

inline constexpr size_t kSha256Size = 32;
inline constexpr size_t kAeadKeySize = 32;    // AES-256
inline constexpr size_t kAeadNonceSize = 12;  // 96-bit random nonces
inline constexpr size_t kAeadTagSize = 16;
inline constexpr size_t kAeadOverhead = kAeadNonceSize + kAeadTagSize;
inline constexpr size_t kEd25519PublicKeySize = 32;
inline constexpr size_t kEd25519SeedSize = 32;
inline constexpr size_t kEd25519SignatureSize = 64;

// SHA-256 of `data` (32 raw bytes).
std::string Sha256(std::string_view data);
// SHA-256 of a || b || c, without concatenating them first.
std::string Sha256(std::string_view a, std::string_view b, std::string_view c = {});
// Lowercase hex of SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);
// HMAC-SHA256 of `data` under `key` (32 raw bytes).
std::string HmacSha256(std::string_view key, std::string_view data);

// AES-256-GCM with a fresh random 96-bit nonce from `random`.
// Returns nonce || ciphertext || tag (plaintext.size() + kAeadOverhead bytes).
// kInvalidArgument if key is not kAeadKeySize bytes.
absl::StatusOr<std::string> AeadSeal(std::string_view key, std::string_view plaintext,
                                     std::string_view aad, Random& random);
// Inverse of AeadSeal. kDataLoss if the tag does not verify or `sealed` is too short.
absl::StatusOr<std::string> AeadOpen(std::string_view key, std::string_view sealed,
                                     std::string_view aad);

// XAES-256-GCM (https://c2sp.org/XAES-256-GCM): AES-256-GCM under a key derived per message
// from `key` and half of a random 192-bit nonce. AES-256-GCM with random 96-bit nonces may seal
// at most 2^32 messages under one key; XAES-256-GCM allows 2^80 (collision risk 2^-32), so a
// key that seals a message per request never has to be rotated for its nonces.
// Returns nonce (24 bytes) || ciphertext || tag. kInvalidArgument if key is not 32 bytes.
inline constexpr size_t kXaesNonceSize = 24;
inline constexpr size_t kXaesOverhead = kXaesNonceSize + kAeadTagSize;
absl::StatusOr<std::string> XaesSeal(std::string_view key, std::string_view plaintext,
                                     std::string_view aad, Random& random);
// Inverse of XaesSeal. kDataLoss if the tag does not verify or `sealed` is too short.
absl::StatusOr<std::string> XaesOpen(std::string_view key, std::string_view sealed,
                                     std::string_view aad);

// An Ed25519 private key. Movable, not copyable; frees its EVP_PKEY on destruction.
class Ed25519PrivateKey {
 public:
  static Ed25519PrivateKey Generate(Random& random);
  // kInvalidArgument unless seed is kEd25519SeedSize bytes.
  static absl::StatusOr<Ed25519PrivateKey> FromSeed(std::string_view seed);

  Ed25519PrivateKey(Ed25519PrivateKey&&) noexcept;
  Ed25519PrivateKey& operator=(Ed25519PrivateKey&&) noexcept;
  ~Ed25519PrivateKey();

  std::string Seed() const;                          // 32 raw bytes (for sealed storage)
  std::string PublicKey() const;                     // 32 raw bytes
  std::string Sign(std::string_view message) const;  // 64 raw bytes

 private:
  struct Impl;
  explicit Ed25519PrivateKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True iff `signature` is a valid Ed25519 signature of `message` under `public_key`
// (32 raw bytes). Never throws; malformed inputs verify false.
bool Ed25519Verify(std::string_view public_key, std::string_view message,
                   std::string_view signature);

// The system CSPRNG (the calling thread's OpenSSL public DRBG, as RAND_bytes uses).
class OpenSslRandom final : public Random {
 public:
  std::string Bytes(size_t n) override;
};

// Constant-time comparison of two byte strings (false if sizes differ).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace custos::crypto

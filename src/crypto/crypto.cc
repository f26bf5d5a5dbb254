#include "crypto/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cassert>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <initializer_list>

#include "absl/strings/escaping.h"

namespace custos::crypto {
namespace {

using EvpCipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
using EvpMacCtx = std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)>;
using EvpMdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
using EvpPkey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

// Hashing, HMAC and signing only fail in OpenSSL on allocation failure or a broken build; their
// signatures return plain bytes, so there is nothing to hand back and nothing safe to continue.
[[noreturn]] void Die(const char* what) {
  (void)std::fprintf(stderr, "custos: fatal OpenSSL failure in %s\n", what);  // aborting anyway
  std::abort();
}

const unsigned char* U8(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* U8(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

// Debian's Abseil is built with its own absl::string_view, which does not convert from
// std::string_view.
absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

// OpenSSL's one-shot and update APIs take int lengths.
bool FitsInt(size_t n) { return n <= static_cast<size_t>(INT_MAX); }

// Drops queued OpenSSL errors so a failure we have already turned into a Status does not surface
// later in an unrelated caller's ERR_get_error().
absl::Status OpenSslError(std::string_view what, absl::StatusCode code) {
  ERR_clear_error();
  return absl::Status(code, Absl(what));
}

}  // namespace

namespace {

// SHA-256 with the algorithm fetched once per process and one digest context per thread, reused:
// EVP_Digest with EVP_sha256() fetches the implementation and allocates a context on every call,
// which costs more than hashing a ledger entry (issue 4: the ledger hashes each leaf twice).
std::string Sha256OfParts(std::initializer_list<std::string_view> parts) {
  static EVP_MD* const md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (m == nullptr) Die("EVP_MD_fetch");
    return m;
  }();
  thread_local EvpMdCtx ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx) Die("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1) Die("EVP_DigestInit_ex2");
  for (std::string_view p : parts) {
    if (EVP_DigestUpdate(ctx.get(), p.data(), p.size()) != 1) Die("EVP_DigestUpdate");
  }
  std::string out(kSha256Size, '\0');
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), U8(out), &len) != 1 || len != kSha256Size) {
    Die("EVP_DigestFinal_ex");
  }
  return out;
}

// AES-256-GCM fetched once per process, and one cipher context per thread, reused: as for
// SHA-256, EVP_aes_256_gcm() fetches the implementation (under a global lock) and
// EVP_CIPHER_CTX_new allocates on every call, which shows on 1 KiB objects. The context also keeps
// the last key's schedule (AES round keys and the GHASH key), and a call under the same key — the
// common case: a tenant's objects share one DEK — sets only the nonce. Measured on in-process
// 1 KiB GETs, libcrypto's share of the CPU fell from 12% to 9%. The key stays in the thread's
// memory until that thread uses another key or exits: no more exposure than the schedule itself,
// or the DEK cache.
class AesGcmContext {
 public:
  AesGcmContext() : ctx_(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free) {
    if (!ctx_) Die("EVP_CIPHER_CTX_new");
  }
  ~AesGcmContext() { OPENSSL_cleanse(key_, sizeof key_); }
  AesGcmContext(const AesGcmContext&) = delete;
  AesGcmContext& operator=(const AesGcmContext&) = delete;

  static AesGcmContext& ForThisThread() {
    thread_local AesGcmContext context;
    return context;
  }

  // Starts an encryption (or decryption) under `key` (kAeadKeySize bytes) and `nonce` (the GCM
  // default IV length, 96 bits, which is kAeadNonceSize). nullptr on failure.
  EVP_CIPHER_CTX* Start(bool encrypt, std::string_view key, std::string_view nonce) {
    static EVP_CIPHER* const aes = [] {
      EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
      if (c == nullptr) Die("EVP_CIPHER_fetch");
      return c;
    }();
    assert(key.size() == sizeof key_);
    const bool same_key = keyed_ && CRYPTO_memcmp(key_, key.data(), sizeof key_) == 0;
    // With a null cipher and key, OpenSSL keeps the context's key schedule and resets the GCM
    // state for the new nonce. GCM's schedule is the same in both directions (it only encrypts
    // counter blocks), so a context keyed to seal can open, and the other way round.
    const EVP_CIPHER* cipher = same_key ? nullptr : aes;
    const unsigned char* k = same_key ? nullptr : U8(key);
    keyed_ = false;  // until the init below succeeds
    const int ok = encrypt ? EVP_EncryptInit_ex2(ctx_.get(), cipher, k, U8(nonce), nullptr)
                           : EVP_DecryptInit_ex2(ctx_.get(), cipher, k, U8(nonce), nullptr);
    if (ok != 1) return nullptr;
    std::memcpy(key_, key.data(), sizeof key_);
    keyed_ = true;
    return ctx_.get();
  }

 private:
  EvpCipherCtx ctx_;
  unsigned char key_[kAeadKeySize] = {};
  bool keyed_ = false;
};

}  // namespace

std::string Sha256(std::string_view data) { return Sha256OfParts({data}); }

std::string Sha256(std::string_view a, std::string_view b, std::string_view c) {
  return Sha256OfParts({a, b, c});
}

std::string Sha256Hex(std::string_view data) { return absl::BytesToHexString(Sha256(data)); }

namespace {

// A context of MAC `name` with its one parameter set (HMAC's digest, CMAC's cipher), for a
// thread to key anew on each call (made once per thread).
EvpMacCtx NewMacContext(const char* name, const char* param, const char* value) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, name, nullptr);
  if (mac == nullptr) Die("EVP_MAC_fetch");
  EvpMacCtx c(EVP_MAC_CTX_new(mac), &EVP_MAC_CTX_free);
  EVP_MAC_free(mac);  // the context holds its own reference
  std::string v(value);
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(param, v.data(), 0),
                               OSSL_PARAM_construct_end()};
  if (!c || EVP_MAC_CTX_set_params(c.get(), params) != 1) Die("EVP_MAC_CTX_set_params");
  return c;
}

}  // namespace

// HMAC-SHA-256 with one context per thread (SHA-256 set on it once), keyed anew on each call:
// HMAC() fetches the MAC and the digest and allocates a context on every call, and it runs on
// every data request (the tenant's ledger pseudonym). A context keeps its last key until its
// thread next uses it, like the AES contexts above.
std::string HmacSha256(std::string_view key, std::string_view data) {
  thread_local EvpMacCtx ctx = NewMacContext("HMAC", OSSL_MAC_PARAM_DIGEST, "SHA256");
  // A null key would mean "keep the previous key" to EVP_MAC_init: point at a real byte, so an
  // empty key is simply the empty key.
  static constexpr unsigned char kEmpty = 0;
  const unsigned char* key_ptr = key.empty() ? &kEmpty : U8(key);
  std::string out(kSha256Size, '\0');
  size_t len = 0;
  if (EVP_MAC_init(ctx.get(), key_ptr, key.size(), nullptr) != 1 ||
      EVP_MAC_update(ctx.get(), U8(data), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), U8(out), &len, out.size()) != 1 || len != kSha256Size) {
    Die("HMAC");
  }
  return out;
}

namespace {

// AES-256-GCM of `plaintext` under `key` and the 12-byte `nonce`, written as ciphertext || tag
// into out[at, at + plaintext.size() + kAeadTagSize).
absl::Status GcmSealInto(std::string_view key, std::string_view nonce, std::string_view plaintext,
                         std::string_view aad, std::string& out, size_t at) {
  if (!FitsInt(plaintext.size()) || !FitsInt(aad.size())) {
    return absl::InvalidArgumentError("AEAD input over 2 GiB");
  }
  EVP_CIPHER_CTX* ctx = AesGcmContext::ForThisThread().Start(/*encrypt=*/true, key, nonce);
  if (ctx == nullptr) {
    return OpenSslError("AES-GCM encrypt init", absl::StatusCode::kInternal);
  }
  int len = 0;
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx, nullptr, &len, U8(aad), static_cast<int>(aad.size())) != 1) {
    return OpenSslError("AES-GCM aad", absl::StatusCode::kInternal);
  }
  unsigned char* body = U8(out) + at;
  int written = 0;
  if (!plaintext.empty()) {
    if (EVP_EncryptUpdate(ctx, body, &len, U8(plaintext), static_cast<int>(plaintext.size())) !=
        1) {
      return OpenSslError("AES-GCM encrypt", absl::StatusCode::kInternal);
    }
    written = len;
  }
  if (EVP_EncryptFinal_ex(ctx, body + written, &len) != 1) {
    return OpenSslError("AES-GCM encrypt final", absl::StatusCode::kInternal);
  }
  written += len;
  assert(static_cast<size_t>(written) == plaintext.size());  // GCM is a stream mode
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kAeadTagSize, body + written) != 1) {
    return OpenSslError("AES-GCM get tag", absl::StatusCode::kInternal);
  }
  return absl::OkStatus();
}

// Inverse of GcmSealInto for `body` = ciphertext || tag.
absl::StatusOr<std::string> GcmOpen(std::string_view key, std::string_view nonce,
                                    std::string_view body, std::string_view aad) {
  if (!FitsInt(body.size()) || !FitsInt(aad.size())) {
    return absl::InvalidArgumentError("AEAD input over 2 GiB");
  }
  const std::string_view ciphertext = body.substr(0, body.size() - kAeadTagSize);
  // The tag is copied because EVP_CTRL_GCM_SET_TAG takes a non-const pointer.
  std::string tag(body.substr(body.size() - kAeadTagSize));

  EVP_CIPHER_CTX* ctx = AesGcmContext::ForThisThread().Start(/*encrypt=*/false, key, nonce);
  if (ctx == nullptr) {
    return OpenSslError("AES-GCM decrypt init", absl::StatusCode::kInternal);
  }
  int len = 0;
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx, nullptr, &len, U8(aad), static_cast<int>(aad.size())) != 1) {
    return OpenSslError("AES-GCM aad", absl::StatusCode::kInternal);
  }
  std::string out(ciphertext.size(), '\0');
  int written = 0;
  if (!ciphertext.empty()) {
    if (EVP_DecryptUpdate(ctx, U8(out), &len, U8(ciphertext),
                          static_cast<int>(ciphertext.size())) != 1) {
      return OpenSslError("AES-GCM decrypt", absl::StatusCode::kInternal);
    }
    written = len;
  }
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kAeadTagSize, U8(tag)) != 1) {
    return OpenSslError("AES-GCM set tag", absl::StatusCode::kInternal);
  }
  if (EVP_DecryptFinal_ex(ctx, U8(out) + written, &len) != 1) {
    // Unauthenticated plaintext must not linger in freed memory.
    OPENSSL_cleanse(out.data(), out.size());
    return OpenSslError("authentication failed (tampered, or wrong key or AAD)",
                        absl::StatusCode::kDataLoss);
  }
  return out;
}

// The AES-256-GCM key XAES-256-GCM derives from `key` and the first 12 nonce bytes: NIST SP
// 800-108r1's counter KDF with CMAC-AES-256, label "X", that context, a 16-bit counter and no
// L — two single-block CMACs (OpenSSL 3.0's KBKDF fixes its counter at 32 bits, so CMAC is
// called directly). One CMAC context per thread, keyed only when the key changes: a tenant's
// records all derive their subkeys from its one record key, and with a null key OpenSSL restarts
// the MAC under the key it holds, skipping the AES key schedule and CMAC's own subkeys.
std::string XaesSubkey(std::string_view key, std::string_view context) {
  struct KeyedCmac {
    EvpMacCtx ctx = NewMacContext("CMAC", OSSL_MAC_PARAM_CIPHER, "AES-256-CBC");
    unsigned char key[kAeadKeySize] = {};
    bool keyed = false;
    ~KeyedCmac() { OPENSSL_cleanse(key, sizeof key); }
  };
  thread_local KeyedCmac cmac;
  assert(key.size() == sizeof cmac.key);
  std::string out(kAeadKeySize, '\0');
  for (unsigned char i = 1; i <= 2; ++i) {
    unsigned char block[16] = {0x00, i, 'X', 0x00};
    std::memcpy(block + 4, context.data(), 12);
    const bool same_key = cmac.keyed && CRYPTO_memcmp(cmac.key, key.data(), sizeof cmac.key) == 0;
    cmac.keyed = false;  // until the init below succeeds
    size_t len = 0;
    if (EVP_MAC_init(cmac.ctx.get(), same_key ? nullptr : U8(key), same_key ? 0 : key.size(),
                     nullptr) != 1 ||
        EVP_MAC_update(cmac.ctx.get(), block, sizeof(block)) != 1 ||
        EVP_MAC_final(cmac.ctx.get(), U8(out) + 16 * (i - 1), &len, 16) != 1 || len != 16) {
      Die("CMAC");
    }
    std::memcpy(cmac.key, key.data(), sizeof cmac.key);
    cmac.keyed = true;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> AeadSeal(std::string_view key, std::string_view plaintext,
                                     std::string_view aad, Random& random) {
  if (key.size() != kAeadKeySize) return absl::InvalidArgumentError("AEAD key must be 32 bytes");
  const std::string nonce = random.Bytes(kAeadNonceSize);
  if (nonce.size() != kAeadNonceSize) return absl::InternalError("Random returned a short nonce");
  std::string out(plaintext.size() + kAeadOverhead, '\0');
  out.replace(0, kAeadNonceSize, nonce);
  if (auto s = GcmSealInto(key, nonce, plaintext, aad, out, kAeadNonceSize); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> AeadOpen(std::string_view key, std::string_view sealed,
                                     std::string_view aad) {
  if (key.size() != kAeadKeySize) return absl::InvalidArgumentError("AEAD key must be 32 bytes");
  if (sealed.size() < kAeadOverhead) return absl::DataLossError("sealed bytes too short");
  return GcmOpen(key, sealed.substr(0, kAeadNonceSize), sealed.substr(kAeadNonceSize), aad);
}

absl::StatusOr<std::string> XaesSeal(std::string_view key, std::string_view plaintext,
                                     std::string_view aad, Random& random) {
  if (key.size() != kAeadKeySize) return absl::InvalidArgumentError("AEAD key must be 32 bytes");
  const std::string nonce = random.Bytes(kXaesNonceSize);
  if (nonce.size() != kXaesNonceSize) return absl::InternalError("Random returned a short nonce");
  std::string subkey = XaesSubkey(key, std::string_view(nonce).substr(0, 12));
  std::string out(plaintext.size() + kXaesOverhead, '\0');
  out.replace(0, kXaesNonceSize, nonce);
  absl::Status s =
      GcmSealInto(subkey, std::string_view(nonce).substr(12), plaintext, aad, out, kXaesNonceSize);
  OPENSSL_cleanse(subkey.data(), subkey.size());
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> XaesOpen(std::string_view key, std::string_view sealed,
                                     std::string_view aad) {
  if (key.size() != kAeadKeySize) return absl::InvalidArgumentError("AEAD key must be 32 bytes");
  if (sealed.size() < kXaesOverhead) return absl::DataLossError("sealed bytes too short");
  std::string subkey = XaesSubkey(key, sealed.substr(0, 12));
  auto out = GcmOpen(subkey, sealed.substr(12, 12), sealed.substr(kXaesNonceSize), aad);
  OPENSSL_cleanse(subkey.data(), subkey.size());
  return out;
}

struct Ed25519PrivateKey::Impl {
  EvpPkey pkey{nullptr, &EVP_PKEY_free};
};

Ed25519PrivateKey::Ed25519PrivateKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Ed25519PrivateKey::Ed25519PrivateKey(Ed25519PrivateKey&&) noexcept = default;
Ed25519PrivateKey& Ed25519PrivateKey::operator=(Ed25519PrivateKey&&) noexcept = default;
Ed25519PrivateKey::~Ed25519PrivateKey() = default;

// The seed comes from the injected Random (not EVP_PKEY_keygen) so that key generation follows
// the same randomness seam as everything else and is reproducible in tests.
Ed25519PrivateKey Ed25519PrivateKey::Generate(Random& random) {
  std::string seed = random.Bytes(kEd25519SeedSize);
  auto key = FromSeed(seed);
  OPENSSL_cleanse(seed.data(), seed.size());
  if (!key.ok()) Die("Ed25519 key generation");
  return *std::move(key);
}

absl::StatusOr<Ed25519PrivateKey> Ed25519PrivateKey::FromSeed(std::string_view seed) {
  if (seed.size() != kEd25519SeedSize) {
    return absl::InvalidArgumentError("Ed25519 seed must be 32 bytes");
  }
  auto impl = std::make_unique<Impl>();
  impl->pkey.reset(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, U8(seed), seed.size()));
  if (!impl->pkey) return OpenSslError("EVP_PKEY_new_raw_private_key", absl::StatusCode::kInternal);
  return Ed25519PrivateKey(std::move(impl));
}

std::string Ed25519PrivateKey::Seed() const {
  assert(impl_ != nullptr);  // use after move
  std::string out(kEd25519SeedSize, '\0');
  size_t len = out.size();
  if (EVP_PKEY_get_raw_private_key(impl_->pkey.get(), U8(out), &len) != 1 ||
      len != kEd25519SeedSize) {
    Die("EVP_PKEY_get_raw_private_key");
  }
  return out;
}

std::string Ed25519PrivateKey::PublicKey() const {
  assert(impl_ != nullptr);  // use after move
  std::string out(kEd25519PublicKeySize, '\0');
  size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(impl_->pkey.get(), U8(out), &len) != 1 ||
      len != kEd25519PublicKeySize) {
    Die("EVP_PKEY_get_raw_public_key");
  }
  return out;
}

std::string Ed25519PrivateKey::Sign(std::string_view message) const {
  assert(impl_ != nullptr);  // use after move
  EvpMdCtx ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx) Die("EVP_MD_CTX_new");
  // Ed25519 is a one-shot scheme: no digest is named, and DigestSign takes the whole message.
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, impl_->pkey.get()) != 1) {
    Die("EVP_DigestSignInit");
  }
  std::string out(kEd25519SignatureSize, '\0');
  size_t len = out.size();
  if (EVP_DigestSign(ctx.get(), U8(out), &len, U8(message), message.size()) != 1 ||
      len != kEd25519SignatureSize) {
    Die("EVP_DigestSign");
  }
  return out;
}

bool Ed25519Verify(std::string_view public_key, std::string_view message,
                   std::string_view signature) {
  if (public_key.size() != kEd25519PublicKeySize || signature.size() != kEd25519SignatureSize) {
    return false;
  }
  EvpPkey pkey(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, U8(public_key), public_key.size()),
      &EVP_PKEY_free);
  EvpMdCtx ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  const bool ok =
      pkey && ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), U8(signature), signature.size(), U8(message), message.size()) ==
          1;
  if (!ok) ERR_clear_error();  // a bad signature is an answer, not an error to keep queued
  return ok;
}

std::string OpenSslRandom::Bytes(size_t n) {
  // The calling thread's public DRBG, asked directly: RAND_bytes first looks up the legacy
  // RAND_METHOD (never set by Custos) under a process-wide write lock on every call (OpenSSL
  // 3.0), which the request path's salts and nonces contended on; then it does exactly this.
  std::string out(n, '\0');
  EVP_RAND_CTX* drbg = RAND_get0_public(nullptr);
  if (drbg == nullptr || EVP_RAND_generate(drbg, U8(out), n, 0, 0, nullptr, 0) != 1) {
    Die("EVP_RAND_generate");
  }
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Sizes are public (digests, tags, tokens have fixed sizes); only the contents are secret.
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace custos::crypto

// C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys: the envelope of every
// document Custos signs (checkpoints, export manifests, certificates). Pure apart from signing.
//
// A signed note is its text (ending in a newline), a blank line, then one or more lines
// "— <key name> <base64(key id || signature)>" (U+2014 EM DASH, space). Key id = the first four
// bytes, big-endian, of SHA-256(name || 0x0A || 0x01 || 32-byte public key); 0x01 is the
// Ed25519 signature type. Keys are written as in Go's golang.org/x/mod/sumdb/note:
//   verifier: <name>+<8 lowercase hex key id>+<base64(0x01 || public key)>
//   signer:   PRIVATE+KEY+<name>+<8 lowercase hex key id>+<base64(0x01 || 32-byte seed)>
//
// All functions are thread-safe. Notes and keys are outside input: parsing is strict, and
// failures are values, never crashes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/crypto.h"

namespace custos::ledger {

inline constexpr uint8_t kEd25519SignatureType = 0x01;
// Notes larger than this are refused unread. Export manifests are the largest notes we sign
// (one line per object); 16 MiB holds well over 100,000 lines.
inline constexpr size_t kMaxNoteBytes = size_t{16} << 20;
// The spec asks verifiers to accept at least 16 signatures (witness cosignatures add up).
inline constexpr size_t kMaxNoteSignatures = 64;

// True iff `name` may name a key: non-empty valid UTF-8 with no Unicode space, no '+' and no
// control character.
bool IsValidKeyName(std::string_view name);

// The signed-note key id of an Ed25519 public key (32 raw bytes) under `name`.
uint32_t KeyId(std::string_view name, std::string_view public_key);

struct VerifierKey {
  std::string name;
  uint32_t key_id = 0;
  std::string public_key;  // 32 raw bytes
};

// Errors: kInvalidArgument if name is not a valid key name or public_key is not 32 bytes.
absl::StatusOr<std::string> FormatVerifierKey(std::string_view name, std::string_view public_key);
// Errors: kInvalidArgument if malformed, not Ed25519, or the key id does not match name and key.
absl::StatusOr<VerifierKey> ParseVerifierKey(std::string_view vkey);

struct SignerKey {
  std::string name;
  uint32_t key_id = 0;
  crypto::Ed25519PrivateKey key;
};
// Parses a "PRIVATE+KEY+..." signer key. Errors: kInvalidArgument if malformed, not Ed25519, or
// the key id does not match name and the key's public half.
absl::StatusOr<SignerKey> ParseSignerKey(std::string_view skey);

// Signs `text` as `name`: returns text, "\n", and one signature line.
// Errors: kInvalidArgument if text is empty, does not end in '\n', is not valid UTF-8, holds a
// control character other than '\n', or exceeds kMaxNoteBytes; or name is invalid.
absl::StatusOr<std::string> SignNote(std::string_view text, std::string_view name,
                                     const crypto::Ed25519PrivateKey& key);

// Checks that `signed_note` carries a valid signature by `key` and returns its text.
// Signature lines by other keys (other name or key id) are ignored as the spec requires, but
// must still be well formed. Errors:
//   kInvalidArgument  malformed: over max_bytes, not UTF-8, control characters, no blank line
//                     before the signatures, a line that is not a signature line, bad base64,
//                     invalid key name, more than kMaxNoteSignatures signatures, two
//                     signatures by `key`;
//   kUnauthenticated  no signature line by `key`, or one that does not verify.
absl::StatusOr<std::string> VerifyNote(std::string_view signed_note, const VerifierKey& key,
                                       size_t max_bytes = kMaxNoteBytes);

}  // namespace custos::ledger

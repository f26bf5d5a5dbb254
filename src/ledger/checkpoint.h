// C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the note text of a signed tree head,
//   <origin>\n<tree size, decimal>\n<base64 root hash>\n[<extension line>\n]...
// Format and strict parse; SignCheckpoint / OpenCheckpoint wrap them in a signed note (note.h).
//
// All functions are thread-safe. Checkpoint text is outside input: parsing refuses anything but
// the canonical form with kInvalidArgument.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/crypto.h"
#include "ledger/note.h"

namespace custos::ledger {

struct Checkpoint {
  std::string origin;                   // the log's identity, e.g. "custos.example/1a2b3c4d"
  uint64_t size = 0;                    // leaves in the tree
  std::string root_hash;                // 32 raw bytes
  std::vector<std::string> extensions;  // opaque non-empty lines; we write none
  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

// The checkpoint's note text. Errors: kInvalidArgument if the origin is empty or holds a
// control character, the root hash is not 32 bytes, or an extension line is empty or holds a
// control character. (UTF-8 validity is the note layer's check, in SignNote and VerifyNote.)
absl::StatusOr<std::string> FormatCheckpoint(const Checkpoint& checkpoint);

// Inverse of FormatCheckpoint. Errors: kInvalidArgument if fewer than three lines, text not
// ending in a newline, an empty line, a size that is not a canonical uint64 decimal (no sign,
// no leading zeros), a root that is not canonical base64 of 32 bytes.
absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view text);

// FormatCheckpoint, then SignNote under `key_name` (which should equal the origin).
absl::StatusOr<std::string> SignCheckpoint(const Checkpoint& checkpoint, std::string_view key_name,
                                           const crypto::Ed25519PrivateKey& key);

// VerifyNote, ParseCheckpoint, and a check that the origin is `origin`.
// Errors: those of VerifyNote and ParseCheckpoint; kInvalidArgument for another origin.
absl::StatusOr<Checkpoint> OpenCheckpoint(std::string_view signed_note, const VerifierKey& key,
                                          std::string_view origin);

}  // namespace custos::ledger

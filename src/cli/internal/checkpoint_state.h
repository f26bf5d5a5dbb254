// Signed checkpoints as the verifiers hold them: the server's, and the last verified one kept in
// a state file between runs (its signed note text, exactly as served).
//
// Errors are for a person and name what is wrong: kUnauthenticated ("… signature does not verify
// with the given key"), kInvalidArgument (malformed), kUnavailable (the file cannot be read or
// written).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ledger/checkpoint.h"
#include "ledger/note.h"

namespace custos::cli::internal {

struct SignedCheckpoint {
  std::string note;  // the signed note text
  ledger::Checkpoint checkpoint;
};

// The contents of the file `value_or_path` names, if it names a regular file (at most 64 KiB),
// else `value_or_path` itself; surrounding whitespace trimmed. `what` names the option in
// errors. kInvalidArgument if the result is empty.
absl::StatusOr<std::string> ValueOrFile(std::string_view value_or_path, std::string_view what);

// --vkey: a verifier key in note format, or a file holding one.
absl::StatusOr<ledger::VerifierKey> LoadVerifierKey(std::string_view value_or_path);

// Verifies `note` with `key` (origin = key name). `what` says whose it is, e.g. "checkpoint".
absl::StatusOr<SignedCheckpoint> OpenSignedCheckpoint(std::string note,
                                                      const ledger::VerifierKey& key,
                                                      std::string_view what);

// The checkpoint saved in `path`, verified with `key`; nullopt if path is empty or no file is
// there yet.
absl::StatusOr<std::optional<SignedCheckpoint>> LoadSavedCheckpoint(const std::string& path,
                                                                    const ledger::VerifierKey& key);

// Replaces `path` with `note` atomically (temporary file, fsync, rename, fsync of the folder).
absl::Status SaveCheckpoint(const std::string& path, std::string_view note);

// The ledger pseudonym of each tenant `ledger prove` has proved, kept beside its state file in
// `<state>.pseudonyms` (a line "tenant_id pseudonym" each): a tenant's pseudonym never changes,
// so a server that later names another one for it is caught. Empty if `path` is empty or there
// is no file yet; kInvalidArgument if the file is malformed.
using PseudonymPins = std::map<std::string, std::string, std::less<>>;
absl::StatusOr<PseudonymPins> LoadPseudonymPins(const std::string& path);
// Replaces `path` with `pins` atomically, as SaveCheckpoint.
absl::Status SavePseudonymPins(const std::string& path, const PseudonymPins& pins);

}  // namespace custos::cli::internal

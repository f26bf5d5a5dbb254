#include "ledger/checkpoint.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ledger/internal/strings.h"
#include "ledger/merkle.h"

namespace custos::ledger {
namespace {

using internal::Av;

absl::Status Bad(std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("malformed checkpoint: ", Av(why)));
}

// A line of note text: non-empty, no newline or other control character, valid UTF-8.
// (The note layer checks UTF-8 of the whole note; lines we write are checked here too.)
bool IsValidLine(std::string_view line) {
  if (line.empty()) return false;
  for (char c : line) {
    if (static_cast<unsigned char>(c) < 0x20) return false;
  }
  return true;
}

// Canonical decimal uint64: digits only, no leading zeros unless the value is 0.
bool ParseCanonicalSize(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(Av(s), &out);  // refuses values above UINT64_MAX
}

}  // namespace

absl::StatusOr<std::string> FormatCheckpoint(const Checkpoint& checkpoint) {
  if (!IsValidLine(checkpoint.origin)) return Bad("origin is empty or holds control characters");
  if (checkpoint.root_hash.size() != kHashSize) return Bad("root hash is not 32 bytes");
  std::string text = absl::StrCat(checkpoint.origin, "\n", checkpoint.size, "\n",
                                  absl::Base64Escape(checkpoint.root_hash), "\n");
  for (const std::string& ext : checkpoint.extensions) {
    if (!IsValidLine(ext)) return Bad("extension line is empty or holds control characters");
    absl::StrAppend(&text, ext, "\n");
  }
  return text;
}

absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view text) {
  if (text.empty() || text.back() != '\n') return Bad("text does not end with a newline");
  text.remove_suffix(1);
  std::vector<std::string_view> lines;
  for (size_t eol; (eol = text.find('\n')) != std::string_view::npos;) {
    lines.push_back(text.substr(0, eol));
    text.remove_prefix(eol + 1);
  }
  lines.push_back(text);
  if (lines.size() < 3) return Bad("fewer than three lines");
  for (std::string_view line : lines) {
    if (!IsValidLine(line)) return Bad("empty line or control character");
  }
  Checkpoint cp;
  cp.origin = std::string(lines[0]);
  if (!ParseCanonicalSize(lines[1], cp.size)) return Bad("size is not a canonical decimal");
  if (!absl::Base64Unescape(Av(lines[2]), &cp.root_hash) ||
      absl::Base64Escape(cp.root_hash) != lines[2] || cp.root_hash.size() != kHashSize) {
    return Bad("root hash is not canonical base64 of 32 bytes");
  }
  for (size_t i = 3; i < lines.size(); ++i) cp.extensions.emplace_back(lines[i]);
  return cp;
}

absl::StatusOr<std::string> SignCheckpoint(const Checkpoint& checkpoint, std::string_view key_name,
                                           const crypto::Ed25519PrivateKey& key) {
  absl::StatusOr<std::string> text = FormatCheckpoint(checkpoint);
  if (!text.ok()) return text.status();
  return SignNote(*text, key_name, key);
}

absl::StatusOr<Checkpoint> OpenCheckpoint(std::string_view signed_note, const VerifierKey& key,
                                          std::string_view origin) {
  absl::StatusOr<std::string> text = VerifyNote(signed_note, key);
  if (!text.ok()) return text.status();
  absl::StatusOr<Checkpoint> cp = ParseCheckpoint(*text);
  if (!cp.ok()) return cp.status();
  if (cp->origin != origin) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint is for origin ", cp->origin, ", not ", Av(origin)));
  }
  return cp;
}

}  // namespace custos::ledger

#include "ledger/note.h"

#include <algorithm>
#include <cassert>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ledger/internal/strings.h"

namespace custos::ledger {
namespace {

using internal::Av;
using internal::ConsumePrefix;

constexpr std::string_view kEmDashSpace = "\xE2\x80\x94 ";  // U+2014 then U+0020
constexpr std::string_view kSignerPrefix = "PRIVATE+KEY+";

// Decodes the UTF-8 code point at the front of `s` into `cp` and consumes it. False on any
// invalid sequence: truncated, overlong, surrogate, or beyond U+10FFFF.
bool NextCodePoint(std::string_view& s, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  size_t len;
  char32_t min;
  if (b0 < 0x80) {
    cp = b0;
    s.remove_prefix(1);
    return true;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return false;
  }
  if (s.size() < len) return false;
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  s.remove_prefix(len);
  return true;
}

// Unicode White_Space, as Go's unicode.IsSpace (what the reference implementation checks).
bool IsUnicodeSpace(char32_t cp) {
  constexpr char32_t kSpaces[] = {'\t', '\n',   '\v',   '\f',   '\r',   ' ',    0x85,
                                  0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  return std::ranges::find(kSpaces, cp) != std::end(kSpaces) || (cp >= 0x2000 && cp <= 0x200A);
}

// Valid UTF-8 with no control character below U+0020 other than '\n' (the note rule).
bool IsValidNoteText(std::string_view s) {
  while (!s.empty()) {
    char32_t cp;
    if (!NextCodePoint(s, cp)) return false;
    if (cp < 0x20 && cp != '\n') return false;
  }
  return true;
}

// Standard padded base64, accepted only in its one canonical spelling.
bool DecodeBase64Strict(std::string_view in, std::string& out) {
  return absl::Base64Unescape(Av(in), &out) && absl::Base64Escape(out) == in;
}

// Exactly 8 lowercase hex digits, as Go's note package writes key ids.
bool ParseKeyIdHex(std::string_view hex, uint32_t& out) {
  if (hex.size() != 8) return false;
  out = 0;
  for (char c : hex) {
    uint32_t digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return false;
    }
    out = (out << 4) | digit;
  }
  return true;
}

uint32_t ReadBigEndian32(std::string_view b) {
  return (uint32_t{static_cast<unsigned char>(b[0])} << 24) |
         (uint32_t{static_cast<unsigned char>(b[1])} << 16) |
         (uint32_t{static_cast<unsigned char>(b[2])} << 8) |
         uint32_t{static_cast<unsigned char>(b[3])};
}

std::string BigEndian32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

struct KeyFields {
  std::string name;
  uint32_t key_id;
  std::string key;  // 32 bytes after the 0x01 type byte
};

// Parses "<name>+<hex id>+<base64(0x01 || 32 bytes)>". The base64 may itself contain '+', so
// the name and id are cut off the front.
absl::StatusOr<KeyFields> ParseKeyFields(std::string_view s) {
  const auto bad = [](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("malformed note key: ", Av(why)));
  };
  const size_t plus = s.find('+');
  if (plus == std::string_view::npos) return bad("missing '+'");
  KeyFields f;
  f.name = std::string(s.substr(0, plus));
  if (!IsValidKeyName(f.name)) return bad("invalid key name");
  s.remove_prefix(plus + 1);
  if (s.size() < 9 || s[8] != '+' || !ParseKeyIdHex(s.substr(0, 8), f.key_id)) {
    return bad("key id is not 8 lowercase hex digits");
  }
  std::string decoded;
  if (!DecodeBase64Strict(s.substr(9), decoded)) return bad("key is not canonical base64");
  if (decoded.size() != 1 + crypto::kEd25519PublicKeySize ||
      static_cast<uint8_t>(decoded[0]) != kEd25519SignatureType) {
    return bad("not an Ed25519 key");
  }
  f.key = decoded.substr(1);
  return f;
}

absl::Status CheckText(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return absl::InvalidArgumentError("note text must end with a newline");
  }
  if (!IsValidNoteText(text)) {
    return absl::InvalidArgumentError("note text is not UTF-8 without control characters");
  }
  return absl::OkStatus();
}

}  // namespace

bool IsValidKeyName(std::string_view name) {
  if (name.empty()) return false;
  while (!name.empty()) {
    char32_t cp;
    if (!NextCodePoint(name, cp)) return false;
    if (cp < 0x20 || cp == 0x7F || cp == '+' || IsUnicodeSpace(cp)) return false;
  }
  return true;
}

uint32_t KeyId(std::string_view name, std::string_view public_key) {
  std::string buf(name);
  buf.push_back('\n');
  buf.push_back(static_cast<char>(kEd25519SignatureType));
  buf.append(public_key);
  return ReadBigEndian32(crypto::Sha256(buf));
}

absl::StatusOr<std::string> FormatVerifierKey(std::string_view name, std::string_view public_key) {
  if (!IsValidKeyName(name)) return absl::InvalidArgumentError("invalid key name");
  if (public_key.size() != crypto::kEd25519PublicKeySize) {
    return absl::InvalidArgumentError("Ed25519 public key must be 32 bytes");
  }
  std::string typed(1, static_cast<char>(kEd25519SignatureType));
  typed.append(public_key);
  return absl::StrFormat("%s+%08x+%s", Av(name), KeyId(name, public_key),
                         absl::Base64Escape(typed));
}

absl::StatusOr<VerifierKey> ParseVerifierKey(std::string_view vkey) {
  absl::StatusOr<KeyFields> f = ParseKeyFields(vkey);
  if (!f.ok()) return f.status();
  if (KeyId(f->name, f->key) != f->key_id) {
    return absl::InvalidArgumentError("verifier key id does not match its name and key");
  }
  return VerifierKey{std::move(f->name), f->key_id, std::move(f->key)};
}

absl::StatusOr<SignerKey> ParseSignerKey(std::string_view skey) {
  if (!ConsumePrefix(skey, kSignerPrefix)) {
    return absl::InvalidArgumentError("signer key does not start with PRIVATE+KEY+");
  }
  absl::StatusOr<KeyFields> f = ParseKeyFields(skey);
  if (!f.ok()) return f.status();
  absl::StatusOr<crypto::Ed25519PrivateKey> key = crypto::Ed25519PrivateKey::FromSeed(f->key);
  if (!key.ok()) return key.status();
  if (KeyId(f->name, key->PublicKey()) != f->key_id) {
    return absl::InvalidArgumentError("signer key id does not match its name and key");
  }
  return SignerKey{std::move(f->name), f->key_id, *std::move(key)};
}

absl::StatusOr<std::string> SignNote(std::string_view text, std::string_view name,
                                     const crypto::Ed25519PrivateKey& key) {
  if (absl::Status s = CheckText(text); !s.ok()) return s;
  if (!IsValidKeyName(name)) return absl::InvalidArgumentError("invalid key name");
  // Never produce a note our own verifier would refuse; check before paying for the signature.
  constexpr size_t kSignatureBase64 = (4 + crypto::kEd25519SignatureSize + 2) / 3 * 4;
  const size_t note_size =
      text.size() + 1 + kEmDashSpace.size() + name.size() + 1 + kSignatureBase64 + 1;
  if (note_size > kMaxNoteBytes) return absl::InvalidArgumentError("note text too large");
  const std::string sig = BigEndian32(KeyId(name, key.PublicKey())) + key.Sign(text);
  std::string note =
      absl::StrCat(Av(text), "\n", Av(kEmDashSpace), Av(name), " ", absl::Base64Escape(sig), "\n");
  assert(note.size() == note_size);
  return note;
}

absl::StatusOr<std::string> VerifyNote(std::string_view signed_note, const VerifierKey& key,
                                       size_t max_bytes) {
  const auto bad = [](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("malformed signed note: ", Av(why)));
  };
  if (signed_note.size() > max_bytes) return bad("too large");
  if (!IsValidNoteText(signed_note)) return bad("not UTF-8 without control characters");
  // The text ends at the last blank line; signature lines are never empty.
  const size_t blank = signed_note.rfind("\n\n");
  if (blank == std::string_view::npos) return bad("no blank line before the signatures");
  const std::string_view text = signed_note.substr(0, blank + 1);
  std::string_view sigs = signed_note.substr(blank + 2);
  if (sigs.empty()) return bad("no signature lines");
  if (sigs.back() != '\n') return bad("signature line does not end with a newline");

  size_t count = 0;
  bool verified = false;
  while (!sigs.empty()) {
    const size_t eol = sigs.find('\n');  // present: sigs ends with '\n'
    std::string_view line = sigs.substr(0, eol);
    sigs.remove_prefix(eol + 1);
    if (++count > kMaxNoteSignatures) return bad("too many signatures");
    if (!ConsumePrefix(line, kEmDashSpace)) return bad("line is not a signature line");
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) return bad("signature line has no signature");
    const std::string_view name = line.substr(0, space);
    std::string sig;
    if (!IsValidKeyName(name)) return bad("signature line has an invalid key name");
    if (!DecodeBase64Strict(line.substr(space + 1), sig)) {
      return bad("signature is not canonical base64");
    }
    if (sig.size() < 5) return bad("signature too short");
    if (name != key.name || ReadBigEndian32(sig) != key.key_id) continue;  // someone else's
    // As Go's note package: one key signs a note once (a repeated line would let a note carry
    // a signature twice, which no signer produces).
    if (verified) return bad("two signatures by the same key");
    if (!crypto::Ed25519Verify(key.public_key, text, std::string_view(sig).substr(4))) {
      return absl::UnauthenticatedError("note signature by " + key.name + " does not verify");
    }
    verified = true;
  }
  if (!verified) return absl::UnauthenticatedError("note is not signed by " + key.name);
  return std::string(text);
}

}  // namespace custos::ledger

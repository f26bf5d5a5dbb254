// TOTP multi-factor authentication (RFC 6238 through liboath: HMAC-SHA-1, 6 digits, 30 s steps,
// DESIGN.md "TOTP"), enrolment material (otpauth URI, QR code as PNG and as terminal text), and
// the MfaService that keeps each principal's secret sealed in the control store with replay
// protection and a failure rate limit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "access/access.h"
#include "base/clock.h"
#include "base/random.h"
#include "crypto/key_provider.h"
#include "store/store.h"

namespace custos::access {

inline constexpr int64_t kTotpStepSeconds = 30;
inline constexpr int kTotpDigits = 6;

// RFC 4648 base32 without padding (upper case). Decode accepts lower case too and ignores
// trailing '='; kInvalidArgument for anything else.
std::string Base32Encode(std::string_view bytes);
absl::StatusOr<std::string> Base32Decode(std::string_view text);

// The RFC 6238 code of `secret` (raw bytes) for time step `step` (unix seconds / 30).
std::string TotpCode(std::string_view secret, int64_t step);

// Pure verifier: the step in [now_step - 1, now_step + 1] whose code equals `code`, provided it
// is above `last_used_step` (a step once used, or any earlier one, is refused). Compares in
// constant time. kPermissionDenied (mfa_required) for a malformed, wrong or replayed code.
absl::StatusOr<int64_t> VerifyTotp(std::string_view secret, std::string_view code, int64_t now_unix,
                                   int64_t last_used_step);

// otpauth://totp/Custos:<name>?secret=<base32>&issuer=Custos (name percent-encoded).
std::string OtpauthUri(std::string_view name, std::string_view secret_base32);

// The QR code of `text` (libqrencode, error correction M) as a PNG (libpng; 8 px modules, 4
// module quiet zone), and as terminal text with UTF-8 half blocks (two module rows a line).
absl::StatusOr<std::string> QrPng(std::string_view text);
absl::StatusOr<std::string> QrTerminal(std::string_view text);

struct TotpEnrollment {
  std::string secret;  // base32, no padding
  std::string otpauth_uri;
  std::string qr_png;  // raw PNG bytes
};

// Thread-safe. Secrets are sealed with the key provider: under the tenant's KEK for tenant
// principals, under the server key "mfa/provider" for provider staff.
class MfaService {
 public:
  // After `max_failures` wrong codes within `failure_window`, further verifications of that
  // principal answer 429 rate_limited until the window has passed (read on the injected clock).
  // The count is kept in the store, so it is one count across all instances.
  MfaService(store::ControlStore& store, crypto::KeyProvider& keys, Random& random,
             const Clock& clock, int max_failures = 5,
             absl::Duration failure_window = absl::Minutes(5));

  // New secret for `who`. Re-enrolling an enrolled principal needs a current code in
  // `current_code` (else mfa_required).
  absl::StatusOr<TotpEnrollment> Enroll(const Principal& who, std::string_view current_code);

  // OK iff `code` is a current, unused code of `who`; records its step as used. Errors: 403
  // mfa_required (not enrolled, missing, malformed, wrong or replayed code), 429 rate_limited.
  absl::Status Verify(const Principal& who, std::string_view code);

  absl::StatusOr<bool> IsEnrolled(std::string_view principal_id);

 private:
  std::string KeyIdFor(const Principal& who);

  store::ControlStore& store_;
  crypto::KeyProvider& keys_;
  Random& random_;
  const Clock& clock_;
  const int max_failures_;
  const int64_t failure_window_s_;
};

}  // namespace custos::access

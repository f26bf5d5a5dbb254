#include "access/totp.h"

#include <liboath/oath.h>
#include <png.h>
#include <qrencode.h>

#include <cctype>
#include <memory>
#include <mutex>

#include "base/errors.h"
#include "base/strings.h"
#include "crypto/crypto.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace custos::access {
namespace {

constexpr std::string_view kBase32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr size_t kSecretBytes = 20;  // 160 bits, RFC 4226's recommendation for HMAC-SHA-1
constexpr char kProviderMfaKey[] = "mfa/provider";

absl::Status MfaRequired(std::string_view why) {
  return WithApiCode(absl::PermissionDeniedError(StrCat("MFA required: ", why)), "mfa_required");
}

void InitOath() {
  static std::once_flag once;
  std::call_once(once, [] { oath_init(); });
}

std::string SecretAad(std::string_view principal_id) {
  return StrCat("custos totp-secret v1", std::string_view("\0", 1), principal_id);
}

using QrCodePtr = std::unique_ptr<QRcode, decltype(&QRcode_free)>;

absl::StatusOr<QrCodePtr> Encode(std::string_view text) {
  std::string owned(text);
  QRcode* qr = QRcode_encodeString(owned.c_str(), 0, QR_ECLEVEL_M, QR_MODE_8, 1);
  if (qr == nullptr) return absl::InternalError("QR encoding failed");
  return QrCodePtr(qr, &QRcode_free);
}

bool Dark(const QRcode& qr, int x, int y) {
  if (x < 0 || y < 0 || x >= qr.width || y >= qr.width) return false;
  return (qr.data[y * qr.width + x] & 1) != 0;
}

}  // namespace

std::string Base32Encode(std::string_view bytes) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kBase32Alphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kBase32Alphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

absl::StatusOr<std::string> Base32Decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    char u = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    size_t v = kBase32Alphabet.find(u);
    if (v == std::string_view::npos) return absl::InvalidArgumentError("malformed base32");
    buffer = (buffer << 5) | static_cast<uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

std::string TotpCode(std::string_view secret, int64_t step) {
  InitOath();
  char otp[kTotpDigits + 1] = {};
  int rc =
      oath_totp_generate(secret.data(), secret.size(), static_cast<time_t>(step * kTotpStepSeconds),
                         kTotpStepSeconds, 0, kTotpDigits, otp);
  if (rc != OATH_OK) return {};
  return std::string(otp, kTotpDigits);
}

absl::StatusOr<int64_t> VerifyTotp(std::string_view secret, std::string_view code, int64_t now_unix,
                                   int64_t last_used_step) {
  if (code.size() != kTotpDigits ||
      code.find_first_not_of("0123456789") != std::string_view::npos) {
    return MfaRequired("X-Custos-TOTP must be a 6-digit code");
  }
  const int64_t now_step = now_unix / kTotpStepSeconds;
  std::optional<int64_t> matched;
  for (int64_t step = now_step - 1; step <= now_step + 1; ++step) {
    std::string expected = TotpCode(secret, step);
    if (expected.size() == code.size() && crypto::ConstantTimeEquals(expected, code) && !matched) {
      matched = step;
    }
  }
  if (!matched) return MfaRequired("wrong TOTP code");
  if (*matched <= last_used_step) return MfaRequired("TOTP code already used");
  return *matched;
}

std::string OtpauthUri(std::string_view name, std::string_view secret_base32) {
  std::string label;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      label.push_back(static_cast<char>(c));
    } else {
      label += fmt::format("%{:02X}", c);
    }
  }
  return StrCat("otpauth://totp/Custos:", label, "?secret=", secret_base32, "&issuer=Custos");
}

absl::StatusOr<std::string> QrPng(std::string_view text) {
  auto qr = Encode(text);
  if (!qr.ok()) return qr.status();
  constexpr int kScale = 8, kQuiet = 4;
  const int modules = (*qr)->width + 2 * kQuiet;
  const int size = modules * kScale;

  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (png == nullptr) return absl::InternalError("png_create_write_struct failed");
  png_infop info = png_create_info_struct(png);
  struct Destroy {
    png_structp* png;
    png_infop* info;
    ~Destroy() { png_destroy_write_struct(png, info); }
  } destroy{&png, &info};
  if (info == nullptr) return absl::InternalError("png_create_info_struct failed");
  // libpng reports errors by longjmp; nothing with a destructor is created between here and the
  // end of the writes below except `row`, built before setjmp. (An error callback that throws
  // instead would unwind through libpng's C frames, which is not supported: setjmp is libpng's
  // documented way, hence the NOLINT.)
  std::vector<png_byte> row(static_cast<size_t>(size));
  if (setjmp(png_jmpbuf(png))) {  // NOLINT(cert-err52-cpp)
    return absl::InternalError("PNG encoding failed");
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t n) {
        static_cast<std::string*>(png_get_io_ptr(p))->append(reinterpret_cast<char*>(data), n);
      },
      [](png_structp) {});
  png_set_IHDR(png, info, size, size, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < size; ++y) {
    const int my = y / kScale - kQuiet;
    for (int x = 0; x < size; ++x) {
      row[x] = Dark(**qr, x / kScale - kQuiet, my) ? 0 : 255;
    }
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  return out;
}

absl::StatusOr<std::string> QrTerminal(std::string_view text) {
  auto qr = Encode(text);
  if (!qr.ok()) return qr.status();
  constexpr int kQuiet = 2;
  const int w = (*qr)->width;
  std::string out;
  // Light modules print as full blocks so the code reads dark-on-light on a dark terminal.
  for (int y = -kQuiet; y < w + kQuiet; y += 2) {
    for (int x = -kQuiet; x < w + kQuiet; ++x) {
      bool top = !Dark(**qr, x, y), bottom = !Dark(**qr, x, y + 1);
      out += top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ";
    }
    out += "\n";
  }
  return out;
}

MfaService::MfaService(store::ControlStore& store, crypto::KeyProvider& keys, Random& random,
                       const Clock& clock, int max_failures, absl::Duration failure_window)
    : store_(store),
      keys_(keys),
      random_(random),
      clock_(clock),
      max_failures_(max_failures),
      failure_window_s_(absl::ToInt64Seconds(failure_window)) {}

std::string MfaService::KeyIdFor(const Principal& who) {
  if (IsTenantRole(who.role)) return crypto::TenantKeyId(who.tenant_id);
  return kProviderMfaKey;
}

absl::StatusOr<bool> MfaService::IsEnrolled(std::string_view principal_id) {
  auto r = store_.GetMfa(principal_id);
  if (absl::IsNotFound(r.status())) return false;
  if (!r.ok()) return r.status();
  return true;
}

absl::StatusOr<TotpEnrollment> MfaService::Enroll(const Principal& who,
                                                  std::string_view current_code) {
  auto enrolled = IsEnrolled(who.id);
  if (!enrolled.ok()) return enrolled.status();
  if (*enrolled) {
    if (current_code.empty()) return MfaRequired("re-enrolling needs a current code");
    if (auto s = Verify(who, current_code); !s.ok()) return s;
  }
  const std::string key_id = KeyIdFor(who);
  if (!keys_.HasKey(key_id)) {
    if (auto s = keys_.CreateKey(key_id); !s.ok() && !absl::IsAlreadyExists(s)) return s;
  }
  std::string secret = random_.Bytes(kSecretBytes);
  auto sealed = keys_.Wrap(key_id, secret, SecretAad(who.id));
  if (!sealed.ok()) return sealed.status();
  store::MfaRecord r;
  r.principal_id = who.id;
  r.sealed_secret = *std::move(sealed);
  r.enrolled_at = absl::ToUnixSeconds(clock_.Now());
  if (auto s = store_.PutMfa(r); !s.ok()) return s;
  TotpEnrollment out;
  out.secret = Base32Encode(secret);
  out.otpauth_uri = OtpauthUri(who.name, out.secret);
  auto png = QrPng(out.otpauth_uri);
  if (!png.ok()) return png.status();
  out.qr_png = *std::move(png);
  return out;
}

absl::Status MfaService::Verify(const Principal& who, std::string_view code) {
  const int64_t now = absl::ToUnixSeconds(clock_.Now());
  auto r = store_.GetMfa(who.id);
  if (!r.ok() && !absl::IsNotFound(r.status())) return r.status();
  if (r.ok() && r->failure_count >= max_failures_ &&
      now - r->failure_window_start < failure_window_s_) {
    return RateLimited("too many wrong TOTP codes; try again later");
  }
  if (code.empty()) return MfaRequired("X-Custos-TOTP is missing");
  if (!r.ok()) return MfaRequired("the principal has not enrolled TOTP");
  // The attempt is taken before the code is checked, atomically: concurrent guesses (on any
  // instance) get no more than max_failures_ checks per window between them.
  if (auto s = store_.TakeTotpAttempt(who.id, now, failure_window_s_, max_failures_); !s.ok()) {
    if (absl::IsResourceExhausted(s)) {
      return RateLimited("too many wrong TOTP codes; try again later");
    }
    if (absl::IsNotFound(s)) return MfaRequired("the principal has not enrolled TOTP");
    return s;
  }
  auto secret = keys_.Unwrap(KeyIdFor(who), r->sealed_secret, SecretAad(who.id));
  if (!secret.ok()) return secret.status();
  auto step = VerifyTotp(*secret, code, now, r->last_step);
  if (!step.ok()) return step.status();  // a wrong code keeps its attempt
  if (auto s = store_.ConsumeTotpStep(who.id, *step); !s.ok()) {
    if (absl::IsAlreadyExists(s)) return MfaRequired("TOTP code already used");
    return s;
  }
  // A right code does not count against the limit (a store error is logged: it only leaves
  // one more wrong code counted).
  if (auto s = store_.ReturnTotpAttempt(who.id); !s.ok()) {
    spdlog::warn("principal={} TOTP attempt not given back: {}", who.id, s.ToString());
  }
  return absl::OkStatus();
}

}  // namespace custos::access

#include "access/audit.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/strings.h"
#include "crypto/crypto.h"

namespace custos::access {
namespace {

bool AllDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

int64_t UnixAt(int64_t year, int month) {
  return absl::ToUnixSeconds(
      absl::FromCivil(absl::CivilSecond(year, month, 1, 0, 0, 0), absl::UTCTimeZone()));
}

}  // namespace

absl::StatusOr<AuditPeriod> ParseAuditPeriod(std::string_view p) {
  auto bad = [] { return absl::InvalidArgumentError("period must be YYYY-MM, YYYYH1 or YYYYH2"); };
  if (p.size() < 6 || p.size() > 7 || !AllDigits(p.substr(0, 4))) return bad();
  int64_t year = 0;
  if (!absl::SimpleAtoi(AbslView(p.substr(0, 4)), &year) || year < 1970) return bad();
  AuditPeriod out{std::string(p), 0, 0};
  if (p.size() == 7 && p[4] == '-' && AllDigits(p.substr(5))) {
    int month = (p[5] - '0') * 10 + (p[6] - '0');
    if (month < 1 || month > 12) return bad();
    out.start = UnixAt(year, month);
    out.end = month == 12 ? UnixAt(year + 1, 1) : UnixAt(year, month + 1);
    return out;
  }
  if (p.size() == 6 && p[4] == 'H' && (p[5] == '1' || p[5] == '2')) {
    out.start = p[5] == '1' ? UnixAt(year, 1) : UnixAt(year, 7);
    out.end = p[5] == '1' ? UnixAt(year, 7) : UnixAt(year + 1, 1);
    return out;
  }
  return bad();
}

absl::StatusOr<double> ParseSampleRate(std::string_view rate) {
  double r = 0;
  bool shaped = !rate.empty() && rate.size() <= 32 &&
                rate.find_first_not_of("0123456789.") == std::string_view::npos;
  if (!shaped || !absl::SimpleAtod(AbslView(rate), &r) || !(r > 0) || r > 1) {
    return absl::InvalidArgumentError("rate must be a decimal number in (0, 1]");
  }
  return r;
}

bool IsSampled(std::string_view seed, std::string_view grant_id, double rate) {
  if (!(rate > 0)) return false;
  if (rate >= 1) return true;
  // rate = m × 2^(e-53) exactly, m a 53-bit integer; threshold = m × 2^(e-53+256), as 33
  // big-endian bytes (byte 0 is the 2^256 place).
  int e = 0;
  double f = std::frexp(rate, &e);  // rate = f × 2^e, f in [0.5, 1)
  auto m = static_cast<uint64_t>(std::ldexp(f, 53));
  int shift = e - 53 + 256;  // bit position of m's lowest bit
  unsigned char threshold[33] = {};
  for (int bit = 0; bit < 53; ++bit) {
    if (((m >> bit) & 1) == 0) continue;
    int pos = shift + bit;  // bit position in the 264-bit number
    if (pos < 0) continue;  // below 2^0: dropped (floor)
    threshold[32 - pos / 8] |= static_cast<unsigned char>(1u << (pos % 8));
  }
  std::string h = crypto::HmacSha256(seed, grant_id);
  unsigned char value[33] = {};
  for (int i = 0; i < 32; ++i) value[i + 1] = static_cast<unsigned char>(h[i]);
  for (int i = 0; i < 33; ++i) {
    if (value[i] != threshold[i]) return value[i] < threshold[i];
  }
  return false;  // equal is not below
}

}  // namespace custos::access

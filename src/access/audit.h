// Sampled audits of grants (DESIGN.md "Sampled audits"): the period arithmetic and the sampling
// PRF. Pure: the caller supplies the seed (the root hash of the ledger tree of size n+1, n the
// index of the first entry at or after the period's end), so the provider cannot choose the
// sample and anyone holding the tiles recomputes it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace custos::access {

struct AuditPeriod {
  std::string name;   // as given: YYYY-MM, YYYYH1 or YYYYH2
  int64_t start = 0;  // unix seconds, inclusive (00:00Z on the first day)
  int64_t end = 0;    // unix seconds, exclusive
};

// kInvalidArgument unless `period` is YYYY-MM (month 01..12) or YYYYH1 / YYYYH2, year 1970..9999.
absl::StatusOr<AuditPeriod> ParseAuditPeriod(std::string_view period);

// A rate in (0, 1] written as a decimal number; kInvalidArgument otherwise.
absl::StatusOr<double> ParseSampleRate(std::string_view rate);

// True iff HMAC-SHA256(seed, grant_id), read as a 256-bit big-endian number, is below
// rate × 2^256 (computed exactly from the double `rate`).
bool IsSampled(std::string_view seed, std::string_view grant_id, double rate);

}  // namespace custos::access

// The pure parsing of what a request brings: JSON bodies and query parameters, each into the
// type the components take. No I/O and no authentication here, so each can be fuzzed on its own
// (tests/fuzz) and the handlers in api.cc stay about who may do what. Every refusal is
// kInvalidArgument with a message naming the field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "access/access.h"
#include "access/workflow.h"
#include "ledger/ledger.h"
#include "store/store.h"
#include "tenants/tenants.h"

namespace custos::api::internal {

using Query = std::map<std::string, std::string>;

// POST /v1/principals. Shape only: access::CheckCanCreate validates the values.
absl::StatusOr<access::NewPrincipal> ParseNewPrincipal(std::string_view body);

// POST /v1/tenants. Shape only: tenants::ValidateSpec validates the values.
absl::StatusOr<tenants::TenantSpec> ParseTenantSpec(std::string_view body);

// POST /v1/access-requests. Shape only: access::ValidateNewRequest validates the values.
// `purpose` defaults to "support"; `duration_minutes` is required.
absl::StatusOr<access::NewAccessRequest> ParseNewAccessRequest(std::string_view body);

// POST /v1/audits/verdicts: grant, period (access::ParseAuditPeriod), verdict (compliant,
// non_compliant or inconclusive) and an optional note of at most 4000 bytes. Auditor and time
// are the caller's to fill in.
absl::StatusOr<store::AuditVerdictRecord> ParseAuditVerdict(std::string_view body);

// POST /v1/test/clock: the seconds to advance, 0 to ten years.
absl::StatusOr<int64_t> ParseAdvanceSeconds(std::string_view body);

// A decimal uint64 with no sign, spaces or leading zeros; kInvalidArgument if `name` is missing.
absl::StatusOr<uint64_t> QueryUint(const Query& query, const std::string& name);

// GET /v1/tenants/{id}/objects: prefix, limit and cursor (web-safe base64 of the last key).
struct ListQuery {
  std::string prefix;
  std::string start_after;
  int limit = 100;
};
absl::StatusOr<ListQuery> ParseListQuery(const Query& query);

// GET /v1/tenants/{id}/access-log: from, to (RFC 3339 or YYYY-MM-DD), role, kind, limit, cursor.
absl::StatusOr<ledger::AccessLogFilter> ParseAccessLogQuery(const Query& query);

}  // namespace custos::api::internal

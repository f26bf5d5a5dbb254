// Custos error codes on top of absl::Status.
//
// A component returns an absl::Status whose canonical code says what the caller should do next.
// Where the API contract names a more specific error code than the canonical one (e.g.
// "region_policy_violation" for a kPermissionDenied), the component attaches it with
// WithApiCode(); src/http maps statuses to HTTP in one place (http/errors.h), reading the code and
// the optional JSON details attached here.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace custos {

// Attaches an API error code (snake_case, from DESIGN.md) and optional details (a JSON object
// serialized as text) to `status`. Returns the same status for chaining.
absl::Status WithApiCode(absl::Status status, std::string_view api_code,
                         std::string_view details_json = "");

std::optional<std::string> ApiCodeOf(const absl::Status& status);
std::optional<std::string> ApiDetailsOf(const absl::Status& status);

// The API error code of `status`: the attached one, else its canonical code's default name
// ("not_found", "conflict", "unavailable", "internal", …). What the HTTP answer carries, and
// what outcome events in the ledger record.
std::string ErrorCodeOf(const absl::Status& status);

// Shorthands for the contract's specific errors.
absl::Status RegionPolicyViolation(std::string_view region, std::string_view rule,
                                   std::string_view reason);
absl::Status TooLarge(std::string_view message);
absl::Status Conflict(std::string_view message);     // 409 conflict (kAborted)
absl::Status RateLimited(std::string_view message);  // 429 (kResourceExhausted)

}  // namespace custos

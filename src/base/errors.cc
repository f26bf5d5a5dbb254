#include "base/errors.h"

#include "absl/strings/cord.h"
#include "base/strings.h"
#include "boost/json.hpp"

namespace custos {
namespace {
constexpr std::string_view kCodeUrl = "custos.dev/api-code";
constexpr std::string_view kDetailsUrl = "custos.dev/api-details";
}  // namespace

absl::Status WithApiCode(absl::Status status, std::string_view api_code,
                         std::string_view details_json) {
  status.SetPayload(AbslView(kCodeUrl), absl::Cord(AbslView(api_code)));
  if (!details_json.empty()) {
    status.SetPayload(AbslView(kDetailsUrl), absl::Cord(AbslView(details_json)));
  }
  return status;
}

std::optional<std::string> ApiCodeOf(const absl::Status& status) {
  auto p = status.GetPayload(AbslView(kCodeUrl));
  if (!p) return std::nullopt;
  return std::string(*p);
}

std::string ErrorCodeOf(const absl::Status& status) {
  if (auto api = ApiCodeOf(status)) return *api;
  switch (status.code()) {
    case absl::StatusCode::kOk: return "ok";
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return "invalid_argument";
    case absl::StatusCode::kUnauthenticated: return "unauthenticated";
    case absl::StatusCode::kPermissionDenied: return "permission_denied";
    case absl::StatusCode::kNotFound: return "not_found";
    case absl::StatusCode::kFailedPrecondition: return "failed_precondition";
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kAlreadyExists: return "conflict";
    case absl::StatusCode::kResourceExhausted: return "rate_limited";
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return "unavailable";
    default: return "internal";
  }
}

std::optional<std::string> ApiDetailsOf(const absl::Status& status) {
  auto p = status.GetPayload(AbslView(kDetailsUrl));
  if (!p) return std::nullopt;
  return std::string(*p);
}

absl::Status RegionPolicyViolation(std::string_view region, std::string_view rule,
                                   std::string_view reason) {
  boost::json::object details{{"region", region}, {"rule", rule}, {"reason", reason}};
  std::string message = "region " + std::string(region) + " refuses the tenant (" +
                        std::string(rule) + "): " + std::string(reason);
  return WithApiCode(absl::PermissionDeniedError(message), "region_policy_violation",
                     boost::json::serialize(details));
}

absl::Status TooLarge(std::string_view message) {
  return WithApiCode(absl::OutOfRangeError(AbslView(message)), "too_large");
}

absl::Status Conflict(std::string_view message) {
  return WithApiCode(absl::AbortedError(AbslView(message)), "conflict");
}

absl::Status RateLimited(std::string_view message) {
  return WithApiCode(absl::ResourceExhaustedError(AbslView(message)), "rate_limited");
}

}  // namespace custos

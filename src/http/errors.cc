// The one mapping from absl::Status to HTTP status and error body.
#include "base/errors.h"
#include "absl/strings/ascii.h"
#include "base/strings.h"
#include "base/utf8.h"
#include "boost/json.hpp"
#include "http/http.h"

namespace custos::http {
namespace {

struct Mapping {
  int status;
  std::string_view code;
};

// The HTTP status of a canonical code (its API code name: base/errors.h ErrorCodeOf).
int DefaultStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kAlreadyExists: return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return 503;
    default: return 500;
  }
}

// API codes that carry their own HTTP status.
int StatusForApiCode(std::string_view code, int fallback) {
  static constexpr Mapping kByCode[] = {
      {413, "too_large"},          {403, "region_policy_violation"},
      {403, "mfa_required"},       {403, "purpose_not_allowed"},
      {429, "rate_limited"},       {409, "conflict"},
      {408, "request_timeout"},    {431, "headers_too_large"},
      {405, "method_not_allowed"}, {409, "failed_precondition"},
  };
  for (const auto& m : kByCode) {
    if (m.code == code) return m.status;
  }
  return fallback;
}

}  // namespace

int HttpStatusOf(const absl::Status& status) {
  const int status_code = DefaultStatus(status.code());
  if (auto api = ApiCodeOf(status)) return StatusForApiCode(*api, status_code);
  return status_code;
}

Response ErrorResponse(const absl::Status& status) {
  const std::string code = ErrorCodeOf(status);
  const int http_status = HttpStatusOf(status);
  // Internal errors are bugs: their text may name internals, so it stays in the server log.
  // Messages may quote what the client sent: the body stays valid UTF-8 JSON whatever it was.
  std::string message =
      http_status == 500 ? "internal error" : Utf8OrReplaced(StdView(status.message()));
  boost::json::object error{{"code", code}, {"message", message}};
  boost::json::value details = boost::json::object{};
  if (auto d = ApiDetailsOf(status)) {
    boost::system::error_code ec;
    auto parsed = boost::json::parse(*d, ec);
    if (!ec && parsed.is_object()) details = std::move(parsed);
  }
  std::string allow;  // a 405 names the methods the route has (RFC 9110 section 15.5.6)
  if (http_status == 405 && details.is_object()) {
    if (const auto* methods = details.as_object().if_contains("allow");
        methods && methods->is_array()) {
      for (const auto& m : methods->as_array()) {
        if (!m.is_string()) continue;
        if (!allow.empty()) allow += ", ";
        allow += m.as_string();
      }
    }
  }
  error["details"] = std::move(details);
  Response r = Response::Json(
      http_status, boost::json::serialize(boost::json::object{{"error", std::move(error)}}));
  if (http_status == 503 || http_status == 429) r.headers.emplace_back("Retry-After", "1");
  if (!allow.empty()) r.headers.emplace_back("Allow", std::move(allow));
  return r;
}

std::string Request::Header(std::string_view name) const {
  auto it = headers.find(std::string(name));
  return it == headers.end() ? std::string() : it->second;
}

Response Response::Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::NoContent() {
  Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

}  // namespace custos::http

// What every route handler of api/ shares: JSON answers and the wrapper that turns a handler's
// absl::Status into the DESIGN.md error shape (through http::ErrorResponse, the one mapping).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "access/access.h"
#include "boost/json.hpp"
#include "http/http.h"
#include "spdlog/spdlog.h"

namespace custos::api::internal {

inline boost::json::array ToJson(const std::vector<std::string>& v) {
  boost::json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

inline http::Response JsonResponse(int status, const boost::json::value& v) {
  return http::Response::Json(status, boost::json::serialize(v));
}

// The principal whose bearer token `req` carries (the scheme name is case-insensitive, RFC 9110
// section 11.1). kUnauthenticated, counted in `metrics`, if there is none or it is not valid.
inline absl::StatusOr<access::Principal> AuthenticateBearer(const http::Request& req,
                                                            access::PrincipalService& principals,
                                                            http::Metrics& metrics) {
  std::string auth = req.Header("authorization");
  if (auth.size() < 7 || !absl::EqualsIgnoreCase(auth.substr(0, 7), "bearer ")) {
    metrics.CountUnauthenticated();
    return absl::UnauthenticatedError("missing bearer token");
  }
  auto p = principals.Authenticate(std::string_view(auth).substr(7));
  if (absl::IsUnauthenticated(p.status())) metrics.CountUnauthenticated();
  return p;
}

// A handler's result as the answer: an error becomes the error shape, and a 5xx (a bug or an
// outage) is logged with the route.
inline http::Response ToResponse(const http::Request& req, absl::StatusOr<http::Response> r) {
  if (r.ok()) return *std::move(r);
  int status = http::HttpStatusOf(r.status());
  if (status >= 500) {
    spdlog::error("route={} status={} error={}", req.route, status, r.status().ToString());
  }
  return http::ErrorResponse(r.status());
}

// Wraps a handler returning absl::StatusOr<Response> (see ToResponse).
template <typename Fn>
http::Handler Handle(Fn fn) {
  return [fn = std::move(fn)](http::Request& req) -> http::Response {
    return ToResponse(req, fn(req));
  };
}

}  // namespace custos::api::internal

// `custos access …` and `custos mfa enroll`: the access workflow from a terminal, over HTTP.
#include <cctype>
#include <iostream>

#include "absl/strings/escaping.h"
#include "access/totp.h"
#include "base/strings.h"
#include "boost/json.hpp"
#include "cli/cli.h"
#include "cli/internal/checkpoint_state.h"
#include "cli/internal/http_client.h"
#include "fmt/format.h"

namespace custos::cli {
namespace {

namespace json = boost::json;
using internal::HttpClient;
using internal::HttpResponse;

std::string QueryEscape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// The server's answer: its JSON on success, its error shape as a status otherwise.
absl::StatusOr<json::value> Answer(const absl::StatusOr<HttpResponse>& r) {
  if (!r.ok()) return r.status();
  boost::system::error_code ec;
  json::value v = json::parse(r->body, ec);
  if (r->status >= 200 && r->status < 300) {
    if (ec) return absl::DataLossError("the server's answer is not JSON");
    return v;
  }
  std::string code = "error", message = r->body;
  if (!ec && v.is_object()) {
    if (const auto* e = v.as_object().if_contains("error"); e && e->is_object()) {
      if (const auto* c = e->as_object().if_contains("code"); c && c->is_string()) {
        code = std::string(c->as_string());
      }
      if (const auto* m = e->as_object().if_contains("message"); m && m->is_string()) {
        message = std::string(m->as_string());
      }
    }
  }
  return absl::FailedPreconditionError(StrCat("HTTP ", r->status, " ", code, ": ", message));
}

absl::StatusOr<json::value> RunAccessAction(const AccessOptions& o) {
  auto token = internal::ValueOrFile(o.token, "--token");
  if (!token.ok()) return token.status();
  auto client = HttpClient::Create(o.url, {absl::Milliseconds(o.timeout_ms)});
  if (!client.ok()) return client.status();
  HttpClient& c = **client;
  if (o.action == "list") {
    std::string target = "/v1/access-requests";
    std::string sep = "?";
    if (!o.tenant_id.empty()) {
      target += sep + "tenant_id=" + QueryEscape(o.tenant_id);
      sep = "&";
    }
    if (!o.state.empty()) target += sep + "state=" + QueryEscape(o.state);
    return Answer(c.Get(target, *token));
  }
  if (o.action == "request") {
    json::array ops;
    for (const auto& op : o.operations) ops.emplace_back(op);
    json::object body{{"tenant_id", o.tenant_id}, {"operations", std::move(ops)},
                      {"prefix", o.prefix},       {"justification", o.justification},
                      {"ticket", o.ticket},       {"duration_minutes", o.duration_minutes}};
    if (!o.purpose.empty()) body["purpose"] = o.purpose;
    return Answer(c.Post("/v1/access-requests", json::serialize(body), *token));
  }
  if (o.id.empty()) return absl::InvalidArgumentError(StrCat(o.action, " needs --id"));
  std::vector<std::pair<std::string, std::string>> headers;
  if (!o.totp.empty()) headers.emplace_back("X-Custos-TOTP", o.totp);
  return Answer(c.Post(StrCat("/v1/access-requests/", QueryEscape(o.id), "/", o.action), "", *token,
                       headers));
}

}  // namespace

int RunAccess(const AccessOptions& o) {
  auto r = RunAccessAction(o);
  if (!r.ok()) {
    std::cerr << "custos access " << o.action << ": " << r.status().message() << "\n";
    return 1;
  }
  std::cout << json::serialize(*r) << "\n";
  return 0;
}

int RunMfaEnroll(const MfaEnrollOptions& o) {
  auto run = [&]() -> absl::StatusOr<json::object> {
    auto token = internal::ValueOrFile(o.token, "--token");
    if (!token.ok()) return token.status();
    auto client = HttpClient::Create(o.url, {absl::Milliseconds(o.timeout_ms)});
    if (!client.ok()) return client.status();
    auto me = Answer((*client)->Get("/v1/principals/me", *token));
    if (!me.ok()) return me.status();
    if (!me->is_object() || !me->as_object().contains("id")) {
      return absl::DataLossError("GET /v1/principals/me has no id");
    }
    std::string id(me->as_object().at("id").as_string());
    std::vector<std::pair<std::string, std::string>> headers;
    if (!o.totp.empty()) headers.emplace_back("X-Custos-TOTP", o.totp);
    auto e = Answer((*client)->Post(StrCat("/v1/principals/", QueryEscape(id), "/mfa/totp"), "",
                                    *token, headers));
    if (!e.ok()) return e.status();
    if (!e->is_object()) return absl::DataLossError("enrolment answer is not an object");
    return e->as_object();
  };
  auto e = run();
  if (!e.ok()) {
    std::cerr << "custos mfa enroll: " << e.status().message() << "\n";
    return 1;
  }
  const auto* uri = e->if_contains("otpauth_uri");
  const auto* secret = e->if_contains("secret");
  if (uri == nullptr || !uri->is_string() || secret == nullptr || !secret->is_string()) {
    std::cerr << "custos mfa enroll: the answer lacks secret or otpauth_uri\n";
    return 1;
  }
  auto qr = access::QrTerminal(std::string_view(uri->as_string()));
  if (qr.ok()) std::cout << *qr;
  std::cout << "secret: " << std::string_view(secret->as_string()) << "\n"
            << "otpauth_uri: " << std::string_view(uri->as_string()) << "\n";
  return 0;
}

}  // namespace custos::cli

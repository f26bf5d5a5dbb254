#include "api/api.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "base/strings.h"
#include "absl/time/time.h"
#include "api/internal/json_body.h"
#include "base/errors.h"
#include "boost/json.hpp"
#include "spdlog/spdlog.h"

namespace custos::api {
namespace {

using access::Principal;
using http::Request;
using http::Response;
using internal::JsonBody;
namespace json = boost::json;

constexpr int kDefaultListLimit = 100;

std::string Rfc3339(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

std::string Rfc3339Millis(int64_t unix_millis) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(unix_millis),
                          absl::UTCTimeZone());
}

json::array ToJson(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

Response JsonResponse(int status, const json::value& v) {
  return Response::Json(status, json::serialize(v));
}

// Wraps a handler so that a Status return becomes the error shape.
template <typename Fn>
http::Handler Handle(Fn fn) {
  return [fn = std::move(fn)](Request& req) -> Response {
    absl::StatusOr<Response> r = fn(req);
    if (!r.ok()) {
      int status = http::HttpStatusOf(r.status());
      if (status >= 500) {
        spdlog::error("route={} status={} error={}", req.route, status, r.status().ToString());
      }
      return http::ErrorResponse(r.status());
    }
    return *std::move(r);
  };
}

class Api {
 public:
  explicit Api(const Services& s) : s_(s) {}

  absl::StatusOr<Principal> Authenticate(const Request& req) const {
    std::string auth = req.Header("authorization");
    if (!absl::StartsWith(auth, "Bearer ")) {
      s_.metrics->CountUnauthenticated();
      return absl::UnauthenticatedError("missing bearer token");
    }
    auto p = s_.principals->Authenticate(std::string_view(auth).substr(7));
    if (absl::IsUnauthenticated(p.status())) s_.metrics->CountUnauthenticated();
    return p;
  }

  json::object RegionJson(const residency::Region& r) const {
    json::object personnel;
    if (!r.restrictions.personnel.citizenship.empty()) {
      personnel["citizenship"] = ToJson(r.restrictions.personnel.citizenship);
    }
    if (r.restrictions.personnel.screened) personnel["screened"] = true;
    return json::object{
        {"id", r.id},
        {"name", r.name},
        {"geography", r.geography},
        {"country", r.country},
        {"lat", r.lat},
        {"lon", r.lon},
        {"operated_by", r.operated_by},
        {"due_diligence", r.due_diligence},
        {"restrictions",
         json::object{{"excluded_services", ToJson(r.restrictions.excluded_services)},
                      {"excluded_technologies", ToJson(r.restrictions.excluded_technologies)},
                      {"excluded_customer_types", ToJson(r.restrictions.excluded_customer_types)},
                      {"personnel", std::move(personnel)}}},
    };
  }

  absl::StatusOr<Response> Regions(Request&) const {
    json::array regions;
    for (const auto& r : s_.catalog->regions()) regions.push_back(RegionJson(r));
    return JsonResponse(200, json::object{{"regions", std::move(regions)}});
  }

  static json::object PrincipalJson(const Principal& p) {
    json::object o{{"id", p.id},
                   {"name", p.name},
                   {"role", access::RoleName(p.role)},
                   {"mfa_enrolled", p.mfa_enrolled}};
    if (!p.tenant_id.empty()) o["tenant_id"] = p.tenant_id;
    if (p.expires_at) o["expires_at"] = Rfc3339(*p.expires_at);
    return o;
  }

  absl::StatusOr<Response> CreatePrincipal(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    auto body = JsonBody::Parse(
        req.body, {"name", "role", "tenant_id", "attributes", "expires_in_days"});
    if (!body.ok()) return body.status();
    access::NewPrincipal n;
    auto name = body->String("name");
    if (!name.ok()) return name.status();
    n.name = *name;
    auto role_name = body->String("role");
    if (!role_name.ok()) return role_name.status();
    auto role = access::ParseRole(*role_name);
    if (!role.ok()) return role.status();
    n.role = *role;
    auto tenant_id = body->OptString("tenant_id");
    if (!tenant_id.ok()) return tenant_id.status();
    n.tenant_id = tenant_id->value_or("");
    if (const json::value* a = body->Get("attributes")) {
      auto attrs = JsonBody::FromValue(*a, "attributes", {"employer", "citizenship", "screened"});
      if (!attrs.ok()) return attrs.status();
      auto employer = attrs->OptString("employer");
      if (!employer.ok()) return employer.status();
      if (employer->has_value()) n.attributes.employer = **employer;
      auto citizenship = attrs->StringList("citizenship", /*single_string_ok=*/true);
      if (!citizenship.ok()) return citizenship.status();
      n.attributes.citizenship = *citizenship;
      auto screened = attrs->Bool("screened", false);
      if (!screened.ok()) return screened.status();
      n.attributes.screened = *screened;
    }
    auto days = body->OptInt("expires_in_days", 1, 3650);
    if (!days.ok()) return days.status();
    if (days->has_value()) n.expires_in_days = static_cast<int>(**days);
    if (auto s = access::CheckCanCreate(*who, n); !s.ok()) return s;
    if (!n.tenant_id.empty()) {
      auto t = s_.tenants->Get(n.tenant_id);
      if (!t.ok()) return t.status();
    }
    auto issued = s_.principals->Create(n);
    if (!issued.ok()) return issued.status();
    json::object o = PrincipalJson(issued->principal);
    o["token"] = issued->token;
    return JsonResponse(201, o);
  }

  absl::StatusOr<Response> Me(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    return JsonResponse(200, PrincipalJson(*who));
  }

  absl::StatusOr<Response> CreateTenant(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (who->role != access::Role::kAdmin) {
      return absl::PermissionDeniedError("only the provider admin creates tenants");
    }
    auto body = JsonBody::Parse(req.body, {"name", "customer_type", "geography", "home_region",
                                           "services", "technologies", "lockbox",
                                           "retention_days", "allow_single_region"});
    if (!body.ok()) return body.status();
    tenants::TenantSpec spec;
    auto name = body->String("name");
    if (!name.ok()) return name.status();
    spec.name = *name;
    auto customer_type = body->String("customer_type");
    if (!customer_type.ok()) return customer_type.status();
    spec.customer_type = *customer_type;
    auto geography = body->String("geography");
    if (!geography.ok()) return geography.status();
    spec.geography = *geography;
    auto home = body->OptString("home_region");
    if (!home.ok()) return home.status();
    spec.home_region = *home;
    auto services = body->StringList("services");
    if (!services.ok()) return services.status();
    spec.services = *services;
    auto technologies = body->StringList("technologies");
    if (!technologies.ok()) return technologies.status();
    spec.technologies = *technologies;
    auto lockbox = body->Bool("lockbox", false);
    if (!lockbox.ok()) return lockbox.status();
    spec.lockbox = *lockbox;
    auto retention = body->Int("retention_days", 90, 0, 3650);
    if (!retention.ok()) return retention.status();
    spec.retention_days = static_cast<int>(*retention);
    auto single = body->Bool("allow_single_region", false);
    if (!single.ok()) return single.status();
    spec.allow_single_region = *single;

    auto tenant = s_.tenants->Create(spec);
    if (!tenant.ok()) return tenant.status();
    access::NewPrincipal admin;
    admin.name = StrCat(spec.name, " admin");
    admin.role = access::Role::kTenantAdmin;
    admin.tenant_id = tenant->id;
    auto issued = s_.principals->Create(admin);
    if (!issued.ok()) return issued.status();
    spdlog::info("tenant created tenant={} home={} replica={}", tenant->id, tenant->home_region,
                 tenant->replica_region);
    json::object o{{"id", tenant->id},
                   {"home_region", tenant->home_region},
                   {"admin_token", issued->token},
                   {"admin_principal_id", issued->principal.id}};
    if (tenant->replica_region.empty()) {
      o["replica_region"] = nullptr;
    } else {
      o["replica_region"] = tenant->replica_region;
    }
    return JsonResponse(201, o);
  }

  absl::StatusOr<Response> GetTenant(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    const std::string& id = req.params["id"];
    if (auto s = access::CheckCanViewTenant(*who, id); !s.ok()) return s;
    auto t = s_.tenants->Get(id);
    if (!t.ok()) return t.status();
    auto location = s_.objects->Location(t->cells());
    if (!location.ok()) return location.status();
    json::array loc;
    for (const auto& u : *location) {
      loc.push_back(json::object{
          {"region", u.region}, {"role", u.role}, {"objects", u.objects}, {"bytes", u.bytes}});
    }
    json::object o{{"id", t->id},
                   {"name", t->name},
                   {"customer_type", t->customer_type},
                   {"geography", t->geography},
                   {"home_region", t->home_region},
                   {"services", ToJson(t->services)},
                   {"technologies", ToJson(t->technologies)},
                   {"lockbox", t->lockbox},
                   {"retention_days", t->retention_days},
                   {"state", t->state},
                   {"created_at", Rfc3339(t->created_at)},
                   {"location", std::move(loc)}};
    if (t->replica_region.empty()) {
      o["replica_region"] = nullptr;
    } else {
      o["replica_region"] = t->replica_region;
    }
    return JsonResponse(200, o);
  }

  // Authenticates, checks the caller may perform `op` on the tenant's data with the requested
  // purpose, and returns the tenant.
  absl::StatusOr<tenants::Tenant> AuthorizeData(const Request& req,
                                                access::DataOperation op) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    const std::string& id = req.params.at("id");
    if (auto s = access::CheckDataAccessByRole(*who, id, op); !s.ok()) return s;
    std::string purpose = req.Header("x-custos-purpose");
    if (purpose.empty()) purpose = "service_delivery";
    if (auto s = CheckPurpose(purpose); !s.ok()) return s;
    return s_.tenants->Get(id);
  }

  static absl::Status CheckPurpose(std::string_view purpose) {
    for (std::string_view p : {"service_delivery", "support", "troubleshooting", "security"}) {
      if (p == purpose) return absl::OkStatus();
    }
    for (std::string_view p : {"advertising", "marketing", "profiling"}) {
      if (p == purpose) {
        return WithApiCode(
            absl::PermissionDeniedError(StrCat(
                "purpose ", purpose, " is not allowed without the customer's recorded consent")),
            "purpose_not_allowed");
      }
    }
    return absl::InvalidArgumentError("unknown X-Custos-Purpose");
  }

  absl::StatusOr<Response> PutObject(Request& req) const {
    auto t = AuthorizeData(req, access::DataOperation::kWrite);
    if (!t.ok()) return t.status();
    const std::string& key = req.params["key"];
    auto r = s_.objects->Put(t->cells(), key, req.body, req.Header("content-type"));
    if (!r.ok()) return r.status();
    return JsonResponse(r->created ? 201 : 200, json::object{{"key", key},
                                                             {"size", r->size},
                                                             {"sha256", r->sha256_hex},
                                                             {"version", r->version}});
  }

  absl::StatusOr<Response> GetObject(Request& req) const {
    auto t = AuthorizeData(req, access::DataOperation::kRead);
    if (!t.ok()) return t.status();
    auto o = s_.objects->Get(t->cells(), req.params["key"]);
    if (!o.ok()) return o.status();
    Response r;
    r.status = 200;
    r.content_type = o->content_type;
    r.body = std::move(o->bytes);
    r.headers.emplace_back("ETag", StrCat("\"", o->sha256_hex, "\""));
    r.headers.emplace_back("X-Custos-Version", StrCat(o->version));
    return r;
  }

  absl::StatusOr<Response> DeleteObject(Request& req) const {
    auto t = AuthorizeData(req, access::DataOperation::kDelete);
    if (!t.ok()) return t.status();
    if (auto s = s_.objects->Delete(t->cells(), req.params["key"]); !s.ok()) return s;
    return Response::NoContent();
  }

  absl::StatusOr<Response> ListObjects(Request& req) const {
    auto t = AuthorizeData(req, access::DataOperation::kList);
    if (!t.ok()) return t.status();
    std::string prefix = req.query["prefix"];
    if (prefix.size() > data::kMaxKeyBytes) {
      return absl::InvalidArgumentError("prefix is longer than 1024 bytes");
    }
    for (char c : prefix) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return absl::InvalidArgumentError("prefix contains a control character");
      }
    }
    int limit = kDefaultListLimit;
    if (auto it = req.query.find("limit"); it != req.query.end()) {
      if (!absl::SimpleAtoi(it->second, &limit) || limit < 1 || limit > 1000) {
        return absl::InvalidArgumentError("limit must be an integer from 1 to 1000");
      }
    }
    std::string start_after;
    if (auto it = req.query.find("cursor"); it != req.query.end() && !it->second.empty()) {
      if (!absl::WebSafeBase64Unescape(it->second, &start_after) ||
          !data::ValidateObjectKey(start_after).ok()) {
        return absl::InvalidArgumentError("malformed cursor");
      }
    }
    auto page = s_.objects->List(t->cells(), prefix, start_after, limit);
    if (!page.ok()) return page.status();
    json::array objects;
    for (const auto& o : page->objects) {
      objects.push_back(json::object{{"key", o.key},
                                     {"size", o.size},
                                     {"sha256", o.sha256_hex},
                                     {"updated_at", Rfc3339Millis(o.updated_at_ms)}});
    }
    json::object out{{"objects", std::move(objects)}};
    if (page->next_start_after) {
      out["next_cursor"] = absl::WebSafeBase64Escape(*page->next_start_after);
    } else {
      out["next_cursor"] = nullptr;
    }
    return JsonResponse(200, out);
  }

  absl::StatusOr<Response> GetClock(Request&) const {
    return JsonResponse(200, json::object{{"now", absl::ToUnixSeconds(s_.fake_clock->Now())}});
  }

  absl::StatusOr<Response> AdvanceClock(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (who->role != access::Role::kAdmin) {
      return absl::PermissionDeniedError("only the admin moves the test clock");
    }
    auto body = JsonBody::Parse(req.body, {"advance_seconds"});
    if (!body.ok()) return body.status();
    auto seconds = body->OptInt("advance_seconds", 0, int64_t{10} * 365 * 86400);
    if (!seconds.ok()) return seconds.status();
    if (!seconds->has_value()) return absl::InvalidArgumentError("missing field 'advance_seconds'");
    s_.fake_clock->Advance(**seconds);
    return JsonResponse(200, json::object{{"now", absl::ToUnixSeconds(s_.fake_clock->Now())}});
  }

 private:
  const Services s_;  // a copy: the pointers inside outlive the router
};

}  // namespace

void RegisterRoutes(http::Router& router, const Services& services) {
  auto api = std::make_shared<Api>(services);
  auto bind = [api](auto method) {
    return Handle([api, method](Request& req) { return ((*api).*method)(req); });
  };
  router.Add("GET", "/healthz", [](Request&) {
    return Response::Json(200, R"({"status":"ok"})");
  });
  router.Add("GET", "/metrics", [m = services.metrics](Request&) {
    Response r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = m->Render();
    return r;
  });
  router.Add("GET", "/v1/regions", bind(&Api::Regions));
  router.Add("POST", "/v1/principals", bind(&Api::CreatePrincipal));
  router.Add("GET", "/v1/principals/me", bind(&Api::Me));
  router.Add("POST", "/v1/tenants", bind(&Api::CreateTenant));
  router.Add("GET", "/v1/tenants/{id}", bind(&Api::GetTenant));
  router.Add("GET", "/v1/tenants/{id}/objects", bind(&Api::ListObjects));
  http::RouteOptions object_body{services.objects->options().max_object_bytes};
  router.Add("PUT", "/v1/tenants/{id}/objects/{key...}", bind(&Api::PutObject), object_body);
  router.Add("GET", "/v1/tenants/{id}/objects/{key...}", bind(&Api::GetObject));
  router.Add("DELETE", "/v1/tenants/{id}/objects/{key...}", bind(&Api::DeleteObject));
  if (services.fake_clock != nullptr) {
    router.Add("GET", "/v1/test/clock", bind(&Api::GetClock));
    router.Add("POST", "/v1/test/clock", bind(&Api::AdvanceClock));
  }
}

}  // namespace custos::api

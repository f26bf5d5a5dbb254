#include "api/internal/access_routes.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "access/audit.h"
#include "api/internal/handlers.h"
#include "api/internal/json_body.h"
#include "api/internal/requests.h"
#include "base/errors.h"
#include "base/strings.h"
#include "boost/json.hpp"
#include "ledger/tiles.h"
#include "spdlog/spdlog.h"

namespace custos::api::internal {
namespace {

using access::Principal;
using access::RequestAction;
using access::Role;
using http::Request;
using http::Response;
namespace json = boost::json;

std::string Rfc3339(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

constexpr std::string_view kCommercialPurposes[] = {"advertising", "marketing", "profiling"};

class AccessApi {
 public:
  explicit AccessApi(const Services& s) : s_(s) {}

  absl::StatusOr<Principal> Authenticate(const Request& req) const {
    return internal::AuthenticateBearer(req, *s_.principals, *s_.metrics);
  }

  absl::StatusOr<Response> EnrollTotp(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (who->id != req.params["id"]) {
      return absl::PermissionDeniedError("a principal enrols its own TOTP only");
    }
    if (auto s = CheckNoBody(req.body); !s.ok()) return s;
    auto e = s_.mfa->Enroll(*who, req.Header("x-custos-totp"));
    if (!e.ok()) return e.status();
    return JsonResponse(200, json::object{{"secret", e->secret},
                                          {"otpauth_uri", e->otpauth_uri},
                                          {"qr_png_base64", absl::Base64Escape(e->qr_png)}});
  }

  absl::StatusOr<Response> CreateRequest(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (who->role != Role::kOperator && who->role != Role::kManager) {
      return absl::PermissionDeniedError("only operators and managers file access requests");
    }
    auto parsed = ParseNewAccessRequest(req.body);
    if (!parsed.ok()) return parsed.status();
    const access::NewAccessRequest& n = *parsed;
    if (auto s = access::ValidateNewRequest(n, s_.requests->options()); !s.ok()) return s;
    auto tenant = s_.tenants->Get(n.tenant_id);
    if (!tenant.ok()) return tenant.status();
    const residency::Region* home = s_.catalog->Find(tenant->home_region);
    if (home == nullptr) return absl::InternalError("tenant's home region is not in the catalog");
    access::RegionPersonnel personnel{home->id, home->operated_by,
                                      home->restrictions.personnel.citizenship,
                                      home->restrictions.personnel.screened};
    auto r = s_.requests->Create(*who, n, tenant->lockbox, personnel);
    if (!r.ok()) return r.status();
    return JsonResponse(201, AccessRequestJson(*r));
  }

  absl::StatusOr<Response> GetRequest(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    auto r = s_.requests->Get(req.params["id"]);
    if (!r.ok()) return r.status();
    if (auto s = access::CheckCanView(*r, *who); !s.ok()) return s;
    return JsonResponse(200, AccessRequestJson(*r));
  }

  absl::StatusOr<Response> ListRequests(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    store::AccessRequestFilter f;
    if (auto it = req.query.find("tenant_id"); it != req.query.end()) f.tenant_id = it->second;
    if (auto it = req.query.find("state"); it != req.query.end()) {
      auto state = access::ParseState(it->second);
      if (!state.ok()) return state.status();
      f.state = it->second;
    }
    switch (who->role) {
      case Role::kManager:
      case Role::kAuditor:
      case Role::kAdmin: break;
      case Role::kOperator: f.requester = who->id; break;
      case Role::kTenantAdmin:
        if (f.tenant_id && *f.tenant_id != who->tenant_id) {
          return absl::PermissionDeniedError("a tenant_admin lists its own tenant's requests");
        }
        f.tenant_id = who->tenant_id;
        break;
      default: return absl::PermissionDeniedError("this role does not read access requests");
    }
    auto list = s_.requests->List(f);
    if (!list.ok()) return list.status();
    json::array out;
    for (const auto& r : *list) out.push_back(AccessRequestJson(r));
    return JsonResponse(200, json::object{{"requests", std::move(out)}});
  }

  absl::StatusOr<Response> Act(Request& req, RequestAction action) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (auto s = CheckNoBody(req.body); !s.ok()) return s;
    const std::string& id = req.params["id"];
    auto current = s_.requests->Get(id);
    if (!current.ok()) return current.status();
    if (auto s = access::CheckCanView(*current, *who); !s.ok()) return s;
    const bool needs_code = action == RequestAction::kApprove || action == RequestAction::kDeny ||
                            action == RequestAction::kActivate;
    auto r = s_.requests->Act(*who, id, action, [&]() -> absl::Status {
      if (!needs_code) return absl::OkStatus();
      return s_.mfa->Verify(*who, req.Header("x-custos-totp"));
    });
    if (!r.ok()) return r.status();
    json::object out = AccessRequestJson(*r);
    if (action == RequestAction::kActivate) {
      return JsonResponse(200, json::object{{"grant_id", r->grant_id},
                                            {"expires_at", Rfc3339(*r->expires_at)},
                                            {"request", std::move(out)}});
    }
    return JsonResponse(200, out);
  }

  absl::StatusOr<Response> SetConsent(Request& req, bool granted) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    const std::string& tenant_id = req.params["id"];
    const std::string& purpose = req.params["purpose"];
    if (who->role != Role::kTenantAdmin || who->tenant_id != tenant_id) {
      return absl::PermissionDeniedError("only the tenant's tenant_admin records consent");
    }
    if (std::find(std::begin(kCommercialPurposes), std::end(kCommercialPurposes), purpose) ==
        std::end(kCommercialPurposes)) {
      return absl::InvalidArgumentError(
          "consent is recorded for advertising, marketing or profiling only");
    }
    if (auto s = CheckNoBody(req.body); !s.ok()) return s;
    auto tenant = s_.tenants->Get(tenant_id);
    if (!tenant.ok()) return tenant.status();
    if (auto s = s_.mfa->Verify(*who, req.Header("x-custos-totp")); !s.ok()) return s;
    const int64_t now = absl::ToUnixSeconds(s_.clock->Now());
    auto logged = s_.events->Record(
        {granted ? "consent.grant" : "consent.revoke", tenant_id,
         json::object{
             {"actor", who->id}, {"role", access::RoleName(who->role)}, {"purpose", purpose}}});
    if (!logged.ok()) return logged.status();
    if (auto s = s_.control->SetConsent(tenant_id, purpose, granted, now); !s.ok()) return s;
    return JsonResponse(200, json::object{{"tenant_id", tenant_id},
                                          {"purpose", purpose},
                                          {"consent", granted},
                                          {"ledger_index", logged->ledger_index}});
  }

  // Index of the first ledger entry (in log order) whose ts is at or after `end_ms`. Entries
  // are not strictly in ts order, so this is a scan, one entry bundle (256 entries) per read.
  absl::StatusOr<std::optional<uint64_t>> FirstEntryAtOrAfter(int64_t end_ms) const {
    auto cp = s_.ledger->LatestCheckpoint();
    if (!cp.ok()) return cp.status();
    for (uint64_t first = 0; first < cp->size; first += ledger::kTileWidth) {
      const uint64_t count = std::min<uint64_t>(ledger::kTileWidth, cp->size - first);
      auto bundle = s_.ledger->ReadTile(
          {.entries = true, .index = first / ledger::kTileWidth, .width = static_cast<int>(count)});
      if (!bundle.ok()) return bundle.status();
      auto entries = ledger::DecodeEntryBundle(*bundle);
      if (!entries.ok()) return entries.status();
      for (size_t k = 0; k < entries->size(); ++k) {
        boost::system::error_code ec;
        json::value v = json::parse((*entries)[k], ec);
        if (ec || !v.is_object() || !v.as_object().contains("ts")) {
          return absl::DataLossError("ledger entry without ts");
        }
        const json::value& ts = v.as_object().at("ts");
        int64_t t = ts.is_int64() ? ts.as_int64() : static_cast<int64_t>(ts.as_uint64());
        if (t >= end_ms) return std::optional<uint64_t>(first + k);
      }
    }
    return std::optional<uint64_t>();
  }

  absl::StatusOr<Response> Sample(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (who->role != Role::kAuditor) return absl::PermissionDeniedError("auditors only");
    auto period = access::ParseAuditPeriod(req.query["period"]);
    if (!period.ok()) return period.status();
    auto rate = access::ParseSampleRate(req.query["rate"]);
    if (!rate.ok()) return rate.status();
    auto n = FirstEntryAtOrAfter(period->end * 1000);
    if (!n.ok()) return n.status();
    if (!n->has_value()) {
      return WithApiCode(absl::FailedPreconditionError(
                             "no checkpointed ledger entry at or after the period's end yet"),
                         "failed_precondition");
    }
    const uint64_t size = **n + 1;
    auto seed = s_.ledger->RootAt(size);
    if (absl::IsInvalidArgument(seed.status())) {
      return WithApiCode(absl::FailedPreconditionError("the seed tree is not checkpointed yet"),
                         "failed_precondition");
    }
    if (!seed.ok()) return seed.status();
    auto grants = s_.requests->ListGrants();
    if (!grants.ok()) return grants.status();
    json::array sampled;
    int candidates = 0;
    for (const auto& g : *grants) {
      if (!g.activated_at || *g.activated_at < period->start || *g.activated_at >= period->end) {
        continue;
      }
      ++candidates;
      if (!access::IsSampled(*seed, g.grant_id, *rate)) continue;
      sampled.push_back(json::object{{"grant_id", g.grant_id},
                                     {"request_id", g.id},
                                     {"tenant_id", g.tenant_id},
                                     {"requester", g.requester},
                                     {"activated_at", Rfc3339(*g.activated_at)}});
    }
    return JsonResponse(200, json::object{{"period", period->name},
                                          {"rate", req.query["rate"]},
                                          {"seed_tree_size", size},
                                          {"seed", absl::BytesToHexString(*seed)},
                                          {"candidates", candidates},
                                          {"grants", std::move(sampled)}});
  }

  absl::StatusOr<Response> RecordVerdict(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (who->role != Role::kAuditor) return absl::PermissionDeniedError("auditors only");
    auto parsed = ParseAuditVerdict(req.body);
    if (!parsed.ok()) return parsed.status();
    store::AuditVerdictRecord& v = *parsed;
    auto grant = s_.requests->FindGrant(v.grant_id);
    if (!grant.ok()) return grant.status();
    v.auditor = who->id;
    v.at = absl::ToUnixSeconds(s_.clock->Now());
    if (auto s = s_.control->InsertAuditVerdict(v); !s.ok()) {
      if (absl::IsAlreadyExists(s)) return Conflict("this auditor judged this grant already");
      return s;
    }
    return JsonResponse(201, json::object{{"grant_id", v.grant_id},
                                          {"period", v.period},
                                          {"auditor", v.auditor},
                                          {"verdict", v.verdict},
                                          {"note", v.note},
                                          {"at", Rfc3339(v.at)}});
  }

  absl::StatusOr<Response> ListVerdicts(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (who->role != Role::kAuditor && who->role != Role::kAdmin) {
      return absl::PermissionDeniedError("auditors and the admin only");
    }
    auto period = access::ParseAuditPeriod(req.query["period"]);
    if (!period.ok()) return period.status();
    auto list = s_.control->ListAuditVerdicts(period->name);
    if (!list.ok()) return list.status();
    json::array out;
    for (const auto& v : *list) {
      out.push_back(json::object{{"grant_id", v.grant_id},
                                 {"period", v.period},
                                 {"auditor", v.auditor},
                                 {"verdict", v.verdict},
                                 {"note", v.note},
                                 {"at", Rfc3339(v.at)}});
    }
    return JsonResponse(200, json::object{{"verdicts", std::move(out)}});
  }

 private:
  const Services s_;
};

}  // namespace

json::object AccessRequestJson(const access::AccessRequest& r) {
  json::array history;
  for (const auto& h : r.history) {
    history.push_back(json::object{{"at", Rfc3339(h.at)},
                                   {"actor", h.actor},
                                   {"action", h.action},
                                   {"state", access::StateName(h.state)}});
  }
  json::object o{{"id", r.id},
                 {"tenant_id", r.tenant_id},
                 {"requester", r.requester},
                 {"operations", ToJson(r.operations)},
                 {"prefix", r.prefix},
                 {"justification", r.justification},
                 {"ticket", r.ticket},
                 {"purpose", r.purpose},
                 {"duration_minutes", r.duration_minutes},
                 {"lockbox", r.lockbox},
                 {"state", access::StateName(r.state)},
                 {"created_at", Rfc3339(r.created_at)},
                 {"history", std::move(history)}};
  if (r.expires_at && access::IsLive(r.state)) o["expires_at"] = Rfc3339(*r.expires_at);
  if (!r.grant_id.empty()) o["grant_id"] = r.grant_id;
  if (r.activated_at) o["activated_at"] = Rfc3339(*r.activated_at);
  return o;
}

void RegisterAccessRoutes(http::Router& router, const Services& services) {
  if (services.requests == nullptr || services.mfa == nullptr) return;
  auto api = std::make_shared<AccessApi>(services);
  auto bind = [api](auto method) {
    return Handle([api, method](Request& req) { return ((*api).*method)(req); });
  };
  auto act = [api](RequestAction a) {
    return Handle([api, a](Request& req) { return api->Act(req, a); });
  };
  router.Add("POST", "/v1/principals/{id}/mfa/totp", bind(&AccessApi::EnrollTotp));
  router.Add("POST", "/v1/access-requests", bind(&AccessApi::CreateRequest));
  router.Add("GET", "/v1/access-requests", bind(&AccessApi::ListRequests));
  router.Add("GET", "/v1/access-requests/{id}", bind(&AccessApi::GetRequest));
  router.Add("POST", "/v1/access-requests/{id}/approve", act(RequestAction::kApprove));
  router.Add("POST", "/v1/access-requests/{id}/deny", act(RequestAction::kDeny));
  router.Add("POST", "/v1/access-requests/{id}/activate", act(RequestAction::kActivate));
  router.Add("POST", "/v1/access-requests/{id}/revoke", act(RequestAction::kRevoke));
  router.Add("POST", "/v1/access-requests/{id}/close", act(RequestAction::kClose));
  router.Add("PUT", "/v1/tenants/{id}/consents/{purpose}",
             Handle([api](Request& req) { return api->SetConsent(req, true); }));
  router.Add("DELETE", "/v1/tenants/{id}/consents/{purpose}",
             Handle([api](Request& req) { return api->SetConsent(req, false); }));
  router.Add("GET", "/v1/audit/sample", bind(&AccessApi::Sample));
  router.Add("POST", "/v1/audit/verdicts", bind(&AccessApi::RecordVerdict));
  router.Add("GET", "/v1/audit/verdicts", bind(&AccessApi::ListVerdicts));
}

}  // namespace custos::api::internal

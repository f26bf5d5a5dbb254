#include "api/api.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "api/internal/access_routes.h"
#include "api/internal/handlers.h"
#include "api/internal/json_body.h"
#include "api/internal/requests.h"
#include "base/blocking.h"
#include "base/errors.h"
#include "base/strings.h"
#include "boost/json.hpp"
#include "ledger/tiles.h"
#include "spdlog/spdlog.h"

namespace custos::api {
namespace {

using access::Principal;
using http::Request;
using http::Response;
namespace json = boost::json;
using internal::Handle;
using internal::JsonResponse;
using internal::ToJson;

std::string Rfc3339(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

std::string Rfc3339Millis(int64_t unix_millis) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(unix_millis),
                          absl::UTCTimeZone());
}

class Api {
 public:
  explicit Api(const Services& s) : s_(s) {}

  absl::StatusOr<Principal> Authenticate(const Request& req) const {
    return internal::AuthenticateBearer(req, *s_.principals, *s_.metrics);
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
    auto parsed = internal::ParseNewPrincipal(req.body);
    if (!parsed.ok()) return parsed.status();
    access::NewPrincipal& n = *parsed;
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

  // The caller and the principal {id} whose credential it may rotate or (`disable`) disable.
  absl::StatusOr<std::pair<Principal, Principal>> CredentialTarget(Request& req,
                                                                   bool disable) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    auto target = s_.principals->Get(req.params["id"]);
    if (!target.ok()) return target.status();
    if (auto s = access::CheckCanManageCredential(*who, *target, disable); !s.ok()) return s;
    if (auto s = internal::CheckNoBody(req.body); !s.ok()) return s;
    return std::make_pair(*std::move(who), *std::move(target));
  }

  // POST /v1/principals/{id}/token: a new token, shown once; the old one stops (DESIGN.md).
  absl::StatusOr<Response> RotateToken(Request& req) const {
    auto p = CredentialTarget(req, /*disable=*/false);
    if (!p.ok()) return p.status();
    const auto& [who, target] = *p;
    auto token = s_.principals->RotateToken(target.id);
    if (!token.ok()) return token.status();
    spdlog::info("token rotated principal={} by={}", target.id, who.id);
    return JsonResponse(200, json::object{{"id", target.id}, {"token", *token}});
  }

  // DELETE /v1/principals/{id}: disables the principal for good; its token stops.
  absl::StatusOr<Response> DisablePrincipal(Request& req) const {
    auto p = CredentialTarget(req, /*disable=*/true);
    if (!p.ok()) return p.status();
    const auto& [who, target] = *p;
    if (auto s = s_.principals->Disable(target.id); !s.ok()) return s;
    spdlog::info("principal disabled principal={} by={}", target.id, who.id);
    json::object o = PrincipalJson(target);
    o["disabled"] = true;
    return JsonResponse(200, o);
  }

  absl::StatusOr<Response> Me(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (s_.mfa != nullptr) {
      auto enrolled = s_.mfa->IsEnrolled(who->id);
      if (!enrolled.ok()) return enrolled.status();
      who->mfa_enrolled = *enrolled;
    }
    return JsonResponse(200, PrincipalJson(*who));
  }

  absl::StatusOr<Response> CreateTenant(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (who->role != access::Role::kAdmin) {
      return absl::PermissionDeniedError("only the provider admin creates tenants");
    }
    auto parsed = internal::ParseTenantSpec(req.body);
    if (!parsed.ok()) return parsed.status();
    const tenants::TenantSpec& spec = *parsed;

    auto created = CreateTenantWithAdmin(*s_.tenants, *s_.principals, spec, who->id,
                                         access::RoleName(who->role));
    if (!created.ok()) return created.status();
    const tenants::Tenant& tenant = created->tenant;
    spdlog::info("tenant created tenant={} home={} replica={}", tenant.id, tenant.home_region,
                 tenant.replica_region);
    json::object o{{"id", tenant.id},
                   {"home_region", tenant.home_region},
                   {"admin_token", created->admin.token},
                   {"admin_principal_id", created->admin.principal.id}};
    if (tenant.replica_region.empty()) {
      o["replica_region"] = nullptr;
    } else {
      o["replica_region"] = tenant.replica_region;
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
                   {"ledger_pseudonym", s_.events->Pseudonym(t->id)},
                   {"location", std::move(loc)}};
    if (t->replica_region.empty()) {
      o["replica_region"] = nullptr;
    } else {
      o["replica_region"] = t->replica_region;
    }
    return JsonResponse(200, o);
  }

  // An authorized access to a tenant's data, recorded in the ledger before it happens.
  struct DataAccess {
    Principal who;
    tenants::Tenant tenant;
    std::string purpose;
    uint64_t ledger_index = 0;
  };

  // A decided access and the event that must be durable before it happens; or, when `refused`
  // is not OK, a refusal: `event` (data.refused) is recorded, then `refused` is answered.
  struct PlannedAccess {
    DataAccess access;
    ledger::Event event;
    absl::Status refused;
  };

  // Authenticates, finds the tenant and decides. An authorized access comes back with its `kind`
  // event, a refusal with its data.refused event; neither is recorded yet.
  absl::StatusOr<PlannedAccess> PlanDataAccess(const Request& req, access::DataOperation op,
                                               std::string_view kind,
                                               std::string_view resource) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    std::string purpose = req.Header("x-custos-purpose");
    if (!purpose.empty()) {
      if (auto s = ValidatePurpose(purpose); !s.ok()) return s;
    }
    const std::string grant_id = req.Header("x-custos-grant");
    auto tenant = s_.tenants->Get(req.params.at("id"));
    if (!tenant.ok()) return tenant.status();
    absl::Status decision;
    json::object fields{{"actor", who->id},
                        {"role", access::RoleName(who->role)},
                        {"operation", access::OperationName(op)},
                        {"resource", resource}};
    if (!grant_id.empty() && s_.requests != nullptr) {
      // A just-in-time grant: it must be this principal's, active, unexpired and cover the
      // tenant, the operation and the key (or listing) prefix; the purpose is the grant's.
      fields["grant"] = grant_id;
      auto grant = s_.requests->FindGrant(grant_id);
      if (absl::IsNotFound(grant.status())) {
        decision = absl::PermissionDeniedError("unknown grant");
      } else if (!grant.ok()) {
        return grant.status();
      } else {
        const access::AccessRequest& g = **grant;
        fields["request"] = g.id;
        fields["justification"] = g.justification;
        fields["ticket"] = g.ticket;
        if (purpose.empty()) purpose = g.purpose;
        decision = access::CheckGrant(g, *who, tenant->id, op, resource,
                                      absl::ToUnixSeconds(s_.clock->Now()));
        if (decision.ok() && purpose != g.purpose) {
          decision = WithApiCode(
              absl::PermissionDeniedError(StrCat("the grant is for purpose ", g.purpose)),
              "purpose_not_allowed");
        }
      }
    } else {
      decision = access::CheckDataAccessByRole(*who, tenant->id, op);
    }
    if (purpose.empty()) purpose = "service_delivery";
    fields["purpose"] = purpose;
    if (decision.ok()) decision = CheckPurposeAllowed(tenant->id, purpose);
    if (IsWouldBlock(decision)) return decision;  // not decided yet (ServeAsync)
    if (!decision.ok()) {
      fields["outcome"] = ErrorCodeOf(decision);
      ledger::Event refusal{"data.refused", tenant->id, std::move(fields)};
      return PlannedAccess{{}, std::move(refusal), std::move(decision)};
    }
    ledger::Event event{std::string(kind), tenant->id, std::move(fields)};
    return PlannedAccess{{*std::move(who), *std::move(tenant), std::move(purpose)},
                         std::move(event),
                         absl::OkStatus()};
  }

  // How an act that answers later hands over its result (from any thread; quick work only).
  using Finish = absl::AnyInvocable<void(absl::StatusOr<Response>) &&>;

  // A data route: `check` validates the request and names the resource it touches, `act` does
  // the access once its ledger entry is durable (a failure of the act is recorded as its
  // outcome by whoever runs it). `act_async`, if set, is the same act without a thread waiting
  // for it (a put waits on the cells' group commit).
  struct DataRoute {
    access::DataOperation op;
    std::string_view kind;  // of the access event: data.read, data.write, …
    absl::StatusOr<std::string> (Api::*check)(Request&) const;
    absl::StatusOr<Response> (Api::*act)(const DataAccess&, Request&) const;
    void (Api::*act_async)(const DataAccess&, Request&, Finish) const = nullptr;
  };

  // Serves `route` on the calling worker: checks, plans (a refusal is recorded and answered),
  // records the access durably, then acts. If the ledger cannot record the access it is refused
  // with 503 and never happens (fail closed).
  absl::StatusOr<Response> ServeData(const DataRoute& route, Request& req) const {
    auto resource = (this->*route.check)(req);
    if (!resource.ok()) return resource.status();
    auto planned = PlanDataAccess(req, route.op, route.kind, *resource);
    if (!planned.ok()) return planned.status();
    auto logged = s_.events->Record(planned->event);
    if (!planned->refused.ok()) {
      if (!logged.ok()) spdlog::error("refusal not recorded: {}", logged.status().ToString());
      return planned->refused;
    }
    if (!logged.ok()) return logged.status();
    planned->access.ledger_index = logged->ledger_index;
    absl::StatusOr<Response> r = (this->*route.act)(planned->access, req);
    if (!r.ok()) {
      auto outcome = s_.events->Record(OutcomeEvent(planned->access, r.status()));
      if (!outcome.ok()) spdlog::error("outcome not recorded: {}", outcome.status().ToString());
    }
    return r;
  }

  // The same with no thread waiting, for puts and for reads of cells that are local files
  // (Services::local_cells): the caller returns once the access (or its refusal) is queued on
  // the ledger; once it is durable, the ledger's answer thread acts — a read reads the cell and
  // answers, a put queues its writes and the last cell writer to commit answers. Fail closed as
  // ServeData. Per request, a worker's sleep and wake-up for each wait were most of what the
  // ledger cost. With local stores the start runs on the I/O thread (see add_data below).
  void ServeAsync(const DataRoute& route, const std::shared_ptr<Request>& req,
                  const std::shared_ptr<http::Responder>& responder) const {
    // Started on the I/O thread (see add_data), a start that would wait on a store (a row or a
    // record key not cached yet) starts again on a worker: nothing before the wait took effect.
    auto restart_on_worker = [this, route, req, responder] {
      if (!responder->ContinueOnWorker(
              [this, route, req, responder] { ServeAsync(route, req, responder); })) {
        responder->Reply(internal::ToResponse(*req, absl::UnavailableError("server busy")));
      }
    };
    auto resource = (this->*route.check)(*req);
    if (!resource.ok()) return responder->Reply(internal::ToResponse(*req, resource.status()));
    auto planned = PlanDataAccess(*req, route.op, route.kind, *resource);
    if (IsWouldBlock(planned.status())) return restart_on_worker();
    if (!planned.ok()) return responder->Reply(internal::ToResponse(*req, planned.status()));
    if (!planned->refused.ok()) {
      return s_.events->RecordAsync(
          planned->event,
          [req, responder, restart_on_worker, refused = std::move(planned->refused)](
              const absl::StatusOr<ledger::LoggedEvent>& logged) {
            if (IsWouldBlock(logged.status())) return restart_on_worker();
            if (!logged.ok()) spdlog::error("refusal not recorded: {}", logged.status().ToString());
            responder->Reply(internal::ToResponse(*req, refused));
          });
    }
    s_.events->RecordAsync(
        planned->event, [this, route, access = std::move(planned->access), req, responder,
                         restart_on_worker](absl::StatusOr<ledger::LoggedEvent> logged) mutable {
          if (IsWouldBlock(logged.status())) return restart_on_worker();
          if (!logged.ok()) return responder->Reply(internal::ToResponse(*req, logged.status()));
          access.ledger_index = logged->ledger_index;
          if (!MayBlock()) {  // answered at once, still on the I/O thread (a no-op append)
            if (!responder->ContinueOnWorker([this, route, access, req, responder] {
                  Act(route, access, req, responder);
                })) {
              // Logged but not done: the refusal is recorded as the access's outcome.
              AnswerAct(access, req, responder)(absl::UnavailableError("server busy"));
            }
            return;
          }
          Act(route, access, req, responder);
        });
  }

  // Does the access logged in `access` (on a ledger answer thread or a worker) and answers.
  void Act(const DataRoute& route, const DataAccess& access, const std::shared_ptr<Request>& req,
           const std::shared_ptr<http::Responder>& responder) const {
    Finish finish = AnswerAct(access, req, responder);
    try {  // not on a worker: nothing else would catch it
      if (route.act_async != nullptr) {
        return (this->*route.act_async)(access, *req, std::move(finish));
      }
      std::move(finish)((this->*route.act)(access, *req));
    } catch (const std::exception& e) {
      responder->Reply(internal::ToResponse(
          *req, absl::InternalError(StrCat("unhandled exception: ", e.what()))));
    }
  }

  // How ServeAsync answers an act's result: a failure has its outcome recorded first, as
  // ServeData does, without a thread waiting for that either.
  Finish AnswerAct(const DataAccess& access, const std::shared_ptr<Request>& req,
                   const std::shared_ptr<http::Responder>& responder) const {
    return [this, access, req, responder](absl::StatusOr<Response> r) {
      if (r.ok()) return responder->Reply(*std::move(r));
      s_.events->RecordAsync(
          OutcomeEvent(access, r.status()),
          [req, responder, failed = r.status()](const absl::StatusOr<ledger::LoggedEvent>& logged) {
            if (!logged.ok()) spdlog::error("outcome not recorded: {}", logged.status().ToString());
            responder->Reply(internal::ToResponse(*req, failed));
          });
    };
  }

  // The event saying that the act logged at `access` failed with `status`. Recorded before the
  // failure is answered, best effort (the access itself is logged already).
  static ledger::Event OutcomeEvent(const DataAccess& access, const absl::Status& status) {
    json::object fields{{"actor", access.who.id},
                        {"role", access::RoleName(access.who.role)},
                        {"of", access.ledger_index},
                        {"outcome", ErrorCodeOf(status)}};
    return {"outcome", access.tenant.id, std::move(fields)};
  }

  static absl::Status ValidatePurpose(std::string_view purpose) {
    for (std::string_view p : {"service_delivery", "support", "troubleshooting", "security",
                               "advertising", "marketing", "profiling"}) {
      if (p == purpose) return absl::OkStatus();
    }
    return absl::InvalidArgumentError("unknown X-Custos-Purpose");
  }

  // Commercial purposes need the customer's recorded consent (PUT /v1/tenants/{id}/consents/…).
  absl::Status CheckPurposeAllowed(const std::string& tenant_id, std::string_view purpose) const {
    for (std::string_view p : {"advertising", "marketing", "profiling"}) {
      if (p != purpose) continue;
      if (s_.control != nullptr) {
        auto consent = s_.control->HasConsent(tenant_id, purpose);
        if (!consent.ok()) return consent.status();
        if (*consent) return absl::OkStatus();
      }
      return WithApiCode(
          absl::PermissionDeniedError(StrCat(
              "purpose ", purpose, " is not allowed without the customer's recorded consent")),
          "purpose_not_allowed");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> CheckObjectKey(Request& req) const {
    const std::string& key = req.params["key"];
    if (auto s = data::ValidateObjectKey(key); !s.ok()) return s;
    return key;
  }

  absl::StatusOr<std::string> CheckDelete(Request& req) const {
    if (auto s = internal::CheckNoBody(req.body); !s.ok()) return s;
    return CheckObjectKey(req);
  }

  absl::StatusOr<std::string> CheckPut(Request& req) const {
    auto key = CheckObjectKey(req);
    if (!key.ok()) return key;
    if (auto s = data::ValidateContentType(req.Header("content-type")); !s.ok()) return s;
    if (req.body.size() > s_.objects->options().max_object_bytes) {
      return TooLarge("object is over the size limit");
    }
    return key;
  }

  absl::StatusOr<std::string> CheckList(Request& req) const {
    auto q = internal::ParseListQuery(req.query);
    if (!q.ok()) return q.status();
    return q->prefix;
  }

  static Response PutAnswer(const std::string& key, const data::PutResult& r) {
    return JsonResponse(
        r.created ? 201 : 200,
        json::object{
            {"key", key}, {"size", r.size}, {"sha256", r.sha256_hex}, {"version", r.version}});
  }

  absl::StatusOr<Response> PutObject(const DataAccess& a, Request& req) const {
    const std::string& key = req.params["key"];
    auto r = s_.objects->Put(a.tenant.cells(), key, req.body, req.Header("content-type"));
    if (!r.ok()) return r.status();
    return PutAnswer(key, *r);
  }

  void PutObjectAsync(const DataAccess& a, Request& req, Finish finish) const {
    const std::string& key = req.params["key"];
    s_.objects->PutAsync(
        a.tenant.cells(), key, req.body, req.Header("content-type"),
        [key, finish = std::move(finish)](absl::StatusOr<data::PutResult> r) mutable {
          if (!r.ok()) return std::move(finish)(r.status());
          std::move(finish)(PutAnswer(key, *r));
        });
  }

  absl::StatusOr<Response> GetObject(const DataAccess& a, Request& req) const {
    auto o = s_.objects->Get(a.tenant.cells(), req.params["key"]);
    if (!o.ok()) return o.status();
    Response r;
    r.status = 200;
    r.content_type = o->content_type;
    r.body = std::move(o->bytes);
    r.headers.emplace_back("ETag", StrCat("\"", o->sha256_hex, "\""));
    r.headers.emplace_back("X-Custos-Version", StrCat(o->version));
    r.headers.emplace_back("X-Custos-Ledger-Index", StrCat(a.ledger_index));
    return r;
  }

  absl::StatusOr<Response> DeleteObject(const DataAccess& a, Request& req) const {
    if (auto s = s_.objects->Delete(a.tenant.cells(), req.params["key"]); !s.ok()) return s;
    return Response::NoContent();
  }

  absl::StatusOr<Response> ListObjects(const DataAccess& a, Request& req) const {
    auto q = internal::ParseListQuery(req.query);  // checked by CheckList
    if (!q.ok()) return q.status();
    auto page = s_.objects->List(a.tenant.cells(), q->prefix, q->start_after, q->limit);
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

  static json::array Base64Hashes(const std::vector<std::string>& hashes) {
    json::array out;
    for (const auto& h : hashes) out.emplace_back(absl::Base64Escape(h));
    return out;
  }

  static Response Text(std::string body, std::string cache_control) {
    Response r;
    r.content_type = "text/plain; charset=utf-8";
    r.body = std::move(body);
    r.headers.emplace_back("Cache-Control", std::move(cache_control));
    return r;
  }

  absl::StatusOr<Response> Checkpoint(Request&) const {
    auto cp = s_.ledger->LatestCheckpoint();
    if (!cp.ok()) return cp.status();
    return Text(cp->note, "no-cache");
  }

  absl::StatusOr<Response> LedgerTile(Request& req) const {
    auto tile = ledger::ParseTilePath(StrCat("tile/", req.params["rest"]));
    if (!tile.ok()) return absl::NotFoundError("no such tile");
    auto data = s_.ledger->ReadTile(*tile);
    if (!data.ok()) return data.status();
    Response r;
    r.content_type = "application/octet-stream";
    r.body = std::move(*data);
    // Partial tiles too: the log only grows, so the bytes of a path (width included) never
    // change, and tlog-tiles asks for long-lived caching of every tile.
    r.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
    return r;
  }

  absl::StatusOr<Response> VerifierKey(Request&) const {
    return Text(s_.ledger->verifier_key() + "\n", "public, max-age=86400");
  }

  absl::StatusOr<Response> InclusionProof(Request& req) const {
    auto index = internal::QueryUint(req.query, "index");
    if (!index.ok()) return index.status();
    auto size = internal::QueryUint(req.query, "size");
    if (!size.ok()) return size.status();
    auto proof = s_.ledger->InclusionProof(*index, *size);
    if (!proof.ok()) return proof.status();
    return JsonResponse(
        200, json::object{{"index", *index}, {"size", *size}, {"hashes", Base64Hashes(*proof)}});
  }

  absl::StatusOr<Response> ConsistencyProof(Request& req) const {
    auto old_size = internal::QueryUint(req.query, "old");
    if (!old_size.ok()) return old_size.status();
    auto new_size = internal::QueryUint(req.query, "new");
    if (!new_size.ok()) return new_size.status();
    auto proof = s_.ledger->ConsistencyProof(*old_size, *new_size);
    if (!proof.ok()) return proof.status();
    return JsonResponse(
        200,
        json::object{{"old", *old_size}, {"new", *new_size}, {"hashes", Base64Hashes(*proof)}});
  }

  absl::StatusOr<Response> AccessLog(Request& req) const {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    const std::string& id = req.params["id"];
    if (who->role != access::Role::kTenantAdmin || who->tenant_id != id) {
      return absl::PermissionDeniedError("only the tenant's tenant_admin reads its access log");
    }
    auto tenant = s_.tenants->Get(id);
    if (!tenant.ok()) return tenant.status();
    auto f = internal::ParseAccessLogQuery(req.query);
    if (!f.ok()) return f.status();
    auto page = s_.events->ReadTenantLog(id, *f);
    if (!page.ok()) return page.status();
    json::array events;
    for (auto& e : page->events) {
      events.push_back(json::object{{"ledger_index", e.ledger_index}, {"record", e.record}});
    }
    json::object out{{"events", std::move(events)}};
    if (page->next_index) {
      out["next_cursor"] = StrCat(*page->next_index);
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
    auto seconds = internal::ParseAdvanceSeconds(req.body);
    if (!seconds.ok()) return seconds.status();
    s_.fake_clock->Advance(*seconds);
    // Answer only once every job that became due at the new time has run (on this instance).
    if (s_.jobs != nullptr) {
      if (auto s = s_.jobs->RunDue(); !s.ok()) return s;
    }
    return JsonResponse(200, json::object{{"now", absl::ToUnixSeconds(s_.fake_clock->Now())}});
  }

 private:
  const Services s_;  // a copy: the pointers inside outlive the router
};

}  // namespace

absl::StatusOr<NewTenant> CreateTenantWithAdmin(tenants::TenantService& tenants,
                                                access::PrincipalService& principals,
                                                const tenants::TenantSpec& spec,
                                                std::string_view actor_id,
                                                std::string_view actor_role) {
  std::optional<access::IssuedPrincipal> admin;
  auto tenant =
      tenants.Create(spec, actor_id, actor_role,
                     [&](const tenants::Tenant& t) -> absl::StatusOr<store::PrincipalRecord> {
                       access::NewPrincipal p;
                       p.name = StrCat(spec.name, " admin");
                       p.role = access::Role::kTenantAdmin;
                       p.tenant_id = t.id;
                       auto minted = principals.Mint(p);
                       if (!minted.ok()) return minted.status();
                       admin = std::move(minted->issued);
                       return std::move(minted->record);
                     });
  if (!tenant.ok()) return tenant.status();
  return NewTenant{*std::move(tenant), *std::move(admin)};
}

void RegisterRoutes(http::Router& router, const Services& services) {
  auto api = std::make_shared<Api>(services);
  auto bind = [api](auto method) {
    return Handle([api, method](Request& req) { return ((*api).*method)(req); });
  };
  router.Add("GET", "/healthz", [](Request&) { return Response::Json(200, R"({"status":"ok"})"); });
  router.Add("GET", "/metrics", [m = services.metrics](Request&) {
    Response r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = m->Render();
    return r;
  });
  router.Add("GET", "/v1/regions", bind(&Api::Regions));
  router.Add("POST", "/v1/principals", bind(&Api::CreatePrincipal));
  router.Add("GET", "/v1/principals/me", bind(&Api::Me));
  router.Add("POST", "/v1/principals/{id}/token", bind(&Api::RotateToken));
  router.Add("DELETE", "/v1/principals/{id}", bind(&Api::DisablePrincipal));
  router.Add("POST", "/v1/tenants", bind(&Api::CreateTenant));
  router.Add("GET", "/v1/tenants/{id}", bind(&Api::GetTenant));
  auto data = [api](Api::DataRoute route) {
    return Handle([api, route](Request& req) { return api->ServeData(route, req); });
  };
  // With no thread waiting (Api::ServeAsync): puts everywhere (their act only queues writes for
  // the cell writers), reads on local cells only (Services::local_cells). With SQLite stores,
  // which refuse to block on an I/O thread (base/blocking.h), the start (authentication, the
  // decision, the ledger record) runs on the I/O thread, saving a worker's hand-off: it usually
  // needs only cached rows, and starts again on a worker when it would read a store.
  auto add_data = [&](std::string_view method, std::string_view pattern, Api::DataRoute route,
                      http::RouteOptions options = {}) {
    if (!services.local_cells && route.act_async == nullptr) {
      return router.Add(method, pattern, data(route), options);
    }
    options.start_on_io_thread = services.local_cells;
    router.AddAsync(
        method, pattern,
        [api, route](const std::shared_ptr<Request>& req,
                     const std::shared_ptr<http::Responder>& r) { api->ServeAsync(route, req, r); },
        options);
  };
  using Op = access::DataOperation;
  add_data("GET", "/v1/tenants/{id}/objects",
           {Op::kList, "data.list", &Api::CheckList, &Api::ListObjects});
  // services.objects is null only where routes are matched and never called (the fuzz target
  // tests/fuzz/http_request.cc); the default limit then stands.
  http::RouteOptions object_body;
  if (services.objects != nullptr) {
    object_body.max_body_bytes = services.objects->options().max_object_bytes;
  }
  add_data("PUT", "/v1/tenants/{id}/objects/{key...}",
           {Op::kWrite, "data.write", &Api::CheckPut, &Api::PutObject, &Api::PutObjectAsync},
           object_body);
  add_data("GET", "/v1/tenants/{id}/objects/{key...}",
           {Op::kRead, "data.read", &Api::CheckObjectKey, &Api::GetObject});
  router.Add("DELETE", "/v1/tenants/{id}/objects/{key...}",
             data({Op::kDelete, "data.delete", &Api::CheckDelete, &Api::DeleteObject}));
  router.Add("GET", "/v1/tenants/{id}/access-log", bind(&Api::AccessLog));
  router.Add("GET", "/ledger/checkpoint", bind(&Api::Checkpoint));
  router.Add("GET", "/ledger/tile/{rest...}", bind(&Api::LedgerTile));
  router.Add("GET", "/v1/ledger/vkey", bind(&Api::VerifierKey));
  router.Add("GET", "/v1/ledger/proof/inclusion", bind(&Api::InclusionProof));
  router.Add("GET", "/v1/ledger/proof/consistency", bind(&Api::ConsistencyProof));
  internal::RegisterAccessRoutes(router, services);
  if (services.fake_clock != nullptr) {
    router.Add("GET", "/v1/test/clock", bind(&Api::GetClock));
    router.Add("POST", "/v1/test/clock", bind(&Api::AdvanceClock));
  }
}

}  // namespace custos::api

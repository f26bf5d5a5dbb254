#include "access/requests.h"

#include "base/errors.h"
#include "base/ids.h"
#include "base/strings.h"
#include "boost/json.hpp"
#include "spdlog/spdlog.h"

namespace custos::access {
namespace {

namespace json = boost::json;

constexpr char kSystemActor[] = "custos";

store::AccessRequestRecord ToRecord(const AccessRequest& r, int64_t version) {
  store::AccessRequestRecord rec;
  rec.id = r.id;
  rec.tenant_id = r.tenant_id;
  rec.requester = r.requester;
  rec.state = std::string(StateName(r.state));
  rec.grant_id = r.grant_id;
  rec.expires_at = IsLive(r.state) ? r.expires_at : std::nullopt;
  rec.created_at = r.created_at;
  rec.body_json = RequestToJson(r);
  rec.version = version;
  return rec;
}

json::array Strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

}  // namespace

std::string RequestToJson(const AccessRequest& r) {
  json::array history;
  for (const auto& h : r.history) {
    history.push_back(json::object{
        {"at", h.at}, {"actor", h.actor}, {"action", h.action}, {"state", StateName(h.state)}});
  }
  json::object o{{"id", r.id},
                 {"tenant_id", r.tenant_id},
                 {"requester", r.requester},
                 {"operations", Strings(r.operations)},
                 {"prefix", r.prefix},
                 {"justification", r.justification},
                 {"ticket", r.ticket},
                 {"purpose", r.purpose},
                 {"duration_minutes", r.duration_minutes},
                 {"lockbox", r.lockbox},
                 {"state", StateName(r.state)},
                 {"grant_id", r.grant_id},
                 {"created_at", r.created_at},
                 {"history", std::move(history)}};
  if (r.expires_at) o["expires_at"] = *r.expires_at;
  if (r.activated_at) o["activated_at"] = *r.activated_at;
  return json::serialize(o);
}

absl::StatusOr<AccessRequest> RequestFromJson(std::string_view text) {
  try {
    json::value v = json::parse(text);
    const json::object& o = v.as_object();
    AccessRequest r;
    r.id = o.at("id").as_string();
    r.tenant_id = o.at("tenant_id").as_string();
    r.requester = o.at("requester").as_string();
    for (const auto& x : o.at("operations").as_array()) r.operations.emplace_back(x.as_string());
    r.prefix = o.at("prefix").as_string();
    r.justification = o.at("justification").as_string();
    r.ticket = o.at("ticket").as_string();
    r.purpose = o.at("purpose").as_string();
    r.duration_minutes = static_cast<int>(o.at("duration_minutes").as_int64());
    r.lockbox = o.at("lockbox").as_bool();
    auto state = ParseState(std::string_view(o.at("state").as_string()));
    if (!state.ok()) return absl::DataLossError("stored request has an unknown state");
    r.state = *state;
    r.grant_id = o.at("grant_id").as_string();
    r.created_at = o.at("created_at").as_int64();
    if (auto* e = o.if_contains("expires_at")) r.expires_at = e->as_int64();
    if (auto* a = o.if_contains("activated_at")) r.activated_at = a->as_int64();
    for (const auto& x : o.at("history").as_array()) {
      const auto& h = x.as_object();
      auto hs = ParseState(std::string_view(h.at("state").as_string()));
      if (!hs.ok()) return absl::DataLossError("stored history has an unknown state");
      r.history.push_back({h.at("at").as_int64(), std::string(h.at("actor").as_string()),
                           std::string(h.at("action").as_string()), *hs});
    }
    return r;
  } catch (const std::exception& e) {
    return absl::DataLossError(StrCat("stored access request is malformed: ", e.what()));
  }
}

AccessRequestService::AccessRequestService(store::ControlStore& store, ledger::EventLog& events,
                                           Random& random, const Clock& clock,
                                           WorkflowOptions options)
    : store_(store), events_(events), random_(random), clock_(clock), options_(options) {}

int64_t AccessRequestService::Now() const { return absl::ToUnixSeconds(clock_.Now()); }

absl::Status AccessRequestService::Commit(const AccessRequest& r, int64_t version,
                                          std::string_view kind, const Principal& actor) {
  const std::string actor_id = actor.id.empty() ? std::string(kSystemActor) : actor.id;
  const std::string_view actor_role = actor.id.empty() ? "system" : RoleName(actor.role);
  json::object fields{{"actor", actor_id},
                      {"role", actor_role},
                      {"request", r.id},
                      {"requester", r.requester},
                      {"operations", Strings(r.operations)},
                      {"resource", r.prefix},
                      {"justification", r.justification},
                      {"ticket", r.ticket},
                      {"purpose", r.purpose},
                      {"duration_minutes", r.duration_minutes},
                      {"state", StateName(r.state)}};
  if (!r.grant_id.empty()) fields["grant"] = r.grant_id;
  if (r.expires_at && IsLive(r.state)) fields["expires_at"] = *r.expires_at;
  // The event first: a transition that cannot be recorded does not happen.
  auto logged = events_.Record({std::string(kind), r.tenant_id, std::move(fields)});
  if (!logged.ok()) return logged.status();
  store::AccessRequestRecord rec = ToRecord(r, version);
  absl::Status stored =
      version == 1 ? store_.InsertAccessRequest(rec) : store_.UpdateAccessRequest(rec);
  if (!stored.ok()) {
    // Recorded but not done (most often another change won the race: kAborted). The log must
    // not claim it happened, so its outcome follows it, as for a data access that failed.
    auto outcome = events_.Record({"outcome", r.tenant_id,
                                   json::object{{"actor", actor_id},
                                                {"role", actor_role},
                                                {"of", logged->ledger_index},
                                                {"outcome", ErrorCodeOf(stored)}}});
    if (!outcome.ok()) spdlog::error("outcome not recorded: {}", outcome.status().ToString());
    return stored;
  }
  // A revoke, close or expiry made here counts at once for this instance's grant checks.
  if (!r.grant_id.empty()) CacheGrant(std::make_shared<const AccessRequest>(r), version);
  return stored;
}

absl::StatusOr<AccessRequest> AccessRequestService::Create(const Principal& who,
                                                           const NewAccessRequest& n, bool lockbox,
                                                           const RegionPersonnel& home) {
  if (auto s = ValidateNewRequest(n, options_); !s.ok()) return s;
  if (auto s = CheckEligible(who, home); !s.ok()) return s;
  AccessRequest r = NewRequest(n, NewId(random_), who, lockbox, Now(), options_);
  if (auto s = Commit(r, 1, "access.request", who); !s.ok()) return s;
  return r;
}

absl::StatusOr<AccessRequest> AccessRequestService::ExpireIfDue(AccessRequest r, int64_t version) {
  const int64_t now = Now();
  if (!IsDue(r, now)) return r;
  auto expired = Transition(r, RequestAction::kExpire, Principal{}, now, options_);
  if (!expired.ok()) return expired.status();
  expired->history.back().actor = kSystemActor;
  absl::Status s = Commit(*expired, version + 1, "access.expire", Principal{});
  if (absl::IsAborted(s)) {
    // Someone else expired (or changed) it meanwhile: read what they stored.
    auto rec = store_.GetAccessRequest(r.id);
    if (!rec.ok()) return rec.status();
    return RequestFromJson(rec->body_json);
  }
  if (!s.ok()) return s;
  return *std::move(expired);
}

absl::StatusOr<AccessRequest> AccessRequestService::Get(std::string_view id) {
  auto rec = store_.GetAccessRequest(id);
  if (!rec.ok()) return rec.status();
  auto r = RequestFromJson(rec->body_json);
  if (!r.ok()) return r.status();
  return ExpireIfDue(*std::move(r), rec->version);
}

absl::StatusOr<AccessRequest> AccessRequestService::Act(const Principal& who, std::string_view id,
                                                        RequestAction action,
                                                        absl::FunctionRef<absl::Status()> confirm) {
  auto rec = store_.GetAccessRequest(id);
  if (!rec.ok()) return rec.status();
  auto current = RequestFromJson(rec->body_json);
  if (!current.ok()) return current.status();
  int64_t version = rec->version;
  if (IsDue(*current, Now())) {
    auto expired = ExpireIfDue(*current, version);
    if (!expired.ok()) return expired.status();
    return WithApiCode(
        absl::FailedPreconditionError(StrCat("the request is ", StateName(expired->state),
                                             "; cannot ", ActionName(action), " it")),
        "failed_precondition");
  }
  std::string grant_id;
  if (action == RequestAction::kActivate) grant_id = NewId(random_);
  auto next = Transition(*current, action, who, Now(), options_, grant_id);
  if (!next.ok()) return next.status();
  if (auto s = confirm(); !s.ok()) return s;
  // Versioned: if the request changed since it was read above, nothing is stored (kAborted).
  if (auto s = Commit(*next, version + 1, StrCat("access.", ActionName(action)), who); !s.ok()) {
    return s;
  }
  return next;
}

absl::StatusOr<std::vector<AccessRequest>> AccessRequestService::List(
    const store::AccessRequestFilter& filter) {
  if (auto n = ExpireDue(); !n.ok()) return n.status();
  auto recs = store_.ListAccessRequests(filter);
  if (!recs.ok()) return recs.status();
  std::vector<AccessRequest> out;
  for (const auto& rec : *recs) {
    auto r = RequestFromJson(rec.body_json);
    if (!r.ok()) return r.status();
    out.push_back(*std::move(r));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const AccessRequest>> AccessRequestService::FindGrant(
    std::string_view grant_id) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(grants_mu_);
    auto it = grants_.find(AbslView(grant_id));
    if (it != grants_.end() &&
        now - it->second.fetched < absl::ToChronoNanoseconds(kGrantRecheck)) {
      return it->second.request;
    }
  }
  auto rec = store_.FindAccessRequestByGrant(grant_id);
  if (!rec.ok()) return rec.status();
  auto r = RequestFromJson(rec->body_json);
  if (!r.ok()) return r.status();
  auto shared = std::make_shared<const AccessRequest>(*std::move(r));
  CacheGrant(shared, rec->version);
  return shared;
}

void AccessRequestService::CacheGrant(std::shared_ptr<const AccessRequest> r, int64_t version) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(grants_mu_);
  auto it = grants_.find(r->grant_id);
  if (it != grants_.end()) {
    if (it->second.version > version) return;
    it->second = {version, std::move(r), now};
    return;
  }
  if (grants_.size() >= 10000) grants_.clear();  // bounded; grants in use are few
  std::string id = r->grant_id;
  grants_.emplace(std::move(id), CachedGrant{version, std::move(r), now});
}

absl::StatusOr<int> AccessRequestService::ExpireDue() {
  auto due = store_.ListDueAccessRequests(Now());
  if (!due.ok()) return due.status();
  int n = 0;
  for (const auto& rec : *due) {
    auto r = RequestFromJson(rec.body_json);
    if (!r.ok()) return r.status();
    auto e = ExpireIfDue(*std::move(r), rec.version);
    if (!e.ok()) return e.status();
    ++n;
  }
  return n;
}

absl::StatusOr<std::vector<AccessRequest>> AccessRequestService::ListGrants() {
  auto all = List({});
  if (!all.ok()) return all.status();
  std::vector<AccessRequest> out;
  for (auto& r : *all) {
    if (!r.grant_id.empty()) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace custos::access

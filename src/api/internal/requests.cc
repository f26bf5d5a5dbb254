#include "api/internal/requests.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "access/audit.h"
#include "api/internal/json_body.h"
#include "base/strings.h"
#include "base/utf8.h"
#include "data/data.h"

namespace custos::api::internal {
namespace {

namespace json = boost::json;

constexpr int kDefaultListLimit = 100;

// RFC 3339, or YYYY-MM-DD meaning 00:00Z that day.
absl::StatusOr<int64_t> ParseDateMillis(const std::string& name, const std::string& v) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, v, &t, &err) ||
      absl::ParseTime("%Y-%m-%d", v, absl::UTCTimeZone(), &t, &err)) {
    return absl::ToUnixMillis(t);
  }
  return absl::InvalidArgumentError(StrCat(name, " must be an RFC 3339 time or YYYY-MM-DD"));
}

}  // namespace

absl::StatusOr<access::NewPrincipal> ParseNewPrincipal(std::string_view body_text) {
  auto body =
      JsonBody::Parse(body_text, {"name", "role", "tenant_id", "attributes", "expires_in_days"});
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
  return n;
}

absl::StatusOr<tenants::TenantSpec> ParseTenantSpec(std::string_view body_text) {
  auto body = JsonBody::Parse(
      body_text, {"name", "customer_type", "geography", "home_region", "services", "technologies",
                  "lockbox", "retention_days", "allow_single_region"});
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
  auto services = body->RequiredStringList("services");
  if (!services.ok()) return services.status();
  spec.services = *services;
  auto technologies = body->RequiredStringList("technologies");
  if (!technologies.ok()) return technologies.status();
  spec.technologies = *technologies;
  // Required, not defaulted: an omitted field must not quietly turn Customer Lockbox off.
  auto lockbox = body->RequiredBool("lockbox");
  if (!lockbox.ok()) return lockbox.status();
  spec.lockbox = *lockbox;
  auto retention = body->Int("retention_days", 90, 0, 3650);
  if (!retention.ok()) return retention.status();
  spec.retention_days = static_cast<int>(*retention);
  auto single = body->Bool("allow_single_region", false);
  if (!single.ok()) return single.status();
  spec.allow_single_region = *single;
  return spec;
}

absl::StatusOr<access::NewAccessRequest> ParseNewAccessRequest(std::string_view body_text) {
  auto body = JsonBody::Parse(body_text, {"tenant_id", "operations", "prefix", "justification",
                                          "ticket", "duration_minutes", "purpose"});
  if (!body.ok()) return body.status();
  access::NewAccessRequest n;
  for (auto [field, out] :
       {std::pair{"tenant_id", &n.tenant_id}, std::pair{"justification", &n.justification},
        std::pair{"ticket", &n.ticket}}) {
    auto x = body->String(field);
    if (!x.ok()) return x.status();
    *out = std::move(*x);
  }
  auto ops = body->StringList("operations");
  if (!ops.ok()) return ops.status();
  n.operations = std::move(*ops);
  // Required: an omitted prefix must not default to the widest scope (the whole tenant). The
  // whole tenant is asked for as "" explicitly.
  auto prefix = body->String("prefix");
  if (!prefix.ok()) return prefix.status();
  n.prefix = std::move(*prefix);
  auto duration = body->OptInt("duration_minutes", INT32_MIN, INT32_MAX);
  if (!duration.ok()) return duration.status();
  if (!duration->has_value()) return absl::InvalidArgumentError("missing field 'duration_minutes'");
  n.duration_minutes = **duration;
  auto purpose = body->OptString("purpose");
  if (!purpose.ok()) return purpose.status();
  n.purpose = purpose->value_or("support");
  return n;
}

absl::StatusOr<store::AuditVerdictRecord> ParseAuditVerdict(std::string_view body_text) {
  auto body = JsonBody::Parse(body_text, {"grant_id", "period", "verdict", "note"});
  if (!body.ok()) return body.status();
  store::AuditVerdictRecord v;
  for (auto [field, out] : {std::pair{"grant_id", &v.grant_id}, std::pair{"period", &v.period},
                            std::pair{"verdict", &v.verdict}}) {
    auto x = body->String(field);
    if (!x.ok()) return x.status();
    *out = std::move(*x);
  }
  auto note = body->OptString("note");
  if (!note.ok()) return note.status();
  v.note = note->value_or("");
  if (auto p = access::ParseAuditPeriod(v.period); !p.ok()) return p.status();
  if (v.verdict != "compliant" && v.verdict != "non_compliant" && v.verdict != "inconclusive") {
    return absl::InvalidArgumentError("verdict must be compliant, non_compliant or inconclusive");
  }
  if (v.note.size() > 4000) return absl::InvalidArgumentError("note is over 4000 bytes");
  return v;
}

absl::StatusOr<int64_t> ParseAdvanceSeconds(std::string_view body_text) {
  auto body = JsonBody::Parse(body_text, {"advance_seconds"});
  if (!body.ok()) return body.status();
  auto seconds = body->OptInt("advance_seconds", 0, int64_t{10} * 365 * 86400);
  if (!seconds.ok()) return seconds.status();
  if (!seconds->has_value()) return absl::InvalidArgumentError("missing field 'advance_seconds'");
  return **seconds;
}

absl::StatusOr<uint64_t> QueryUint(const Query& query, const std::string& name) {
  auto it = query.find(name);
  if (it == query.end()) return absl::InvalidArgumentError(StrCat("missing ", name));
  const std::string& v = it->second;
  uint64_t n = 0;
  bool digits = !v.empty() && v.size() <= 20 &&
                std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                (v.size() == 1 || v[0] != '0');
  if (!digits || !absl::SimpleAtoi(v, &n)) {
    return absl::InvalidArgumentError(StrCat(name, " must be a non-negative integer"));
  }
  return n;
}

// The `limit` parameter: digits only (not "+5", " 5" or "05"), 1-1000; `fallback` if absent.
absl::StatusOr<int> QueryLimit(const Query& query, int fallback) {
  if (!query.contains("limit")) return fallback;
  auto n = QueryUint(query, "limit");
  if (!n.ok() || *n < 1 || *n > 1000) {
    return absl::InvalidArgumentError("limit must be an integer from 1 to 1000");
  }
  return static_cast<int>(*n);
}

absl::StatusOr<ListQuery> ParseListQuery(const Query& query) {
  ListQuery q;
  if (auto it = query.find("prefix"); it != query.end()) q.prefix = it->second;
  if (q.prefix.size() > data::kMaxKeyBytes) {
    return absl::InvalidArgumentError("prefix is longer than 1024 bytes");
  }
  if (HasControlCharacter(q.prefix)) {
    return absl::InvalidArgumentError("prefix contains a control character");
  }
  auto limit = QueryLimit(query, kDefaultListLimit);
  if (!limit.ok()) return limit.status();
  q.limit = *limit;
  if (auto it = query.find("cursor"); it != query.end() && !it->second.empty()) {
    if (!absl::WebSafeBase64Unescape(it->second, &q.start_after) ||
        !data::ValidateObjectKey(q.start_after).ok()) {
      return absl::InvalidArgumentError("malformed cursor");
    }
  }
  return q;
}

absl::StatusOr<ledger::AccessLogFilter> ParseAccessLogQuery(const Query& query) {
  ledger::AccessLogFilter f;
  for (const char* name : {"from", "to"}) {
    if (auto it = query.find(name); it != query.end()) {
      auto ms = ParseDateMillis(name, it->second);
      if (!ms.ok()) return ms.status();
      (std::string_view(name) == "from" ? f.from_ms : f.to_ms) = *ms;
    }
  }
  if (auto it = query.find("role"); it != query.end()) {
    // A role the log can hold: a principal's, or "system" (jobs). Anything else would match
    // nothing, silently: a misspelt filter reads as "no such accesses".
    if (it->second != "system" && !access::ParseRole(it->second).ok()) {
      return absl::InvalidArgumentError(
          StrCat("role must be a principal's role or system, not '", it->second, "'"));
    }
    f.role = it->second;
  }
  if (auto it = query.find("kind"); it != query.end()) f.kind = it->second;
  auto limit = QueryLimit(query, f.limit);
  if (!limit.ok()) return limit.status();
  f.limit = *limit;
  // An empty cursor is the start, as in listings.
  if (auto it = query.find("cursor"); it != query.end() && !it->second.empty()) {
    auto start = QueryUint(query, "cursor");
    if (!start.ok()) return absl::InvalidArgumentError("malformed cursor");
    f.start_index = *start;
  }
  return f;
}

}  // namespace custos::api::internal

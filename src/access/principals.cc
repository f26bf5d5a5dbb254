#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "access/access.h"
#include "base/ids.h"
#include "base/strings.h"
#include "base/utf8.h"
#include "boost/json.hpp"
#include "crypto/crypto.h"

namespace custos::access {
namespace {

constexpr std::string_view kTokenPrefix = "cst_";
constexpr size_t kTokenBytes = 32;  // 256 bits
constexpr size_t kMaxNameBytes = 200;

struct RoleEntry {
  Role role;
  std::string_view name;
};
constexpr RoleEntry kRoles[] = {
    {Role::kAdmin, "admin"},
    {Role::kOperator, "operator"},
    {Role::kManager, "manager"},
    {Role::kLegal, "legal"},
    {Role::kAuditor, "auditor"},
    {Role::kTenantAdmin, "tenant_admin"},
    {Role::kTenantUser, "tenant_user"},
};

std::string AttributesJson(const Attributes& a) {
  boost::json::array citizenship;
  for (const auto& c : a.citizenship) citizenship.emplace_back(c);
  return boost::json::serialize(boost::json::object{
      {"employer", a.employer}, {"citizenship", citizenship}, {"screened", a.screened}});
}

Attributes ParseAttributes(std::string_view json) {
  Attributes a;
  boost::system::error_code ec;
  auto v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) return a;
  const auto& o = v.as_object();
  if (auto* e = o.if_contains("employer"); e && e->is_string()) a.employer = e->as_string();
  if (auto* c = o.if_contains("citizenship"); c && c->is_array()) {
    for (const auto& x : c->as_array()) {
      if (x.is_string()) a.citizenship.emplace_back(x.as_string());
    }
  }
  if (auto* s = o.if_contains("screened"); s && s->is_bool()) a.screened = s->as_bool();
  return a;
}

std::string NameAad(std::string_view principal_id) {
  return StrCat("custos principal-name v1", std::string_view("\0", 1), principal_id);
}

}  // namespace

absl::StatusOr<Principal> PrincipalService::FromRecord(const store::PrincipalRecord& r) {
  auto role = ParseRole(r.role);
  if (!role.ok()) return absl::DataLossError("stored principal has an unknown role");
  Principal p;
  p.id = r.id;
  p.name = r.name;
  if (!r.sealed_name.empty()) {
    auto name = keys_.Unwrap(crypto::TenantKeyId(r.tenant_id), r.sealed_name, NameAad(r.id));
    if (!name.ok()) return name.status();
    p.name = std::move(*name);
  }
  p.role = *role;
  p.tenant_id = r.tenant_id;
  p.attributes = ParseAttributes(r.attributes_json);
  p.created_at = r.created_at;
  p.expires_at = r.expires_at;
  p.disabled = r.disabled;
  return p;
}

absl::StatusOr<Role> ParseRole(std::string_view name) {
  for (const auto& e : kRoles) {
    if (e.name == name) return e.role;
  }
  return absl::InvalidArgumentError(StrCat("unknown role '", name, "'"));
}

std::string_view RoleName(Role role) {
  for (const auto& e : kRoles) {
    if (e.role == role) return e.name;
  }
  return "unknown";
}

bool IsTenantRole(Role role) { return role == Role::kTenantAdmin || role == Role::kTenantUser; }

absl::Status CheckCanCreate(const Principal& creator, const NewPrincipal& p) {
  if (creator.role == Role::kTenantAdmin) {
    if (!IsTenantRole(p.role) || p.tenant_id != creator.tenant_id) {
      return absl::PermissionDeniedError(
          "a tenant_admin may only create principals of its own tenant");
    }
  } else if (creator.role != Role::kAdmin) {
    return absl::PermissionDeniedError("only admins and tenant_admins create principals");
  } else if (IsTenantRole(p.role)) {
    // A principal the provider made for a tenant would be standing access to its data (and a
    // second tenant_admin could approve the provider's own Lockbox requests). The tenant's
    // first tenant_admin comes with the tenant (POST /v1/tenants); it makes the rest.
    return absl::PermissionDeniedError(
        "the provider's admin does not create a tenant's principals; its tenant_admin does");
  }
  if (p.name.empty() || p.name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError("name must be 1..200 bytes");
  }
  if (HasControlCharacter(p.name)) {
    return absl::InvalidArgumentError("name has a control character");
  }
  if (IsTenantRole(p.role) && p.tenant_id.empty()) {
    return absl::InvalidArgumentError("tenant roles need a tenant_id");
  }
  if (!IsTenantRole(p.role) && !p.tenant_id.empty()) {
    return absl::InvalidArgumentError("provider roles take no tenant_id");
  }
  const std::string& e = p.attributes.employer;
  if (e != "provider" && e != "subcontractor" && e != "partner") {
    return absl::InvalidArgumentError("employer must be provider, subcontractor or partner");
  }
  for (const auto& c : p.attributes.citizenship) {
    if (c.size() != 2 || !absl::ascii_isupper(c[0]) || !absl::ascii_isupper(c[1])) {
      return absl::InvalidArgumentError("citizenship entries are ISO 3166 alpha-2 codes");
    }
  }
  if (p.expires_in_days && (*p.expires_in_days < 1 || *p.expires_in_days > 3650)) {
    return absl::InvalidArgumentError("expires_in_days must be 1..3650");
  }
  return absl::OkStatus();
}

absl::Status CheckCanViewTenant(const Principal& who, std::string_view tenant_id) {
  if (who.role == Role::kAdmin) return absl::OkStatus();
  if (IsTenantRole(who.role) && who.tenant_id == tenant_id) return absl::OkStatus();
  return absl::PermissionDeniedError("not a principal of this tenant");
}

std::string_view OperationName(DataOperation op) {
  switch (op) {
    case DataOperation::kRead: return "read";
    case DataOperation::kWrite: return "write";
    case DataOperation::kDelete: return "delete";
    case DataOperation::kList: return "list";
  }
  return "unknown";
}

absl::Status CheckDataAccessByRole(const Principal& who, std::string_view tenant_id,
                                   DataOperation op) {
  (void)op;  // both tenant roles may do every operation on their tenant's objects
  if (IsTenantRole(who.role)) {
    if (who.tenant_id == tenant_id) return absl::OkStatus();
    return absl::PermissionDeniedError("not a principal of this tenant");
  }
  if (who.role == Role::kOperator || who.role == Role::kManager) {
    return absl::PermissionDeniedError(
        "provider staff have no standing access to customer data; an approved just-in-time "
        "grant is required");
  }
  return absl::PermissionDeniedError(
      StrCat("role ", RoleName(who.role), " never accesses customer data"));
}

absl::Status CheckCanManageCredential(const Principal& who, const Principal& target, bool disable) {
  const bool self = who.id == target.id;
  if (disable && self) return absl::PermissionDeniedError("a principal cannot disable itself");
  if (self) return absl::OkStatus();
  // A new token for a tenant's principal would hand the provider that principal's access: the
  // admin may only disable it.
  if (who.role == Role::kAdmin && (disable || !IsTenantRole(target.role))) {
    return absl::OkStatus();
  }
  if (who.role == Role::kTenantAdmin && IsTenantRole(target.role) &&
      target.tenant_id == who.tenant_id) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      "admins manage provider principals' credentials and may disable a tenant's, "
      "tenant_admins manage their own tenant's, and each principal may rotate its own token");
}

PrincipalService::PrincipalService(store::ControlStore& store, crypto::KeyProvider& keys,
                                   Random& random, const Clock& clock)
    : store_(store), keys_(keys), random_(random), clock_(clock) {}

absl::StatusOr<IssuedPrincipal> PrincipalService::Create(const NewPrincipal& n) {
  auto minted = Mint(n);
  if (!minted.ok()) return minted.status();
  if (auto s = store_.InsertPrincipal(minted->record); !s.ok()) return s;
  return std::move(minted->issued);
}

absl::StatusOr<MintedPrincipal> PrincipalService::Mint(const NewPrincipal& n) {
  MintedPrincipal minted;
  IssuedPrincipal& out = minted.issued;
  out.token = StrCat(kTokenPrefix, absl::WebSafeBase64Escape(random_.Bytes(kTokenBytes)));
  Principal& p = out.principal;
  p.id = NewId(random_);
  p.name = n.name;
  p.role = n.role;
  p.tenant_id = n.tenant_id;
  p.attributes = n.attributes;
  p.created_at = absl::ToUnixSeconds(clock_.Now());
  std::optional<int> days = n.expires_in_days;
  if (!days && n.role != Role::kAdmin) days = 90;
  if (days) p.expires_at = p.created_at + int64_t{*days} * 86400;

  store::PrincipalRecord& r = minted.record;
  r.id = p.id;
  if (IsTenantRole(p.role)) {
    auto sealed = keys_.Wrap(crypto::TenantKeyId(p.tenant_id), p.name, NameAad(p.id));
    if (!sealed.ok()) return sealed.status();
    r.sealed_name = std::move(*sealed);
  } else {
    r.name = p.name;
  }
  r.role = std::string(RoleName(p.role));
  r.tenant_id = p.tenant_id;
  r.token_sha256 = crypto::Sha256Hex(out.token);
  r.attributes_json = AttributesJson(p.attributes);
  r.created_at = p.created_at;
  r.expires_at = p.expires_at;
  return minted;
}

bool PrincipalService::Expired(const std::optional<int64_t>& expires_at) const {
  return expires_at && absl::ToUnixSeconds(clock_.Now()) >= *expires_at;
}

absl::StatusOr<Principal> PrincipalService::Authenticate(std::string_view token) {
  constexpr size_t kTokenChars = 43;  // base64url of 32 bytes, unpadded
  if (!token.starts_with(kTokenPrefix) || token.size() != kTokenPrefix.size() + kTokenChars) {
    return absl::UnauthenticatedError("malformed bearer token");
  }
  const std::string hash = crypto::Sha256Hex(token);
  const auto now = std::chrono::steady_clock::now();
  std::optional<Principal> p;
  {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end() && now - it->second.fetched < absl::ToChronoNanoseconds(kAuthCacheTtl)) {
      p = it->second.principal;
    }
  }
  if (!p) {
    auto record = store_.FindPrincipalByTokenHash(hash);
    if (absl::IsNotFound(record.status())) return absl::UnauthenticatedError("unknown token");
    if (!record.ok()) return record.status();
    auto fresh = FromRecord(*record);
    if (!fresh.ok()) return fresh.status();
    p = *std::move(fresh);
    std::lock_guard lock(cache_mu_);
    if (cache_.size() > 100000) cache_.clear();  // bounded: tokens are few, guesses are not cached
    cache_[hash] = {*p, now};
  }
  if (p->disabled) return absl::UnauthenticatedError("principal disabled");
  if (Expired(p->expires_at)) {
    return absl::UnauthenticatedError("token expired");
  }
  return *std::move(p);
}

absl::StatusOr<Principal> PrincipalService::Get(std::string_view id) {
  auto record = store_.GetPrincipal(id);
  if (!record.ok()) return record.status();
  return FromRecord(*record);
}

absl::Status PrincipalService::SetCredential(const store::PrincipalRecord& current,
                                             const std::string& token_sha256, bool disabled) {
  if (auto s = store_.SetPrincipalCredential(current.id, token_sha256, disabled); !s.ok()) {
    return s;
  }
  // Other instances hold the old lookup for at most kAuthCacheTtl; this one drops it now.
  std::lock_guard lock(cache_mu_);
  cache_.erase(current.token_sha256);
  return absl::OkStatus();
}

absl::StatusOr<std::string> PrincipalService::RotateToken(std::string_view id) {
  auto record = store_.GetPrincipal(id);
  if (!record.ok()) return record.status();
  if (record->disabled) {
    return absl::FailedPreconditionError("the principal is disabled; its token cannot be renewed");
  }
  // Rotation renews the token, not the principal's term: a new token of an expired principal
  // would be refused at once, so none is handed out.
  if (Expired(record->expires_at)) {
    return absl::FailedPreconditionError("the principal has expired; its token cannot be renewed");
  }
  std::string token = StrCat(kTokenPrefix, absl::WebSafeBase64Escape(random_.Bytes(kTokenBytes)));
  if (auto s = SetCredential(*record, crypto::Sha256Hex(token), false); !s.ok()) return s;
  return token;
}

absl::Status PrincipalService::Disable(std::string_view id) {
  auto record = store_.GetPrincipal(id);
  if (!record.ok()) return record.status();
  return SetCredential(*record, record->token_sha256, true);
}

}  // namespace custos::access

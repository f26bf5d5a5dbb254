// Principals, API tokens and who may do what.
//
// Tokens are 256-bit random values shown once at creation; only their SHA-256 is stored. Role
// checks are pure functions of a Principal so they are tested by table; operators never reach
// customer data by role alone (just-in-time grants come with the access workflow).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/random.h"
#include "crypto/key_provider.h"
#include "store/store.h"

namespace custos::access {

enum class Role { kAdmin, kOperator, kManager, kLegal, kAuditor, kTenantAdmin, kTenantUser };

absl::StatusOr<Role> ParseRole(std::string_view name);  // kInvalidArgument if unknown
std::string_view RoleName(Role role);
bool IsTenantRole(Role role);

struct Attributes {
  std::string employer = "provider";     // provider | subcontractor | partner
  std::vector<std::string> citizenship;  // ISO 3166 alpha-2
  bool screened = false;
};

struct Principal {
  std::string id;
  std::string name;
  Role role = Role::kTenantUser;
  std::string tenant_id;  // set iff IsTenantRole(role)
  Attributes attributes;
  int64_t created_at = 0;
  std::optional<int64_t> expires_at;
  bool disabled = false;
  bool mfa_enrolled = false;
};

struct NewPrincipal {
  std::string name;
  Role role = Role::kTenantUser;
  std::string tenant_id;
  Attributes attributes;
  std::optional<int> expires_in_days;  // default: none for admin, 90 for others
};

struct IssuedPrincipal {
  Principal principal;
  std::string token;  // the bearer token; never stored, shown once
};

// A principal made but not yet stored: what the caller shows, and what the store keeps.
struct MintedPrincipal {
  IssuedPrincipal issued;
  store::PrincipalRecord record;
};

// OK iff `creator` may create `p`: admins create provider principals; tenant_admins create
// tenant principals of their own tenant (nobody at the provider has standing access, so the
// provider's admin makes no principal of a tenant beyond the tenant_admin that comes with a new
// tenant). Also validates `p` (name, role/tenant pairing, attributes).
// kPermissionDenied or kInvalidArgument.
absl::Status CheckCanCreate(const Principal& creator, const NewPrincipal& p);

// OK iff `who` may rotate `target`'s token (`disable` false) or disable `target` (true): admins
// manage provider principals and may disable (never rotate, which would hand them its access)
// a tenant's; tenant_admins manage the principals of their own tenant; any principal may rotate
// its own token. Nobody disables itself (one call must not lock out the last admin).
// kPermissionDenied otherwise.
absl::Status CheckCanManageCredential(const Principal& who, const Principal& target, bool disable);

// Who may read a tenant's description: the provider admin and the tenant's own principals.
absl::Status CheckCanViewTenant(const Principal& who, std::string_view tenant_id);

enum class DataOperation { kRead, kWrite, kDelete, kList };
std::string_view OperationName(DataOperation op);

// Role-only decision for customer data: a tenant's own tenant_admin and tenant_user may; nobody
// else may without a just-in-time grant. kPermissionDenied saying why.
absl::Status CheckDataAccessByRole(const Principal& who, std::string_view tenant_id,
                                   DataOperation op);

// Creates principals and authenticates bearer tokens. Thread-safe.
class PrincipalService {
 public:
  // Tenant principals' names are sealed under their tenant's KEK in `keys` (customer data);
  // provider principals' names are stored in clear.
  PrincipalService(store::ControlStore& store, crypto::KeyProvider& keys, Random& random,
                   const Clock& clock);

  // Creates the principal (after CheckCanCreate by the caller, or unchecked at init).
  // kNotFound if a tenant principal's tenant does not exist (the caller checks existence).
  absl::StatusOr<IssuedPrincipal> Create(const NewPrincipal& p);
  // Makes the principal and its token as Create does, without storing it: for a new tenant's
  // first tenant_admin, stored in one transaction with its tenant (store::ControlStore::
  // InsertTenant). A tenant principal's name is sealed under its tenant's KEK, which must exist.
  absl::StatusOr<MintedPrincipal> Mint(const NewPrincipal& p);

  // kUnauthenticated for an unknown, malformed, expired or disabled token. Lookups are cached
  // for kAuthCacheTtl, so a rotated or disabled token stops working everywhere within it.
  absl::StatusOr<Principal> Authenticate(std::string_view bearer_token);

  // The principal `id`, disabled or not. kNotFound.
  absl::StatusOr<Principal> Get(std::string_view id);
  // Issues `id` a new token and returns it: the old one stops at once in this process, and in
  // every other within kAuthCacheTtl. kNotFound; kFailedPrecondition if `id` is disabled or
  // expired.
  absl::StatusOr<std::string> RotateToken(std::string_view id);
  // Disables `id` for good (idempotent); its token stops as above. kNotFound.
  absl::Status Disable(std::string_view id);

  static constexpr absl::Duration kAuthCacheTtl = absl::Seconds(5);

 private:
  struct CachedPrincipal {
    Principal principal;
    std::chrono::steady_clock::time_point fetched;
  };
  absl::StatusOr<Principal> FromRecord(const store::PrincipalRecord& r);
  bool Expired(const std::optional<int64_t>& expires_at) const;  // at the injected clock's now
  // Stores the credential and drops the old token's cached lookup.
  absl::Status SetCredential(const store::PrincipalRecord& current, const std::string& token_sha256,
                             bool disabled);

  store::ControlStore& store_;
  crypto::KeyProvider& keys_;
  Random& random_;
  const Clock& clock_;
  std::mutex cache_mu_;
  absl::flat_hash_map<std::string, CachedPrincipal> cache_;  // guarded by cache_mu_
};

}  // namespace custos::access

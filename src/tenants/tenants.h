// Tenants: provisioning in a geography (placement and the region policy from residency/), the
// tenant's KEK in the key provider and first data key in its cells, and the tenant view.
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "base/clock.h"
#include "base/random.h"
#include "crypto/key_provider.h"
#include "data/data.h"
#include "ledger/ledger.h"
#include "residency/residency.h"
#include "store/store.h"

namespace custos::tenants {

struct TenantSpec {
  std::string name;
  std::string customer_type;
  std::string geography;
  std::optional<std::string> home_region;
  std::vector<std::string> services;
  std::vector<std::string> technologies;
  bool lockbox = false;
  int retention_days = 90;
  bool allow_single_region = false;
};

struct Tenant {
  std::string id;
  std::string name;
  std::string customer_type;
  std::string geography;
  std::string home_region;
  std::string replica_region;  // empty when single-region
  std::vector<std::string> services;
  std::vector<std::string> technologies;
  bool lockbox = false;
  int retention_days = 90;
  std::string state;
  int64_t created_at = 0;

  data::TenantCells cells() const { return {id, home_region, replica_region}; }
};

// kInvalidArgument naming the field for a spec that cannot be valid in any catalog.
absl::Status ValidateSpec(const TenantSpec& spec);

class TenantService {
 public:
  TenantService(store::ControlStore& store, const residency::Catalog& catalog,
                crypto::KeyProvider& keys, data::ObjectService& objects, ledger::EventLog& events,
                Random& random, const Clock& clock);

  // Makes the record of a new tenant's first tenant_admin, once the tenant's KEK exists (the
  // admin's name is sealed under it).
  using FirstAdmin = absl::FunctionRef<absl::StatusOr<store::PrincipalRecord>(const Tenant&)>;

  // Places the tenant (residency errors pass through: region_policy_violation,
  // failed_precondition for no pair), creates its KEK and its first admin's record, records the
  // tenant.create event (by `actor_id` in `actor_role`), creates its first DEK, then stores the
  // tenant with its admin in one transaction: a tenant is never left without the one principal
  // that can create its others. On a failure before the tenant is stored, its KEK is destroyed
  // (the ledger entries and first data keys written by then stay, unreadable); after an insert
  // whose outcome cannot be read back, the KEK is kept.
  absl::StatusOr<Tenant> Create(const TenantSpec& spec, std::string_view actor_id,
                                std::string_view actor_role, FirstAdmin first_admin);

  // kNotFound for an unknown id.
  absl::StatusOr<Tenant> Get(const std::string& id);

 private:
  store::ControlStore& store_;
  const residency::Catalog& catalog_;
  crypto::KeyProvider& keys_;
  data::ObjectService& objects_;
  ledger::EventLog& events_;
  Random& random_;
  const Clock& clock_;
  std::mutex cache_mu_;
  absl::flat_hash_map<std::string, Tenant> cache_;  // guarded by cache_mu_
};

}  // namespace custos::tenants

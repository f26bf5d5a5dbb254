// The access-request service: the I/O shell around workflow.h. Stores requests in the control
// store (never deleting one), records every transition as a ledger event of the tenant
// (access.request, access.approve, access.deny, access.activate, access.revoke, access.close,
// access.expire) before the transition is stored or answered, and expires due requests on the
// injected clock. Thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "access/workflow.h"
#include "base/clock.h"
#include "base/random.h"
#include "ledger/ledger.h"
#include "store/store.h"

namespace custos::access {

class AccessRequestService {
 public:
  AccessRequestService(store::ControlStore& store, ledger::EventLog& events, Random& random,
                       const Clock& clock, WorkflowOptions options = {});

  const WorkflowOptions& options() const { return options_; }

  // Validates, checks eligibility against the tenant's home region, records access.request and
  // stores the request. The caller has checked that the tenant exists and read its Lockbox
  // setting. Errors as ValidateNewRequest and CheckEligible.
  absl::StatusOr<AccessRequest> Create(const Principal& who, const NewAccessRequest& request,
                                       bool lockbox, const RegionPersonnel& home);

  // kNotFound for an unknown id. A due request is expired (and that recorded) first.
  absl::StatusOr<AccessRequest> Get(std::string_view id);

  // Applies `action` (not kExpire) by `who`; errors as Transition, kNotFound, kAborted (409
  // conflict: changed concurrently). kActivate creates the grant id. `confirm` runs once the
  // action is allowed on the request as stored, before anything is recorded, and its error
  // stops the action: the caller's second factor is verified there, so it is checked against
  // the very version that is then committed (a request approved between a caller's read and
  // its action cannot be activated on an unverified code), and a call in the wrong state does
  // not use up the caller's code.
  absl::StatusOr<AccessRequest> Act(const Principal& who, std::string_view id, RequestAction action,
                                    absl::FunctionRef<absl::Status()> confirm);

  // Requests matching `filter`, after expiring the due ones.
  absl::StatusOr<std::vector<AccessRequest>> List(const store::AccessRequestFilter& filter);

  // The request holding grant `grant_id`; kNotFound if none. Reads the store at most once per
  // kGrantRecheck per grant (see grants_ below for what that means for revocations).
  // Shared, not copied: a grant is read on every operator request.
  absl::StatusOr<std::shared_ptr<const AccessRequest>> FindGrant(std::string_view grant_id);

  static constexpr absl::Duration kGrantRecheck = absl::Seconds(1);

  // Expires every request due at the clock's now, recording access.expire for each. Returns how
  // many expired.
  absl::StatusOr<int> ExpireDue();

  // Every request that was ever activated (has a grant id), in creation order.
  absl::StatusOr<std::vector<AccessRequest>> ListGrants();

 private:
  int64_t Now() const;
  // Records the transition from `before` to `after` and stores `after` (version + 1).
  absl::Status Commit(const AccessRequest& after, int64_t version, std::string_view kind,
                      const Principal& actor);
  absl::StatusOr<AccessRequest> ExpireIfDue(AccessRequest r, int64_t version);

  // Grants as last read from the store, by grant id. A check uses the cached grant while it is
  // younger than kGrantRecheck and reads the store again after that: the store read was a fifth of
  // an operator's GET (issue 6 profile). Transitions made here (revoke, close, expire) replace
  // the entry at once, so they count immediately on this instance; a revoke or close made on
  // another instance counts here within kGrantRecheck. Expiry by time is exact everywhere: the
  // caller compares expires_at with the clock on every access.
  struct CachedGrant {
    int64_t version = 0;
    std::shared_ptr<const AccessRequest> request;
    std::chrono::steady_clock::time_point fetched;
  };
  // Caches `r` at `version` unless a newer version is cached already (a read that raced a
  // transition must not bring back the state before it).
  void CacheGrant(std::shared_ptr<const AccessRequest> r, int64_t version);

  store::ControlStore& store_;
  ledger::EventLog& events_;
  Random& random_;
  const Clock& clock_;
  const WorkflowOptions options_;
  std::mutex grants_mu_;
  absl::flat_hash_map<std::string, CachedGrant> grants_;  // guarded by grants_mu_
};

// The request as stored (format of AccessRequestRecord::body_json) and back.
std::string RequestToJson(const AccessRequest& r);
absl::StatusOr<AccessRequest> RequestFromJson(std::string_view json);

}  // namespace custos::access

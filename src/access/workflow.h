// Just-in-time access requests (DESIGN.md "Roles and requests", "Access requests"): the pure
// state machine, eligibility rules and grant checks. No I/O, no clock: callers pass `now` (unix
// seconds from the injected clock), so every rule is tested by table.
//
//   pending_manager --approve(manager)--> pending_customer (Lockbox on) --approve(tenant_admin)
//        |                 \--(Lockbox off)--> approved --activate(requester, TOTP)--> active
//        +--deny--> denied (from any pending state)             active --> expired | revoked |
//        closed
//
// Pending and approved requests expire `pending_ttl` after they entered that state; an active
// grant expires `duration_minutes` after activation. Nothing is ever deleted: every transition
// appends to `history`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "access/access.h"

namespace custos::access {

enum class RequestState {
  kPendingManager,
  kPendingCustomer,
  kApproved,
  kActive,
  kExpired,
  kRevoked,
  kClosed,
  kDenied,
};
std::string_view StateName(RequestState s);
absl::StatusOr<RequestState> ParseState(std::string_view name);  // kInvalidArgument if unknown
// States that still expire (pending_*, approved, active).
bool IsLive(RequestState s);

enum class RequestAction { kApprove, kDeny, kActivate, kRevoke, kClose, kExpire };
std::string_view ActionName(RequestAction a);

struct WorkflowOptions {
  int64_t pending_ttl_seconds = 12 * 3600;  // pending and approved-not-activated requests
  int max_duration_minutes = 8 * 60;        // cap on a grant's duration
};

struct HistoryEntry {
  int64_t at = 0;  // unix seconds
  std::string actor;
  std::string action;                                  // "request", "approve", …, "expire"
  RequestState state = RequestState::kPendingManager;  // the state after the action
};

struct AccessRequest {
  std::string id;
  std::string tenant_id;
  std::string requester;                // principal id
  std::vector<std::string> operations;  // subset of read, list, write, delete
  std::string prefix;                   // key prefix the grant covers ("" = every key)
  std::string justification;
  std::string ticket;
  std::string purpose = "support";  // support | troubleshooting | security
  int duration_minutes = 60;
  bool lockbox = false;  // the tenant's Lockbox setting when the request was filed
  RequestState state = RequestState::kPendingManager;
  std::optional<int64_t> expires_at;  // unix seconds, while IsLive(state)
  std::string grant_id;               // set on activation
  std::optional<int64_t> activated_at;
  int64_t created_at = 0;
  std::vector<HistoryEntry> history;
};

// What a requester asks for (validated by ValidateNewRequest).
struct NewAccessRequest {
  std::string tenant_id;
  std::vector<std::string> operations;
  std::string prefix;
  std::string justification;
  std::string ticket;
  int64_t duration_minutes = 0;
  std::string purpose = "support";
};

// Bounds and shape of a request: operations a non-empty subset of read/list/write/delete without
// repeats; prefix up to 1024 bytes without control characters or "."/".." segments;
// justification 1..4000 bytes and ticket 1..200 bytes; duration 1..max; purpose support,
// troubleshooting or security. kInvalidArgument naming the field.
absl::Status ValidateNewRequest(const NewAccessRequest& r, const WorkflowOptions& o);

// What a tenant's home region asks of the people who operate it (residency::Region's
// operated_by and restrictions.personnel, copied by the caller: access/ sits below residency/).
struct RegionPersonnel {
  std::string region;
  std::string operated_by = "provider";  // "provider" or a local partner's name
  std::vector<std::string> citizenship;  // ISO 3166 alpha-2; empty = any
  bool screened = false;
};

// Who may file a request for a tenant homed in `home`: operators and managers employed by the
// provider (or, in a region operated by a local partner, by that partner), meeting the region's
// personnel requirements. kPermissionDenied with details {"rule","reason","region"}: rules
// "role", "employer", "operated_by", "personnel.citizenship", "personnel.screened".
absl::Status CheckEligible(const Principal& requester, const RegionPersonnel& home);

// The request as filed, in pending_manager, expiring pending_ttl from now.
AccessRequest NewRequest(const NewAccessRequest& r, std::string id, const Principal& requester,
                         bool lockbox, int64_t now, const WorkflowOptions& o);

// Applies `action` by `actor` at `now`. Errors, nothing changed: kPermissionDenied (this actor
// may not: wrong role, other tenant, own request for approve/deny, not the requester for
// activate/close); kFailedPrecondition (wrong state for the action, or the request has expired:
// the caller applies kExpire first). `grant_id` is used by kActivate only.
absl::StatusOr<AccessRequest> Transition(const AccessRequest& r, RequestAction action,
                                         const Principal& actor, int64_t now,
                                         const WorkflowOptions& o, std::string_view grant_id = {});

// True when the request is live and its expiry has come.
bool IsDue(const AccessRequest& r, int64_t now);

// Whether the active grant `r` lets `who` do `op` on `resource` (an object key, or for kList the
// listing prefix) of `tenant_id` at `now`. kPermissionDenied saying which check failed.
absl::Status CheckGrant(const AccessRequest& r, const Principal& who, std::string_view tenant_id,
                        DataOperation op, std::string_view resource, int64_t now);

// Who may read a request: its requester, managers, auditors, the admin, and the tenant's
// tenant_admin.
absl::Status CheckCanView(const AccessRequest& r, const Principal& who);

}  // namespace custos::access

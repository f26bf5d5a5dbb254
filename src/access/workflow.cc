#include "access/workflow.h"

#include <algorithm>

#include "base/errors.h"
#include "base/strings.h"
#include "base/utf8.h"
#include "boost/json.hpp"

namespace custos::access {
namespace {

struct StateEntry {
  RequestState state;
  std::string_view name;
};
constexpr StateEntry kStates[] = {
    {RequestState::kPendingManager, "pending_manager"},
    {RequestState::kPendingCustomer, "pending_customer"},
    {RequestState::kApproved, "approved"},
    {RequestState::kActive, "active"},
    {RequestState::kExpired, "expired"},
    {RequestState::kRevoked, "revoked"},
    {RequestState::kClosed, "closed"},
    {RequestState::kDenied, "denied"},
};

constexpr std::string_view kOperations[] = {"read", "list", "write", "delete"};
constexpr std::string_view kPurposes[] = {"support", "troubleshooting", "security"};

absl::Status Ineligible(std::string_view region, std::string_view rule, std::string reason) {
  boost::json::object details{{"region", region}, {"rule", rule}, {"reason", reason}};
  return WithApiCode(absl::PermissionDeniedError(StrCat("not eligible (", rule, "): ", reason)),
                     "permission_denied", boost::json::serialize(details));
}

absl::Status WrongState(const AccessRequest& r, RequestAction a) {
  boost::json::object details{{"state", StateName(r.state)}, {"action", ActionName(a)}};
  return WithApiCode(absl::FailedPreconditionError(StrCat(
                         "cannot ", ActionName(a), " a request in state ", StateName(r.state))),
                     "failed_precondition", boost::json::serialize(details));
}

bool IsManagerStaff(const Principal& p) { return p.role == Role::kManager; }

bool IsTenantAdminOf(const Principal& p, std::string_view tenant_id) {
  return p.role == Role::kTenantAdmin && p.tenant_id == tenant_id;
}

}  // namespace

std::string_view StateName(RequestState s) {
  for (const auto& e : kStates) {
    if (e.state == s) return e.name;
  }
  return "unknown";
}

absl::StatusOr<RequestState> ParseState(std::string_view name) {
  for (const auto& e : kStates) {
    if (e.name == name) return e.state;
  }
  return absl::InvalidArgumentError(StrCat("unknown request state '", name, "'"));
}

bool IsLive(RequestState s) {
  return s == RequestState::kPendingManager || s == RequestState::kPendingCustomer ||
         s == RequestState::kApproved || s == RequestState::kActive;
}

std::string_view ActionName(RequestAction a) {
  switch (a) {
    case RequestAction::kApprove: return "approve";
    case RequestAction::kDeny: return "deny";
    case RequestAction::kActivate: return "activate";
    case RequestAction::kRevoke: return "revoke";
    case RequestAction::kClose: return "close";
    case RequestAction::kExpire: return "expire";
  }
  return "unknown";
}

absl::Status ValidateNewRequest(const NewAccessRequest& r, const WorkflowOptions& o) {
  if (r.tenant_id.empty()) return absl::InvalidArgumentError("tenant_id is required");
  if (r.operations.empty()) {
    return absl::InvalidArgumentError(
        "operations must name at least one of read, list, write, delete");
  }
  for (size_t i = 0; i < r.operations.size(); ++i) {
    const std::string& op = r.operations[i];
    if (std::find(std::begin(kOperations), std::end(kOperations), op) == std::end(kOperations)) {
      return absl::InvalidArgumentError(StrCat("operations: unknown operation '", op, "'"));
    }
    if (std::find(r.operations.begin(), r.operations.begin() + i, op) != r.operations.begin() + i) {
      return absl::InvalidArgumentError(StrCat("operations: '", op, "' is repeated"));
    }
  }
  if (r.prefix.size() > 1024) return absl::InvalidArgumentError("prefix is over 1024 bytes");
  for (char c : r.prefix) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("prefix contains a control character");
    }
  }
  if (r.prefix.starts_with("/")) return absl::InvalidArgumentError("prefix starts with '/'");
  for (std::string_view seg : {std::string_view("./"), std::string_view("../")}) {
    if (r.prefix.starts_with(seg) || r.prefix.find(StrCat("/", seg)) != std::string::npos) {
      return absl::InvalidArgumentError("prefix has a '.' or '..' segment");
    }
  }
  if (r.prefix.find("//") != std::string::npos) {
    return absl::InvalidArgumentError("prefix has an empty segment");
  }
  if (r.justification.empty() || r.justification.size() > 4000) {
    return absl::InvalidArgumentError("justification must be 1..4000 bytes");
  }
  // Free text shown to approvers and auditors: lines and tabs, but no other control characters
  // (a NUL or an escape sequence could hide or rewrite what a reviewer sees).
  std::string text = r.justification;
  std::replace_if(
      text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
  if (HasControlCharacter(text)) {
    return absl::InvalidArgumentError(
        "justification has a control character other than a line break or a tab");
  }
  if (r.ticket.empty() || r.ticket.size() > 200) {
    return absl::InvalidArgumentError("ticket must be 1..200 bytes");
  }
  if (HasControlCharacter(r.ticket)) {
    return absl::InvalidArgumentError("ticket has a control character");
  }
  if (r.duration_minutes < 1 || r.duration_minutes > o.max_duration_minutes) {
    return absl::InvalidArgumentError(
        StrCat("duration_minutes must be 1..", o.max_duration_minutes));
  }
  if (std::find(std::begin(kPurposes), std::end(kPurposes), r.purpose) == std::end(kPurposes)) {
    return absl::InvalidArgumentError("purpose must be support, troubleshooting or security");
  }
  return absl::OkStatus();
}

absl::Status CheckEligible(const Principal& p, const RegionPersonnel& home) {
  if (p.role != Role::kOperator && p.role != Role::kManager) {
    return Ineligible(
        home.region, "role",
        StrCat("role ", RoleName(p.role), " may not request access to customer data"));
  }
  if (p.attributes.employer == "subcontractor") {
    return Ineligible(home.region, "employer",
                      "subcontractors are never granted access to customer data");
  }
  if (home.operated_by != "provider" && p.attributes.employer != "partner") {
    return Ineligible(home.region, "operated_by",
                      StrCat("the region is operated by ", home.operated_by,
                             "; only its employees (employer partner) may access it"));
  }
  if (home.operated_by == "provider" && p.attributes.employer == "partner") {
    return Ineligible(home.region, "operated_by",
                      "the region is operated by the provider; partner employees may not");
  }
  if (!home.citizenship.empty()) {
    bool ok = std::any_of(p.attributes.citizenship.begin(), p.attributes.citizenship.end(),
                          [&](const std::string& c) {
                            return std::find(home.citizenship.begin(), home.citizenship.end(), c) !=
                                   home.citizenship.end();
                          });
    if (!ok) {
      std::string allowed;
      for (const auto& c : home.citizenship) allowed += (allowed.empty() ? "" : ",") + c;
      return Ineligible(home.region, "personnel.citizenship",
                        StrCat("the region requires citizenship in one of ", allowed));
    }
  }
  if (home.screened && !p.attributes.screened) {
    return Ineligible(home.region, "personnel.screened",
                      "the region requires security-screened personnel");
  }
  return absl::OkStatus();
}

AccessRequest NewRequest(const NewAccessRequest& n, std::string id, const Principal& requester,
                         bool lockbox, int64_t now, const WorkflowOptions& o) {
  AccessRequest r;
  r.id = std::move(id);
  r.tenant_id = n.tenant_id;
  r.requester = requester.id;
  r.operations = n.operations;
  r.prefix = n.prefix;
  r.justification = n.justification;
  r.ticket = n.ticket;
  r.purpose = n.purpose;
  r.duration_minutes = static_cast<int>(n.duration_minutes);
  r.lockbox = lockbox;
  r.state = RequestState::kPendingManager;
  r.expires_at = now + o.pending_ttl_seconds;
  r.created_at = now;
  r.history.push_back({now, requester.id, "request", r.state});
  return r;
}

bool IsDue(const AccessRequest& r, int64_t now) {
  return IsLive(r.state) && r.expires_at && now >= *r.expires_at;
}

absl::StatusOr<AccessRequest> Transition(const AccessRequest& r, RequestAction action,
                                         const Principal& actor, int64_t now,
                                         const WorkflowOptions& o, std::string_view grant_id) {
  if (action == RequestAction::kExpire) {
    if (!IsDue(r, now)) return WrongState(r, action);
    AccessRequest out = r;
    out.state = RequestState::kExpired;
    out.expires_at.reset();
    out.history.push_back({now, actor.id, "expire", out.state});
    return out;
  }
  if (IsDue(r, now)) {
    return WithApiCode(absl::FailedPreconditionError("the request has expired"),
                       "failed_precondition");
  }
  AccessRequest out = r;
  switch (action) {
    case RequestAction::kApprove:
    case RequestAction::kDeny: {
      const bool deny = action == RequestAction::kDeny;
      if (r.state == RequestState::kPendingManager) {
        if (!IsManagerStaff(actor)) {
          return absl::PermissionDeniedError("a manager decides a pending_manager request");
        }
      } else if (r.state == RequestState::kPendingCustomer) {
        if (!IsTenantAdminOf(actor, r.tenant_id)) {
          return absl::PermissionDeniedError(
              "the tenant's tenant_admin decides a pending_customer request (Lockbox)");
        }
      } else {
        return WrongState(r, action);
      }
      if (actor.id == r.requester) {
        return WithApiCode(
            absl::PermissionDeniedError("nobody approves or denies their own request"),
            "permission_denied",
            R"({"rule":"self_approval","reason":"the requester may not decide"})");
      }
      if (deny) {
        out.state = RequestState::kDenied;
        out.expires_at.reset();
      } else if (r.state == RequestState::kPendingManager && r.lockbox) {
        out.state = RequestState::kPendingCustomer;
        out.expires_at = now + o.pending_ttl_seconds;
      } else {
        out.state = RequestState::kApproved;
        out.expires_at = now + o.pending_ttl_seconds;  // the window to activate it
      }
      break;
    }
    case RequestAction::kActivate:
      if (actor.id != r.requester) {
        return absl::PermissionDeniedError("only the requester activates a grant");
      }
      if (r.state != RequestState::kApproved) return WrongState(r, action);
      if (grant_id.empty()) return absl::InternalError("activation without a grant id");
      out.state = RequestState::kActive;
      out.grant_id = std::string(grant_id);
      out.activated_at = now;
      out.expires_at = now + int64_t{r.duration_minutes} * 60;
      break;
    case RequestAction::kRevoke:
      if (!(actor.role == Role::kManager || actor.role == Role::kAdmin ||
            IsTenantAdminOf(actor, r.tenant_id))) {
        return absl::PermissionDeniedError("a manager, the admin or the tenant_admin revokes");
      }
      if (r.state != RequestState::kActive && r.state != RequestState::kApproved) {
        return WrongState(r, action);
      }
      out.state = RequestState::kRevoked;
      out.expires_at.reset();
      break;
    case RequestAction::kClose:
      if (actor.id != r.requester) {
        return absl::PermissionDeniedError("only the requester closes a grant");
      }
      if (r.state != RequestState::kActive && r.state != RequestState::kApproved) {
        return WrongState(r, action);
      }
      out.state = RequestState::kClosed;
      out.expires_at.reset();
      break;
    case RequestAction::kExpire: break;  // handled above
  }
  out.history.push_back({now, actor.id, std::string(ActionName(action)), out.state});
  return out;
}

absl::Status CheckGrant(const AccessRequest& r, const Principal& who, std::string_view tenant_id,
                        DataOperation op, std::string_view resource, int64_t now) {
  if (r.requester != who.id) {
    return absl::PermissionDeniedError("the grant belongs to another principal");
  }
  if (r.state != RequestState::kActive) {
    return absl::PermissionDeniedError(StrCat("the grant is ", StateName(r.state)));
  }
  if (!r.expires_at || now >= *r.expires_at) {
    return absl::PermissionDeniedError("the grant has expired");
  }
  if (r.tenant_id != tenant_id) {
    return absl::PermissionDeniedError("the grant is for another tenant");
  }
  std::string_view name = OperationName(op);
  if (std::find(r.operations.begin(), r.operations.end(), name) == r.operations.end()) {
    return absl::PermissionDeniedError(StrCat("the grant does not cover ", name));
  }
  if (!resource.starts_with(r.prefix)) {
    return absl::PermissionDeniedError("the grant does not cover this key prefix");
  }
  return absl::OkStatus();
}

absl::Status CheckCanView(const AccessRequest& r, const Principal& who) {
  switch (who.role) {
    case Role::kManager:
    case Role::kAuditor:
    case Role::kAdmin: return absl::OkStatus();
    case Role::kOperator:
      if (who.id == r.requester) return absl::OkStatus();
      break;
    case Role::kTenantAdmin:
      if (who.tenant_id == r.tenant_id) return absl::OkStatus();
      break;
    default: break;
  }
  // Indistinguishable from an unknown id: request ids are not revealed to whoever may not see
  // them.
  return absl::NotFoundError("no such access request");
}

}  // namespace custos::access

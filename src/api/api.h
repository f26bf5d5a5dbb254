// The HTTP/JSON API of DESIGN.md: authenticates each request, checks who may call the route,
// parses and validates the body, calls the components and renders the answer. Every expected
// failure is an absl::Status rendered by http::ErrorResponse.
#pragma once

#include "access/access.h"
#include "access/requests.h"
#include "access/totp.h"
#include "base/clock.h"
#include "data/data.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "ledger/ledger.h"
#include "residency/residency.h"
#include "tenants/tenants.h"

namespace custos::api {

struct Services {
  const residency::Catalog* catalog = nullptr;
  access::PrincipalService* principals = nullptr;
  tenants::TenantService* tenants = nullptr;
  data::ObjectService* objects = nullptr;
  ledger::Ledger* ledger = nullptr;
  ledger::EventLog* events = nullptr;
  http::Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
  // Just-in-time access (issue 6): requests and grants, TOTP, consents and audit verdicts.
  access::AccessRequestService* requests = nullptr;
  access::MfaService* mfa = nullptr;
  store::ControlStore* control = nullptr;
  OffsetClock* fake_clock = nullptr;  // set only with `serve --fake-clock`: adds /v1/test/clock
  jobs::JobRunner* jobs = nullptr;    // POST /v1/test/clock runs what became due
  // Cells are local files (SQLite): a read is a page lookup, so object reads are served with no
  // thread waiting, like puts on every backend (on the ledger's answer threads and the cell
  // writers; api.cc ServeAsync). On PostgreSQL a read waits on its worker: it is a network round
  // trip, which would hold an answer thread.
  bool local_cells = false;
};

// Registers every route on `router`. `services` must outlive the router.
void RegisterRoutes(http::Router& router, const Services& services);

// A new tenant and its first tenant_admin ("<tenant name> admin"), stored together
// (tenants::TenantService::Create), by `actor_id` in `actor_role`. POST /v1/tenants, and the
// tenants `custos init --demo` and the benchmarks make. The admin's token is shown once.
struct NewTenant {
  tenants::Tenant tenant;
  access::IssuedPrincipal admin;
};
absl::StatusOr<NewTenant> CreateTenantWithAdmin(tenants::TenantService& tenants,
                                                access::PrincipalService& principals,
                                                const tenants::TenantSpec& spec,
                                                std::string_view actor_id,
                                                std::string_view actor_role);

}  // namespace custos::api

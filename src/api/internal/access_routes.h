// Routes of just-in-time access (issue 6): TOTP enrolment, access requests and their workflow,
// consents, sampled audits. Registered by RegisterRoutes.
#pragma once

#include "api/api.h"

namespace custos::api::internal {

void RegisterAccessRoutes(http::Router& router, const Services& services);

// The JSON of a request as the API serves it (DESIGN.md "Access requests").
boost::json::object AccessRequestJson(const access::AccessRequest& r);

}  // namespace custos::api::internal

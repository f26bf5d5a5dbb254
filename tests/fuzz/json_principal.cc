// The body of POST /v1/principals: parsed as the API does, then validated as for an admin
// creator (access::CheckCanCreate), which is what runs before anything is stored.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "access/access.h"
#include "api/internal/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto n = custos::api::internal::ParseNewPrincipal(body);
  if (!n.ok()) {
    if (n.status().code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  custos::access::Principal admin;
  admin.id = "admin";
  admin.role = custos::access::Role::kAdmin;
  (void)custos::access::CheckCanCreate(admin, *n);
  custos::access::Principal tenant_admin;
  tenant_admin.id = "ta";
  tenant_admin.role = custos::access::Role::kTenantAdmin;
  tenant_admin.tenant_id = n->tenant_id;
  (void)custos::access::CheckCanCreate(tenant_admin, *n);
  return 0;
}

// The body of POST /v1/tenants: parsed as the API does, validated (tenants::ValidateSpec), and
// placed by the default region catalog (config/regions.yaml), as TenantService::Create does
// before it stores anything.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/internal/requests.h"
#include "residency/residency.h"
#include "tenants/tenants.h"

namespace {

const custos::residency::Catalog* DefaultCatalog() {
  static const custos::residency::Catalog* catalog = [] {
    auto c = custos::residency::Catalog::FromFile(CUSTOS_SOURCE_DIR "/config/regions.yaml");
    if (!c.ok()) __builtin_trap();
    return new custos::residency::Catalog(*std::move(c));
  }();
  return catalog;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto spec = custos::api::internal::ParseTenantSpec(body);
  if (!spec.ok()) {
    if (spec.status().code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  if (!custos::tenants::ValidateSpec(*spec).ok()) return 0;
  custos::residency::TenantProfile profile;
  profile.customer_type = spec->customer_type;
  profile.geography = spec->geography;
  profile.home_region = spec->home_region;
  profile.services = spec->services;
  profile.technologies = spec->technologies;
  profile.allow_single_region = spec->allow_single_region;
  (void)DefaultCatalog()->Place(profile);
  return 0;
}

// regions.yaml (residency::Catalog::FromYaml): an operator's file, but read at start-up from
// disk, so malformed YAML of any shape must be a kInvalidArgument, never a crash or an
// uncaught yaml-cpp exception. A catalog that loads is then asked to place a tenant.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "residency/residency.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto catalog = custos::residency::Catalog::FromYaml(text);
  if (!catalog.ok()) {
    if (catalog.status().code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  for (const auto& region : catalog->regions()) {
    if (catalog->Find(region.id) == nullptr) __builtin_trap();
  }
  custos::residency::TenantProfile profile;
  profile.customer_type = "enterprise";
  profile.geography = catalog->regions().empty() ? "US" : catalog->regions().front().geography;
  profile.services = {"storage"};
  (void)catalog->Place(profile);
  return 0;
}

// The body of POST /v1/audit/verdicts: parsed and checked as the API does before it looks the
// grant up. What passes has one of the three verdicts, a valid period and a bounded note.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "access/audit.h"
#include "api/internal/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto v = custos::api::internal::ParseAuditVerdict(body);
  if (!v.ok()) {
    if (v.status().code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  if (v->verdict != "compliant" && v->verdict != "non_compliant" && v->verdict != "inconclusive") {
    __builtin_trap();
  }
  if (!custos::access::ParseAuditPeriod(v->period).ok() || v->note.size() > 4000) __builtin_trap();
  return 0;
}

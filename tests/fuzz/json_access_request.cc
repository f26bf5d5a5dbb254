// The body of POST /v1/access-requests: parsed as the API does, then validated with the default
// workflow options (access::ValidateNewRequest), which is what runs before anything is stored.
// A body that passes both must ask for a bounded duration and at least one operation.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "access/workflow.h"
#include "api/internal/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto n = custos::api::internal::ParseNewAccessRequest(body);
  if (!n.ok()) {
    if (n.status().code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  const custos::access::WorkflowOptions options;
  absl::Status valid = custos::access::ValidateNewRequest(*n, options);
  if (valid.ok()) {
    if (n->duration_minutes < 1 || n->duration_minutes > options.max_duration_minutes) {
      __builtin_trap();
    }
    if (n->operations.empty()) __builtin_trap();
  } else if (valid.code() != absl::StatusCode::kInvalidArgument) {
    __builtin_trap();
  }
  return 0;
}

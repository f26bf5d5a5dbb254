// The body of POST /v1/test/clock (served only with `serve --fake-clock`, still outside bytes).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/internal/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto seconds = custos::api::internal::ParseAdvanceSeconds(body);
  if (seconds.ok() && (*seconds < 0 || *seconds > int64_t{10} * 365 * 86400)) __builtin_trap();
  if (!seconds.ok() && seconds.status().code() != absl::StatusCode::kInvalidArgument) {
    __builtin_trap();
  }
  return 0;
}

// Query strings and listing cursors: the request-target's query through http::ParseQuery, then
// through each route's query parsing (object listing, access-log filter, proof parameters).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "api/internal/requests.h"
#include "data/data.h"
#include "http/http.h"

using custos::api::internal::QueryUint;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string target = "/v1/x?";
  target.append(reinterpret_cast<const char*>(data), size);
  auto query = custos::http::ParseQuery(target);
  if (!query.ok()) return 0;
  if (auto list = custos::api::internal::ParseListQuery(*query); list.ok()) {
    if (list->limit < 1 || list->limit > 1000) __builtin_trap();
    if (!list->start_after.empty()) {
      if (!custos::data::ValidateObjectKey(list->start_after).ok()) __builtin_trap();
      // The cursor the server hands out for this key reads back as the same key.
      std::string again;
      if (!absl::WebSafeBase64Unescape(absl::WebSafeBase64Escape(list->start_after), &again) ||
          again != list->start_after) {
        __builtin_trap();
      }
    }
  }
  if (auto f = custos::api::internal::ParseAccessLogQuery(*query); f.ok()) {
    if (f->limit < 1 || f->limit > 1000) __builtin_trap();
  }
  for (const char* name : {"index", "size", "old", "new", "cursor"}) {
    auto n = QueryUint(*query, name);
    // Canonical decimal: the number prints back as the parameter.
    if (n.ok() && std::to_string(*n) != query->at(name)) __builtin_trap();
  }
  return 0;
}

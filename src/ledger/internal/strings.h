// String helpers private to src/ledger.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace custos::ledger::internal {

// Debian's Abseil is built with its own absl::string_view, which does not convert from
// std::string_view; this bridges the two without copying.
inline absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

// Removes `prefix` from the front of `s` if it is there; says whether it was.
inline bool ConsumePrefix(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

}  // namespace custos::ledger::internal

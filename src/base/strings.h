// String helpers that work with std::string_view.
//
// Debian's abseil (20220623) is built with its own absl::string_view rather than an alias of
// std::string_view, so absl::StrCat, absl::StrSplit, absl::Cord, … do not accept a
// std::string_view. Custos code speaks std::string_view; these helpers bridge the two.
#pragma once

#include <iterator>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/string_view.h"
#include "fmt/format.h"

// Lets fmt (and so StrCat) print absl::string_view, e.g. absl::Status::message().
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(std::string_view(s.data(), s.size()), ctx);
  }
};

namespace custos {

namespace strings_internal {

// Appends `v` as fmt's "{}" renders it. Strings and integers are appended directly: StrCat builds
// the AAD of every object read and write, and a format_to per piece showed in its profile.
template <typename T>
void AppendPiece(std::string& out, const T& v) {
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    out.append(std::string_view(v));
  } else if constexpr (std::is_same_v<T, absl::string_view>) {
    out.append(v.data(), v.size());
  } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                       !std::is_same_v<T, char>) {
    const fmt::format_int digits(v);
    out.append(digits.data(), digits.size());
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

}  // namespace strings_internal

// Appends the arguments to `out` as fmt's "{}" renders each (strings, string_views, numbers).
template <typename... Args>
void StrAppend(std::string& out, const Args&... args) {
  (strings_internal::AppendPiece(out, args), ...);
}

// The arguments concatenated, as StrAppend renders them.
template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  StrAppend(out, args...);
  return out;
}

inline absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view StdView(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace custos

// Value conversions between Custos records and libpqxx 6.4 parameters and fields (not for other
// folders). BYTEA values travel as binary parameters (pqxx::binarystring: no escaping, no NUL
// truncation) and come back in text form, unescaped by pqxx::binarystring.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "base/utf8.h"
#include "pqxx/pqxx"

namespace custos::store::internal {

// A BYTEA parameter. An empty value is still a non-null pointer of length 0 (libpq reads a null
// pointer as SQL NULL).
inline pqxx::binarystring Bytes(std::string_view bytes) {
  static const char kEmpty = 0;
  return pqxx::binarystring(bytes.empty() ? &kEmpty : bytes.data(), bytes.size());
}

inline std::string ReadBytes(const pqxx::field& f) { return pqxx::binarystring(f).str(); }

// The rows of a multi-row VALUES list whose parameters come column-major — libpqxx 6.4 passes a
// variable number of parameters as one dynamic list per column: `rows` tuples of `columns`
// parameters numbered from `first` ($first..$first+rows-1 the first column, and so on), each
// tuple ending with `row_suffix` (e.g. ",1" for a constant column). "($1,$3),($2,$4)" for 2x2.
// `casts`, if given, has one entry per column appended to its parameters (e.g. "::bigint"): a
// VALUES list that is not an INSERT's own has no target columns to type its parameters.
inline std::string ColumnMajorValues(size_t rows, size_t columns, size_t first,
                                     std::string_view row_suffix = "",
                                     std::initializer_list<std::string_view> casts = {}) {
  std::string out;
  for (size_t r = 0; r < rows; ++r) {
    out += r == 0 ? "(" : ",(";
    for (size_t c = 0; c < columns; ++c) {
      if (c > 0) out += ',';
      out += '$';
      out += std::to_string(first + c * rows + r);
      if (c < casts.size()) out += casts.begin()[c];
    }
    out += row_suffix;
    out += ')';
  }
  return out;
}

// Whether `s` cannot be a TEXT parameter: libpq passes text as C strings (no NUL) and the
// database refuses bytes that are not UTF-8 (with its own error text, which must not reach a
// client). A lookup by such a value finds nothing; a write of one is refused.
inline bool CannotBeText(std::string_view s) {
  return s.find('\0') != std::string_view::npos || !IsValidUtf8(s);
}

// Refuses values that CannotBeText instead of storing a truncated value or failing in the
// database (which would fail a whole batch).
inline absl::Status CheckText(std::initializer_list<std::string_view> values) {
  for (std::string_view v : values) {
    if (CannotBeText(v)) {
      return absl::InvalidArgumentError("text value contains a NUL byte or is not UTF-8");
    }
  }
  return absl::OkStatus();
}

}  // namespace custos::store::internal

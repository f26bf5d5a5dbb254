// Value conversions between Custos records and libpqxx 6.4 parameters and fields (not for other
// folders). BYTEA values travel as binary parameters (pqxx::binarystring: no escaping, no NUL
// truncation) and come back in text form, unescaped by pqxx::binarystring.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "pqxx/pqxx"

namespace custos::store::internal {

// A BYTEA parameter. An empty value is still a non-null pointer of length 0 (libpq reads a null
// pointer as SQL NULL).
inline pqxx::binarystring Bytes(std::string_view bytes) {
  static const char kEmpty = 0;
  return pqxx::binarystring(bytes.empty() ? &kEmpty : bytes.data(), bytes.size());
}

inline std::string ReadBytes(const pqxx::field& f) { return pqxx::binarystring(f).str(); }

inline bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// Text parameters are C strings to libpq and PostgreSQL's TEXT cannot hold NUL: refuse them
// instead of storing a truncated value.
inline absl::Status CheckText(std::initializer_list<std::string_view> values) {
  for (std::string_view v : values) {
    if (HasNul(v)) return absl::InvalidArgumentError("text value contains a NUL byte");
  }
  return absl::OkStatus();
}

}  // namespace custos::store::internal

// Strict reading of JSON request bodies: malformed JSON, a non-object, an unknown field, a
// missing required field or a wrong type is kInvalidArgument naming the field. `null` reads as
// absent.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/json.hpp"

namespace custos::api::internal {

// OK iff `body` is empty or an empty JSON object: what a route that takes no body accepts. A
// route that changes state checks it first, so that a malformed or unexpected body changes
// nothing (a field it ignored would look accepted).
absl::Status CheckNoBody(std::string_view body);

class JsonBody {
 public:
  static absl::StatusOr<JsonBody> Parse(std::string_view body,
                                        std::initializer_list<std::string_view> allowed);
  // For nested objects: `value` must be an object with only `allowed` fields.
  static absl::StatusOr<JsonBody> FromValue(const boost::json::value& value,
                                            std::string_view field_name,
                                            std::initializer_list<std::string_view> allowed);

  absl::StatusOr<std::string> String(std::string_view name) const;  // required
  absl::StatusOr<std::optional<std::string>> OptString(std::string_view name) const;
  absl::StatusOr<bool> Bool(std::string_view name, bool fallback) const;
  absl::StatusOr<bool> RequiredBool(std::string_view name) const;
  absl::StatusOr<int64_t> Int(std::string_view name, int64_t fallback, int64_t min,
                              int64_t max) const;
  absl::StatusOr<std::optional<int64_t>> OptInt(std::string_view name, int64_t min,
                                                int64_t max) const;
  // A list of strings; absent = empty. With `single_string_ok`, "X" reads as ["X"].
  absl::StatusOr<std::vector<std::string>> StringList(std::string_view name,
                                                      bool single_string_ok = false) const;
  // As StringList, for a field the contract requires: absent (or null) is kInvalidArgument, an
  // empty list is a value.
  absl::StatusOr<std::vector<std::string>> RequiredStringList(std::string_view name) const;
  // The member if present and not null.
  const boost::json::value* Get(std::string_view name) const;

 private:
  explicit JsonBody(boost::json::object object) : object_(std::move(object)) {}
  boost::json::object object_;
};

}  // namespace custos::api::internal

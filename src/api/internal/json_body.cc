#include "api/internal/json_body.h"

#include "base/strings.h"

namespace custos::api::internal {
namespace {

absl::Status WrongType(std::string_view name, std::string_view want) {
  return absl::InvalidArgumentError(StrCat("field '", name, "' must be ", want));
}

absl::Status Missing(std::string_view name) {
  return absl::InvalidArgumentError(StrCat("missing field '", name, "'"));
}

absl::Status CheckFields(const boost::json::object& o, std::string_view where,
                         std::initializer_list<std::string_view> allowed) {
  for (const auto& [k, v] : o) {
    bool known = false;
    for (std::string_view a : allowed) known = known || a == std::string_view(k);
    if (!known) {
      return absl::InvalidArgumentError(
          StrCat("unknown field '", where, where.empty() ? "" : ".", std::string_view(k), "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<JsonBody> JsonBody::Parse(std::string_view body,
                                         std::initializer_list<std::string_view> allowed) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec) return absl::InvalidArgumentError("request body is not valid JSON: " + ec.message());
  if (!v.is_object()) return absl::InvalidArgumentError("request body must be a JSON object");
  if (auto s = CheckFields(v.as_object(), "", allowed); !s.ok()) return s;
  return JsonBody(std::move(v.as_object()));
}

absl::StatusOr<JsonBody> JsonBody::FromValue(const boost::json::value& value,
                                             std::string_view field_name,
                                             std::initializer_list<std::string_view> allowed) {
  if (!value.is_object()) return WrongType(field_name, "an object");
  if (auto s = CheckFields(value.as_object(), field_name, allowed); !s.ok()) return s;
  return JsonBody(value.as_object());
}

absl::Status CheckNoBody(std::string_view body) {
  if (body.empty()) return absl::OkStatus();
  auto parsed = JsonBody::Parse(body, {});
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        StrCat("this route takes no request body (or {}): ", parsed.status().message()));
  }
  return absl::OkStatus();
}

const boost::json::value* JsonBody::Get(std::string_view name) const {
  const boost::json::value* v = object_.if_contains(name);
  if (v == nullptr || v->is_null()) return nullptr;
  return v;
}

absl::StatusOr<std::string> JsonBody::String(std::string_view name) const {
  auto v = OptString(name);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return Missing(name);
  return **v;
}

absl::StatusOr<std::optional<std::string>> JsonBody::OptString(std::string_view name) const {
  const boost::json::value* v = Get(name);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return WrongType(name, "a string");
  return std::optional<std::string>(std::string(v->as_string()));
}

absl::StatusOr<bool> JsonBody::Bool(std::string_view name, bool fallback) const {
  const boost::json::value* v = Get(name);
  if (v == nullptr) return fallback;
  if (!v->is_bool()) return WrongType(name, "true or false");
  return v->as_bool();
}

absl::StatusOr<bool> JsonBody::RequiredBool(std::string_view name) const {
  if (Get(name) == nullptr) return Missing(name);
  return Bool(name, false);
}

absl::StatusOr<std::optional<int64_t>> JsonBody::OptInt(std::string_view name, int64_t min,
                                                        int64_t max) const {
  const boost::json::value* v = Get(name);
  if (v == nullptr) return std::optional<int64_t>();
  int64_t n;
  if (v->is_int64()) {
    n = v->as_int64();
  } else if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    n = static_cast<int64_t>(v->as_uint64());
  } else {
    return WrongType(name, "an integer");
  }
  if (n < min || n > max) {
    return absl::InvalidArgumentError(
        StrCat("field '", name, "' must be between ", min, " and ", max));
  }
  return std::optional<int64_t>(n);
}

absl::StatusOr<int64_t> JsonBody::Int(std::string_view name, int64_t fallback, int64_t min,
                                      int64_t max) const {
  auto v = OptInt(name, min, max);
  if (!v.ok()) return v.status();
  return v->value_or(fallback);
}

absl::StatusOr<std::vector<std::string>> JsonBody::StringList(std::string_view name,
                                                              bool single_string_ok) const {
  std::vector<std::string> out;
  const boost::json::value* v = Get(name);
  if (v == nullptr) return out;
  if (single_string_ok && v->is_string()) {
    out.emplace_back(v->as_string());
    return out;
  }
  if (!v->is_array()) return WrongType(name, "a list of strings");
  for (const auto& x : v->as_array()) {
    if (!x.is_string()) return WrongType(name, "a list of strings");
    out.emplace_back(x.as_string());
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> JsonBody::RequiredStringList(std::string_view name) const {
  if (Get(name) == nullptr) return Missing(name);
  return StringList(name);
}

}  // namespace custos::api::internal

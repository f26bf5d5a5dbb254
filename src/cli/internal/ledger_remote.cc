#include "cli/internal/ledger_remote.h"

#include "absl/strings/escaping.h"
#include "base/strings.h"
#include "ledger/merkle.h"

namespace custos::cli::internal {
namespace {

namespace json = boost::json;

// "HTTP 404 not_found: no such tile" from an error answer in the API's error shape, or as much
// of it as is there.
std::string DescribeError(const HttpResponse& r) {
  std::string out = StrCat("HTTP ", r.status);
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  const json::object* o = !ec && v.is_object() ? &v.get_object() : nullptr;
  const json::value* err = o != nullptr ? o->if_contains("error") : nullptr;
  if (err != nullptr && err->is_object()) {
    const json::object& e = err->get_object();
    if (auto* c = e.if_contains("code"); c != nullptr && c->is_string()) {
      out += StrCat(" ", std::string_view(c->get_string()));
    }
    if (auto* m = e.if_contains("message"); m != nullptr && m->is_string()) {
      out += StrCat(": ", std::string_view(m->get_string()));
    }
  }
  return out;
}

absl::Status HttpError(std::string_view target, const HttpResponse& r) {
  std::string message = StrCat("GET ", target, ": ", DescribeError(r));
  if (r.status == 404) return absl::NotFoundError(message);
  if (r.status == 401 || r.status == 403) return absl::PermissionDeniedError(message);
  if (r.status >= 500) return absl::UnavailableError(message);
  return absl::FailedPreconditionError(message);
}

std::optional<uint64_t> Uint(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() >= 0) return static_cast<uint64_t>(v->get_int64());
  return std::nullopt;
}

// {"<a>": a, "<b>": b, "hashes": [base64 of 32 bytes, ...]}
absl::StatusOr<std::vector<std::string>> ParseProof(std::string_view target, const json::object& o,
                                                    std::string_view a_name, uint64_t a,
                                                    std::string_view b_name, uint64_t b) {
  auto bad = [&](std::string_view why) {
    return absl::DataLossError(StrCat("GET ", target, ": malformed proof: ", why));
  };
  if (Uint(o, a_name) != a || Uint(o, b_name) != b) return bad("it is not for the sizes asked");
  const json::value* hashes = o.if_contains("hashes");
  if (hashes == nullptr || !hashes->is_array()) return bad("no hashes array");
  if (hashes->get_array().size() > ledger::kMaxProofHashes) return bad("too many hashes");
  std::vector<std::string> out;
  for (const json::value& h : hashes->get_array()) {
    std::string raw;
    if (!h.is_string() || !absl::Base64Unescape(AbslView(std::string_view(h.get_string())), &raw) ||
        raw.size() != ledger::kHashSize) {
      return bad("a hash is not base64 of 32 bytes");
    }
    out.push_back(std::move(raw));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> LedgerRemote::GetOk(std::string_view target, std::string_view token) {
  auto r = http_.Get(target, token);
  if (!r.ok()) return r.status();
  if (r->status != 200) return HttpError(target, *r);
  return std::move(r->body);
}

absl::StatusOr<std::string> LedgerRemote::Checkpoint() { return GetOk("/ledger/checkpoint"); }

absl::StatusOr<std::string> LedgerRemote::ReadTile(const ledger::Tile& tile) {
  return GetOk(StrCat("/ledger/", ledger::TilePath(tile)));
}

absl::StatusOr<json::object> LedgerRemote::GetJsonObject(std::string_view target,
                                                         std::string_view token) {
  auto body = GetOk(target, token);
  if (!body.ok()) return body.status();
  boost::system::error_code ec;
  json::value v = json::parse(*body, ec);
  if (ec || !v.is_object()) {
    return absl::DataLossError(StrCat("GET ", target, ": the answer is not a JSON object"));
  }
  return std::move(v.get_object());
}

absl::StatusOr<std::vector<std::string>> LedgerRemote::InclusionProof(uint64_t index,
                                                                      uint64_t size) {
  const std::string target = StrCat("/v1/ledger/proof/inclusion?index=", index, "&size=", size);
  auto o = GetJsonObject(target, "");
  if (!o.ok()) return o.status();
  return ParseProof(target, *o, "index", index, "size", size);
}

absl::StatusOr<std::vector<std::string>> LedgerRemote::ConsistencyProof(uint64_t old_size,
                                                                        uint64_t new_size) {
  const std::string target =
      StrCat("/v1/ledger/proof/consistency?old=", old_size, "&new=", new_size);
  auto o = GetJsonObject(target, "");
  if (!o.ok()) return o.status();
  return ParseProof(target, *o, "old", old_size, "new", new_size);
}

}  // namespace custos::cli::internal

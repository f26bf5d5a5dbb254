#include "absl/strings/str_split.h"
#include "base/errors.h"
#include "base/strings.h"
#include "boost/json.hpp"
#include "http/http.h"

namespace custos::http {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return out;
  for (absl::string_view s : absl::StrSplit(AbslView(path), '/')) out.push_back(StdView(s));
  return out;
}

}  // namespace

absl::StatusOr<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) {
      return absl::InvalidArgumentError("truncated percent-escape");
    }
    int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return absl::InvalidArgumentError("malformed percent-escape");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> ParseQuery(std::string_view target) {
  std::map<std::string, std::string> query;
  size_t q = target.find('?');
  if (q == std::string_view::npos) return query;
  for (absl::string_view apair : absl::StrSplit(AbslView(target.substr(q + 1)), '&')) {
    std::string_view pair = StdView(apair);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    auto k = PercentDecode(pair.substr(0, eq));
    auto v = PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (!k.ok() || !v.ok()) return absl::InvalidArgumentError("malformed query string");
    query[*k] = *v;
  }
  return query;
}

void Router::Add(std::string_view method, std::string_view pattern, Handler handler,
                 RouteOptions options) {
  AddAsync(
      method, pattern,
      [handler = std::move(handler)](const std::shared_ptr<Request>& req,
                                     const std::shared_ptr<Responder>& responder) {
        responder->Reply(handler(*req));
      },
      options);
}

void Router::AddAsync(std::string_view method, std::string_view pattern, AsyncHandler handler,
                      RouteOptions options) {
  Route r{std::string(method), std::string(pattern), {}, std::move(handler), options};
  for (std::string_view s : SplitPath(pattern)) r.segments.emplace_back(s);
  routes_.push_back(std::move(r));
}

absl::StatusOr<Router::Match> Router::Find(std::string_view method, std::string_view path) const {
  std::vector<std::string_view> parts = SplitPath(path);
  std::vector<std::string_view> allowed;  // methods of the routes whose path matched
  for (const Route& r : routes_) {
    std::map<std::string, std::string_view> raw;
    bool ok = true;
    size_t i = 0;
    for (; i < r.segments.size() && ok; ++i) {
      const std::string& seg = r.segments[i];
      bool is_param = seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
      if (is_param && seg.ends_with("...}")) {
        // The rest of the path, as one raw string (may contain '/').
        if (i >= parts.size()) {
          ok = false;
          break;
        }
        const char* begin = parts[i].data();
        const char* end = parts.back().data() + parts.back().size();
        // May be empty ("/objects/"): the handler refuses an empty key with 400, which says
        // more than "no such route".
        raw[seg.substr(1, seg.size() - 5)] = std::string_view(begin, end - begin);
        i = parts.size();
        break;
      }
      if (i >= parts.size()) {
        ok = false;
        break;
      }
      if (is_param) {
        if (parts[i].empty()) {
          ok = false;
          break;
        }
        raw[seg.substr(1, seg.size() - 2)] = parts[i];
      } else if (seg != parts[i]) {
        ok = false;
      }
    }
    if (!ok) continue;
    if (i < r.segments.size() || (i < parts.size())) continue;
    // RFC 9110 9.3.2: HEAD is GET without the content (the server drops the body).
    if (r.method != method && !(method == "HEAD" && r.method == "GET")) {
      allowed.push_back(r.method);
      if (r.method == "GET") allowed.emplace_back("HEAD");
      continue;
    }
    Match m{&r.handler, r.options, r.pattern, {}};
    for (const auto& [name, value] : raw) {
      auto decoded = PercentDecode(value);
      if (!decoded.ok()) return decoded.status();
      m.params[name] = std::move(*decoded);
    }
    return m;
  }
  if (!allowed.empty()) {
    // The details name the route's methods; ErrorResponse turns them into the Allow header
    // that RFC 9110 requires on a 405.
    boost::json::array methods;
    for (std::string_view m : allowed) methods.emplace_back(m);
    return WithApiCode(
        absl::FailedPreconditionError(StrCat("method ", method, " is not allowed on this route")),
        "method_not_allowed",
        boost::json::serialize(boost::json::object{{"allow", std::move(methods)}}));
  }
  return absl::NotFoundError("no such route");
}

}  // namespace custos::http

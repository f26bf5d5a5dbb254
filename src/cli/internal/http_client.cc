// HttpClient: Beast's asynchronous operations run to completion on a private io_context, so that
// every step (resolve, connect, write, read) has a deadline; the caller sees a blocking call.
#include "cli/internal/http_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "base/strings.h"

namespace custos::cli::internal {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

bool HasControlOrSpace(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return true;
  }
  return false;
}

absl::StatusOr<uint16_t> ParsePort(std::string_view s) {
  uint32_t port = 0;
  if (s.empty() || s.size() > 5 || !absl::SimpleAtoi(AbslView(s), &port) || port == 0 ||
      port > 65535 || s.find_first_not_of("0123456789") != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat("bad port '", s, "' in the URL"));
  }
  return static_cast<uint16_t>(port);
}

// Splits "host[:port]" or "[v6]:port" into the url.
absl::Status ParseAuthority(std::string_view authority, HttpUrl& url) {
  if (authority.empty()) return absl::InvalidArgumentError("the URL has no host");
  if (authority.find('@') != std::string_view::npos) {
    return absl::InvalidArgumentError("user information in the URL is not supported");
  }
  std::string_view port;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("unterminated '[' in the URL's host");
    }
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return absl::InvalidArgumentError("junk after ']' in the URL");
      port = rest.substr(1);
    }
  } else {
    size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (url.host.empty()) return absl::InvalidArgumentError("the URL has no host");
  if (!port.empty() || absl::EndsWith(AbslView(authority), ":")) {
    auto p = ParsePort(port);
    if (!p.ok()) return p.status();
    url.port = *p;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url) {
  if (HasControlOrSpace(url)) {
    return absl::InvalidArgumentError("the URL holds a space or control character");
  }
  constexpr std::string_view kScheme = "http://";
  if (!absl::StartsWithIgnoreCase(AbslView(url), AbslView(kScheme))) {
    if (absl::StartsWithIgnoreCase(AbslView(url), "https://")) {
      return absl::InvalidArgumentError(
          "https:// is not supported by this client; use http:// (e.g. through a local TLS "
          "tunnel)");
    }
    return absl::InvalidArgumentError(StrCat("the URL must start with http://, got '", url, "'"));
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return absl::InvalidArgumentError("the base URL must not have a query or fragment");
  }
  size_t slash = rest.find('/');
  HttpUrl out;
  if (auto s = ParseAuthority(rest.substr(0, slash), out); !s.ok()) return s;
  if (slash != std::string_view::npos) {
    std::string_view prefix = rest.substr(slash);
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    out.prefix = std::string(prefix);
  }
  return out;
}

struct HttpClient::Impl {
  HttpUrl url;
  HttpClientOptions options;
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  Impl(HttpUrl u, HttpClientOptions o) : url(std::move(u)), options(o) {}

  std::string HostHeader() const {
    std::string host =
        url.host.find(':') != std::string::npos ? StrCat("[", url.host, "]") : url.host;
    return url.port == 80 ? host : StrCat(host, ":", url.port);
  }

  std::string Where() const { return StrCat(url.host, ":", url.port); }

  void Close() {
    if (stream) {
      beast::error_code ignored;
      stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream->close();
    }
    stream.reset();
    buffer.clear();
  }

  // Runs the operations started on ioc until they complete.
  void RunToCompletion() {
    ioc.restart();
    ioc.run();
  }

  absl::Status Connect() {
    Close();
    tcp::resolver resolver(ioc);
    beast::error_code ec = net::error::would_block;
    tcp::resolver::results_type endpoints;
    resolver.async_resolve(url.host, StrCat(url.port),
                           [&](beast::error_code e, tcp::resolver::results_type r) {
                             ec = e;
                             endpoints = std::move(r);
                           });
    ioc.restart();
    ioc.run_for(absl::ToChronoNanoseconds(options.timeout));
    if (ec == net::error::would_block) {
      resolver.cancel();
      RunToCompletion();
      return absl::DeadlineExceededError(StrCat("resolving ", url.host, " timed out"));
    }
    if (ec) return absl::UnavailableError(StrCat("cannot resolve ", url.host, ": ", ec.message()));
    stream.emplace(ioc);
    stream->expires_after(absl::ToChronoNanoseconds(options.timeout));
    ec = net::error::would_block;
    stream->async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    RunToCompletion();
    if (ec) {
      stream.reset();
      if (ec == beast::error::timeout) {
        return absl::DeadlineExceededError(StrCat("connecting to ", Where(), " timed out"));
      }
      return absl::UnavailableError(StrCat("cannot connect to ", Where(), ": ", ec.message()));
    }
    return absl::OkStatus();
  }

  // One request on the open stream. On failure the stream is closed.
  template <typename Body>
  absl::StatusOr<HttpResponse> Exchange(const bhttp::request<Body>& req) {
    stream->expires_after(absl::ToChronoNanoseconds(options.timeout));
    beast::error_code ec = net::error::would_block;
    bhttp::async_write(*stream, req, [&](beast::error_code e, size_t) { ec = e; });
    RunToCompletion();
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    if (!ec) {
      ec = net::error::would_block;
      bhttp::async_read(*stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
      RunToCompletion();
    }
    if (ec) {
      Close();
      if (ec == beast::error::timeout) {
        return absl::DeadlineExceededError(StrCat(Where(), " did not answer in time"));
      }
      if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) {
        return absl::UnavailableError(StrCat(Where(), " closed the connection"));
      }
      if (ec == bhttp::error::body_limit) {
        return absl::DataLossError(StrCat("the answer from ", Where(), " is too large"));
      }
      if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category()) {
        return absl::DataLossError(StrCat("malformed HTTP from ", Where(), ": ", ec.message()));
      }
      return absl::UnavailableError(StrCat("connection to ", Where(), " failed: ", ec.message()));
    }
    auto& res = parser.get();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    out.content_type = std::string(res[bhttp::field::content_type]);
    out.body = std::move(res.body());
    if (!res.keep_alive()) Close();
    return out;
  }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() { impl_->Close(); }

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(std::string_view url,
                                                               HttpClientOptions options) {
  auto parsed = ParseHttpUrl(url);
  if (!parsed.ok()) return parsed.status();
  return std::unique_ptr<HttpClient>(
      new HttpClient(std::make_unique<Impl>(*std::move(parsed), options)));
}

std::string HttpClient::BaseUrl() const {
  return StrCat("http://", impl_->HostHeader(), impl_->url.prefix);
}

absl::StatusOr<HttpResponse> HttpClient::Get(std::string_view target,
                                             std::string_view bearer_token) {
  if (target.empty() || target.front() != '/' || HasControlOrSpace(target)) {
    return absl::InvalidArgumentError(StrCat("bad request target '", target, "'"));
  }
  if (HasControlOrSpace(bearer_token)) {
    return absl::InvalidArgumentError("the token holds a space or control character");
  }
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, StrCat(impl_->url.prefix, target), 11};
  req.set(bhttp::field::host, impl_->HostHeader());
  req.set(bhttp::field::user_agent, "custos-verifier");
  req.set(bhttp::field::accept, "*/*");
  if (!bearer_token.empty()) req.set(bhttp::field::authorization, StrCat("Bearer ", bearer_token));
  req.keep_alive(true);

  const bool reused = impl_->stream.has_value();
  if (!reused) {
    if (auto s = impl_->Connect(); !s.ok()) return s;
  }
  auto res = impl_->Exchange(req);
  // A kept-alive connection the server closed meanwhile fails at once; GET is safe to repeat.
  if (!res.ok() && reused && absl::IsUnavailable(res.status())) {
    if (auto s = impl_->Connect(); !s.ok()) return s;
    res = impl_->Exchange(req);
  }
  return res;
}

absl::StatusOr<HttpResponse> HttpClient::Post(
    std::string_view target, std::string_view body, std::string_view bearer_token,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  if (target.empty() || target.front() != '/' || HasControlOrSpace(target)) {
    return absl::InvalidArgumentError(StrCat("bad request target '", target, "'"));
  }
  if (HasControlOrSpace(bearer_token)) {
    return absl::InvalidArgumentError("the token holds a space or control character");
  }
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, StrCat(impl_->url.prefix, target), 11};
  req.set(bhttp::field::host, impl_->HostHeader());
  req.set(bhttp::field::user_agent, "custos-cli");
  req.set(bhttp::field::accept, "application/json");
  if (!bearer_token.empty()) req.set(bhttp::field::authorization, StrCat("Bearer ", bearer_token));
  for (const auto& [name, value] : headers) {
    if (HasControlOrSpace(value)) {
      return absl::InvalidArgumentError(StrCat("header ", name, " holds a space or control"));
    }
    req.set(name, value);
  }
  if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
  req.body() = std::string(body);
  req.prepare_payload();
  req.keep_alive(true);
  // A fresh connection: a POST on a connection the server closed meanwhile cannot be retried.
  impl_->Close();
  if (auto s = impl_->Connect(); !s.ok()) return s;
  return impl_->Exchange(req);
}

}  // namespace custos::cli::internal

// A small synchronous HTTP/1.1 client for the CLI's verifiers (Boost.Beast): GET only, plain
// http:// only, one keep-alive connection reused across requests, every step under a deadline.
//
// Not thread-safe: one HttpClient per thread. Errors: kInvalidArgument (a malformed URL or
// target), kUnavailable (cannot resolve, connect, or the connection broke; retry later),
// kDeadlineExceeded (the server did not answer within the timeout), kDataLoss (the answer is not
// well-formed HTTP or is over max_body_bytes). An HTTP error status is not an error here: the
// caller reads `status`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace custos::cli::internal {

// "http://host[:port][/prefix]", parsed.
struct HttpUrl {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without brackets
  uint16_t port = 80;
  std::string prefix;  // path prepended to every target, without a trailing '/'; may be empty
};

// Errors: kInvalidArgument naming what is wrong (not http://, no host, a bad port, a query or
// fragment in the base URL).
absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

struct HttpClientOptions {
  absl::Duration timeout = absl::Seconds(30);  // per request: connect, send and receive
  size_t max_body_bytes = size_t{64} << 20;
};

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

class HttpClient {
 public:
  // Does not connect yet; the first Get does.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(std::string_view url,
                                                            HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // GET `target` (an absolute path with optional query, e.g. "/ledger/checkpoint") under the
  // URL's prefix, with "Authorization: Bearer <bearer_token>" when the token is non-empty.
  // A request on a reused connection that the server had closed is retried once on a new one.
  absl::StatusOr<HttpResponse> Get(std::string_view target, std::string_view bearer_token = "");

  // POST `body` (JSON; empty sends no body) to `target`, with the bearer token and
  // `headers` (name, value) added. Never retried: a POST may not be repeated safely.
  absl::StatusOr<HttpResponse> Post(
      std::string_view target, std::string_view body, std::string_view bearer_token,
      const std::vector<std::pair<std::string, std::string>>& headers = {});

  // "http://host:port/prefix", for messages.
  std::string BaseUrl() const;

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::cli::internal

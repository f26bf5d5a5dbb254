// The HTTP/1.1 server of Custos (Boost.Beast), its router, metrics and the one place where an
// absl::Status becomes an HTTP status and the error shape of DESIGN.md:
//   {"error":{"code":"snake_case","message":"…","details":{…}}}
//
// Threads: Asio I/O threads parse and write and never block on disk; each request's handler runs
// on a bounded worker pool (a full queue answers 503 with Retry-After), except the start of a
// route that asks to start on the I/O thread (RouteOptions::start_on_io_thread), which may not
// block either. Limits:
// header bytes (431), body bytes per route (413), time to receive a request (408), keep-alive idle
// time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace custos::http {

struct Request {
  std::string method;                          // "GET", "PUT", …
  std::string target;                          // raw request-target
  std::string path;                            // target without the query, not decoded
  std::map<std::string, std::string> query;    // decoded once; last value wins
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::map<std::string, std::string> params;  // route parameters, decoded once
  std::string route;                          // the matched route pattern (for logs and metrics)

  // The header value, or "" if absent.
  std::string Header(std::string_view lowercase_name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static Response Json(int status, std::string body);
  static Response NoContent();
};

// The error shape for `status` (must not be OK). Codes: kInvalidArgument 400, kUnauthenticated
// 401, kPermissionDenied 403, kNotFound 404, kFailedPrecondition 409 failed_precondition,
// kAborted/kAlreadyExists 409 conflict, kResourceExhausted 429, kUnavailable and
// kDeadlineExceeded 503 (with Retry-After), anything else 500 internal (details never leak).
// An API code attached with base/errors.h WithApiCode overrides the default code name and picks
// its status (too_large 413, region_policy_violation/mfa_required/purpose_not_allowed 403, …).
Response ErrorResponse(const absl::Status& status);
// The HTTP status ErrorResponse would use.
int HttpStatusOf(const absl::Status& status);

using Handler = std::function<Response(Request&)>;

// How a handler that answers later finishes its request (Router::AddAsync): for instance from
// the ledger's answer thread once the access is durable, with no worker thread blocked
// meanwhile. Thread-safe. Dropped without an answer (a bug), it answers 500 itself.
class Responder {
 public:
  virtual ~Responder() = default;
  // Answers the request. Exactly once per request; a second answer is dropped (and logged).
  virtual void Reply(Response response) = 0;
  // Runs `work` on a worker thread, where it may block: how a handler started on the I/O thread
  // hands over what would wait (base/blocking.h). False when the queue is full: nothing runs,
  // and the caller answers (503 server busy, after recording what it must).
  [[nodiscard]] virtual bool ContinueOnWorker(std::function<void()> work) = 0;
};

// Runs on a worker thread (or the I/O thread, see RouteOptions); answers through `responder`, now
// or later from any thread.
using AsyncHandler = std::function<void(std::shared_ptr<Request>, std::shared_ptr<Responder>)>;

struct RouteOptions {
  size_t max_body_bytes = 1 << 20;
  // Runs the handler on the I/O thread that read the request, inside a NonBlockingScope
  // (base/blocking.h), instead of handing it to a worker: for handlers that mostly need no wait
  // before they answer or hand the request to another thread, and that pass on to a worker
  // (Responder::ContinueOnWorker) when something would block. Handing a small request to a
  // worker and back cost more CPU than serving it (the worker's wake-up, context switches).
  bool start_on_io_thread = false;
};

// Routes "METHOD /v1/tenants/{id}/objects/{key...}": `{name}` matches one non-empty segment,
// `{name...}` the rest of the path after its slash (possibly empty). Parameters are percent-decoded
// once.
class Router {
 public:
  void Add(std::string_view method, std::string_view pattern, Handler handler,
           RouteOptions options = {});
  void AddAsync(std::string_view method, std::string_view pattern, AsyncHandler handler,
                RouteOptions options = {});

  struct Match {
    const AsyncHandler* handler = nullptr;  // a Handler added with Add answers at once
    RouteOptions options;
    std::string route;
    std::map<std::string, std::string> params;
  };
  // kNotFound for no route, kInvalidArgument for a bad percent-encoding, and a 405-worthy
  // kFailedPrecondition with API code method_not_allowed when the path exists for other methods.
  absl::StatusOr<Match> Find(std::string_view method, std::string_view path) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    AsyncHandler handler;
    RouteOptions options;
  };
  std::vector<Route> routes_;
};

// Decodes %XX escapes once. kInvalidArgument for a malformed escape. '+' is kept as is.
absl::StatusOr<std::string> PercentDecode(std::string_view s);

// The query of a request-target (what follows its first '?'), each name and value
// percent-decoded once; empty pairs are skipped and the last value of a name wins.
// kInvalidArgument ("malformed query string") for a malformed escape.
absl::StatusOr<std::map<std::string, std::string>> ParseQuery(std::string_view target);

// Prometheus text-format metrics: request counts by route, method and status, and latency
// histograms by route. Thread-safe.
class Metrics {
 public:
  void Observe(std::string_view route, std::string_view method, int status, absl::Duration d);
  void CountUnauthenticated() { unauthenticated_.fetch_add(1, std::memory_order_relaxed); }
  std::string Render() const;

 private:
  struct RouteStats {
    std::map<std::pair<std::string, int>, uint64_t> counts;  // (method, status)
    std::vector<uint64_t> buckets;                           // cumulative at render
    uint64_t count = 0;
    double sum_seconds = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, RouteStats, std::less<>> routes_;  // guarded by mu_
  std::atomic<uint64_t> unauthenticated_{0};
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 = any free port
  int io_threads = 2;
  int worker_threads = 64;
  size_t max_queue = 1024;
  size_t max_header_bytes = 8 * 1024;
  // To receive one whole request once its first byte came; and, sending a response, the longest
  // a client may go without accepting any of it (a slow reader is served, a stalled one is not).
  absl::Duration request_timeout = absl::Seconds(30);
  absl::Duration idle_timeout = absl::Seconds(60);  // keep-alive: waiting for the next request
  // Connections served at once; more are closed on accept (each holds a file descriptor).
  int max_connections = 10000;
};

// Parses a listen address "HOST:PORT": HOST an IPv4 literal or a bracketed IPv6 one
// ("[::1]:8080"), PORT decimal digits only, 0-65535 (0: any free port). kInvalidArgument
// otherwise (a bare IPv6 address is ambiguous with its port and refused).
absl::StatusOr<std::pair<std::string, uint16_t>> ParseListenAddress(std::string_view listen);

class Server {
 public:
  Server(ServerOptions options, const Router& router, Metrics& metrics);
  ~Server();

  // Binds and starts accepting; returns the bound port. kUnavailable if it cannot bind.
  absl::StatusOr<uint16_t> Start();
  // Serves until Stop() or SIGTERM/SIGINT, then stops accepting and drains in-flight requests.
  void Wait();
  void Stop();

  struct Impl;  // server.cc only

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::http

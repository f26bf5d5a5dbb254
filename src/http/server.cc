#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "base/blocking.h"
#include "base/errors.h"
#include "base/strings.h"
#include "base/worker_pool.h"
#include "http/http.h"
#include "spdlog/spdlog.h"

namespace custos::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

absl::Status ReadError(std::string_view code, std::string_view message) {
  return WithApiCode(absl::InvalidArgumentError(AbslView(message)), code);
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  const Router& router;
  Metrics& metrics;
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor{ioc};
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  std::unique_ptr<WorkerPool> pool;
  std::vector<std::thread> io_threads;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop_requested = false;
  std::atomic<int64_t> in_flight{0};  // requests read but not yet answered
  // Responders alive: an admitted request that a handler answers later (AddAsync) is still
  // unanswered, and its answer will come from another thread.
  std::atomic<int64_t> responders{0};
  std::atomic<bool> draining{false};  // shutting down: answer what was read, read no more
  std::atomic<int> connections{0};    // sessions alive
  // Accept errors (e.g. out of file descriptors) are retried after a pause, logged at most
  // once per pause: retrying at once would spin on the same error and flood the log.
  net::steady_timer accept_pause{ioc};

  Impl(ServerOptions o, const Router& r, Metrics& m)
      : options(std::move(o)), router(r), metrics(m) {}

  void Accept();
  void RequestStop() {
    {
      std::lock_guard lock(stop_mu);
      stop_requested = true;
    }
    stop_cv.notify_all();
  }
};

namespace {

// Metric labels for requests answered before a route was found.
constexpr std::string_view kNoRouteLabel = "(no route)";
constexpr std::string_view kHttpLayerLabel = "(http)";

// The method as a metric label: the standard ones by name, anything else (any token a client
// sends) as "other", so that clients cannot grow the metrics without bound.
std::string_view MethodLabel(std::string_view method) {
  for (std::string_view m : {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    if (method == m) return m;
  }
  return "other";
}

// A header's status line, chunk header lines with their extensions, and trailers all pass
// through the read buffer; its cap bounds what one connection can make the server hold.
constexpr size_t kReadBufferSlack = 64 * 1024;
// The first read of a request, and the most a connection waiting for one keeps allocated: the
// cap above bounds the buffer, it must not be what every idle connection costs.
constexpr size_t kFirstReadBytes = 4 * 1024;
// How long a connection closed by the server may still be read from and discarded (see
// LingeringClose). Apache lingers 2 s, nginx up to 30 s. A client still sending a refused body
// after this (16 MiB, the default object limit, at under 3.4 MB/s) is reset as before.
constexpr absl::Duration kLingerTime = absl::Seconds(5);

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server::Impl& server)
      : stream_(std::move(socket)),
        timer_(stream_.get_executor()),
        server_(server),
        buffer_(server.options.max_header_bytes + kReadBufferSlack) {
    server_.connections.fetch_add(1);
  }
  ~Session() { server_.connections.fetch_sub(1); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

 private:
  void ArmTimer(absl::Duration d) {
    timed_out_ = false;
    timer_.expires_after(absl::ToChronoNanoseconds(d));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;  // cancelled: the operation finished in time
      self->timed_out_ = true;
      beast::error_code ignored;
      self->stream_.socket().cancel(ignored);
    });
  }

  // Waits up to the idle timeout for the next request to begin, then gives it the request
  // timeout from its first byte (bytes already buffered — a pipelined request — begin it).
  void ReadHeader() {
    if (server_.draining.load()) return Close();
    method_.clear();  // a head that fails to parse is counted without the previous method
    head_ = false;
    head_bytes_ = 0;
    head_timed_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.options.max_header_bytes));
    // Beast checks Content-Length against the body limit while parsing the head, before the
    // route (and so its limit) is known: no limit here, the route's limit is set in OnHeader.
    parser_->body_limit(boost::none);
    SkipLeadingEmptyLines();
    if (buffer_.size() > 0) return ParseBuffered();
    if (buffer_.capacity() > kFirstReadBytes) buffer_.shrink_to_fit();  // empty: frees it
    ArmTimer(server_.options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->OnReadError(ec);
                              self->SkipLeadingEmptyLines();
                              if (self->buffer_.size() == 0) return self->ReadHeader();
                              self->ParseBuffered();
                            });
  }

  // Parses the head from what is buffered, reading on until it is complete; without another
  // read when it is all there (the usual case: one segment holds a whole GET). From the first
  // byte on, the request timeout applies to the rest of the request.
  void ParseBuffered() {
    beast::error_code ec;
    while (buffer_.size() > 0 && !parser_->is_header_done()) {
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      head_bytes_ += used;
      if (ec == bhttp::error::need_more) {
        ec = {};
        break;
      }
      if (ec) return OnReadError(ec);
      if (used == 0) break;
    }
    if (parser_->is_header_done()) {
      if (!parser_->is_done()) ArmTimer(server_.options.request_timeout);  // a body to read
      return OnHeader({});
    }
    // Beast holds its header limit against what one put() is offered, and a head that arrives
    // in pieces is parsed (and consumed) a field at a time: the limit is kept here.
    // (test_bad_input.py's 100-field head fails without this: its first 4 KiB are parsed alone.)
    if (head_bytes_ + buffer_.size() >= server_.options.max_header_bytes) {
      return OnReadError(bhttp::error::header_limit);
    }
    if (!head_timed_) {
      ArmTimer(server_.options.request_timeout);
      head_timed_ = true;
    }
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->OnReadError(ec);
                              self->ParseBuffered();
                            });
  }

  // RFC 9112 2.2: a server should ignore empty lines received before a request line (some
  // clients send CRLF after a POST body).
  void SkipLeadingEmptyLines() {
    for (int i = 0; i < 4 && buffer_.size() > 0; ++i) {
      std::string_view data(static_cast<const char*>(buffer_.data().data()), buffer_.size());
      if (data.starts_with("\r\n")) {
        buffer_.consume(2);
      } else if (data.starts_with("\n")) {
        buffer_.consume(1);
      } else {
        return;
      }
    }
  }

  // RFC 9112 checks that Beast leaves to the server; kInvalidArgument names the problem.
  absl::Status CheckFraming(const bhttp::request_parser<bhttp::string_body>::value_type& h) {
    // 6.3: a Transfer-Encoding whose final coding is not chunked leaves the body's end unknown;
    // serving on would read the body as the next request (smuggling). No other coding is
    // implemented (RFC 9110 would allow 501 for those; 400 closes the connection either way).
    if (h.find(bhttp::field::transfer_encoding) != h.end()) {
      if (!parser_->chunked()) {
        return absl::InvalidArgumentError("Transfer-Encoding must end with chunked");
      }
      for (const auto& f : h) {
        if (f.name() != bhttp::field::transfer_encoding) continue;
        const absl::string_view value(f.value().data(), f.value().size());
        for (absl::string_view coding : absl::StrSplit(value, ',')) {
          if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(coding), "chunked")) {
            return absl::InvalidArgumentError("only the chunked Transfer-Encoding is supported");
          }
        }
      }
    }
    // 6.1: Transfer-Encoding is HTTP/1.1; in an HTTP/1.0 message the framing is faulty, and a
    // server must not keep reading the connection after it.
    if (h.version() < 11 && h.find(bhttp::field::transfer_encoding) != h.end()) {
      return absl::InvalidArgumentError("Transfer-Encoding in an HTTP/1.0 request");
    }
    // 3.2: an HTTP/1.1 request carries exactly one Host.
    if (h.version() >= 11 && h.count(bhttp::field::host) != 1) {
      return absl::InvalidArgumentError("an HTTP/1.1 request needs exactly one Host header");
    }
    return absl::OkStatus();
  }

  // Takes the header section into headers_ (lower-case names; of a repeated field, the last
  // line). Taken now: Beast adds a chunked body's trailer fields to the same list (next to
  // fields of the same name), and RFC 9110 6.5.1 forbids merging them into the header section.
  // Merged, a trailer Authorization or X-Custos-Grant would replace the one checked here.
  absl::Status TakeHeaderSection(const bhttp::request_parser<bhttp::string_body>::value_type& h) {
    headers_.clear();
    for (const auto& f : h) {
      std::string name(f.name_string());
      absl::AsciiStrToLower(&name);
      auto [it, inserted] = headers_.try_emplace(std::move(name), f.value());
      if (inserted) continue;
      // RFC 9110 5.3: a field that is not a list comes once. Two lines of a field read as one
      // value (credentials, the content type, Custos's own X-Custos-* headers) are ambiguous: a
      // proxy that reads the first and this server would disagree about who asks, under which
      // grant, for what purpose.
      if (f.name() == bhttp::field::authorization || f.name() == bhttp::field::content_type ||
          it->first.starts_with("x-custos-")) {
        return absl::InvalidArgumentError(
            StrCat("the ", it->first, " header appears more than once"));
      }
      it->second = std::string(f.value());
    }
    return absl::OkStatus();
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    const auto& h = parser_->get();
    method_ = std::string(h.method_string());
    absl::Status s = CheckFraming(h);
    if (s.ok()) s = TakeHeaderSection(h);
    if (!s.ok()) {
      return Fail(ReadError("invalid_argument", StrCat("malformed HTTP request: ", s.message())));
    }
    target_ = std::string(h.target());
    // 3.2.2: the absolute form (what a request to a proxy uses) names the same resource.
    for (std::string_view scheme : {"http://", "https://"}) {
      if (absl::StartsWithIgnoreCase(target_, AbslView(scheme))) {
        const size_t path_at = target_.find('/', scheme.size());
        target_ = path_at == std::string::npos ? "/" : target_.substr(path_at);
      }
    }
    // 3.2.1: the origin form is an absolute path; "healthz" must not be read as "/healthz".
    if (!target_.starts_with('/')) {
      return Fail(ReadError("invalid_argument",
                            "malformed HTTP request: the target must be a path starting with /"));
    }
    path_ = target_.substr(0, target_.find('?'));
    head_ = method_ == "HEAD";
    match_ = server_.router.Find(method_, path_);
    size_t limit = match_.ok() ? match_->options.max_body_bytes : (1 << 20);
    if (parser_->content_length() && *parser_->content_length() > limit) {
      return Fail(TooLarge("request body is over the limit for this route"));
    }
    parser_->body_limit(limit);
    // RFC 9110 10.1.1: an HTTP/1.0 client does not know 100 (Continue); ignore its expectation.
    if (h.version() >= 11 && beast::iequals(h[bhttp::field::expect], "100-continue")) {
      // The client waits for this before sending the body (curl does, for uploads).
      continue_.emplace(bhttp::status::continue_, 11);
      return bhttp::async_write(stream_, *continue_,
                                [self = shared_from_this()](beast::error_code ec, size_t) {
                                  if (ec) return self->Close();
                                  self->ReadBody();
                                });
    }
    ReadBody();
  }

  void ReadBody() {
    if (parser_->is_done()) return OnBody({});  // no body (or all of it was buffered)
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnReadError(beast::error_code ec) {
    if (timed_out_ || ec == net::error::operation_aborted) {
      // A client that started a request and did not finish it in time gets 408; an idle
      // keep-alive connection is closed quietly.
      if (parser_ && parser_->got_some()) {
        return Fail(WithApiCode(absl::DeadlineExceededError("request not received in time"),
                                "request_timeout"));
      }
      return Close();
    }
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::connection_reset) {
      return Close();
    }
    if (ec == bhttp::error::header_limit) {
      return Fail(WithApiCode(absl::InvalidArgumentError("request headers are too large"),
                              "headers_too_large"));
    }
    if (ec == bhttp::error::body_limit) {
      return Fail(TooLarge("request body is over the limit for this route"));
    }
    if (ec == bhttp::error::buffer_overflow) {
      return Fail(ReadError("invalid_argument",
                            "malformed HTTP request: a chunk header or trailer is too long"));
    }
    return Fail(ReadError("invalid_argument", "malformed HTTP request: " + ec.message()));
  }

  void OnBody(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    timer_.cancel();
    // Answered in Respond → OnWrite. Requests whose handler waits without a worker (on the
    // ledger) hold neither a worker nor a queue slot, so admission is bounded here too.
    const int64_t in_flight = server_.in_flight.fetch_add(1) + 1;
    auto msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    if (!match_.ok()) return RespondError(match_.status(), kNoRouteLabel, /*close=*/false);
    if (in_flight >
        server_.options.worker_threads + static_cast<int64_t>(server_.options.max_queue)) {
      return RespondError(absl::UnavailableError("server busy"), match_->route, /*close=*/false);
    }

    auto req = std::make_shared<Request>();
    req->method = method_;
    req->target = target_;
    req->path = path_;
    req->route = match_->route;
    req->params = std::move(match_->params);
    req->headers = std::move(headers_);
    req->body = std::move(msg.body());
    auto query = ParseQuery(target_);
    if (!query.ok()) return RespondError(query.status(), match_->route, /*close=*/false);
    req->query = std::move(*query);
    const AsyncHandler* handler = match_->handler;
    auto serve = [self = shared_from_this(), req, handler] {
      auto responder = std::make_shared<SessionResponder>(self, req);
      responder->Run([&] { (*handler)(req, responder); });
    };
    if (match_->options.start_on_io_thread) {
      NonBlockingScope io_thread;
      return serve();
    }
    if (!server_.pool->TrySubmit(std::move(serve))) {
      RespondError(absl::UnavailableError("server busy"), match_->route, /*close=*/false);
    }
  }

  // Answers the handler's response (from any thread).
  void Answer(Response r) {
    net::post(stream_.get_executor(), [self = shared_from_this(), r = std::move(r)]() mutable {
      self->Respond(std::move(r), false);
    });
  }

  // Finishes one admitted request: its handler's answer, now or later.
  class SessionResponder final : public Responder {
   public:
    SessionResponder(std::shared_ptr<Session> session, std::shared_ptr<const Request> req)
        : session_(std::move(session)),
          req_(std::move(req)),
          start_(std::chrono::steady_clock::now()) {
      session_->server_.responders.fetch_add(1);
    }
    ~SessionResponder() override {
      if (!replied_.load()) {
        // A handler that never answered is a bug; the client still gets an answer.
        try {
          spdlog::error("route={} ended without an answer", req_->route);
          Reply(ErrorResponse(absl::InternalError("the request was not answered")));
        } catch (const std::exception&) {  // out of memory: the connection times out instead
        }
      }
      session_->server_.responders.fetch_sub(1);
    }

    // Runs `fn` (the handler); an exception it lets out answers 500.
    void Run(const std::function<void()>& fn) {
      try {
        fn();
      } catch (const std::exception& e) {
        spdlog::error("route={} unhandled exception: {}", req_->route, e.what());
        Reply(ErrorResponse(absl::InternalError(e.what())));
      }
    }

    bool ContinueOnWorker(std::function<void()> work) override {
      return session_->server_.pool->TrySubmit([work = std::move(work)] {
        // Run as a handler is: an exception escaping is logged, and whatever holds the
        // responder answers 500 when it lets go unanswered.
        try {
          work();
        } catch (const std::exception& e) {
          spdlog::error("work continued on a worker: unhandled exception: {}", e.what());
        }
      });
    }

    void Reply(Response r) override {
      if (replied_.exchange(true)) {
        spdlog::error("route={} answered twice; the second answer is dropped", req_->route);
        return;
      }
      session_->server_.metrics.Observe(
          req_->route, req_->method, r.status,
          absl::FromChrono(std::chrono::steady_clock::now() - start_));
      session_->Answer(std::move(r));
    }

   private:
    const std::shared_ptr<Session> session_;
    const std::shared_ptr<const Request> req_;
    const std::chrono::steady_clock::time_point start_;
    std::atomic<bool> replied_{false};
  };

  // Answers an error and closes the connection (the rest of the request is unread).
  void Fail(const absl::Status& status) {
    server_.in_flight.fetch_add(1);
    keep_alive_ = false;
    RespondError(status, kHttpLayerLabel, /*close=*/true);
  }

  // Answers an error decided here, before any handler ran, and counts it in the metrics under
  // `route` so that refused and malformed requests show up beside the served ones.
  void RespondError(const absl::Status& status, std::string_view route, bool close) {
    Response r = ErrorResponse(status);
    server_.metrics.Observe(route, MethodLabel(method_), r.status, absl::ZeroDuration());
    Respond(std::move(r), close);
  }

  void Respond(Response r, bool close) {
    if (close || server_.draining.load()) keep_alive_ = false;
    res_.emplace();
    res_->result(static_cast<unsigned>(r.status));
    res_->version(11);
    res_->set(bhttp::field::server, "custos");
    // Objects are served with the Content-Type their writer stored: a browser must not guess
    // another (and run stored text/plain as a script, say).
    res_->set("X-Content-Type-Options", "nosniff");
    if (!r.content_type.empty()) res_->set(bhttp::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res_->set(k, v);
    res_->body() = std::move(r.body);
    res_->keep_alive(keep_alive_);
    res_->prepare_payload();
    const unsigned status = res_->result_int();
    if (status == 204 || status == 304) {
      res_->content_length(boost::none);  // RFC 9110 8.6: no Content-Length on these
    } else if (head_) {
      // RFC 9110 9.3.2: the head of the GET answer, and no content.
      const size_t length = res_->body().size();
      res_->body().clear();
      res_->content_length(length);
    }
    serializer_.emplace(*res_);
    WriteSome();
  }

  // Writes the response a piece at a time, each piece within the request timeout: a client
  // that reads slowly gets the whole response, one that stops reading is cut off.
  void WriteSome() {
    ArmTimer(server_.options.request_timeout);
    bhttp::async_write_some(stream_, *serializer_,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (!ec && !self->serializer_->is_done()) return self->WriteSome();
                              self->OnWrite(ec);
                            });
  }

  void OnWrite(beast::error_code ec) {
    serializer_.reset();
    timer_.cancel();
    server_.in_flight.fetch_sub(1);
    if (ec) return Close();
    if (!keep_alive_) return LingeringClose();
    ReadHeader();
  }

  // Closes a connection the client may still be sending on (an error answered before the body
  // was read, say a 413 on the Content-Length). Closing a socket with unread data makes the
  // kernel reset the connection, and a reset destroys the answer in the client's receive
  // buffer if it has not read it yet (RFC 9112 9.6) -- and a client that sends its whole
  // request before reading has not. So the sending side is shut (the client sees the answer
  // end), then what it still sends is read and thrown away until it closes, for at most
  // kLingerTime.
  void LingeringClose() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    buffer_.clear();
    ArmTimer(kLingerTime);
    Discard();
  }

  void Discard() {
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Close();  // closed, or the time is up
                              self->Discard();
                            });
  }

  void Close() {
    timer_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  Server::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::map<std::string, std::string> headers_;  // the current request's header section
  std::optional<bhttp::response<bhttp::string_body>> res_;
  std::optional<bhttp::response_serializer<bhttp::string_body>> serializer_;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  std::string method_, target_, path_;
  absl::StatusOr<Router::Match> match_ = absl::NotFoundError("unset");
  bool keep_alive_ = true;
  bool head_ = false;        // answering HEAD: the head of the GET answer only
  size_t head_bytes_ = 0;    // of the head being read, parsed so far
  bool head_timed_ = false;  // the request timeout is armed for the head being read
  bool timed_out_ = false;
};

}  // namespace

void Server::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      // Out of file descriptors, most likely: the connection stays queued and the next accept
      // would fail at once. Pause, so that closing connections can free some.
      spdlog::warn("accept failed: {}; pausing accepts for 100 ms", ec.message());
      accept_pause.expires_after(std::chrono::milliseconds(100));
      accept_pause.async_wait([this](beast::error_code e) {
        if (!e) Accept();
      });
      return;
    }
    if (connections.load() >= options.max_connections) {
      spdlog::warn("{} connections open: closing a new one", options.max_connections);
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), *this)->Start();
    }
    Accept();
  });
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseListenAddress(std::string_view listen) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        StrCat("--listen ", listen, ": expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"));
  };
  const size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) return bad();
  std::string_view host = listen.substr(0, colon);
  const std::string_view port_text = listen.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(), absl::ascii_isdigit)) {
    return bad();
  }
  int port = 0;
  for (char c : port_text) port = port * 10 + (c - '0');
  if (port > 65535) return bad();
  if (host.starts_with('[') && host.ends_with(']')) {
    host = host.substr(1, host.size() - 2);
    beast::error_code ec;
    net::ip::make_address_v6(std::string(host), ec);
    if (ec) return bad();
  } else {
    beast::error_code ec;
    net::ip::make_address_v4(std::string(host), ec);
    if (ec) return bad();
  }
  return std::make_pair(std::string(host), static_cast<uint16_t>(port));
}

Server::Server(ServerOptions options, const Router& router, Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), router, metrics)) {}

Server::~Server() {
  // A destructor must not throw; Stop and Wait report through logs, and an Asio exception here
  // (a bug) is logged rather than terminating the process mid-shutdown.
  try {
    Stop();
    Wait();
  } catch (const std::exception& e) {
    spdlog::error("server shutdown: {}", e.what());
  }
}

absl::StatusOr<uint16_t> Server::Start() {
  Impl& s = *impl_;
  beast::error_code ec;
  auto address = net::ip::make_address(s.options.host, ec);
  if (ec) return absl::InvalidArgumentError("bad listen address " + s.options.host);
  tcp::endpoint endpoint(address, s.options.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError("cannot listen on " + s.options.host + ": " + ec.message());
  s.pool = std::make_unique<WorkerPool>(s.options.worker_threads, s.options.max_queue);
  s.work.emplace(s.ioc.get_executor());
  s.signals.async_wait([&s](beast::error_code e, int) {
    if (!e) s.RequestStop();
  });
  s.Accept();
  for (int i = 0; i < s.options.io_threads; ++i) s.io_threads.emplace_back([&s] { s.ioc.run(); });
  return s.acceptor.local_endpoint().port();
}

void Server::Stop() { impl_->RequestStop(); }

void Server::Wait() {
  Impl& s = *impl_;
  if (s.io_threads.empty()) return;
  {
    std::unique_lock lock(s.stop_mu);
    s.stop_cv.wait(lock, [&] { return s.stop_requested; });
  }
  // Stop accepting and reading new requests, give the requests already read time to be
  // answered, then stop I/O, and only then the workers (sessions submit to the pool from I/O
  // threads, so the pool must outlive them).
  s.draining = true;
  net::post(s.ioc, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    s.accept_pause.cancel();
    s.signals.cancel(ignored);
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Work of an admitted request may still be waiting (e.g. on the ledger, which answers within
  // its append deadline): the pool and the I/O objects that work refers to stay until it is done.
  for (int waited_ms = 0; s.responders.load() > 0; waited_ms += 10) {
    if (waited_ms % 10000 == 0 && waited_ms > 0) {
      spdlog::warn("shutdown waits for {} requests still being answered", s.responders.load());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.io_threads) t.join();
  s.io_threads.clear();
  s.pool.reset();
}

}  // namespace custos::http

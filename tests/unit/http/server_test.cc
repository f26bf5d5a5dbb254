// The HTTP server's threads: a route that starts on the I/O thread needs no worker.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "base/blocking.h"
#include "gtest/gtest.h"
#include "http/http.h"

namespace custos::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;

// GET `target` on a new connection; the status, or 0 if no answer came within `wait` (the
// stream's deadline applies to its asynchronous operations only).
int GetStatus(uint16_t port, const std::string& target, std::chrono::seconds wait) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  bhttp::request<bhttp::empty_body> req(bhttp::verb::get, target, 11);
  req.set(bhttp::field::host, "127.0.0.1");
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  int status = 0;
  stream.expires_after(wait);
  stream.async_connect({net::ip::make_address("127.0.0.1"), port}, [&](beast::error_code ec) {
    if (ec) return;
    bhttp::async_write(stream, req, [&](beast::error_code ec, size_t) {
      if (ec) return;
      bhttp::async_read(stream, buffer, res, [&](beast::error_code ec, size_t) {
        if (!ec) status = static_cast<int>(res.result_int());
      });
    });
  });
  ioc.run();
  return status;
}

TEST(Server, ARouteStartingOnTheIoThreadIsServedWhileEveryWorkerIsBusy) {
  std::promise<void> blocked, release;
  std::shared_future<void> released = release.get_future().share();
  Router router;
  router.Add("GET", "/block", [&blocked, released](Request&) {
    blocked.set_value();
    released.wait();
    return Response::Json(200, "{}");
  });
  RouteOptions on_io;
  on_io.start_on_io_thread = true;
  router.AddAsync(
      "GET", "/quick",
      [](const std::shared_ptr<Request>&, const std::shared_ptr<Responder>& responder) {
        responder->Reply(Response::Json(MayBlock() ? 500 : 200, "{}"));
      },
      on_io);
  Metrics metrics;
  ServerOptions options;
  options.port = 0;
  options.worker_threads = 1;  // taken by /block below
  options.max_queue = 4;       // so that a route needing a worker would wait, not get 503
  Server server(options, router, metrics);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();

  std::future<int> blocking = std::async(
      std::launch::async, [&] { return GetStatus(*port, "/block", std::chrono::seconds(60)); });
  // The only worker now waits for `release`.
  ASSERT_EQ(blocked.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(GetStatus(*port, "/quick", std::chrono::seconds(10)), 200);
  release.set_value();
  EXPECT_EQ(blocking.get(), 200);
  server.Stop();
  server.Wait();
}

// A start on the I/O thread may not block; what would, it continues on a worker, which may.
TEST(Server, AStartOnTheIoThreadContinuesOnAWorkerWhereItMayBlock) {
  Router router;
  RouteOptions on_io;
  on_io.start_on_io_thread = true;
  router.AddAsync(
      "GET", "/continued",
      [](const std::shared_ptr<Request>&, const std::shared_ptr<Responder>& responder) {
        if (MayBlock()) return responder->Reply(Response::Json(500, "{}"));
        const bool queued = responder->ContinueOnWorker(
            [responder] { responder->Reply(Response::Json(MayBlock() ? 200 : 500, "{}")); });
        if (!queued) responder->Reply(Response::Json(503, "{}"));
      },
      on_io);
  Metrics metrics;
  ServerOptions options;
  options.port = 0;
  options.worker_threads = 1;
  Server server(options, router, metrics);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_EQ(GetStatus(*port, "/continued", std::chrono::seconds(10)), 200);
  server.Stop();
  server.Wait();
}

}  // namespace
}  // namespace custos::http

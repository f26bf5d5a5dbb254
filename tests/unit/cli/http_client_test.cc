// The verifier's HTTP client: URL parsing (pure), and errors as values for unreachable servers.
#include "cli/internal/http_client.h"

#include <boost/asio.hpp>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "base/strings.h"
#include "gtest/gtest.h"

namespace custos::cli::internal {
namespace {

TEST(HttpClient, ParsesHttpUrls) {
  auto u = ParseHttpUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->prefix, "");

  u = ParseHttpUrl("HTTP://log.example/custos/");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "log.example");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->prefix, "/custos");

  u = ParseHttpUrl("http://[::1]:9000/");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 9000);
  EXPECT_EQ(u->prefix, "");
}

TEST(HttpClient, RefusesOtherUrls) {
  for (const char* url :
       {"https://log.example", "ftp://x", "log.example:80", "http://", "http://:80", "http://h:0",
        "http://h:65536", "http://h:8x", "http://h:", "http://u@h", "http://h/p?q=1",
        "http://h/p#f", "http://[::1", "http://h /x", "http://h\r\n"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseHttpUrl(url).status())) << url;
  }
}

TEST(HttpClient, UnreachableServerIsUnavailable) {
  // Port 1 on loopback: nothing listens there in a test environment.
  auto client = HttpClient::Create("http://127.0.0.1:1", {absl::Seconds(5)});
  ASSERT_TRUE(client.ok());
  auto r = (*client)->Get("/ledger/checkpoint");
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_TRUE(absl::IsInvalidArgument((*client)->Get("no-slash").status()));
  EXPECT_TRUE(absl::IsInvalidArgument((*client)->Get("/a b").status()));
  EXPECT_TRUE(absl::IsInvalidArgument((*client)->Get("/a", "tok\r\nX: y").status()));
}

// A loopback server that answers each connection as `answer` says: given the request head, it
// returns what to write back before closing (empty: write nothing, hold the socket open until
// the test ends).
class ScriptedServer {
 public:
  using Answer = std::function<std::string(const std::string& request_head)>;
  ScriptedServer(int connections, Answer answer)
      : acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this, connections, answer] {
      for (int i = 0; i < connections; ++i) {
        boost::asio::ip::tcp::socket socket(ioc_);
        boost::system::error_code ec;
        acceptor_.accept(socket, ec);
        if (ec) return;
        std::string head;
        char c;
        while (head.find("\r\n\r\n") == std::string::npos &&
               boost::asio::read(socket, boost::asio::buffer(&c, 1), ec) == 1) {
          head.push_back(c);
        }
        heads_.push_back(head);
        std::string out = answer(head);
        if (out.empty()) {
          held_.push_back(std::move(socket));
          continue;
        }
        boost::asio::write(socket, boost::asio::buffer(out), ec);
        socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
      }
    });
  }
  ~ScriptedServer() { Join(); }
  std::string Url() const { return StrCat("http://127.0.0.1:", acceptor_.local_endpoint().port()); }
  // The request heads received, once every scripted connection was served.
  const std::vector<std::string>& heads() {
    Join();
    return heads_;
  }

 private:
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::string> heads_;
  std::vector<boost::asio::ip::tcp::socket> held_;
  std::thread thread_;
};

std::string Ok(std::string_view body) {
  return StrCat("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ", body.size(),
                "\r\n\r\n", body);
}

TEST(HttpClient, SendsTheTokenAndReadsTheAnswer) {
  ScriptedServer server(1, [](const std::string&) { return Ok("hello"); });
  auto client = HttpClient::Create(server.Url() + "/base/");
  ASSERT_TRUE(client.ok());
  auto r = (*client)->Get("/ledger/checkpoint", "tok123");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->content_type, "text/plain");
  client->reset();
  ASSERT_EQ(server.heads().size(), 1u);
  EXPECT_TRUE(server.heads()[0].starts_with("GET /base/ledger/checkpoint HTTP/1.1\r\n"))
      << server.heads()[0];
  EXPECT_NE(server.heads()[0].find("Authorization: Bearer tok123\r\n"), std::string::npos);
}

TEST(HttpClient, RetriesOnceWhenAKeptAliveConnectionWasClosed) {
  // Each connection serves one answer without saying so, then closes.
  ScriptedServer server(
      2, [](const std::string& head) { return Ok(head.substr(4, head.find(' ', 4) - 4)); });
  auto client = HttpClient::Create(server.Url());
  ASSERT_TRUE(client.ok());
  auto first = (*client)->Get("/one");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->body, "/one");
  auto second = (*client)->Get("/two");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->body, "/two");
}

TEST(HttpClient, SilentServerTimesOut) {
  ScriptedServer server(1, [](const std::string&) { return std::string(); });
  auto client = HttpClient::Create(server.Url(), {absl::Milliseconds(300)});
  ASSERT_TRUE(client.ok());
  auto r = (*client)->Get("/x");
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
}

TEST(HttpClient, MalformedOrOversizedAnswersAreDataLoss) {
  ScriptedServer garbage(1, [](const std::string&) { return std::string("SPDY/9 nope\r\n\r\n"); });
  auto client = HttpClient::Create(garbage.Url());
  EXPECT_TRUE(absl::IsDataLoss((*client)->Get("/x").status()));

  ScriptedServer big(1, [](const std::string&) { return Ok(std::string(2000, 'x')); });
  client = HttpClient::Create(big.Url(), {absl::Seconds(5), 1000});
  EXPECT_TRUE(absl::IsDataLoss((*client)->Get("/x").status()));
}

}  // namespace
}  // namespace custos::cli::internal

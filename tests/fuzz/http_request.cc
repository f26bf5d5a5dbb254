// The HTTP request head and the router, as the server sees them: bytes through Beast's request
// parser with the server's header limit (8 KiB), then the path through the real API router
// (api::RegisterRoutes, handlers never called) and the query through http::ParseQuery.
#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/api.h"
#include "http/http.h"

namespace bhttp = boost::beast::http;

namespace {

const custos::http::Router& TheRouter() {
  static const custos::http::Router* router = [] {
    auto* r = new custos::http::Router();
    custos::api::RegisterRoutes(*r, custos::api::Services{});  // handlers are not called
    return r;
  }();
  return *router;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(8 * 1024);
  parser.body_limit(1 << 20);
  parser.eager(true);
  boost::beast::error_code ec;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  // Feed in two pieces, as a socket might deliver them, to exercise the parser's resumption. As
  // beast::http::async_read does with its buffer, bytes the parser did not consume are presented
  // again with the next piece appended: basic_parser::put requires that (its chunk parser
  // re-reads the chunk header it has seen), and a first version of this harness that dropped
  // them made a 10-minute run report a heap overflow inside Beast (kept in crashes/).
  size_t split = size ? data[0] % (size + 1) : 0;
  std::string buffered;
  for (std::string_view piece : {rest.substr(0, split), rest.substr(split)}) {
    buffered.append(piece);
    while (!buffered.empty() && !parser.is_done()) {
      size_t used = parser.put(boost::asio::buffer(buffered.data(), buffered.size()), ec);
      buffered.erase(0, used);
      if (ec == bhttp::error::need_more) {
        ec = {};
        break;
      }
      if (ec) return 0;
      if (used == 0) break;
    }
  }
  if (!parser.is_header_done()) return 0;
  const auto& h = parser.get();
  std::string target(h.target());
  std::string path = target.substr(0, target.find('?'));
  auto match = TheRouter().Find(h.method_string(), path);
  if (match.ok() && match->handler == nullptr) __builtin_trap();
  auto query = custos::http::ParseQuery(target);
  (void)query;
  for (const auto& f : h) (void)f.name_string();
  return 0;
}

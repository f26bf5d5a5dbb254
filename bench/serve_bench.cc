// custos_bench serve: the API server as `custos serve` runs it (cli::internal::OpenApp, then
// ServeApi), with or without the ledger. With --noop-ledger every event is still built, sealed
// and handed over as on the real path, but the append returns at once instead of waiting for a
// durable batch. Only this benchmark binary can do that (the seam is an AppOptions field that no
// flag of `custos` sets): bench/run runs both servers on the same data directory and load to
// price the ledger on the HTTP request path (issue 4, row (e): ledger cost under 15%).
#include <atomic>
#include <iostream>

#include "absl/strings/numbers.h"
#include "bench.h"
#include "cli/internal/app.h"
#include "spdlog/spdlog.h"

namespace custos::bench {
namespace {

class NoopAppender final : public ledger::EntryAppender {
 public:
  absl::StatusOr<uint64_t> Append(ledger::PendingAppend) override {
    return next_.fetch_add(1, std::memory_order_relaxed);
  }
  void AppendAsync(ledger::PendingAppend append, ledger::AppendCallback done) override {
    std::move(done)(Append(std::move(append)));
  }

 private:
  std::atomic<uint64_t> next_{0};
};

}  // namespace

int Serve(const Flags& f) {
  spdlog::set_level(spdlog::level::warn);
  http::ServerOptions server;
  size_t colon = f.listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(f.listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    std::cerr << "custos_bench serve: --listen must be HOST:PORT\n";
    return 2;
  }
  server.host = f.listen.substr(0, colon);
  server.port = static_cast<uint16_t>(port);
  server.io_threads = f.io_threads;
  server.worker_threads = f.workers;
  NoopAppender noop;
  cli::internal::AppOptions options;
  if (f.noop_ledger) options.bench_appender = &noop;
  options.ledger.max_batch_delay = absl::Microseconds(f.batch_delay_us);
  auto app = cli::internal::OpenApp(f.dir, options);
  if (!app.ok()) {
    std::cerr << "custos_bench serve: " << app.status() << "\n";
    return 1;
  }
  if (absl::Status s = cli::internal::ServeApi(**app, server); !s.ok()) {
    std::cerr << "custos_bench serve: " << s << "\n";
    return 1;
  }
  return 0;
}

}  // namespace custos::bench

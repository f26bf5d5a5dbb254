// `custos serve`: opens the data directory and serves the API until SIGTERM.
#include <iostream>

#include "base/process.h"
#include "cli/cli.h"
#include "cli/internal/app.h"
#include "http/http.h"
#include "spdlog/spdlog.h"

namespace custos::cli {
namespace {

absl::Status Serve(const ServeOptions& o) {
  http::ServerOptions server_options;
  auto listen = http::ParseListenAddress(o.listen);
  if (!listen.ok()) return listen.status();
  server_options.host = listen->first;
  server_options.port = listen->second;
  server_options.io_threads = o.io_threads;
  server_options.worker_threads = o.worker_threads;
  server_options.request_timeout = absl::Milliseconds(o.request_timeout_ms);
  server_options.idle_timeout = absl::Milliseconds(o.idle_timeout_ms);
  server_options.max_connections = o.max_connections;
  const long open_files = RaiseOpenFileLimit();
  spdlog::info("open file limit {}", open_files);

  internal::AppOptions app_options;
  app_options.master_key_file = o.master_key_file;
  app_options.fake_clock = o.fake_clock;
  app_options.objects.max_object_bytes = o.max_object_bytes;
  app_options.objects.max_seals_per_dek = o.dek_max_seals;
  auto app = internal::OpenApp(o.data_dir, app_options);
  if (!app.ok()) return app.status();

  spdlog::info("data_dir={}", o.data_dir);
  return internal::ServeApi(**app, server_options);
}

}  // namespace

int RunServe(const ServeOptions& options) {
  spdlog::set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%v"})",
                      spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  absl::Status s = Serve(options);
  if (!s.ok()) {
    std::cerr << "custos serve: " << s.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace custos::cli

// The custos binary: CLI11 subcommands over src/cli.
#include <iostream>

#include "CLI/CLI.hpp"
#include "cli/cli.h"

#ifndef CUSTOS_DEFAULT_REGIONS
#define CUSTOS_DEFAULT_REGIONS "config/regions.yaml"
#endif

int main(int argc, char** argv) {
  CLI::App app{"Custos: a trust plane for customer data"};
  app.require_subcommand(1);

  custos::cli::InitOptions init;
  init.regions_file = CUSTOS_DEFAULT_REGIONS;
  auto* init_cmd = app.add_subcommand("init", "create a data directory (keys, stores, admin)");
  init_cmd->add_option("--data-dir", init.data_dir, "data directory")->required();
  init_cmd->add_option("--regions", init.regions_file, "region catalog (YAML)");
  init_cmd->add_option("--origin", init.origin, "log origin (default custos.example/<random>)");
  init_cmd->add_option("--keyring", init.keyring_path,
                       "keyring file; keep it apart from backups of the data");
  init_cmd->add_flag("--demo", init.demo, "seed demo tenants and objects");

  custos::cli::ServeOptions serve;
  auto* serve_cmd = app.add_subcommand("serve", "serve the API on a data directory");
  serve_cmd->add_option("--data-dir", serve.data_dir, "data directory")->required();
  serve_cmd->add_option("--listen", serve.listen, "HOST:PORT (port 0 picks a free one)");
  serve_cmd->add_option("--master-key", serve.master_key_file, "master key file");
  serve_cmd->add_flag("--fake-clock", serve.fake_clock, "tests only: adds /v1/test/clock");
  serve_cmd->add_option("--io-threads", serve.io_threads, "I/O threads")->check(CLI::Range(1, 64));
  serve_cmd->add_option("--workers", serve.worker_threads, "worker threads")
      ->check(CLI::Range(1, 256));
  serve_cmd->add_option("--request-timeout-ms", serve.request_timeout_ms,
                        "time a client has to send one request")
      ->check(CLI::Range(100, 600000));
  serve_cmd->add_option("--max-object-bytes", serve.max_object_bytes, "object size limit");
  serve_cmd->add_option("--dek-max-seals", serve.dek_max_seals,
                        "objects sealed per data key before it rotates")
      ->check(CLI::Range(1LL, 1LL << 31));
  serve_cmd->add_option("--log-level", serve.log_level, "trace|debug|info|warn|error");

  CLI11_PARSE(app, argc, argv);
  if (*init_cmd) return custos::cli::RunInit(init);
  if (*serve_cmd) return custos::cli::RunServe(serve);
  return 2;
}

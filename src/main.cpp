// The custos binary: CLI11 subcommands over src/cli.
#include <exception>
#include <iostream>

#include "CLI/CLI.hpp"
#include "base/process.h"
#include "cli/cli.h"
#include "data/data.h"

#ifndef CUSTOS_DEFAULT_REGIONS
#define CUSTOS_DEFAULT_REGIONS "config/regions.yaml"
#endif

namespace {

int Run(int argc, char** argv) {
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
  init_cmd
      ->add_option("--backend", init.backend,
                   "stores: sqlite (files in the data dir) or postgresql")
      ->check(CLI::IsMember({"sqlite", "postgresql"}));
  init_cmd->add_option("--dsn", init.dsn,
                       "postgresql: connection string of the database for the control store "
                       "(schema custos_control) and the cells (schemas custos_cell_<region>)");
  init_cmd->add_option("--cell-dsn", init.cell_dsns,
                       "postgresql: REGION=DSN puts that region's cell on another database "
                       "(repeatable)");

  custos::cli::ServeOptions serve;
  auto* serve_cmd = app.add_subcommand("serve", "serve the API on a data directory");
  serve_cmd->add_option("--data-dir", serve.data_dir, "data directory")->required();
  serve_cmd->add_option("--listen", serve.listen, "HOST:PORT (port 0 picks a free one)");
  serve_cmd->add_option("--master-key", serve.master_key_file, "master key file");
  serve_cmd->add_flag("--fake-clock", serve.fake_clock, "tests only: adds /v1/test/clock");
  serve_cmd->add_option("--io-threads", serve.io_threads, "I/O threads")->check(CLI::Range(1, 64));
  serve_cmd->add_option("--workers", serve.worker_threads, "worker threads")
      ->check(CLI::Range(1, 256));
  serve_cmd
      ->add_option("--request-timeout-ms", serve.request_timeout_ms,
                   "time a client has to send one request")
      ->check(CLI::Range(100, 600000));
  serve_cmd
      ->add_option("--idle-timeout-ms", serve.idle_timeout_ms,
                   "how long a keep-alive connection may wait for its next request")
      ->check(CLI::Range(100, 3600000));
  serve_cmd->add_option("--max-connections", serve.max_connections, "connections served at once")
      ->check(CLI::Range(1, 1000000));
  serve_cmd->add_option("--max-object-bytes", serve.max_object_bytes, "object size limit")
      ->check(CLI::Range(size_t{1}, custos::data::kMaxObjectBytesLimit));
  serve_cmd
      ->add_option("--dek-max-seals", serve.dek_max_seals,
                   "objects sealed per data key before it rotates")
      ->check(CLI::Range(1LL, 1LL << 28));  // ObjectServiceOptions says why
  serve_cmd->add_option("--log-level", serve.log_level, "trace|debug|info|warn|error");

  auto* ledger_cmd = app.add_subcommand("ledger", "check a server's public log from outside");
  ledger_cmd->require_subcommand(1);
  custos::cli::LedgerVerifyOptions verify;
  auto* verify_cmd = ledger_cmd->add_subcommand(
      "verify", "check the checkpoint, every entry and tile, and consistency with --state");
  verify_cmd->add_option("--url", verify.url, "server URL, http://HOST:PORT")->required();
  verify_cmd->add_option("--vkey", verify.vkey, "verifier key (GET /v1/ledger/vkey) or a file")
      ->required();
  verify_cmd->add_option("--state", verify.state_file,
                         "file keeping the last verified checkpoint (read, then replaced)");
  verify_cmd->add_option("--timeout-ms", verify.timeout_ms, "per HTTP request")
      ->check(CLI::Range(100, 3600000));

  custos::cli::LedgerProveOptions prove;
  auto* prove_cmd = ledger_cmd->add_subcommand(
      "prove", "check a tenant's access log against the public log (as verify, plus records)");
  prove_cmd->add_option("--url", prove.url, "server URL, http://HOST:PORT")->required();
  prove_cmd->add_option("--tenant", prove.tenant_id, "tenant id")->required();
  prove_cmd->add_option("--token", prove.token, "the tenant admin's token, or a file holding it")
      ->required();
  prove_cmd->add_option("--vkey", prove.vkey, "verifier key (GET /v1/ledger/vkey) or a file")
      ->required();
  prove_cmd->add_option("--state", prove.state_file,
                        "file keeping the last verified checkpoint (read, then replaced)");
  prove_cmd->add_option("--timeout-ms", prove.timeout_ms, "per HTTP request")
      ->check(CLI::Range(100, 3600000));

  custos::cli::AccessOptions access;
  auto* access_cmd = app.add_subcommand("access", "just-in-time access requests, over HTTP");
  access_cmd->require_subcommand(1);
  std::vector<CLI::App*> access_cmds;
  for (const char* action : {"request", "approve", "deny", "activate", "revoke", "close", "list"}) {
    auto* cmd = access_cmd->add_subcommand(action, std::string(action) + " (access request)");
    cmd->add_option("--url", access.url, "server URL, http://HOST:PORT")->required();
    cmd->add_option("--token", access.token, "your token, or a file holding it")->required();
    cmd->add_option("--timeout-ms", access.timeout_ms, "per HTTP request")
        ->check(CLI::Range(100, 3600000));
    std::string_view a = action;
    if (a == "request") {
      cmd->add_option("--tenant", access.tenant_id, "tenant id")->required();
      cmd->add_option("--operations", access.operations, "read,list,write,delete")
          ->delimiter(',')
          ->required();
      // Required, as in the API: the whole tenant is asked for as --prefix "", never by omission.
      cmd->add_option("--prefix", access.prefix, "key prefix the grant covers (\"\": all)")
          ->required();
      cmd->add_option("--justification", access.justification, "why")->required();
      cmd->add_option("--ticket", access.ticket, "support ticket")->required();
      cmd->add_option("--duration", access.duration_minutes, "minutes, from activation");
      cmd->add_option("--purpose", access.purpose, "support|troubleshooting|security");
    } else if (a == "list") {
      cmd->add_option("--tenant", access.tenant_id, "only this tenant's requests");
      cmd->add_option("--state", access.state, "only requests in this state");
    } else {
      cmd->add_option("--id", access.id, "access request id")->required();
      cmd->add_option("--totp", access.totp, "current TOTP code (approve, deny, activate)");
    }
    access_cmds.push_back(cmd);
  }

  custos::cli::MfaEnrollOptions mfa;
  auto* mfa_cmd = app.add_subcommand("mfa", "multi-factor authentication");
  mfa_cmd->require_subcommand(1);
  auto* enroll_cmd = mfa_cmd->add_subcommand("enroll", "enrol in TOTP; prints a QR code");
  enroll_cmd->add_option("--url", mfa.url, "server URL, http://HOST:PORT")->required();
  enroll_cmd->add_option("--token", mfa.token, "your token, or a file holding it")->required();
  enroll_cmd->add_option("--totp", mfa.totp, "current code, when re-enrolling");

  CLI11_PARSE(app, argc, argv);
  for (auto* cmd : access_cmds) {
    if (*cmd) {
      access.action = cmd->get_name();
      return custos::cli::RunAccess(access);
    }
  }
  if (*enroll_cmd) return custos::cli::RunMfaEnroll(mfa);
  if (*init_cmd) return custos::cli::RunInit(init);
  if (*serve_cmd) return custos::cli::RunServe(serve);
  if (*verify_cmd) return custos::cli::RunLedgerVerify(verify);
  if (*prove_cmd) return custos::cli::RunLedgerProve(prove);
  return 2;
}

}  // namespace

// Expected failures are absl::Status and exit codes; an exception reaching here is a bug (or
// std::bad_alloc): say so on stderr and exit non-zero rather than let it terminate the process.
int main(int argc, char** argv) {
  custos::ConfigureProcess();
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "custos: internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "custos: internal error\n";
  }
  return 70;  // EX_SOFTWARE
}

// The custos command line: `init` creates a data directory, `serve` runs the server on it;
// `ledger verify` and `ledger prove` check a server's public log from outside, as any verifier
// or customer would, over HTTP only.
// Each returns a process exit status and prints errors for a person to stderr.
#pragma once

#include <string>
#include <vector>

namespace custos::cli {

struct InitOptions {
  std::string data_dir;
  std::string regions_file;  // catalog to copy into the data dir
  std::string origin;        // log origin; default custos.example/<8 random hex>
  std::string keyring_path;  // default <data_dir>/keyring (keep it apart from backups!)
  bool demo = false;
  std::string backend = "sqlite";      // "sqlite" (files in data_dir) or "postgresql"
  std::string dsn;                     // postgresql: database of the control store and the cells
  std::vector<std::string> cell_dsns;  // postgresql: "REGION=DSN", a region's cell elsewhere
};

struct ServeOptions {
  std::string data_dir;
  std::string listen = "127.0.0.1:8080";
  std::string master_key_file;  // default <data_dir>/master.key
  bool fake_clock = false;
  int io_threads = 2;
  // Requests waiting on a ledger group commit hold a worker; more workers, larger batches.
  int worker_threads = 64;
  int request_timeout_ms = 30000;
  int idle_timeout_ms = 60000;
  int max_connections = 10000;
  size_t max_object_bytes = 16 << 20;
  long long dek_max_seals = 1 << 20;
  std::string log_level = "info";
};

// `custos ledger verify`: fetches the checkpoint and every tile, checks the signature, every
// entry against its leaf hash, every tile against the ones below, the root against the
// checkpoint, and that the log extends the checkpoint saved in `state_file` (when it exists);
// then saves the new checkpoint there (atomically). Exit 0 verified, 1 any failure.
struct LedgerVerifyOptions {
  std::string url;         // http://host:port of the server
  std::string vkey;        // the verifier key (note format), or a file holding it
  std::string state_file;  // last verified checkpoint; empty: none kept
  int timeout_ms = 30000;  // per HTTP request
};

// `custos ledger prove`: as verify, then checks the tenant's access log against the public log:
// each record's SHA-256 is the digest of its entry, which names the tenant's pseudonym, has the
// record's kind and ts, and is included in the checkpoint (inclusion proof); and every entry
// under the tenant's pseudonym has a record. Exit 0 proven, 1 any failure.
struct LedgerProveOptions {
  std::string url;
  std::string tenant_id;
  std::string token;       // a tenant_admin token of the tenant, or a file holding it
  std::string vkey;        // as for verify
  std::string state_file;  // optional, as for verify
  int timeout_ms = 30000;
};

// `custos access request|approve|deny|activate|revoke|close|list` and `custos mfa enroll`: the
// just-in-time access workflow over HTTP (DESIGN.md API table). Print the server's JSON answer
// on stdout; exit 0 on success, 1 with the server's error (code and message) on stderr.
struct AccessOptions {
  std::string url;
  std::string token;   // the caller's bearer token, or a file holding it
  std::string action;  // request | approve | deny | activate | revoke | close | list
  std::string id;      // the request id (approve … close)
  std::string totp;    // X-Custos-TOTP (approve, deny, activate)
  // request:
  std::string tenant_id;
  std::vector<std::string> operations;
  std::string prefix;
  std::string justification;
  std::string ticket;
  int duration_minutes = 60;
  std::string purpose;
  // list:
  std::string state;
  int timeout_ms = 30000;
};

// Enrols the caller in TOTP and prints the secret, the otpauth URI and the QR code for a
// terminal (UTF-8 half blocks); `totp` is the current code when re-enrolling.
struct MfaEnrollOptions {
  std::string url;
  std::string token;
  std::string totp;
  int timeout_ms = 30000;
};

int RunInit(const InitOptions& options);
int RunServe(const ServeOptions& options);
int RunLedgerVerify(const LedgerVerifyOptions& options);
int RunLedgerProve(const LedgerProveOptions& options);
int RunAccess(const AccessOptions& options);
int RunMfaEnroll(const MfaEnrollOptions& options);

}  // namespace custos::cli

// Assembles the components over a data directory (stores, keys, catalog, services).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "access/access.h"
#include "access/requests.h"
#include "access/totp.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "crypto/key_provider.h"
#include "data/data.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "ledger/ledger.h"
#include "residency/residency.h"
#include "store/store.h"
#include "tenants/tenants.h"

namespace custos::cli::internal {

// The data directory's configuration (custos.yaml).
struct DataDirConfig {
  std::string backend = "sqlite";  // "sqlite" | "postgresql"
  std::string origin;
  std::string keyring_path;  // empty: the sealed keyring lives in the control store
  std::string regions_file;
  // PostgreSQL only: the database of the control store (schema custos_control) and of every
  // cell not named in cell_dsns (schema custos_cell_<region>).
  std::string dsn;
  std::map<std::string, std::string> cell_dsns;  // region -> DSN of that region's cell
};

absl::StatusOr<DataDirConfig> ReadConfig(const std::string& data_dir);
absl::Status WriteConfig(const std::string& data_dir, const DataDirConfig& config);

// The stores a configuration names: files under data_dir (SQLite) or schemas on the configured
// servers (PostgreSQL). `create` creates missing files or schemas.
absl::StatusOr<std::unique_ptr<store::ControlStore>> OpenControlStore(const std::string& data_dir,
                                                                      const DataDirConfig& config,
                                                                      bool create);
absl::StatusOr<std::unique_ptr<store::CellStore>> OpenCellStore(const std::string& data_dir,
                                                                const DataDirConfig& config,
                                                                const std::string& region,
                                                                bool create);

// The keyring storage that keeps the sealed keyring in the control store (setting "keyring"),
// as the PostgreSQL backend does so that every instance shares it. `control` must outlive it.
std::unique_ptr<crypto::KeyringStorage> ControlStoreKeyring(store::ControlStore& control);

// Reads a 32-byte master key stored as 64 hex characters. kFailedPrecondition if the file is
// readable by group or others.
absl::StatusOr<std::string> ReadMasterKey(const std::string& path);

struct App {
  crypto::OpenSslRandom random;
  std::unique_ptr<Clock> clock;
  OffsetClock* fake_clock = nullptr;
  residency::Catalog catalog;
  std::unique_ptr<store::ControlStore> control;  // before keys: the keyring may live in it
  std::unique_ptr<crypto::KeyProvider> keys;
  std::map<std::string, std::unique_ptr<store::CellStore>> cells;
  bool local_cells = false;  // SQLite cells: a read is a local page lookup, not a round trip
  std::unique_ptr<ledger::Ledger> ledger;
  std::unique_ptr<ledger::EventLog> events;
  std::unique_ptr<data::ObjectService> objects;
  std::unique_ptr<access::PrincipalService> principals;
  std::unique_ptr<tenants::TenantService> tenants;
  std::unique_ptr<access::AccessRequestService> requests;
  std::unique_ptr<access::MfaService> mfa;
  // Background jobs, exactly once across the instances sharing the control store. Register jobs
  // before serve starts it. Last: destroyed (stopped) before what its jobs use.
  std::unique_ptr<jobs::JobRunner> jobs;
};

struct AppOptions {
  std::string master_key_file;  // default <data_dir>/master.key
  bool fake_clock = false;
  data::ObjectServiceOptions objects;
  ledger::LedgerOptions ledger;
  // Benchmarks only (custos_bench, to price the ledger): events go here instead of the ledger.
  // `custos serve` never sets it; there is no flag or setting for it.
  ledger::EntryAppender* bench_appender = nullptr;
};

// Creates the server's secrets (ledger signing key, pseudonym key) in the control store, sealed
// by the master key. kAlreadyExists if they exist.
absl::Status CreateServerKeys(store::ControlStore& control, std::string_view master_key,
                              Random& random);

// Opens the data directory made by `custos init`.
absl::StatusOr<std::unique_ptr<App>> OpenApp(const std::string& data_dir, const AppOptions& o);

// Serves `app`'s API until SIGTERM/SIGINT: binds, prints "custos listening on http://HOST:PORT"
// on stdout (tests and scripts wait for that line to learn the port), runs the background jobs
// while serving and stops them afterwards, so that other instances take their leases at once.
absl::Status ServeApi(App& app, const http::ServerOptions& options);

}  // namespace custos::cli::internal

// Assembles the components over a data directory (stores, keys, catalog, services).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "access/access.h"
#include "base/clock.h"
#include "crypto/crypto.h"
#include "crypto/key_provider.h"
#include "data/data.h"
#include "ledger/ledger.h"
#include "residency/residency.h"
#include "store/store.h"
#include "tenants/tenants.h"

namespace custos::cli::internal {

// The data directory's configuration (custos.yaml).
struct DataDirConfig {
  std::string backend = "sqlite";
  std::string origin;
  std::string keyring_path;
  std::string regions_file;
};

absl::StatusOr<DataDirConfig> ReadConfig(const std::string& data_dir);
absl::Status WriteConfig(const std::string& data_dir, const DataDirConfig& config);

// Reads a 32-byte master key stored as 64 hex characters. kFailedPrecondition if the file is
// readable by group or others.
absl::StatusOr<std::string> ReadMasterKey(const std::string& path);

struct App {
  crypto::OpenSslRandom random;
  std::unique_ptr<Clock> clock;
  OffsetClock* fake_clock = nullptr;
  residency::Catalog catalog;
  std::unique_ptr<crypto::KeyProvider> keys;
  std::unique_ptr<store::ControlStore> control;
  std::map<std::string, std::unique_ptr<store::CellStore>> cells;
  std::unique_ptr<ledger::Ledger> ledger;
  std::unique_ptr<ledger::EventLog> events;
  std::unique_ptr<data::ObjectService> objects;
  std::unique_ptr<access::PrincipalService> principals;
  std::unique_ptr<tenants::TenantService> tenants;
};

struct AppOptions {
  std::string master_key_file;  // default <data_dir>/master.key
  bool fake_clock = false;
  data::ObjectServiceOptions objects;
  ledger::LedgerOptions ledger;
};

// Creates the server's secrets (ledger signing key, pseudonym key) in the control store, sealed
// by the master key. kAlreadyExists if they exist.
absl::Status CreateServerKeys(store::ControlStore& control, std::string_view master_key,
                              Random& random);

// Opens the data directory made by `custos init`.
absl::StatusOr<std::unique_ptr<App>> OpenApp(const std::string& data_dir, const AppOptions& o);

}  // namespace custos::cli::internal

#include "cli/internal/app.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/strip.h"
#include "api/api.h"
#include "base/strings.h"
#include "spdlog/spdlog.h"
#include "yaml-cpp/yaml.h"

namespace custos::cli::internal {

namespace fs = std::filesystem;

absl::StatusOr<DataDirConfig> ReadConfig(const std::string& data_dir) {
  std::string path = data_dir + "/custos.yaml";
  if (!fs::exists(path)) {
    return absl::FailedPreconditionError(
        StrCat(path, " does not exist: run `custos init --data-dir ", data_dir, "` first"));
  }
  try {
    YAML::Node n = YAML::LoadFile(path);
    DataDirConfig c;
    c.backend = n["backend"].as<std::string>("sqlite");
    c.origin = n["origin"].as<std::string>("");
    const auto keyring_store = n["keyring_store"].as<std::string>("file");
    if (keyring_store != "file" && keyring_store != "control") {
      return absl::InvalidArgumentError(
          StrCat(path, ": keyring_store is ", keyring_store, " (file or control)"));
    }
    if (keyring_store == "file") {
      c.keyring_path = n["keyring"].as<std::string>(data_dir + "/keyring");
    }
    c.regions_file = n["regions"].as<std::string>(data_dir + "/regions.yaml");
    c.dsn = n["dsn"].as<std::string>("");
    if (const YAML::Node cells = n["cell_dsn"]; cells && cells.IsMap()) {
      for (const auto& kv : cells) {
        c.cell_dsns[kv.first.as<std::string>()] = kv.second.as<std::string>();
      }
    }
    if (c.backend == "postgresql") {
      if (c.dsn.empty()) return absl::InvalidArgumentError(path + ": postgresql needs a dsn");
    } else if (c.backend != "sqlite") {
      return absl::InvalidArgumentError(
          StrCat(path, ": unknown backend ", c.backend, " (sqlite or postgresql)"));
    }
    return c;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(StrCat(path, ": ", e.what()));
  }
}

absl::Status WriteConfig(const std::string& data_dir, const DataDirConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "backend" << YAML::Value << c.backend;
  out << YAML::Key << "origin" << YAML::Value << c.origin;
  if (c.keyring_path.empty()) {
    out << YAML::Key << "keyring_store" << YAML::Value << "control";
  } else {
    out << YAML::Key << "keyring" << YAML::Value << c.keyring_path;
  }
  out << YAML::Key << "regions" << YAML::Value << c.regions_file;
  if (c.backend == "postgresql") {
    out << YAML::Key << "dsn" << YAML::Value << c.dsn;
    if (!c.cell_dsns.empty()) {
      out << YAML::Key << "cell_dsn" << YAML::Value << YAML::BeginMap;
      for (const auto& [region, dsn] : c.cell_dsns) {
        out << YAML::Key << region << YAML::Value << dsn;
      }
      out << YAML::EndMap;
    }
  }
  out << YAML::EndMap;
  std::ofstream f(data_dir + "/custos.yaml");
  f << "# Written by `custos init`.\n" << out.c_str() << "\n";
  if (!f) return absl::UnavailableError("cannot write custos.yaml");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<store::ControlStore>> OpenControlStore(const std::string& data_dir,
                                                                      const DataDirConfig& config,
                                                                      bool create) {
  if (config.backend == "postgresql") return store::OpenPostgresControlStore(config.dsn, create);
  return store::OpenSqliteControlStore(data_dir + "/control.db", create);
}

absl::StatusOr<std::unique_ptr<store::CellStore>> OpenCellStore(const std::string& data_dir,
                                                                const DataDirConfig& config,
                                                                const std::string& region,
                                                                bool create) {
  if (config.backend == "postgresql") {
    auto it = config.cell_dsns.find(region);
    return store::OpenPostgresCellStore(it == config.cell_dsns.end() ? config.dsn : it->second,
                                        region, create);
  }
  return store::OpenSqliteCellStore(StrCat(data_dir, "/cells/", region, ".db"), region, create);
}

namespace {

constexpr std::string_view kKeyringSetting = "keyring";

class ControlStoreKeyringStorage final : public crypto::KeyringStorage {
 public:
  explicit ControlStoreKeyringStorage(store::ControlStore& control) : control_(control) {}

  absl::StatusOr<std::string> Load() override {
    auto blob = control_.GetSetting(kKeyringSetting);
    if (absl::IsNotFound(blob.status())) {
      return absl::NotFoundError("no keyring in the control store");
    }
    return blob;
  }

  // One conditional update in one transaction: of several instances saving over the same blob,
  // one wins and the others reload (kAborted).
  absl::Status Save(std::string_view blob, std::optional<std::string_view> previous) override {
    absl::Status s = control_.CompareAndSwapSetting(kKeyringSetting, previous, blob);
    if (!previous && absl::IsAborted(s)) {
      return absl::AlreadyExistsError("the control store holds a keyring");
    }
    return s;
  }

 private:
  store::ControlStore& control_;
};

}  // namespace

std::unique_ptr<crypto::KeyringStorage> ControlStoreKeyring(store::ControlStore& control) {
  return std::make_unique<ControlStoreKeyringStorage>(control);
}

absl::StatusOr<std::string> ReadMasterKey(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(StrCat("cannot read master key ", path));
  }
  if (st.st_mode & 077) {
    return absl::FailedPreconditionError(
        StrCat(path, " must not be readable by group or others (chmod 600)"));
  }
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string hex(absl::StripAsciiWhitespace(ss.str()));
  if (hex.size() != 64 || !std::all_of(hex.begin(), hex.end(), absl::ascii_isxdigit)) {
    return absl::FailedPreconditionError(path + " does not hold 64 hex characters");
  }
  return absl::HexStringToBytes(hex);
}

namespace {

constexpr std::string_view kLedgerKeySetting = "ledger_signing_key";
constexpr std::string_view kPseudonymKeySetting = "pseudonym_key";

std::string SettingAad(std::string_view name) { return StrCat("custos setting v1 ", name); }

absl::StatusOr<std::string> OpenSealedSetting(store::ControlStore& control, std::string_view master,
                                              std::string_view name) {
  auto sealed = control.GetSetting(name);
  if (!sealed.ok()) return sealed.status();
  auto plain = crypto::AeadOpen(master, *sealed, SettingAad(name));
  if (!plain.ok()) {
    return absl::DataLossError(StrCat("cannot open ", name, ": wrong master key or altered"));
  }
  return plain;
}

}  // namespace

absl::Status CreateServerKeys(store::ControlStore& control, std::string_view master,
                              Random& random) {
  for (std::string_view name : {kLedgerKeySetting, kPseudonymKeySetting}) {
    if (control.GetSetting(name).ok()) {
      return absl::AlreadyExistsError(StrCat(name, " exists"));
    }
    auto sealed = crypto::AeadSeal(master, random.Bytes(32), SettingAad(name), random);
    if (!sealed.ok()) return sealed.status();
    if (auto s = control.PutSetting(name, *sealed); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<App>> OpenApp(const std::string& data_dir, const AppOptions& o) {
  auto config = ReadConfig(data_dir);
  if (!config.ok()) return config.status();
  auto app = std::make_unique<App>();
  app->local_cells = config->backend == "sqlite";
  if (o.fake_clock) {
    auto fake = std::make_unique<OffsetClock>();
    app->fake_clock = fake.get();
    app->clock = std::move(fake);
  } else {
    app->clock = std::make_unique<SystemClock>();
  }
  auto catalog = residency::Catalog::FromFile(config->regions_file);
  if (!catalog.ok()) return catalog.status();
  app->catalog = std::move(*catalog);

  auto master =
      ReadMasterKey(o.master_key_file.empty() ? data_dir + "/master.key" : o.master_key_file);
  if (!master.ok()) return master.status();
  auto control = OpenControlStore(data_dir, *config, /*create=*/false);
  if (!control.ok()) return control.status();
  app->control = std::move(*control);

  auto keyring = crypto::KeyringKeyProvider::Open(
      config->keyring_path.empty() ? ControlStoreKeyring(*app->control)
                                   : crypto::FileKeyringStorage(config->keyring_path),
      *master, app->random);
  if (!keyring.ok()) return keyring.status();
  app->keys = std::move(*keyring);

  auto seed = OpenSealedSetting(*app->control, *master, kLedgerKeySetting);
  if (!seed.ok()) return seed.status();
  auto signing_key = crypto::Ed25519PrivateKey::FromSeed(*seed);
  if (!signing_key.ok()) return signing_key.status();
  auto pseudonym_key = OpenSealedSetting(*app->control, *master, kPseudonymKeySetting);
  if (!pseudonym_key.ok()) return pseudonym_key.status();
  auto origin = app->control->GetSetting("origin");
  if (!origin.ok()) return origin.status();
  auto ledger =
      ledger::Ledger::Open(*app->control, std::move(*signing_key), *origin, *app->clock, o.ledger);
  if (!ledger.ok()) return ledger.status();
  app->ledger = std::move(*ledger);
  ledger::EntryAppender& appender = o.bench_appender ? *o.bench_appender : *app->ledger;
  app->events = std::make_unique<ledger::EventLog>(appender, *app->control, *app->keys,
                                                   *pseudonym_key, app->random, *app->clock);
  std::map<std::string, store::CellStore*> cells;
  for (const auto& region : app->catalog.regions()) {
    // Cells are created with the catalog, so a region added to it later gets its cell here.
    auto cell = OpenCellStore(data_dir, *config, region.id, /*create=*/true);
    if (!cell.ok()) return cell.status();
    cells[region.id] = cell->get();
    app->cells[region.id] = std::move(*cell);
  }
  data::ObjectServiceOptions object_options = o.objects;
  if (!object_options.write_instance) {
    auto instance = data::ClaimWriteInstance(*app->control);
    if (!instance.ok()) return instance.status();
    object_options.write_instance = *instance;
  }
  app->objects = std::make_unique<data::ObjectService>(cells, *app->keys, *app->events, app->random,
                                                       *app->clock, object_options);
  app->principals = std::make_unique<access::PrincipalService>(*app->control, *app->keys,
                                                               app->random, *app->clock);
  app->tenants = std::make_unique<tenants::TenantService>(*app->control, app->catalog, *app->keys,
                                                          *app->objects, *app->events, app->random,
                                                          *app->clock);
  app->requests = std::make_unique<access::AccessRequestService>(*app->control, *app->events,
                                                                 app->random, *app->clock);
  app->mfa =
      std::make_unique<access::MfaService>(*app->control, *app->keys, app->random, *app->clock);
  // The holder names this process among the instances: host, pid and a random part (a pid
  // reused after a restart is another holder).
  char host[256] = {};
  (void)::gethostname(host, sizeof host - 1);
  app->jobs = std::make_unique<jobs::JobRunner>(
      *app->control, *app->clock,
      jobs::JobRunner::Options{StrCat(host, ":", ::getpid(), ":",
                                      absl::BytesToHexString(AbslView(app->random.Bytes(4)))),
                               absl::Seconds(1), absl::Seconds(15)});
  // Requests and grants past their time are also refused at use (access/ checks expiry on every
  // read); this job records their access.expire events promptly, on one instance.
  if (auto s = app->jobs->Register({"access-expiry", absl::Seconds(1),
                                    [requests = app->requests.get()]() -> absl::Status {
                                      auto n = requests->ExpireDue();
                                      return n.ok() ? absl::OkStatus() : n.status();
                                    }});
      !s.ok()) {
    return s;
  }
  if (auto s = app->jobs->Register({"tombstone-purge", absl::Minutes(10),
                                    [objects = app->objects.get()]() -> absl::Status {
                                      return objects->PurgeTombstones().status();
                                    }});
      !s.ok()) {
    return s;
  }
  return app;
}

absl::Status ServeApi(App& app, const http::ServerOptions& options) {
  http::Metrics metrics;
  api::Services services;
  services.catalog = &app.catalog;
  services.principals = app.principals.get();
  services.tenants = app.tenants.get();
  services.objects = app.objects.get();
  services.ledger = app.ledger.get();
  services.events = app.events.get();
  services.metrics = &metrics;
  services.clock = app.clock.get();
  services.fake_clock = app.fake_clock;
  services.jobs = app.jobs.get();
  services.requests = app.requests.get();
  services.mfa = app.mfa.get();
  services.control = app.control.get();
  services.local_cells = app.local_cells;
  http::Router router;
  api::RegisterRoutes(router, services);

  http::Server server(options, router, metrics);
  auto bound = server.Start();
  if (!bound.ok()) return bound.status();
  spdlog::info("serving on http://{}:{} fake_clock={}", options.host, *bound,
               app.fake_clock != nullptr);
  std::cout << "custos listening on http://" << options.host << ":" << *bound << std::endl;
  app.jobs->Start();
  server.Wait();
  app.jobs->Stop();
  spdlog::info("stopped");
  return absl::OkStatus();
}

}  // namespace custos::cli::internal

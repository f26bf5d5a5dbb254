// `custos init`: creates a data directory with keys, stores, the region catalog and an admin.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "api/api.h"
#include "base/files.h"
#include "base/strings.h"
#include "cli/cli.h"
#include "cli/internal/app.h"
#include "ledger/note.h"

namespace custos::cli {
namespace {

namespace fs = std::filesystem;
using internal::App;

// Creates `path` (never replacing a file) with `content`, durably: the file and its directory
// entry are synced (the control store may soon hold keys only this file can open).
absl::Status WriteSecretFile(const std::string& path, std::string_view content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return absl::UnavailableError(StrCat("cannot create ", path));
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()) ||
      ::fsync(fd) != 0) {
    return absl::UnavailableError(StrCat("cannot write ", path));
  }
  return SyncDirectoryOf(path);
}

// What init can check before it creates anything, so that a mistake in the options does not
// leave a half-made data directory that blocks the corrected run.
absl::Status CheckBeforeCreating(const InitOptions& o) {
  if (!o.origin.empty() && !ledger::IsValidKeyName(o.origin)) {
    return absl::InvalidArgumentError(
        StrCat("--origin ", o.origin,
               ": must be a signed-note key name (no spaces, '+' or control characters), "
               "e.g. custos.example.com/log"));
  }
  if (!o.keyring_path.empty() && fs::exists(fs::symlink_status(o.keyring_path))) {
    return absl::AlreadyExistsError(StrCat("keyring exists: ", o.keyring_path));
  }
  if (fs::exists(fs::symlink_status(o.data_dir + "/master.key"))) {
    return absl::AlreadyExistsError(
        StrCat(o.data_dir, "/master.key exists (left by an earlier init that failed?): remove ",
               o.data_dir, " and run init again"));
  }
  return absl::OkStatus();
}

struct DemoTenant {
  const char* name;
  const char* customer_type;
  const char* geography;
  std::vector<std::pair<const char*, const char*>> objects;
};

absl::Status SeedDemo(App& app) {
  const DemoTenant kDemo[] = {
      {"Acme Corp",
       "enterprise",
       "US",
       {{"reports/2026-q3.txt", "Quarterly revenue: 12.4M (demo)\n"},
        {"contracts/msa.txt", "Master services agreement (demo)\n"}}},
      {"Globex GmbH",
       "enterprise",
       "EU",
       {{"hr/handbook.txt", "Mitarbeiterhandbuch (demo)\n"},
        {"invoices/inv-001.json", "{\"total\": 1200, \"currency\": \"EUR\"}\n"}}},
      {"Initech India", "enterprise", "IN", {{"notes/welcome.txt", "Namaste (demo)\n"}}},
  };
  for (const DemoTenant& d : kDemo) {
    tenants::TenantSpec spec;
    spec.name = d.name;
    spec.customer_type = d.customer_type;
    spec.geography = d.geography;
    spec.services = {"storage"};
    auto created = api::CreateTenantWithAdmin(*app.tenants, *app.principals, spec, "init", "admin");
    if (!created.ok()) return created.status();
    const tenants::Tenant& t = created->tenant;
    for (const auto& [key, content] : d.objects) {
      // Seeding is an access like any other: recorded first.
      boost::json::object fields{{"actor", "init"},
                                 {"role", "admin"},
                                 {"operation", "write"},
                                 {"purpose", "service_delivery"},
                                 {"resource", key}};
      if (auto logged = app.events->Record({"data.write", t.id, std::move(fields)}); !logged.ok()) {
        return logged.status();
      }
      auto r = app.objects->Put(t.cells(), key, content, "text/plain");
      if (!r.ok()) return r.status();
    }
    std::cout << "demo tenant " << d.name << " (" << d.geography << "): id " << t.id << ", home "
              << t.home_region << ", replica "
              << (t.replica_region.empty() ? "none" : t.replica_region) << "\n"
              << "  tenant admin token: " << created->admin.token << "\n";
  }
  return absl::OkStatus();
}

// Checks the backend options and records them in `config`.
absl::Status ConfigureBackend(const InitOptions& o, const residency::Catalog& catalog,
                              internal::DataDirConfig& config) {
  config.backend = o.backend;
  if (o.backend == "sqlite") {
    if (!o.dsn.empty() || !o.cell_dsns.empty()) {
      return absl::InvalidArgumentError("--dsn and --cell-dsn need --backend postgresql");
    }
    return absl::OkStatus();
  }
  if (o.backend != "postgresql") {
    return absl::InvalidArgumentError(
        StrCat("unknown backend ", o.backend, " (sqlite or postgresql)"));
  }
  if (o.dsn.empty()) return absl::InvalidArgumentError("--backend postgresql needs --dsn");
  config.dsn = o.dsn;
  for (const std::string& spec : o.cell_dsns) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      return absl::InvalidArgumentError(StrCat("--cell-dsn ", spec, ": expected REGION=DSN"));
    }
    std::string region = spec.substr(0, eq);
    if (!catalog.Find(region)) {
      return absl::InvalidArgumentError(
          StrCat("--cell-dsn: no region ", region, " in the catalog"));
    }
    if (!config.cell_dsns.emplace(region, spec.substr(eq + 1)).second) {
      return absl::InvalidArgumentError(StrCat("--cell-dsn: region ", region, " given twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status Init(const InitOptions& o) {
  const std::string& dir = o.data_dir;
  if (fs::exists(dir + "/custos.yaml")) {
    return absl::AlreadyExistsError(dir + " is already initialised");
  }
  auto catalog = residency::Catalog::FromFile(o.regions_file);
  if (!catalog.ok()) return catalog.status();
  internal::DataDirConfig config;
  if (auto s = ConfigureBackend(o, *catalog, config); !s.ok()) return s;
  if (auto s = CheckBeforeCreating(o); !s.ok()) return s;

  std::error_code ec;
  fs::create_directories(o.backend == "sqlite" ? dir + "/cells" : dir, ec);
  if (ec) return absl::UnavailableError(StrCat("cannot create ", dir, ": ", ec.message()));
  fs::permissions(dir, fs::perms::owner_all, ec);

  // The control store first: a database that already holds a Custos is never re-initialised
  // (its keys would no longer match the new master key).
  auto control = internal::OpenControlStore(dir, config, /*create=*/true);
  if (!control.ok()) return control.status();
  if (auto origin = (*control)->GetSetting("origin"); origin.ok()) {
    return absl::AlreadyExistsError("the control store is already initialised (origin " + *origin +
                                    "): give a fresh database");
  } else if (!absl::IsNotFound(origin.status())) {
    return origin.status();
  }

  // The catalog is copied in so that the data directory is self-describing.
  std::string regions_copy = dir + "/regions.yaml";
  fs::copy_file(o.regions_file, regions_copy, fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::UnavailableError("cannot copy the region catalog: " + ec.message());

  crypto::OpenSslRandom random;
  std::string master = random.Bytes(32);
  if (auto s = WriteSecretFile(dir + "/master.key", absl::BytesToHexString(master) + "\n");
      !s.ok()) {
    return s;
  }
  config.origin = o.origin.empty()
                      ? StrCat("custos.example/", absl::BytesToHexString(random.Bytes(4)))
                      : o.origin;
  config.regions_file = fs::absolute(regions_copy).string();
  // On PostgreSQL the sealed keyring lives in the control store, shared by every instance,
  // unless --keyring keeps it in a file apart from the database (and its backups).
  if (o.keyring_path.empty() && o.backend == "sqlite") {
    config.keyring_path = dir + "/keyring";
  } else {
    config.keyring_path = o.keyring_path;
  }
  {
    auto storage = config.keyring_path.empty() ? internal::ControlStoreKeyring(**control)
                                               : crypto::FileKeyringStorage(config.keyring_path);
    auto keyring = crypto::KeyringKeyProvider::Create(std::move(storage), master, random);
    if (!keyring.ok()) return keyring.status();
  }
  if (auto s = (*control)->PutSetting("origin", config.origin); !s.ok()) return s;
  if (auto s = internal::CreateServerKeys(**control, master, random); !s.ok()) return s;
  control->reset();
  if (auto s = internal::WriteConfig(dir, config); !s.ok()) return s;

  auto app = internal::OpenApp(dir, {});
  if (!app.ok()) return app.status();
  if (auto cp = (*app)->ledger->SignCheckpointNow(); !cp.ok()) return cp.status();
  access::NewPrincipal admin;
  admin.name = "admin";
  admin.role = access::Role::kAdmin;
  auto issued = (*app)->principals->Create(admin);
  if (!issued.ok()) return issued.status();
  if (auto s = WriteSecretFile(dir + "/admin.token", issued->token + "\n"); !s.ok()) return s;
  std::cout << "initialised " << dir << " (origin " << config.origin << ")\n"
            << "admin token: " << issued->token << "\n";
  if (o.demo) return SeedDemo(**app);
  return absl::OkStatus();
}

}  // namespace

int RunInit(const InitOptions& options) {
  absl::Status s = Init(options);
  if (!s.ok()) {
    std::cerr << "custos init: " << s.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace custos::cli

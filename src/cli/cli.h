// The custos command line: `init` creates a data directory, `serve` runs the server on it.
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
};

struct ServeOptions {
  std::string data_dir;
  std::string listen = "127.0.0.1:8080";
  std::string master_key_file;  // default <data_dir>/master.key
  bool fake_clock = false;
  int io_threads = 2;
  int worker_threads = 16;
  int request_timeout_ms = 30000;
  size_t max_object_bytes = 16 << 20;
  long long dek_max_seals = 1 << 20;
  std::string log_level = "info";
};

int RunInit(const InitOptions& options);
int RunServe(const ServeOptions& options);

}  // namespace custos::cli

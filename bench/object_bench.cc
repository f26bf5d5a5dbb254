// custos_bench: one measurement per invocation, for bench/run to interleave and compare.
//
//   custos_bench prepare       --dir D [--objects N] [--threads T]
//   custos_bench inproc-put    --dir D [--threads T] [--seconds S]
//   custos_bench inproc-get    --dir D [--threads T] [--seconds S]
//   custos_bench sqlite-insert --file F --batch B [--files 1|2] [--objects N] [--seconds S]
//   custos_bench sqlite-select --file F [--objects N] [--threads T] [--seconds S]
//   custos_bench serve         --dir D [--listen H:P] [--noop-ledger] [--workers W]
//   (serve_bench.cc)
//
// D is a data directory made by `custos init`. `prepare` creates a US tenant (home and replica
// cell), a tenant_admin principal and N preloaded 1 KiB objects GetKey(0..N-1), and writes
// D/bench.env (TENANT_ID, TOKEN, OBJECTS) for the other subcommands and for bench/run's HTTP
// runs. The in-process runs assemble the product as `custos serve` does (cli::internal::OpenApp)
// and call data::ObjectService from T threads, without HTTP. With --ledger each operation is first
// recorded in the ledger (ledger::EventLog::Record, durable before the act), as over HTTP.
#include <atomic>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "api/api.h"
#include "base/process.h"
#include "bench.h"
#include "boost/json.hpp"
#include "cli/internal/app.h"
#include "testing/cell_store_wrappers.h"

namespace custos::bench {
namespace {

using cli::internal::App;

// Passes every call through to a real cell store, counting transactions (Apply calls) and the
// writes they carried, so the PUT benchmark can report the batch size group commit achieved.
class CountingCellStore final : public testing::ForwardingCellStore {
 public:
  using ForwardingCellStore::ForwardingCellStore;

  absl::StatusOr<std::vector<store::CellWriteResult>> Apply(
      std::span<const store::CellWrite> writes) override {
    transactions_.fetch_add(1, std::memory_order_relaxed);
    writes_.fetch_add(writes.size(), std::memory_order_relaxed);
    return inner_.Apply(writes);
  }

  uint64_t transactions() const { return transactions_.load(); }
  uint64_t writes() const { return writes_.load(); }

 private:
  std::atomic<uint64_t> transactions_{0};
  std::atomic<uint64_t> writes_{0};
};

// The product over a data directory, with an ObjectService whose cells are counted.
struct Harness {
  std::unique_ptr<App> app;
  std::map<std::string, std::unique_ptr<CountingCellStore>> counted;
  std::unique_ptr<data::ObjectService> objects;
  data::TenantCells tenant;

  uint64_t Transactions() const {
    uint64_t n = 0;
    for (const auto& [region, c] : counted) n += c->transactions();
    return n;
  }
  uint64_t Writes() const {
    uint64_t n = 0;
    for (const auto& [region, c] : counted) n += c->writes();
    return n;
  }
};

std::map<std::string, std::string> ReadEnv(const std::string& path) {
  std::map<std::string, std::string> env;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

absl::StatusOr<Harness> OpenHarness(const std::string& dir, bool need_tenant) {
  Harness h;
  auto app = cli::internal::OpenApp(dir, {});
  if (!app.ok()) return app.status();
  h.app = std::move(*app);
  std::map<std::string, store::CellStore*> cells;
  for (auto& [region, cell] : h.app->cells) {
    h.counted[region] = std::make_unique<CountingCellStore>(*cell);
    cells[region] = h.counted[region].get();
  }
  // Same class and default options as `custos serve` (group commit up to 256 per batch).
  h.objects = std::make_unique<data::ObjectService>(cells, *h.app->keys, *h.app->events,
                                                    h.app->random, *h.app->clock);
  if (need_tenant) {
    auto env = ReadEnv(dir + "/bench.env");
    if (env["TENANT_ID"].empty()) {
      return absl::FailedPreconditionError(dir + "/bench.env: run `custos_bench prepare` first");
    }
    auto t = h.app->tenants->Get(env["TENANT_ID"]);
    if (!t.ok()) return t.status();
    h.tenant = t->cells();
  }
  return h;
}

// A thread's 1 KiB of random content; each call changes its first 16 bytes.
class Content {
 public:
  explicit Content(int thread) : rng_(std::random_device{}() ^ thread), bytes_(kObjectBytes, 0) {
    for (char& c : bytes_) c = static_cast<char>(rng_());
  }
  const std::string& Next(int thread, uint64_t n) {
    uint64_t a = n, b = (static_cast<uint64_t>(thread) << 32) ^ rng_();
    std::memcpy(bytes_.data(), &a, 8);
    std::memcpy(bytes_.data() + 8, &b, 8);
    return bytes_;
  }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
  std::string bytes_;
};

void ReportFirstError(const absl::Status& s) {
  static std::once_flag once;
  std::call_once(once, [&] { std::cerr << "first error: " << s << "\n"; });
}

// With --ledger, records the access in the ledger before performing it, as the HTTP request path
// does (api.cc BeginDataAccess): the same event kind and fields, durably appended (group commit).
bool RecordAccess(Harness& h, const Flags& f, const char* kind, const char* operation,
                  const std::string& key) {
  if (!f.ledger) return true;
  boost::json::object fields{{"actor", "bench"},
                             {"role", "tenant_admin"},
                             {"operation", operation},
                             {"purpose", "service_delivery"},
                             {"resource", key}};
  auto logged = h.app->events->Record({kind, h.tenant.tenant_id, std::move(fields)});
  if (!logged.ok()) {
    ReportFirstError(logged.status());
    return false;
  }
  return true;
}

int Fail(std::string_view what, const absl::Status& s) {
  std::cerr << "custos_bench " << what << ": " << s << "\n";
  return 1;
}

}  // namespace

int Prepare(const Flags& f) {
  auto h = OpenHarness(f.dir, /*need_tenant=*/false);
  if (!h.ok()) return Fail("prepare", h.status());
  App& app = *h->app;
  tenants::TenantSpec spec;
  spec.name = "bench";
  spec.customer_type = "enterprise";
  spec.geography = "US";
  spec.services = {"storage"};
  auto created = api::CreateTenantWithAdmin(*app.tenants, *app.principals, spec, "bench", "admin");
  if (!created.ok()) return Fail("prepare: tenant", created.status());
  const tenants::Tenant& t = created->tenant;

  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < f.threads; ++i) {
    threads.emplace_back([&, i] {
      Content content(i);
      for (uint64_t k; (k = next.fetch_add(1)) < f.objects && !failed;) {
        auto r = app.objects->Put(t.cells(), GetKey(k), content.Next(i, k), kContentType);
        if (!r.ok()) {
          ReportFirstError(r.status());
          failed = true;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  if (failed) return 1;
  std::ofstream env(f.dir + "/bench.env");
  env << "TENANT_ID=" << t.id << "\nTOKEN=" << created->admin.token << "\nOBJECTS=" << f.objects
      << "\nHOME=" << t.home_region << "\nREPLICA=" << t.replica_region << "\n";
  if (!env) return Fail("prepare", absl::UnavailableError("cannot write bench.env"));
  std::cout << "tenant=" << t.id << " home=" << t.home_region << " replica=" << t.replica_region
            << " objects=" << f.objects << "\n";
  return 0;
}

int InprocPut(const Flags& f) {
  auto h = OpenHarness(f.dir, /*need_tenant=*/true);
  if (!h.ok()) return Fail("inproc-put", h.status());
  std::vector<std::unique_ptr<Content>> contents;
  for (int i = 0; i < f.threads; ++i) contents.push_back(std::make_unique<Content>(i));
  uint64_t tx0 = 0, tx1 = 0, w0 = 0, w1 = 0;
  TimedResult r = RunTimed(
      f.threads, f.warmup, f.seconds,
      [&](int t, uint64_t n) {
        std::string key = PutKey(t, n);
        if (!RecordAccess(*h, f, "data.write", "write", key)) return false;
        auto p = h->objects->Put(h->tenant, key, contents[t]->Next(t, n), kContentType);
        if (!p.ok()) ReportFirstError(p.status());
        return p.ok();
      },
      [&](bool start) {
        (start ? tx0 : tx1) = h->Transactions();
        (start ? w0 : w1) = h->Writes();
      });
  double cells = h->tenant.replica_region.empty() ? 1 : 2;
  double transactions = static_cast<double>(tx1 - tx0);
  double batch = transactions > 0 ? (w1 - w0) / transactions : 0;
  // Writes per cell transaction; each PUT is one write in each of the tenant's cells.
  std::cout << absl::StrFormat(
      "ops_per_sec=%.1f batch=%.2f transactions_per_sec=%.1f cells=%d threads=%d ledger=%d "
      "errors=%d\n",
      r.ops_per_sec(), batch, transactions / r.seconds / cells, static_cast<int>(cells), f.threads,
      f.ledger, r.errors);
  return r.errors == 0 ? 0 : 1;
}

int InprocGet(const Flags& f) {
  auto h = OpenHarness(f.dir, /*need_tenant=*/true);
  if (!h.ok()) return Fail("inproc-get", h.status());
  uint64_t objects = std::stoull(ReadEnv(f.dir + "/bench.env")["OBJECTS"]);
  if (objects == 0) return Fail("inproc-get", absl::FailedPreconditionError("no objects"));
  std::vector<std::unique_ptr<Content>> rngs;
  for (int i = 0; i < f.threads; ++i) rngs.push_back(std::make_unique<Content>(i));
  TimedResult r = RunTimed(f.threads, f.warmup, f.seconds, [&](int t, uint64_t) {
    std::string key = GetKey(rngs[t]->rng()() % objects);
    if (!RecordAccess(*h, f, "data.read", "read", key)) return false;
    auto o = h->objects->Get(h->tenant, key);
    if (!o.ok()) {
      ReportFirstError(o.status());
      return false;
    }
    return o->bytes.size() == kObjectBytes;
  });
  std::cout << absl::StrFormat("ops_per_sec=%.1f mb_per_sec=%.2f threads=%d ledger=%d errors=%d\n",
                               r.ops_per_sec(), r.ops_per_sec() * kObjectBytes / 1e6, f.threads,
                               f.ledger, r.errors);
  return r.errors == 0 ? 0 : 1;
}

}  // namespace custos::bench

int main(int argc, char** argv) {
  using namespace custos::bench;
  custos::ConfigureProcess();  // as custos does: the raw baselines run under it too
  CLI::App app{"custos_bench: one benchmark measurement per run (see bench/run)"};
  app.require_subcommand(1);
  Flags f;
  auto add = [&](const char* name, const char* help, bool dir, bool file) {
    auto* c = app.add_subcommand(name, help);
    if (dir) c->add_option("--dir", f.dir, "custos data directory")->required();
    if (file) c->add_option("--file", f.file, "SQLite file")->required();
    c->add_option("--threads", f.threads, "threads")->check(CLI::Range(1, 1024));
    c->add_option("--seconds", f.seconds, "measured seconds");
    c->add_option("--warmup", f.warmup, "seconds before measuring");
    c->add_option("--objects", f.objects, "preloaded objects");
    return c;
  };
  auto* prepare = add("prepare", "create a bench tenant with N objects", true, false);
  auto* put = add("inproc-put", "ObjectService::Put of new 1 KiB objects", true, false);
  auto* get = add("inproc-get", "ObjectService::Get of preloaded 1 KiB objects", true, false);
  for (auto* c : {put, get}) {
    c->add_flag("--ledger", f.ledger,
                "record each access in the ledger first, as the HTTP request path does");
  }
  auto* insert = add("sqlite-insert", "raw SQLite: batched inserts", false, true);
  insert->add_option("--batch", f.batch, "rows per transaction")->check(CLI::Range(1, 100000));
  insert->add_option("--files", f.files, "files written in parallel")->check(CLI::Range(1, 16));
  insert->add_option("--row-bytes", f.row_bytes, "bytes per row (default: a sealed 1 KiB object)");
  auto* select = add("sqlite-select", "raw SQLite: point selects", false, true);
  auto* lcpu = add("ledger-cpu", "ledger: the CPU path of appends (no store)", false, false);
  auto* lappend =
      add("ledger-append", "ledger: durable appends through the sequencer", false, true);
  auto* llat = add("ledger-latency", "ledger: append to covering checkpoint latency", false, true);
  auto* lproof = add("ledger-proof", "ledger: inclusion proofs on a large log", false, true);
  for (auto* c : {lcpu, lappend, llat, lproof}) {
    c->add_option("--entry-bytes", f.entry_bytes, "bytes per entry")->check(CLI::Range(16, 4096));
  }
  for (auto* c : {lcpu, lappend}) {
    c->add_option("--batch", f.batch, "entries per batch")->check(CLI::Range(1, 65536));
  }
  auto* serve =
      app.add_subcommand("serve", "the API server, optionally with a no-op ledger append");
  serve->add_option("--dir", f.dir, "custos data directory")->required();
  serve->add_option("--listen", f.listen, "HOST:PORT (port 0: any free port)");
  serve->add_flag("--noop-ledger", f.noop_ledger, "replace the ledger append by a no-op");
  serve->add_option("--io-threads", f.io_threads, "I/O threads")->check(CLI::Range(1, 64));
  serve->add_option("--workers", f.workers, "worker threads")->check(CLI::Range(1, 4096));
  serve->add_option("--batch-delay-us", f.batch_delay_us,
                    "ledger: wait this long for more appends after the first of a batch");
  CLI11_PARSE(app, argc, argv);
  if (*serve) return Serve(f);
  if (*lcpu) return LedgerCpu(f);
  if (*lappend) return LedgerAppend(f);
  if (*llat) return LedgerLatency(f);
  if (*lproof) return LedgerProof(f);
  if (*prepare) return Prepare(f);
  if (*put) return InprocPut(f);
  if (*get) return InprocGet(f);
  if (*insert) return SqliteInsert(f);
  if (*select) return SqliteSelect(f);
  return 2;
}

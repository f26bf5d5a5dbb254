// Ledger benchmarks (Custos issue 4): the CPU path of appends, durable appends through the
// sequencer, append-to-checkpoint latency and inclusion-proof latency. Each prints one
// `ops_per_sec=… name=value …` line like the other custos_bench subcommands.
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_format.h"
#include "base/clock.h"
#include "bench.h"
#include "crypto/crypto.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/tiles.h"
#include "store/store.h"

namespace custos::bench {
namespace {

using Steady = std::chrono::steady_clock;

// An entry of `bytes` bytes shaped like a real one (canonical JSON of digest, kind, pseudonym,
// ts), padded to the size asked for.
std::string Entry(uint64_t i, size_t bytes) {
  std::string e =
      absl::StrFormat(R"({"digest":"%064x","kind":"data.read","tenant":"%064x","ts":%d,"v":1})", i,
                      i * 7919, 1700000000000 + static_cast<int64_t>(i));
  e.resize(std::max(bytes, size_t{16}), ' ');
  return e;
}

void PutU16(std::string& out, size_t v) {
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

// The sequencer's CPU work for one batch, as ledger.cc does it: leaf hashes, the new interior
// hashes (AppendLeaves), and the bytes appended to the entry bundles and hash tiles.
store::LedgerBatch BuildBatch(ledger::Frontier& frontier, const std::vector<std::string>& entries) {
  std::vector<std::string> leaves;
  leaves.reserve(entries.size());
  for (const auto& e : entries) leaves.push_back(ledger::LeafHash(e));
  auto appended = *ledger::AppendLeaves(frontier, leaves);
  const uint64_t first = frontier.size;
  std::map<std::pair<int, uint64_t>, store::LedgerTile> tiles;
  auto tile = [&](int level, uint64_t position) -> store::LedgerTile& {
    auto [it, inserted] = tiles.try_emplace({level, position / ledger::kTileWidth});
    if (inserted) {
      it->second.level = level;
      it->second.index = position / ledger::kTileWidth;
      it->second.start = static_cast<uint32_t>(position % ledger::kTileWidth);
    }
    it->second.fills = position % ledger::kTileWidth == ledger::kTileWidth - 1;
    return it->second;
  };
  for (size_t i = 0; i < entries.size(); ++i) {
    auto& t = tile(-1, first + i);
    PutU16(t.data, entries[i].size());
    t.data += entries[i];
  }
  for (const auto& n : appended.new_nodes) {
    if (n.id.level % ledger::kTileHeight != 0) continue;
    tile(n.id.level / ledger::kTileHeight, n.id.index).data += n.hash;
  }
  store::LedgerBatch b;
  b.old_size = first;
  b.new_size = appended.frontier.size;
  for (const auto& h : appended.frontier.hashes) b.frontier += h;
  for (auto& [k, t] : tiles) b.tiles.push_back(std::move(t));
  frontier = std::move(appended.frontier);
  return b;
}

std::unique_ptr<store::ControlStore> FreshStore(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((path + suffix).c_str());
  auto s = store::OpenSqliteControlStore(path, true);
  if (!s.ok()) {
    std::cerr << "cannot open " << path << ": " << s.status() << "\n";
    std::exit(2);
  }
  return std::move(*s);
}

crypto::Ed25519PrivateKey Key() {
  return *crypto::Ed25519PrivateKey::FromSeed(std::string(32, 'k'));
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

int LedgerCpu(const Flags& f) {
  // One thread, batches of f.batch entries, no store: what the sequencer computes per entry.
  ledger::Frontier frontier;
  std::vector<std::string> entries;
  uint64_t next = 0;
  TimedResult r = RunTimed(1, f.warmup, f.seconds, [&](int, uint64_t) {
    entries.clear();
    for (int i = 0; i < f.batch; ++i) entries.push_back(Entry(next++, f.entry_bytes));
    store::LedgerBatch b = BuildBatch(frontier, entries);
    return !b.tiles.empty();
  });
  std::cout << absl::StrFormat("ops_per_sec=%.1f batch=%d entry_bytes=%d\n",
                               r.ops_per_sec() * f.batch, f.batch, f.entry_bytes);
  return 0;
}

int LedgerAppend(const Flags& f) {
  // `batch` threads appending at once to a ledger whose batches hold up to `batch` entries:
  // each append returns once its batch is durable (SQLite WAL, synchronous=FULL).
  auto store = FreshStore(f.file);
  SystemClock clock;
  ledger::LedgerOptions options;
  options.max_batch = f.batch;
  auto l = ledger::Ledger::Open(*store, Key(), "bench.example/ledger", clock, options);
  if (!l.ok()) {
    std::cerr << l.status() << "\n";
    return 2;
  }
  std::atomic<uint64_t> next{0};
  TimedResult r = RunTimed(f.batch, f.warmup, f.seconds, [&](int, uint64_t) {
    return (*l)->Append({Entry(next++, f.entry_bytes), "", ""}).ok();
  });
  std::cout << absl::StrFormat("ops_per_sec=%.1f batch=%d entry_bytes=%d errors=%d\n",
                               r.ops_per_sec(), f.batch, f.entry_bytes, r.errors);
  l->reset();
  return r.errors == 0 ? 0 : 1;
}

int LedgerLatency(const Flags& f) {
  // f.threads appenders; a watcher polls the latest checkpoint and, when one covers an entry,
  // records the time from the start of that entry's append. Default checkpoint interval (1 s).
  auto store = FreshStore(f.file);
  SystemClock clock;
  auto l = ledger::Ledger::Open(*store, Key(), "bench.example/ledger", clock, {});
  if (!l.ok()) {
    std::cerr << l.status() << "\n";
    return 2;
  }
  std::mutex mu;
  std::map<uint64_t, Steady::time_point> started;  // index -> when its append began
  std::vector<double> latencies;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> next{0};
  std::thread watcher([&] {
    while (!stop.load()) {
      auto cp = (*l)->LatestCheckpoint();
      const auto now = Steady::now();
      if (cp.ok()) {
        std::lock_guard lock(mu);
        for (auto it = started.begin(); it != started.end() && it->first < cp->size;) {
          latencies.push_back(std::chrono::duration<double>(now - it->second).count());
          it = started.erase(it);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  TimedResult r = RunTimed(f.threads, f.warmup, f.seconds, [&](int, uint64_t) {
    const auto t0 = Steady::now();
    auto index = (*l)->Append({Entry(next++, f.entry_bytes), "", ""});
    if (!index.ok()) return false;
    std::lock_guard lock(mu);
    started.emplace(*index, t0);
    return true;
  });
  // Let the last entries be covered, then stop watching.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  watcher.join();
  std::lock_guard lock(mu);
  std::cout << absl::StrFormat(
      "ops_per_sec=%.1f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f covered=%d uncovered=%d\n",
      r.ops_per_sec(), Percentile(latencies, 0.5) * 1e3, Percentile(latencies, 0.99) * 1e3,
      Percentile(latencies, 1.0) * 1e3, latencies.size(), started.size());
  l->reset();
  return 0;
}

int LedgerProof(const Flags& f) {
  // A log of f.objects entries written straight through the store in large batches (built as
  // the sequencer builds them), then inclusion proofs for random indexes against its checkpoint
  // from f.threads threads.
  auto store = FreshStore(f.file);
  {
    ledger::Frontier frontier;
    std::vector<std::string> entries;
    for (uint64_t i = 0; i < f.objects;) {
      entries.clear();
      for (int k = 0; k < 65536 && i < f.objects; ++k, ++i)
        entries.push_back(Entry(i, f.entry_bytes));
      if (auto s = store->CommitLedgerBatch(BuildBatch(frontier, entries)); !s.ok()) {
        std::cerr << s << "\n";
        return 2;
      }
    }
  }
  SystemClock clock;
  auto l = ledger::Ledger::Open(*store, Key(), "bench.example/ledger", clock, {});
  if (!l.ok()) {
    std::cerr << l.status() << "\n";
    return 2;
  }
  auto cp = (*l)->SignCheckpointNow();
  if (!cp.ok() || cp->size != f.objects) {
    std::cerr << "no checkpoint of the whole log\n";
    return 2;
  }
  std::mutex mu;
  std::vector<double> latencies;
  TimedResult r = RunTimed(f.threads, f.warmup, f.seconds, [&](int t, uint64_t n) {
    std::mt19937_64 rng(t * 1000003 + n);
    const uint64_t index = rng() % f.objects;
    const auto t0 = Steady::now();
    auto proof = (*l)->InclusionProof(index, f.objects);
    const double s = std::chrono::duration<double>(Steady::now() - t0).count();
    if (!proof.ok()) return false;
    std::lock_guard lock(mu);
    latencies.push_back(s);
    return true;
  });
  std::cout << absl::StrFormat("ops_per_sec=%.1f p50_ms=%.3f p99_ms=%.3f entries=%d errors=%d\n",
                               r.ops_per_sec(), Percentile(latencies, 0.5) * 1e3,
                               Percentile(latencies, 0.99) * 1e3, f.objects, r.errors);
  l->reset();
  return r.errors == 0 ? 0 : 1;
}

}  // namespace custos::bench

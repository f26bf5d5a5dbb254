// Shared pieces of custos_bench: a timed multi-threaded loop and the shape of the benchmark rows.
//
// Every subcommand of custos_bench measures one thing and prints one line of `name=value`
// pairs on stdout, starting with `ops_per_sec=`; bench/run parses it. Diagnostics go to stderr.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace custos::bench {

// 1 KiB objects; sealed as AES-256-GCM nonce(12) || ciphertext || tag(16).
inline constexpr size_t kObjectBytes = 1024;
inline constexpr size_t kSealedBytes = 12 + kObjectBytes + 16;
inline constexpr const char* kContentType = "application/octet-stream";

// The key of the i-th preloaded object (GET benchmarks) and of a thread's n-th new object (PUT).
std::string GetKey(uint64_t i);
std::string PutKey(int thread, uint64_t n);

struct TimedResult {
  uint64_t ops = 0;     // successful operations inside the measured window
  uint64_t errors = 0;  // failed operations over the whole run
  double seconds = 0;   // length of the measured window
  double ops_per_sec() const { return seconds > 0 ? ops / seconds : 0; }
};

// Runs `op(thread, n)` (n = that thread's call count) in a loop on `threads` threads. Ops that
// finish during [warmup, warmup + seconds) are counted; `on_window(true|false)` is called at the
// start and the end of that window (e.g. to snapshot other counters). `op` returns false on an
// error (counted; the loop goes on). Each thread gets its state from `op` itself.
TimedResult RunTimed(int threads, double warmup_seconds, double seconds,
                     const std::function<bool(int, uint64_t)>& op,
                     const std::function<void(bool)>& on_window = nullptr);

// Subcommands (each returns a process exit status).
struct Flags {
  std::string dir;   // custos data directory (custos benchmarks)
  std::string file;  // SQLite file (raw baselines)
  int threads = 16;
  double seconds = 3;
  double warmup = 0.5;
  int batch = 1;                       // rows per transaction (sqlite-insert)
  int files = 1;                       // files written in parallel, one thread each (sqlite-insert)
  uint64_t objects = 10000;            // preloaded objects (prepare, sqlite-insert, sqlite-select)
  bool ledger = false;                 // inproc-*: record each access in the ledger first
  int entry_bytes = 200;               // ledger-*: bytes per ledger entry
  int row_bytes = 0;                   // sqlite-insert: bytes per row (0: a sealed 1 KiB object)
  std::string listen = "127.0.0.1:0";  // serve: HOST:PORT
  bool noop_ledger = false;            // serve: the ledger append is a no-op
  int io_threads = 2;                  // serve
  int workers = 16;                    // serve
  int batch_delay_us = 0;              // serve: LedgerOptions::max_batch_delay
};

int Prepare(const Flags& f);
int InprocPut(const Flags& f);
int InprocGet(const Flags& f);
int SqliteInsert(const Flags& f);
int SqliteSelect(const Flags& f);
int LedgerCpu(const Flags& f);
int LedgerAppend(const Flags& f);
int LedgerLatency(const Flags& f);
int LedgerProof(const Flags& f);
int Serve(const Flags& f);

}  // namespace custos::bench

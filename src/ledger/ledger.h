// The access ledger: a C2SP tlog-tiles transparency log of public-safe entries, with the sealed
// private event record behind each entry kept for its tenant.
//
// Ledger is the log itself: a single sequencer thread group-commits appends (one durable
// transaction per batch: entry bundles, hash tiles, frontier, sealed records), wakes each caller
// once the batch holding its entry is durable, and signs a checkpoint (a C2SP signed note) at
// most every `checkpoint_interval`, only ever for a size already committed. Several Ledger
// instances (several `custos serve` processes) may share one control store: each batch is
// built on the stored state under the store's ledger lock (store.h SequenceLedgerBatch), so they
// append to one log, and checkpoints stay append-only whichever instance signs (ledger.cc says
// why this design). Reads (tiles, entries, proofs, checkpoints) come from the store, up to the
// size committed by any instance.
//
// EventLog builds events: the private record (canonical JSON with a random salt), its digest,
// the entry {"digest","kind","tenant":<pseudonym>,"ts","v":1}, seals the record under the
// tenant's KEK, and appends.
//
// All methods are thread-safe. Errors: kUnavailable (the store refused, or the append missed its
// deadline — the caller must not perform the act it was recording: fail closed), kInvalidArgument
// (bad sizes or indexes from outside), kNotFound (no such tile), kDataLoss (stored data fails
// verification).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/random.h"
#include "boost/json.hpp"
#include "crypto/crypto.h"
#include "crypto/key_provider.h"
#include "ledger/tiles.h"
#include "store/store.h"

namespace custos::ledger {

struct LedgerOptions {
  size_t max_batch = 256;                                 // N: entries per group commit
  absl::Duration max_batch_delay = absl::ZeroDuration();  // T: wait for more after the first
  absl::Duration checkpoint_interval = absl::Seconds(1);
  // An append not committed by then is answered kUnavailable and never committed later.
  absl::Duration append_deadline = absl::Seconds(10);
  // Threads that run AppendAsync callbacks; 0: as many as the machine has (at least 2).
  int answer_threads = 0;
};

// One append: the public entry, and the tenant's sealed private record (empty tenant_id: none).
struct PendingAppend {
  std::string entry;
  std::string tenant_id;
  std::string sealed_record;
};

// Called exactly once with the entry's index once it is durable, or with an error
// (kUnavailable: not recorded, do not act). The ledger runs it on one of its answer threads
// (the callbacks of one batch are handed over together, so no thread is woken per append), or
// on the caller's thread when it refuses the append at once. A callback may block briefly — read
// a local store, append again with Append — but holds an answer thread meanwhile.
using AppendCallback = absl::AnyInvocable<void(absl::StatusOr<uint64_t>) &&>;

// An append that was answered kUnavailable because its batch's commit failed in a way that may
// still have written it (store::MayHaveApplied), and that the ledger later found in the log.
struct RecordedAfterRefusal {
  uint64_t index = 0;
  std::string tenant_id;
  int attempts = 0;  // to record its outcome (EventLog gives up after a few)
};

// Where EventLog puts its entries: the Ledger. The seam exists so that the benchmark binary
// can measure the request path with the append replaced by a no-op (issue 4's ledger cost
// budget); no server option ever replaces it.
class EntryAppender {
 public:
  virtual ~EntryAppender() = default;
  // Returns the entry's index once it is durable (kUnavailable: not recorded, do not act).
  virtual absl::StatusOr<uint64_t> Append(PendingAppend append) = 0;
  // The same without a thread waiting for the batch: `done` gets the outcome.
  virtual void AppendAsync(PendingAppend append, AppendCallback done) = 0;
  // The refused appends found in the log since the last call (cheap when there are none).
  virtual std::vector<RecordedAfterRefusal> TakeRecordedAfterRefusal() { return {}; }
  // Gives one back whose outcome could not be recorded, to be taken again.
  virtual void PutBackRecordedAfterRefusal(const RecordedAfterRefusal& /*entry*/) {}
  // Whether TakeRecordedAfterRefusal would return any (a flag: cheap).
  virtual bool HasRecordedAfterRefusal() const { return false; }
};

class Ledger final : public EntryAppender {
 public:
  // Resumes the log stored in `store` (signing with `key` under `origin`) and starts the
  // sequencer. `store` and `clock` outlive the ledger.
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(store::ControlStore& store,
                                                      crypto::Ed25519PrivateKey key,
                                                      std::string origin, const Clock& clock,
                                                      LedgerOptions options = {});
  ~Ledger() override;  // drains pending appends, signs a final checkpoint, stops the sequencer

  // Appends one entry and returns its index once the batch holding it is durable.
  absl::StatusOr<uint64_t> Append(PendingAppend append) override;
  // The same, answering through `done` (within the append deadline plus one commit attempt).
  void AppendAsync(PendingAppend append, AppendCallback done) override;
  // A batch whose commit may have happened although it failed (a PostgreSQL connection lost
  // around COMMIT) is answered kUnavailable — fail closed — and remembered; once a later state
  // of the log settles whether it was written (this instance's next batch, or the log growing
  // past it), the entries found are returned here. Unsettled ones are logged at shutdown.
  std::vector<RecordedAfterRefusal> TakeRecordedAfterRefusal() override;
  void PutBackRecordedAfterRefusal(const RecordedAfterRefusal& entry) override;
  bool HasRecordedAfterRefusal() const override;

  // Signs a checkpoint for the committed size now (if it has none yet) and returns the latest.
  absl::StatusOr<store::LedgerCheckpoint> SignCheckpointNow();
  // The latest signed checkpoint.
  absl::StatusOr<store::LedgerCheckpoint> LatestCheckpoint();

  // The bytes of `tile` (an entry bundle or hash tile, full or partial width), from committed
  // data. kNotFound if the log has not reached it. Committed data may run a batch ahead of the
  // latest checkpoint (as a Tessera log's tiles do): clients fetch only tiles that a checkpoint
  // they verified names (tlog-tiles), and committed bytes never change, so serving them early
  // is harmless. Proofs, which name a tree size, stop at the signed size instead.
  absl::StatusOr<std::string> ReadTile(const Tile& tile);

  // Proofs against the tree of `size` leaves; size must be <= the latest checkpoint's size.
  absl::StatusOr<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t size);
  absl::StatusOr<std::vector<std::string>> ConsistencyProof(uint64_t old_size, uint64_t new_size);
  // Root hash of the tree of `size` leaves; kInvalidArgument beyond the latest checkpoint.
  absl::StatusOr<std::string> RootAt(uint64_t size);
  // The entry at `index` (committed).
  absl::StatusOr<std::string> ReadEntry(uint64_t index);

  const std::string& origin() const;
  // The verifier key in note format: <origin>+<hex key id>+<base64(0x01||public key)>.
  const std::string& verifier_key() const;

 private:
  struct Impl;
  explicit Ledger(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Canonical JSON (RFC 8785) of `value`: object keys sorted, no insignificant whitespace, minimal
// string escapes. Only integers, strings, booleans, null, arrays and objects with ASCII keys —
// Custos never puts floating-point numbers in a signed or hashed document.
// kInvalidArgument for a double or a non-ASCII key.
absl::StatusOr<std::string> CanonicalJson(const boost::json::value& value);

// An event about a tenant's data or settings.
struct Event {
  std::string kind;  // e.g. "data.read" (DESIGN.md Contract details: Ledger entry)
  std::string tenant_id;
  boost::json::object fields;  // actor, role, purpose, grant, resource, outcome, …
};

struct LoggedEvent {
  uint64_t ledger_index = 0;
  std::string record;  // canonical JSON; its SHA-256 is the entry's digest
};

struct AccessLogFilter {
  std::optional<int64_t> from_ms, to_ms;  // inclusive range on the record's ts
  std::optional<std::string> role, kind;
  uint64_t start_index = 0;  // resume after a cursor
  int limit = 100;
  // Records opened (each unsealed and parsed) per read at most. The filters apply to a
  // record's contents, so without a bound a filter that matches little would read a tenant's
  // whole history per request -- and anyone with a token can grow that history with refused
  // accesses. When it is reached the page ends early, with next_index set.
  int max_scanned = 10'000;
};

struct AccessLogPage {
  // At most `limit` events; fewer (even none) with next_index set when max_scanned was reached.
  std::vector<LoggedEvent> events;
  std::optional<uint64_t> next_index;  // index to resume at, if more may follow
};

// Records are sealed under a per-tenant record key with XAES-256-GCM (192-bit random nonces),
// not under the tenant's KEK with AES-256-GCM: a record is sealed per access — and anyone with a
// token can make refused accesses on a tenant — so a KEK sealing them directly would pass
// AES-GCM's 2^32 random-nonce bound; XAES-256-GCM allows 2^80 under one key. The record key is
// stored wrapped under the KEK, so destroying the KEK still shreds the records.
class EventLog {
 public:
  // `pseudonym_key` is the server's 32-byte HMAC key for tenant pseudonyms.
  EventLog(EntryAppender& ledger, store::ControlStore& store, crypto::KeyProvider& keys,
           std::string pseudonym_key, Random& random, const Clock& clock);
  ~EventLog();  // wipes the record keys it holds

  // Records `event` durably in the ledger before the caller acts on it. Record and RecordAsync
  // first record an `outcome` event ("unavailable", actor "system", "of" its index) for each
  // entry the ledger found in the log after refusing it (Ledger::TakeRecordedAfterRefusal), so
  // that the log never claims, alone, an access that was refused.
  absl::StatusOr<LoggedEvent> Record(const Event& event);
  // The same without a thread waiting: builds and seals the record on the calling thread, then
  // calls `done` once the entry is durable (or not recorded), where AppendCallback says. On a
  // thread that must not block (base/blocking.h), a tenant whose record key is not cached yet
  // gets WouldBlockError() in `done`, at once, and nothing is recorded; so does any event while
  // outcomes of refused entries wait to be recorded (their tenants' keys may not be cached: a
  // would-block there would spend their attempts), so that a thread that may block records them.
  using RecordCallback = absl::AnyInvocable<void(absl::StatusOr<LoggedEvent>) &&>;
  void RecordAsync(const Event& event, RecordCallback done);

  // The tenant's pseudonym in public entries: lowercase hex HMAC-SHA256(pseudonym key, id).
  std::string Pseudonym(std::string_view tenant_id) const;

  // The tenant's own records, unsealed, in ledger order.
  absl::StatusOr<AccessLogPage> ReadTenantLog(std::string_view tenant_id,
                                              const AccessLogFilter& filter);

  // The public entry for a record: {"digest","kind","tenant","ts","v":1} in canonical JSON.
  static std::string EntryFor(std::string_view record_canonical_json, std::string_view kind,
                              std::string_view pseudonym, int64_t ts_ms);

 private:
  // The entry and sealed record of `event`, and the record's canonical JSON.
  absl::StatusOr<std::pair<PendingAppend, std::string>> Prepare(const Event& event);
  void RecordOutcomesOfRefusedEntries();
  // What sealing a tenant's records takes: its record key and its pseudonym.
  struct TenantSecrets {
    std::string record_key;
    std::string pseudonym;
  };
  // The tenant's record key, created (stored wrapped under its KEK) by the first instance that
  // needs it, and its pseudonym; cached once unwrapped, and never dropped while this EventLog
  // lives (the pointer stays valid).
  absl::StatusOr<const TenantSecrets*> SecretsOf(std::string_view tenant_id);
  // A stored record, opened: XAES-256-GCM under the record key, or (written before record keys
  // existed) AES-256-GCM under the KEK itself.
  absl::StatusOr<std::string> OpenRecord(std::string_view tenant_id, std::string_view sealed);

  EntryAppender& ledger_;
  store::ControlStore& store_;
  crypto::KeyProvider& keys_;
  std::string pseudonym_key_;
  Random& random_;
  const Clock& clock_;
  std::shared_mutex record_keys_mu_;
  // Guarded by record_keys_mu_; nodes are never erased, so a TenantSecrets never moves.
  std::map<std::string, TenantSecrets, std::less<>> record_keys_;
};

}  // namespace custos::ledger

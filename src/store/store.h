// Storage seam of Custos: one control store (principals, tenants, workflow state, ledger) and one
// cell store per region (a region's encrypted objects and wrapped data keys). Components depend
// only on these interfaces; backends (SQLite: sqlite_*.cc, PostgreSQL: postgres_*.cc) implement
// them.
//
// Every method is thread-safe and blocking (call it from a worker thread, never from an I/O
// thread). Errors: kNotFound (no such row), kAlreadyExists (duplicate id), kUnavailable (the
// backend refused: locked, read-only, down — retry later), kDataLoss (corrupt stored data),
// kInternal (a bug).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace custos::store {

struct PrincipalRecord {
  std::string id;
  std::string name;         // provider principals only (provider staff)
  std::string sealed_name;  // tenant principals: the name wrapped under the tenant's KEK
  std::string role;
  std::string tenant_id;        // empty for provider principals
  std::string token_sha256;     // lowercase hex of SHA-256 of the bearer token
  std::string attributes_json;  // {"employer":…,"citizenship":[…],"screened":…}
  int64_t created_at = 0;       // unix seconds
  std::optional<int64_t> expires_at;
  bool disabled = false;
};

struct TenantRecord {
  std::string id;
  std::string sealed_name;   // the tenant's name, wrapped under its KEK (raw bytes)
  std::string profile_json;  // policy fields: customer_type, services, technologies, lockbox, …
  std::string geography;
  std::string home_region;
  std::string replica_region;  // empty when single-region
  std::string state;           // "active"
  int64_t created_at = 0;      // unix seconds
};

// The ledger as stored: tiles (level -1 holds entry bundles, levels >= 0 hash tiles, per C2SP
// tlog-tiles), the committed tree size with its right-edge frontier, signed checkpoints, and the
// sealed private event records grouped per tenant per batch.
//
// Stored by batch (DESIGN.md "Ledger cost budget"): a batch adds one row per tile it extends,
// holding only what it appends (`start` is the position in the tile of its first entry or hash),
// and the batch that fills a tile replaces the tile's rows with one row of the whole tile. A
// partial tile reads as its rows concatenated in order. So an append writes bytes in proportion
// to what it adds, never rewriting a growing tile, and a sequencer needs nothing of the stored
// tiles in memory, only the frontier.
struct LedgerTile {
  int level = 0;  // -1 = entry bundle
  uint64_t index = 0;
  std::string data;    // bytes this batch appends to the tile
  uint32_t start = 0;  // position (0..255) of the first entry or hash of `data` in the tile
  bool fills = false;  // `data` ends the tile at 256 entries or hashes
};

struct LedgerRecordGroup {
  std::string tenant_id;
  uint64_t first_index = 0;  // ledger index of the group's first record
  uint64_t last_index = 0;
  std::string data;  // the group's sealed records (format owned by ledger/)
};

struct LedgerBatch {
  uint64_t old_size = 0;  // the size this batch extends (guards against a second sequencer)
  uint64_t new_size = 0;
  std::string frontier;           // serialized right-edge hashes at new_size
  std::vector<LedgerTile> tiles;  // what the batch appends to each tile it extends
  std::vector<LedgerRecordGroup> records;
};

struct LedgerState {
  uint64_t size = 0;
  std::string frontier;
};

struct LedgerCheckpoint {
  uint64_t size = 0;
  std::string note;  // the signed note
  int64_t created_at_ms = 0;
};

// A lease on a background job (see jobs/): who may run it until when, and when it last ran.
struct JobLease {
  std::string holder;         // the instance holding (or last holding) it
  int64_t expires_at_ms = 0;  // unix milliseconds, by the holders' clocks
  int64_t last_run_ms = 0;    // when a run last completed (0: never)
};

// A just-in-time access request with its whole history (DESIGN.md "Access requests"). The
// indexed columns are copies of fields of `body_json`, whose format access/ owns.
struct AccessRequestRecord {
  std::string id;
  std::string tenant_id;
  std::string requester;
  std::string state;
  std::string grant_id;               // empty until activated
  std::optional<int64_t> expires_at;  // unix seconds; set while the request can still expire
  int64_t created_at = 0;
  std::string body_json;
  int64_t version = 1;  // bumped by every update (optimistic concurrency)
};

struct AccessRequestFilter {
  std::optional<std::string> tenant_id, state, requester;
};

// A principal's TOTP enrolment: the secret sealed by access/, and the last time step accepted
// (replay protection: a step at or below it is refused).
struct MfaRecord {
  std::string principal_id;
  std::string sealed_secret;
  int64_t last_step = -1;
  int64_t enrolled_at = 0;
  // Wrong codes counted since failure_window_start (unix seconds); shared by all instances.
  int64_t failure_window_start = 0;
  int64_t failure_count = 0;
};

// An auditor's verdict on a sampled grant.
struct AuditVerdictRecord {
  std::string grant_id;
  std::string period;
  std::string auditor;
  std::string verdict;
  std::string note;
  int64_t at = 0;
};

// True for the errors after which a write (ControlStore::SequenceLedgerBatch, CellStore::Apply)
// may have been applied although it failed: the connection was lost while committing
// (kUnavailable, kDeadlineExceeded), or the store answered what it cannot have (kDataLoss).
inline bool MayHaveApplied(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsDataLoss(s);
}

class ControlStore {
 public:
  virtual ~ControlStore() = default;

  // Ledger.
  //
  // SequenceLedgerBatch is one turn of the sequencer: in one durable transaction it locks the
  // ledger state (PostgreSQL: SELECT … FOR UPDATE on the state row; SQLite: BEGIN IMMEDIATE),
  // calls `build` with the state as committed, and writes the batch `build` returns (whose
  // old_size must be that state's size). Every process sharing the store serialises its batches
  // here, so the log never forks, whichever instance holds the lock; a holder that dies has its
  // transaction rolled back by the database, which frees the lock. `build` may be called again if
  // the transaction is retried; if it fails, nothing is written and its status is returned. An
  // error means nothing was written, except those MayHaveApplied names after `build` ran: then
  // the outcome is unknown until a later state shows it.
  using LedgerBatchBuilder = absl::FunctionRef<absl::StatusOr<LedgerBatch>(const LedgerState&)>;
  virtual absl::Status SequenceLedgerBatch(LedgerBatchBuilder build) = 0;
  // Writes `batch` if the stored size is batch.old_size; kAborted if not (another sequencer
  // appended).
  absl::Status CommitLedgerBatch(const LedgerBatch& batch);
  virtual absl::StatusOr<LedgerState> LoadLedgerState() = 0;
  // kNotFound if the tile was never written.
  virtual absl::StatusOr<std::string> ReadLedgerTile(int level, uint64_t index) = 0;
  // Records a signed checkpoint, keeping the stored checkpoints append-only: with the ledger
  // state locked, kFailedPrecondition if checkpoint.size is beyond the committed size (it would
  // commit to entries not stored), kAborted if a larger checkpoint is stored already, and
  // kAlreadyExists if one of that size exists.
  virtual absl::Status PutCheckpoint(const LedgerCheckpoint& checkpoint) = 0;
  // The largest checkpoint; kNotFound if none.
  virtual absl::StatusOr<LedgerCheckpoint> LatestCheckpoint() = 0;
  // The tenant's record groups with last_index >= from_index, in ledger order, at most `limit`.
  virtual absl::StatusOr<std::vector<LedgerRecordGroup>> ReadRecordGroups(
      std::string_view tenant_id, uint64_t from_index, int limit) = 0;

  virtual absl::Status InsertPrincipal(const PrincipalRecord& p) = 0;
  virtual absl::StatusOr<PrincipalRecord> GetPrincipal(std::string_view id) = 0;
  virtual absl::StatusOr<PrincipalRecord> FindPrincipalByTokenHash(std::string_view sha256_hex) = 0;
  // Replaces the principal's token hash and disabled flag (token rotation, disabling).
  // kNotFound if there is no such principal.
  virtual absl::Status SetPrincipalCredential(std::string_view id, std::string_view token_sha256,
                                              bool disabled) = 0;

  // Stores the tenant together with its first tenant_admin, in one transaction: a tenant is never
  // stored without the one principal that can create its others (the provider's admin cannot).
  // kAlreadyExists if either id (or the admin's token hash) is taken; then neither is stored.
  virtual absl::Status InsertTenant(const TenantRecord& t, const PrincipalRecord& first_admin) = 0;
  virtual absl::StatusOr<TenantRecord> GetTenant(std::string_view id) = 0;
  virtual absl::StatusOr<std::vector<TenantRecord>> ListTenants() = 0;

  // Access requests (never deleted). Insert: kAlreadyExists for a duplicate id. Update replaces
  // the row iff its stored version is `r.version - 1`, else kAborted (a concurrent change).
  // FindAccessRequestByGrant: kNotFound if no request has that grant id.
  virtual absl::Status InsertAccessRequest(const AccessRequestRecord& r) = 0;
  virtual absl::Status UpdateAccessRequest(const AccessRequestRecord& r) = 0;
  virtual absl::StatusOr<AccessRequestRecord> GetAccessRequest(std::string_view id) = 0;
  virtual absl::StatusOr<AccessRequestRecord> FindAccessRequestByGrant(
      std::string_view grant_id) = 0;
  // Matching requests in (created_at, id) order.
  virtual absl::StatusOr<std::vector<AccessRequestRecord>> ListAccessRequests(
      const AccessRequestFilter& filter) = 0;
  // Requests whose expires_at is at or before `now` (unix seconds), in expiry order.
  virtual absl::StatusOr<std::vector<AccessRequestRecord>> ListDueAccessRequests(int64_t now) = 0;

  // TOTP enrolment. PutMfa replaces the secret and keeps the larger last_step. GetMfa: kNotFound
  // if not enrolled. ConsumeTotpStep records `step` as used iff it is above last_step, else
  // kAlreadyExists (a replay) — atomic, so two instances never both accept one code.
  virtual absl::Status PutMfa(const MfaRecord& r) = 0;
  virtual absl::StatusOr<MfaRecord> GetMfa(std::string_view principal_id) = 0;
  virtual absl::Status ConsumeTotpStep(std::string_view principal_id, int64_t step) = 0;
  // Takes one of the `max` code checks a principal is allowed per window, before its code is
  // checked: in the current window if it started less than `window_s` seconds before `now`, else
  // in a new window starting at `now`. kResourceExhausted if `max` are taken in the current
  // window, kNotFound if not enrolled. Atomic (a conditional update), so concurrent checks on
  // any number of instances never exceed `max` per window. A check whose code was right gives
  // its attempt back with ReturnTotpAttempt: only wrong codes count.
  virtual absl::Status TakeTotpAttempt(std::string_view principal_id, int64_t now, int64_t window_s,
                                       int64_t max) = 0;
  virtual absl::Status ReturnTotpAttempt(std::string_view principal_id) = 0;

  // A tenant's consents to commercial purposes (advertising, marketing, profiling).
  virtual absl::Status SetConsent(std::string_view tenant_id, std::string_view purpose,
                                  bool granted, int64_t at) = 0;
  virtual absl::StatusOr<bool> HasConsent(std::string_view tenant_id, std::string_view purpose) = 0;

  // Audit verdicts: kAlreadyExists if this auditor judged this grant for this period already.
  virtual absl::Status InsertAuditVerdict(const AuditVerdictRecord& v) = 0;
  virtual absl::StatusOr<std::vector<AuditVerdictRecord>> ListAuditVerdicts(
      std::string_view period) = 0;

  // Small server settings (log origin, …). GetSetting: kNotFound if unset.
  virtual absl::StatusOr<std::string> GetSetting(std::string_view name) = 0;
  virtual absl::Status PutSetting(std::string_view name, std::string_view value) = 0;
  // Sets `name` to `value` iff its current value is `expected` (nullopt: iff it is unset), in
  // one transaction, so of several writers (several processes included) racing from the same
  // value exactly one wins. kAborted if the current value is not `expected` (reload, redo the
  // change on what is stored now, retry).
  virtual absl::Status CompareAndSwapSetting(std::string_view name,
                                             std::optional<std::string_view> expected,
                                             std::string_view value) = 0;

  // Background-job leases, shared by every instance on the store. AcquireJobLease takes lease
  // `name` for `holder` until `expires_at_ms` iff it is unheld, expired at `now_ms`, already
  // `holder`'s (a renewal), or set to expire over an hour after `expires_at_ms` -- which only a
  // clock that ran ahead set (a fake one, or one far off: instances' clocks must agree within
  // the lease term), and waiting would stop the job for as long -- in one atomic conditional
  // write, and returns the lease as stored afterwards: it is `holder`'s iff the returned holder
  // is `holder`.
  virtual absl::StatusOr<JobLease> AcquireJobLease(std::string_view name, std::string_view holder,
                                                   int64_t now_ms, int64_t expires_at_ms) = 0;
  // Records a completed run at `ran_at_ms`; kAborted if `holder` no longer holds the lease.
  virtual absl::Status RecordJobRun(std::string_view name, std::string_view holder,
                                    int64_t ran_at_ms) = 0;
  // Ends `holder`'s lease now (another instance may take it at once); OK if not held.
  virtual absl::Status ReleaseJobLease(std::string_view name, std::string_view holder) = 0;
};

// An object as stored in a cell: metadata in clear, content sealed under a data key.
struct StoredObject {
  std::string tenant_id;
  std::string key;          // the object key (1–1024 bytes of UTF-8)
  int64_t version = 0;      // 1 on first write, +1 on each replacement
  int64_t dek_version = 0;  // which of the tenant's data keys sealed it
  int64_t size = 0;         // plaintext bytes
  std::string sha256_hex;   // of the plaintext (the ETag)
  std::string content_type;
  int64_t updated_at_ms = 0;  // unix milliseconds
  std::string sealed;         // AES-256-GCM nonce||ciphertext||tag; empty in listings
};

// One mutation of a cell. Puts carry the whole object (version is assigned by the cell).
//
// Writes of one object are ordered by `stamp`, not by arrival: a cell applies a write only if
// its stamp is above the stamp of the object's last write there, a put's or a delete's (a delete
// leaves a tombstone row holding its stamp). So every cell ends with the write of the highest
// stamp, whichever order two instances' writes reach the home and the replica cell in. Stamps
// come from data::ObjectService (a hybrid clock, unique per instance).
struct CellWrite {
  enum class Op { kPut, kDelete } op = Op::kPut;
  StoredObject object;  // for kDelete only tenant_id and key are read
  int64_t stamp = 0;    // > 0
};

struct CellWriteResult {
  int64_t version = 0;   // the object's version after a put; 0 after a delete
  bool existed = false;  // the key existed (not deleted) before the write
  // False if the cell holds a later write of the object (a higher stamp, given in
  // `held_stamp`): then nothing changed, and version and existed say nothing.
  bool applied = true;
  int64_t held_stamp = 0;
  // When applied: the stamp of the write it replaced (0: none), which tells a writer that sent
  // a write twice whether the cell held its own first try.
  int64_t replaced_stamp = 0;
};

struct DataKeyRecord {
  std::string tenant_id;
  int64_t version = 0;
  std::string wrapped;  // the DEK wrapped by the tenant KEK (raw bytes)
  int64_t seals = 0;    // how many objects have been sealed with it (rotation trigger)
  int64_t created_at = 0;
};

struct CellUsage {
  int64_t objects = 0;
  int64_t bytes = 0;  // sealed bytes as stored
};

class CellStore {
 public:
  virtual ~CellStore() = default;

  virtual const std::string& region() const = 0;

  // Applies `writes` in order in one durable transaction (all or nothing) and counts each put
  // against its data key's `seals`. Returns one result per write. An error means nothing was
  // applied, except those MayHaveApplied names: then the outcome is unknown.
  virtual absl::StatusOr<std::vector<CellWriteResult>> Apply(std::span<const CellWrite> writes) = 0;

  // kNotFound if absent.
  virtual absl::StatusOr<StoredObject> GetObject(std::string_view tenant_id,
                                                 std::string_view key) = 0;

  // Objects of `tenant_id` whose key starts with `prefix` and sorts after `start_after` (bytewise),
  // in key order, at most `limit`, without their sealed content.
  virtual absl::StatusOr<std::vector<StoredObject>> ListObjects(std::string_view tenant_id,
                                                                std::string_view prefix,
                                                                std::string_view start_after,
                                                                int limit) = 0;

  virtual absl::StatusOr<CellUsage> Usage(std::string_view tenant_id) = 0;

  // Removes the tombstones of objects deleted before `deleted_before_ms` (unix ms), at most
  // `limit` of them; returns how many. A tombstone must outlive every write of its object still
  // on its way with a lower stamp (data::kTombstoneLifetime).
  virtual absl::StatusOr<int64_t> PurgeTombstones(int64_t deleted_before_ms, int limit) = 0;

  // kAlreadyExists if that version exists.
  virtual absl::Status PutDataKey(const DataKeyRecord& key) = 0;
  // All of the tenant's data keys, in version order.
  virtual absl::StatusOr<std::vector<DataKeyRecord>> ListDataKeys(std::string_view tenant_id) = 0;
};

}  // namespace custos::store

namespace custos::store {

// SQLite backend (embedded default): each store is one file, WAL, synchronous=FULL.
// `create` makes the file if missing; otherwise kNotFound-like kUnavailable if it cannot open.
absl::StatusOr<std::unique_ptr<ControlStore>> OpenSqliteControlStore(const std::string& path,
                                                                     bool create);
absl::StatusOr<std::unique_ptr<CellStore>> OpenSqliteCellStore(const std::string& path,
                                                               std::string region, bool create);

// PostgreSQL backend (scale-out): `dsn` is a libpq connection string (URI or key=value) of the
// database holding the store's schema: custos_control for the control store,
// custos_cell_<region> ('-' becomes '_') for a region's cell. Opening applies the schema
// migrations (creating the schema only if `create`). Durable commits need the server's
// fsync=on and synchronous_commit=on (the defaults; sessions set synchronous_commit=on).
// Connections are pooled and replaced when broken, so the stores recover by themselves once the
// server is back. Errors: kUnavailable (server unreachable or refusing: retry later),
// kFailedPrecondition (schema missing and !create, or newer than this binary),
// kInvalidArgument (a region id that makes no schema name).
absl::StatusOr<std::unique_ptr<ControlStore>> OpenPostgresControlStore(const std::string& dsn,
                                                                       bool create);
absl::StatusOr<std::unique_ptr<CellStore>> OpenPostgresCellStore(const std::string& dsn,
                                                                 std::string region, bool create);
// The schema that holds `region`'s cell: custos_cell_<region> with '-' replaced by '_'.
std::string PostgresCellSchema(std::string_view region);

}  // namespace custos::store

// Tenant objects: envelope encryption and residency-pinned, group-committed storage.
//
// Every object is sealed with AES-256-GCM under the tenant's current data key (DEK), with AAD
// binding tenant, object key and DEK version; DEKs are wrapped by the tenant's KEK in the key
// provider and stored in the tenant's home and replica cells. A write is acknowledged only after
// both cells committed it; concurrent writes to a cell are group-committed (one transaction per
// batch). Reads come from the home cell and fall back to the replica when home is unavailable.
//
// Thread-safe. Errors: kInvalidArgument (bad key), kOutOfRange with API code too_large (object
// over the limit), kNotFound (no such object), kUnavailable (a cell or the key provider refused,
// or a write missed its deadline: retry later), kDataLoss (a stored object fails authentication).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/random.h"
#include "crypto/key_provider.h"
#include "ledger/ledger.h"
#include "store/store.h"

namespace custos::data {

inline constexpr size_t kMaxKeyBytes = 1024;

// OK iff `key` is 1–1024 bytes of valid UTF-8 without control characters (NUL included) whose
// '/'-separated segments are none of "", "." and "..". kInvalidArgument naming the problem.
absl::Status ValidateObjectKey(std::string_view key);

inline constexpr size_t kMaxContentTypeBytes = 255;

// OK iff `content_type` (a PUT's Content-Type, stored with the object and sent back with it) is
// at most 255 bytes of printable ASCII, spaces and tabs included; empty means the default. A
// media type needs nothing else, and bytes a store cannot hold as text (PostgreSQL refuses
// invalid UTF-8) must never reach a cell's write batch. kInvalidArgument naming the problem.
absl::Status ValidateContentType(std::string_view content_type);

// Where a tenant's objects live.
struct TenantCells {
  std::string tenant_id;
  std::string home_region;
  std::string replica_region;  // empty when single-region
};

// The largest object limit a server accepts (serve --max-object-bytes): an object is one value
// in a cell, held whole in memory while served. SQLite refuses values over 1e9 bytes; PostgreSQL
// values over 1 GiB, and libpqxx reads bytea as hex text (2 bytes per byte), so a value over
// 512 MiB could be stored and never read back.
inline constexpr size_t kMaxObjectBytesLimit = size_t{256} << 20;

// How long a cell keeps a deleted object's tombstone (store.h, CellWrite), which orders the
// object's older writes still on their way: a week, far longer than a write waits in a queue or
// on a connection, or than any clock skew between instances (ObjectService::PurgeTombstones).
inline constexpr absl::Duration kTombstoneLifetime = absl::Hours(7 * 24);

struct ObjectServiceOptions {
  size_t max_object_bytes = 16 << 20;  // at most kMaxObjectBytesLimit
  // Seals per DEK before rotation. GCM with random 96-bit nonces stays far below its 2^32 limit:
  // N instances seal at most N x this under one key (object_service.cc SealingKey), so the CLI
  // caps it at 2^28 (16 instances at the cap still stay within 2^32).
  int64_t max_seals_per_dek = 1 << 20;
  size_t max_batch = 256;
  absl::Duration write_deadline = absl::Seconds(10);
  // The number this instance's write stamps end in (ClaimWriteInstance), so that two instances
  // writing one object in the same microsecond still make different stamps. Unset: a random
  // number (tests and tools that run alone).
  std::optional<uint32_t> write_instance;
};

// Hands out the next of 1,024 write-instance numbers from the control store (a counter that
// wraps), by compare-and-swap, so instances sharing a control store get different numbers
// unless 1,024 instances started between them. kUnavailable if the store stays contended.
absl::StatusOr<uint32_t> ClaimWriteInstance(store::ControlStore& control);

struct PutResult {
  int64_t size = 0;
  std::string sha256_hex;
  int64_t version = 0;
  bool created = false;  // false: replaced an existing object
};

struct ObjectContent {
  std::string bytes;
  std::string content_type;
  std::string sha256_hex;
  int64_t version = 0;
  int64_t updated_at_ms = 0;
};

struct ObjectInfo {
  std::string key;
  int64_t size = 0;
  std::string sha256_hex;
  int64_t updated_at_ms = 0;
};

struct ListPage {
  std::vector<ObjectInfo> objects;
  std::optional<std::string> next_start_after;  // key to continue after, if more may follow
};

struct RegionUsage {
  std::string region;
  std::string role;  // "home" | "replica"
  int64_t objects = 0;
  int64_t bytes = 0;
};

class ObjectService {
 public:
  // `cells` maps region id to its cell store; all pointers outlive the service.
  // Data-key rotations are recorded in `events` (kind key.rotate) before the new key is used.
  ObjectService(std::map<std::string, store::CellStore*> cells, crypto::KeyProvider& keys,
                ledger::EventLog& events, Random& random, const Clock& clock,
                ObjectServiceOptions options = {});
  ~ObjectService();

  // Creates the tenant's first DEK (wrapped by its existing KEK) in both of its cells.
  absl::Status InitTenant(const TenantCells& tenant);

  absl::StatusOr<PutResult> Put(const TenantCells& tenant, std::string_view key,
                                std::string_view bytes, std::string_view content_type);
  // The same without a thread waiting for the cells' group commit: `done` runs on the thread of
  // the last cell to commit (so it must be quick), or on the caller's when the put is refused
  // before any cell has it. No write deadline: a cell answers once its transaction returns
  // (bounded by the store's lock wait; on PostgreSQL also by its statement timeout and, for a
  // vanished server, the connection's TCP timeouts).
  using PutCallback = absl::AnyInvocable<void(absl::StatusOr<PutResult>) &&>;
  void PutAsync(const TenantCells& tenant, std::string_view key, std::string_view bytes,
                std::string_view content_type, PutCallback done);
  absl::StatusOr<ObjectContent> Get(const TenantCells& tenant, std::string_view key);
  // kNotFound if the object does not exist.
  absl::Status Delete(const TenantCells& tenant, std::string_view key);
  // `limit` in 1..1000.
  absl::StatusOr<ListPage> List(const TenantCells& tenant, std::string_view prefix,
                                std::string_view start_after, int limit);
  // Object count and sealed bytes per region, measured from the cells.
  absl::StatusOr<std::vector<RegionUsage>> Location(const TenantCells& tenant);

  // Removes the tombstones older than kTombstoneLifetime from every cell (the `tombstone-purge`
  // job runs it every 10 minutes). Each cell is purged in slices of 10,000, up to 100,000 per
  // call, so that no transaction holds a cell's writer for long. Returns how many it removed,
  // or the first error (the other cells are still purged).
  absl::StatusOr<int64_t> PurgeTombstones();

  const ObjectServiceOptions& options() const { return options_; }

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;
  // PutAsync, for a caller that stops waiting at `answer_by` (Put).
  void StartPut(const TenantCells& tenant, std::string_view key, std::string_view bytes,
                std::string_view content_type, PutCallback done, SteadyTime answer_by);
  // Validates and seals a put of `bytes` as the write both cells apply.
  absl::StatusOr<store::CellWrite> SealedPut(const TenantCells& tenant, std::string_view key,
                                             std::string_view bytes, std::string_view content_type);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  ObjectServiceOptions options_;
};

}  // namespace custos::data

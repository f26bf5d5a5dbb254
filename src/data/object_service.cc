#include <algorithm>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <shared_mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "base/errors.h"
#include "base/strings.h"
#include "crypto/crypto.h"
#include "data/data.h"
#include "data/internal/cell_writer.h"
#include "data/internal/write_stamps.h"
#include "spdlog/spdlog.h"

namespace custos::data {
namespace {

using store::CellStore;
using store::CellWrite;
using store::CellWriteResult;
using WriteCallback = absl::AnyInvocable<void(absl::StatusOr<CellWriteResult>) &&>;

// Binds tenant, key, data-key version and the plaintext's SHA-256 (the ETag): sealed bytes moved
// to another tenant or key, or rolled back under newer metadata, fail to open.
std::string ObjectAad(std::string_view tenant, std::string_view key, int64_t dek_version,
                      std::string_view sha256_hex) {
  const std::string_view nul("\0", 1);
  return StrCat("custos object v2", nul, tenant, nul, key, nul, dek_version, nul, sha256_hex);
}

std::string DekAad(std::string_view tenant, int64_t version) {
  return StrCat("custos dek v1", std::string_view("\0", 1), tenant, std::string_view("\0", 1),
                version);
}

// A tenant's unwrapped data keys, loaded on first use.
// Reads (GET) take `mu` shared; loading and rotating take it exclusive.
struct TenantKeys {
  std::shared_mutex mu;
  bool loaded = false;  // guarded by mu
  int64_t current = 0;  // guarded by mu; 0 = none yet
  int64_t seals = 0;    // guarded by mu; seals under `current`
  // guarded by mu: `current` is known to be stored in every cell of the tenant (a rotation
  // that failed half-way may have left it in the home cell only)
  bool current_everywhere = false;
  std::map<int64_t, std::string> keys;  // guarded by mu
};

}  // namespace

struct ObjectService::Impl {
  std::map<std::string, CellStore*> cells;
  std::map<std::string, std::unique_ptr<internal::CellWriter>> writers;
  crypto::KeyProvider& key_provider;
  ledger::EventLog& events;
  Random& random;
  const Clock& clock;
  ObjectServiceOptions options;

  // Held while stamping one write and enqueueing it to its cells, so that this instance's
  // writes reach every cell in stamp order (cells apply by stamp: see store.h, CellWrite).
  std::mutex submit_mu;
  internal::WriteStamps stamps ABSL_GUARDED_BY(submit_mu);
  bool stopping ABSL_GUARDED_BY(submit_mu) = false;  // no more writes are sent

  std::shared_mutex tenants_mu;
  // guarded by tenants_mu
  absl::flat_hash_map<std::string, std::unique_ptr<TenantKeys>> tenants;

  Impl(std::map<std::string, CellStore*> c, crypto::KeyProvider& k, ledger::EventLog& e, Random& r,
       const Clock& cl, ObjectServiceOptions o)
      : cells(std::move(c)),
        key_provider(k),
        events(e),
        random(r),
        clock(cl),
        options(o),
        stamps(o.write_instance ? *o.write_instance : InstanceBits(r)) {
    for (auto& [region, cell] : cells) {
      writers[region] = std::make_unique<internal::CellWriter>(*cell, options.max_batch);
    }
  }

  ~Impl() {
    {
      std::lock_guard lock(submit_mu);
      stopping = true;
    }
    // Drains the writers while the rest is alive: their callbacks use it (and answer a write
    // to send again as unavailable, since `stopping`).
    writers.clear();
  }

  static uint32_t InstanceBits(Random& r) {
    const std::string b = r.Bytes(2);
    return static_cast<uint8_t>(b[0]) << 8 | static_cast<uint8_t>(b[1]);
  }

  absl::StatusOr<CellStore*> Cell(const std::string& region) {
    auto it = cells.find(region);
    if (it == cells.end()) return absl::InternalError(StrCat("no cell for ", region));
    return it->second;
  }

  // The tenant's regions, home first, as references into `t` (no copies: every read asks).
  absl::InlinedVector<std::reference_wrapper<const std::string>, 2> Regions(const TenantCells& t) {
    absl::InlinedVector<std::reference_wrapper<const std::string>, 2> r{std::cref(t.home_region)};
    if (!t.replica_region.empty()) r.push_back(std::cref(t.replica_region));
    return r;
  }

  TenantKeys& KeysOf(const std::string& tenant_id) {
    {
      std::shared_lock lock(tenants_mu);
      if (auto it = tenants.find(tenant_id); it != tenants.end()) return *it->second;
    }
    std::lock_guard lock(tenants_mu);
    auto& slot = tenants[tenant_id];
    if (!slot) slot = std::make_unique<TenantKeys>();
    return *slot;
  }

  // Reads the tenant's DEK records from home, or from the replica if home is unavailable.
  absl::StatusOr<std::vector<store::DataKeyRecord>> ListDataKeys(const TenantCells& t) {
    absl::StatusOr<std::vector<store::DataKeyRecord>> result = absl::InternalError("no cells");
    for (const std::string& region : Regions(t)) {
      auto cell = Cell(region);
      if (!cell.ok()) return cell.status();
      result = (*cell)->ListDataKeys(t.tenant_id);
      if (result.ok() || !absl::IsUnavailable(result.status())) return result;
    }
    return result;
  }

  absl::Status LoadKeys(const TenantCells& t, TenantKeys& k) ABSL_EXCLUSIVE_LOCKS_REQUIRED(k.mu) {
    if (k.loaded) return absl::OkStatus();
    auto records = ListDataKeys(t);
    if (!records.ok()) return records.status();
    for (const auto& r : *records) {
      auto dek = key_provider.Unwrap(crypto::TenantKeyId(t.tenant_id), r.wrapped,
                                     DekAad(t.tenant_id, r.version));
      if (!dek.ok()) return dek.status();
      k.keys[r.version] = std::move(*dek);
      if (r.version >= k.current) {
        k.current = r.version;
        k.seals = r.seals;
      }
    }
    k.current_everywhere = false;
    k.loaded = true;
    return absl::OkStatus();
  }

  // The tenant's stored record of DEK `version` in `cell`, if any.
  static absl::StatusOr<std::optional<store::DataKeyRecord>> StoredDataKey(
      CellStore& cell, const std::string& tenant_id, int64_t version) {
    auto records = cell.ListDataKeys(tenant_id);
    if (!records.ok()) return records.status();
    for (store::DataKeyRecord& r : *records) {
      if (r.version == version) return std::optional<store::DataKeyRecord>(std::move(r));
    }
    return std::optional<store::DataKeyRecord>();
  }

  // Makes DEK version k.current + 1 the current one: one key, stored wrapped in every cell of
  // the tenant before anything is sealed with it. The home cell decides which key a version is:
  // the first record stored there wins (another instance's rotation, or an attempt of ours that
  // failed on the replica), and whoever finds one adopts it. The replica then gets the home's
  // record; a replica holding another key under that version is refused (kDataLoss), never
  // sealed with. So the key in memory is always the key both cells hold.
  absl::Status RotateKey(const TenantCells& t, TenantKeys& k) ABSL_EXCLUSIVE_LOCKS_REQUIRED(k.mu) {
    const int64_t version = k.current + 1;
    auto home = Cell(t.home_region);
    if (!home.ok()) return home.status();
    auto record = StoredDataKey(**home, t.tenant_id, version);
    if (!record.ok()) return record.status();
    if (!record->has_value()) {
      if (version > 1) {  // the first data key is part of tenant.create
        boost::json::object fields{{"actor", "system"},
                                   {"role", "system"},
                                   {"key_version", version},
                                   {"reason", "seal limit reached"}};
        auto logged = events.Record({"key.rotate", t.tenant_id, std::move(fields)});
        if (!logged.ok()) return logged.status();
      }
      const std::string dek = random.Bytes(crypto::kAeadKeySize);
      auto wrapped =
          key_provider.Wrap(crypto::TenantKeyId(t.tenant_id), dek, DekAad(t.tenant_id, version));
      if (!wrapped.ok()) return wrapped.status();
      store::DataKeyRecord mine{t.tenant_id, version, *wrapped, 0,
                                absl::ToUnixSeconds(clock.Now())};
      absl::Status s = (*home)->PutDataKey(mine);
      if (absl::IsAlreadyExists(s)) {  // another instance stored this version first
        record = StoredDataKey(**home, t.tenant_id, version);
        if (!record.ok()) return record.status();
        if (!record->has_value()) return absl::UnavailableError("data key vanished; retry");
      } else if (!s.ok()) {
        return s;
      } else {
        *record = std::move(mine);
      }
    }
    auto dek = key_provider.Unwrap(crypto::TenantKeyId(t.tenant_id), (*record)->wrapped,
                                   DekAad(t.tenant_id, version));
    if (!dek.ok()) return dek.status();
    return MakeCurrent(t, k, **record, *std::move(dek));
  }

  // Makes the home cell's record `stored` (its key unwrapped: `dek`) the current key once the
  // replica holds it too. A version the cells disagree on (left by a rotation of an earlier
  // release that failed half-way) becomes current used up, so that the caller moves past it.
  absl::Status MakeCurrent(const TenantCells& t, TenantKeys& k, const store::DataKeyRecord& stored,
                           std::string dek) ABSL_EXCLUSIVE_LOCKS_REQUIRED(k.mu) {
    absl::Status replicated = StoreInReplica(t, stored);
    if (!replicated.ok() && !absl::IsDataLoss(replicated)) return replicated;
    k.keys[stored.version] = std::move(dek);
    k.current = stored.version;
    k.seals = stored.seals;
    k.current_everywhere = true;
    if (!replicated.ok()) {
      spdlog::error("tenant {}: {}; rotating past it", t.tenant_id, replicated.message());
      k.seals = options.max_seals_per_dek;
    }
    return absl::OkStatus();
  }

  // Stores the home cell's record `stored` in the replica cell, unless it holds it already;
  // kDataLoss if the replica holds another key under that version.
  absl::Status StoreInReplica(const TenantCells& t, const store::DataKeyRecord& stored) {
    if (t.replica_region.empty()) return absl::OkStatus();
    auto replica = Cell(t.replica_region);
    if (!replica.ok()) return replica.status();
    absl::Status s = (*replica)->PutDataKey(stored);
    if (!absl::IsAlreadyExists(s)) return s;
    auto copy = StoredDataKey(**replica, t.tenant_id, stored.version);
    if (!copy.ok()) return copy.status();
    if (!copy->has_value()) {  // refused, not there: a failure like any other, retried later
      return absl::UnavailableError(StrCat("the replica cell refused data key version ",
                                           stored.version, " of tenant ", t.tenant_id));
    }
    if ((*copy)->wrapped != stored.wrapped) {
      return absl::DataLossError(StrCat("the cells of tenant ", t.tenant_id,
                                        " hold different data keys for version ", stored.version));
    }
    return absl::OkStatus();
  }

  // The current key was loaded from the cells, maybe from a half-done rotation: makes sure the
  // replica holds it (MakeCurrent).
  absl::Status ConfirmCurrentEverywhere(const TenantCells& t, TenantKeys& k)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(k.mu) {
    auto home = Cell(t.home_region);
    if (!home.ok()) return home.status();
    auto stored = StoredDataKey(**home, t.tenant_id, k.current);
    if (!stored.ok()) return stored.status();
    if (!stored->has_value()) return absl::UnavailableError("home cell lacks the current key");
    return MakeCurrent(t, k, **stored, k.keys[k.current]);
  }

  // Returns (version, key) to seal one more object with, rotating when the DEK is used up.
  absl::StatusOr<std::pair<int64_t, std::string>> SealingKey(const TenantCells& t) {
    TenantKeys& k = KeysOf(t.tenant_id);
    std::lock_guard lock(k.mu);
    if (auto s = LoadKeys(t, k); !s.ok()) return s;
    // Each step adopts the next version if another instance (or a failed attempt) stored it
    // already, with that version's stored seal count, else creates it. (The stored count covers
    // every instance's committed seals; each instance moves on when its own count reaches the
    // limit, so N instances seal at most N x the limit under one key.)
    // Bounded: each step stores a key, and a store that misbehaves must not make this spin.
    for (int steps = 0;
         k.current == 0 || k.seals >= options.max_seals_per_dek || !k.current_everywhere; ++steps) {
      if (steps == 8) return absl::UnavailableError("data key rotation did not settle");
      if (auto s = k.current == 0 || k.seals >= options.max_seals_per_dek
                       ? RotateKey(t, k)
                       : ConfirmCurrentEverywhere(t, k);
          !s.ok()) {
        return s;
      }
    }
    ++k.seals;
    return std::make_pair(k.current, k.keys[k.current]);
  }

  absl::StatusOr<std::string> OpeningKey(const TenantCells& t, int64_t version) {
    TenantKeys& k = KeysOf(t.tenant_id);
    {
      std::shared_lock lock(k.mu);
      if (k.loaded) {
        if (auto it = k.keys.find(version); it != k.keys.end()) return it->second;
      }
    }
    std::lock_guard lock(k.mu);
    if (auto s = LoadKeys(t, k); !s.ok()) return s;
    auto it = k.keys.find(version);
    if (it == k.keys.end()) {
      // Rotated by another instance since we loaded: reload once.
      k.loaded = false;
      k.keys.clear();
      k.current = 0;
      if (auto s = LoadKeys(t, k); !s.ok()) return s;
      it = k.keys.find(version);
      if (it == k.keys.end()) return absl::DataLossError("object sealed under an unknown key");
    }
    return it->second;
  }

  // The keys other than `used` that the tenant's cells hold under DEK `version`. An earlier
  // release's half-done rotation could store one key under a version at home and another at
  // the replica, and seal objects under the replica's; those open with the key found here.
  // Cells that cannot be read are passed over: this is only a second chance after a failure.
  std::vector<std::string> OtherKeysOf(const TenantCells& t, int64_t version,
                                       std::string_view used) {
    std::vector<std::string> out;
    for (const std::string& region : Regions(t)) {
      auto cell = Cell(region);
      if (!cell.ok()) continue;
      auto record = StoredDataKey(**cell, t.tenant_id, version);
      if (!record.ok() || !record->has_value()) continue;
      auto dek = key_provider.Unwrap(crypto::TenantKeyId(t.tenant_id), (*record)->wrapped,
                                     DekAad(t.tenant_id, version));
      if (dek.ok() && *dek != used && std::find(out.begin(), out.end(), *dek) == out.end()) {
        out.push_back(std::move(*dek));
      }
    }
    return out;
  }

  // The writers of the tenant's cells, home first; all found before any write is queued.
  absl::StatusOr<std::vector<internal::CellWriter*>> WritersOf(const TenantCells& t) {
    std::vector<internal::CellWriter*> out;
    for (const std::string& region : Regions(t)) {
      auto it = writers.find(region);
      if (it == writers.end()) return absl::InternalError(StrCat("no cell for ", region));
      out.push_back(it->second.get());
    }
    return out;
  }

  // A write on its way to a tenant's cells, over its attempts.
  struct PendingWrite {
    CellWrite write;
    std::vector<internal::CellWriter*> cells;  // home first
    std::string tenant_id;
    WriteCallback done;
    // Once the caller stopped waiting (answered 503), the write is neither resent nor repaired:
    // a write answered since must not be overwritten by it.
    SteadyTime answer_by;
    int resends_left = kResends;
    int repairs_left = kRepairs;
    // Whether the object existed, as the home cell saw it when this write first replaced what
    // another write left (an attempt that replaced this write's own earlier one says nothing).
    std::optional<bool> existed;
    std::vector<int64_t> sent_stamps;  // of every attempt
    // Under the current stamp: which cells hold the write, and the home cell's result.
    std::vector<bool> holds;
    std::optional<CellWriteResult> home;
  };
  // How often a write that a cell found superseded by a later stamp is sent again, stamped
  // above it, before the caller gets kAborted.
  static constexpr int kResends = 3;
  // How often a write that failed in a cell (kUnavailable or kDataLoss: a lost connection, an
  // unknown outcome) after another cell applied it is sent again to that cell, with the same
  // stamp: applying it twice is harmless (the second finds its own stamp and changes nothing).
  static constexpr int kRepairs = 2;
  static constexpr std::chrono::seconds kRepairableWithin{1};

  // Sends `w` to every cell of the tenant; `done` runs once, on the writer thread of the last
  // cell to answer, with the home cell's result or the first error. A write that some cell
  // found superseded (another instance wrote the object with a later stamp at about the same
  // time) is sent again to every cell, stamped above the later one, so that a write answered
  // OK is the object's latest in every cell. A write that failed in one cell after another
  // applied it is retried there (kRepairs), so that a passing fault does not leave the cells
  // apart.
  void WriteEverywhereAsync(const TenantCells& t, CellWrite w, WriteCallback done,
                            SteadyTime answer_by) {
    auto cells = WritersOf(t);
    if (!cells.ok()) return std::move(done)(cells.status());
    auto pending = std::make_shared<PendingWrite>(
        PendingWrite{std::move(w), *std::move(cells), t.tenant_id, std::move(done), answer_by});
    Send(pending, 0);
  }

  // The answers of the cells one attempt went to.
  struct Attempt {
    std::mutex mu;
    // Cells yet to answer, and the answers so far as (cell index, result).
    SteadyTime sent_at = std::chrono::steady_clock::now();
    size_t left = 0;
    std::vector<std::pair<size_t, absl::StatusOr<CellWriteResult>>> answers;
  };

  // Sends `p` to every cell, stamped above `observed`.
  void Send(const std::shared_ptr<PendingWrite>& p, int64_t observed) {
    std::vector<size_t> all(p->cells.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    std::unique_lock submit(submit_mu);
    if (stopping) {
      submit.unlock();
      return std::move(p->done)(absl::UnavailableError("the object service is shutting down"));
    }
    stamps.Observe(observed);
    p->write.stamp = stamps.Next(clock.Now());
    p->sent_stamps.push_back(p->write.stamp);
    p->holds.assign(p->cells.size(), false);
    p->home.reset();
    Enqueue(p, all);
  }

  // Sends `p` as stamped to the cells `to` (indexes into p->cells).
  void Enqueue(const std::shared_ptr<PendingWrite>& p, const std::vector<size_t>& to)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(submit_mu) {
    auto attempt = std::make_shared<Attempt>();
    attempt->left = to.size();
    for (size_t cell : to) {
      p->cells[cell]->EnqueueAsync(p->write,
                                   [this, p, attempt, cell](absl::StatusOr<CellWriteResult> r) {
                                     std::unique_lock lock(attempt->mu);
                                     attempt->answers.emplace_back(cell, std::move(r));
                                     if (--attempt->left > 0) return;
                                     lock.unlock();
                                     Finish(p, *attempt);
                                   });
    }
  }

  // Answers `p` once every cell of `attempt` answered, or sends it again.
  void Finish(const std::shared_ptr<PendingWrite>& p, const Attempt& attempt) {
    bool superseded = false;
    int64_t held_later = 0;  // the highest later stamp a cell holds
    std::vector<size_t> failed;
    absl::Status error;  // the first
    bool repairable = true;
    for (const auto& [cell, r] : attempt.answers) {
      if (!r.ok()) {
        failed.push_back(cell);
        if (error.ok()) error = r.status();
        repairable =
            repairable && (absl::IsUnavailable(r.status()) || absl::IsDataLoss(r.status()));
      } else if (r->applied) {
        p->holds[cell] = true;
        if (cell == 0) {
          p->home = *r;
          const bool replaced_own = std::find(p->sent_stamps.begin(), p->sent_stamps.end(),
                                              r->replaced_stamp) != p->sent_stamps.end();
          if (!replaced_own || !p->existed) p->existed = r->existed;
        }
      } else if (r->held_stamp == p->write.stamp) {
        p->holds[cell] = true;  // an earlier try applied it after all
      } else {
        superseded = true;
        held_later = std::max(held_later, r->held_stamp);
      }
    }
    const bool caller_waits = std::chrono::steady_clock::now() < p->answer_by;
    if (superseded) {
      if (!caller_waits) return std::move(p->done)(absl::DeadlineExceededError("superseded"));
      if (p->resends_left-- == 0) {
        return std::move(p->done)(
            Conflict("the object was written at the same moment through another instance; "
                     "write it again"));
      }
      return Send(p, held_later);
    }
    const auto held = std::count(p->holds.begin(), p->holds.end(), true);
    // Only a failure that came at once (a dropped connection) is retried: one that took the
    // store's whole lock wait would cost the caller that wait again, likely for nothing.
    const bool failed_fast = std::chrono::steady_clock::now() - attempt.sent_at < kRepairableWithin;
    if (!failed.empty() && held > 0 && repairable && failed_fast && caller_waits &&
        p->repairs_left-- > 0) {
      std::lock_guard submit(submit_mu);
      if (!stopping) return Enqueue(p, failed);
    }
    if (!failed.empty() || !p->home) {
      if (held > 0 && static_cast<size_t>(held) < p->cells.size()) {
        // Answered as failed, yet applied in a cell: the cells differ on this object until
        // its next write (docs/deploy.md, known limit). Logged without the key (logs carry
        // ids only), so that an operator sees it happen.
        spdlog::error(
            "tenant {}: a write committed in {} of its cells and failed in the "
            "other ({}); they differ on that object until it is written again",
            p->tenant_id, held, error.ToString());
      }
      // (No home result although every cell holds the write: home applied it at a try whose
      // answer was lost, so its version is unknown; the client reads it back.)
      return std::move(p->done)(
          error.ok() ? absl::UnavailableError("the write's outcome in its home cell is unknown")
                     : error);
    }
    CellWriteResult home = *p->home;
    home.existed = p->existed.value_or(home.existed);
    std::move(p->done)(home);
  }

  // Runs an asynchronous operation (`start` is handed its callback and the time its caller
  // stops waiting) and waits for its result up to the write deadline.
  template <typename T>
  absl::StatusOr<T> AwaitWrite(
      absl::FunctionRef<void(absl::AnyInvocable<void(absl::StatusOr<T>) &&>, SteadyTime)> start) {
    // Shared with the callback, which outlives this frame when the deadline passes first.
    auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
    auto future = promise->get_future();
    const SteadyTime deadline =
        std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(options.write_deadline);
    start([promise](absl::StatusOr<T> r) { promise->set_value(std::move(r)); }, deadline);
    if (future.wait_until(deadline) != std::future_status::ready) {
      return absl::UnavailableError("a cell did not commit the write in time");
    }
    return future.get();
  }

  // Reads from home, falling back to the replica when home is unavailable.
  template <typename T, typename Fn>
  absl::StatusOr<T> ReadWithFallback(const TenantCells& t, Fn&& fn) {
    absl::StatusOr<T> result = absl::InternalError("no cells");
    for (const std::string& region : Regions(t)) {
      auto cell = Cell(region);
      if (!cell.ok()) return cell.status();
      result = fn(**cell);
      if (result.ok() || !absl::IsUnavailable(result.status())) return result;
    }
    return result;
  }
};

ObjectService::ObjectService(std::map<std::string, store::CellStore*> cells,
                             crypto::KeyProvider& keys, ledger::EventLog& events, Random& random,
                             const Clock& clock, ObjectServiceOptions options)
    : impl_(std::make_unique<Impl>(std::move(cells), keys, events, random, clock, options)),
      options_(options) {}

ObjectService::~ObjectService() = default;

absl::Status ObjectService::InitTenant(const TenantCells& tenant) {
  TenantKeys& k = impl_->KeysOf(tenant.tenant_id);
  std::lock_guard lock(k.mu);
  k.loaded = true;  // a new tenant has no keys yet
  return impl_->RotateKey(tenant, k);
}

absl::StatusOr<CellWrite> ObjectService::SealedPut(const TenantCells& tenant, std::string_view key,
                                                   std::string_view bytes,
                                                   std::string_view content_type) {
  if (auto s = ValidateObjectKey(key); !s.ok()) return s;
  if (auto s = ValidateContentType(content_type); !s.ok()) return s;
  if (bytes.size() > options_.max_object_bytes) {
    return TooLarge(
        StrCat("object is ", bytes.size(), " bytes; the limit is ", options_.max_object_bytes));
  }
  auto sealing = impl_->SealingKey(tenant);
  if (!sealing.ok()) return sealing.status();
  auto& [dek_version, dek] = *sealing;
  CellWrite w;
  w.op = CellWrite::Op::kPut;
  store::StoredObject& o = w.object;
  o.tenant_id = tenant.tenant_id;
  o.key = std::string(key);
  o.dek_version = dek_version;
  o.size = static_cast<int64_t>(bytes.size());
  o.sha256_hex = crypto::Sha256Hex(bytes);
  o.content_type = content_type.empty() ? "application/octet-stream" : std::string(content_type);
  o.updated_at_ms = absl::ToUnixMillis(impl_->clock.Now());
  auto sealed = crypto::AeadSeal(
      dek, bytes, ObjectAad(tenant.tenant_id, key, dek_version, o.sha256_hex), impl_->random);
  if (!sealed.ok()) return sealed.status();
  o.sealed = std::move(*sealed);
  return w;
}

absl::StatusOr<PutResult> ObjectService::Put(const TenantCells& tenant, std::string_view key,
                                             std::string_view bytes,
                                             std::string_view content_type) {
  return impl_->AwaitWrite<PutResult>([&](PutCallback done, SteadyTime answer_by) {
    StartPut(tenant, key, bytes, content_type, std::move(done), answer_by);
  });
}

void ObjectService::PutAsync(const TenantCells& tenant, std::string_view key,
                             std::string_view bytes, std::string_view content_type,
                             PutCallback done) {
  StartPut(tenant, key, bytes, content_type, std::move(done), SteadyTime::max());
}

void ObjectService::StartPut(const TenantCells& tenant, std::string_view key,
                             std::string_view bytes, std::string_view content_type,
                             PutCallback done, SteadyTime answer_by) {
  auto w = SealedPut(tenant, key, bytes, content_type);
  if (!w.ok()) return std::move(done)(w.status());
  PutResult result{w->object.size, w->object.sha256_hex, 0, false};
  impl_->WriteEverywhereAsync(
      tenant, std::move(*w),
      [result = std::move(result),
       done = std::move(done)](absl::StatusOr<CellWriteResult> r) mutable {
        if (!r.ok()) return std::move(done)(r.status());
        result.version = r->version;
        result.created = !r->existed;
        std::move(done)(std::move(result));
      },
      answer_by);
}

absl::StatusOr<ObjectContent> ObjectService::Get(const TenantCells& tenant, std::string_view key) {
  if (auto s = ValidateObjectKey(key); !s.ok()) return s;
  auto o = impl_->ReadWithFallback<store::StoredObject>(
      tenant, [&](CellStore& c) { return c.GetObject(tenant.tenant_id, key); });
  if (!o.ok()) return o.status();
  auto dek = impl_->OpeningKey(tenant, o->dek_version);
  if (!dek.ok()) return dek.status();
  const std::string aad = ObjectAad(tenant.tenant_id, key, o->dek_version, o->sha256_hex);
  auto plain = crypto::AeadOpen(*dek, o->sealed, aad);
  if (absl::IsDataLoss(plain.status())) {
    for (const std::string& other : impl_->OtherKeysOf(tenant, o->dek_version, *dek)) {
      if (auto opened = crypto::AeadOpen(other, o->sealed, aad); opened.ok()) {
        plain = std::move(opened);
        break;
      }
    }
  }
  if (!plain.ok()) return plain.status();
  return ObjectContent{std::move(*plain), o->content_type, o->sha256_hex, o->version,
                       o->updated_at_ms};
}

absl::Status ObjectService::Delete(const TenantCells& tenant, std::string_view key) {
  if (auto s = ValidateObjectKey(key); !s.ok()) return s;
  CellWrite w;
  w.op = CellWrite::Op::kDelete;
  w.object.tenant_id = tenant.tenant_id;
  w.object.key = std::string(key);
  w.object.updated_at_ms = absl::ToUnixMillis(impl_->clock.Now());  // the tombstone's time
  auto r = impl_->AwaitWrite<CellWriteResult>([&](WriteCallback done, SteadyTime answer_by) {
    impl_->WriteEverywhereAsync(tenant, std::move(w), std::move(done), answer_by);
  });
  if (!r.ok()) return r.status();
  if (!r->existed) return absl::NotFoundError("no such object");
  return absl::OkStatus();
}

absl::StatusOr<ListPage> ObjectService::List(const TenantCells& tenant, std::string_view prefix,
                                             std::string_view start_after, int limit) {
  if (limit < 1 || limit > 1000) return absl::InvalidArgumentError("limit must be 1..1000");
  // Fetch one more than asked to know whether another page follows.
  auto rows = impl_->ReadWithFallback<std::vector<store::StoredObject>>(tenant, [&](CellStore& c) {
    return c.ListObjects(tenant.tenant_id, prefix, start_after, limit + 1);
  });
  if (!rows.ok()) return rows.status();
  ListPage page;
  for (auto& r : *rows) {
    if (static_cast<int>(page.objects.size()) == limit) {
      page.next_start_after = page.objects.back().key;
      break;
    }
    page.objects.push_back({std::move(r.key), r.size, std::move(r.sha256_hex), r.updated_at_ms});
  }
  return page;
}

absl::StatusOr<std::vector<RegionUsage>> ObjectService::Location(const TenantCells& tenant) {
  std::vector<RegionUsage> out;
  for (const std::string& region : impl_->Regions(tenant)) {
    auto cell = impl_->Cell(region);
    if (!cell.ok()) return cell.status();
    auto usage = (*cell)->Usage(tenant.tenant_id);
    if (!usage.ok()) return usage.status();
    out.push_back(
        {region, region == tenant.home_region ? "home" : "replica", usage->objects, usage->bytes});
  }
  return out;
}

absl::StatusOr<int64_t> ObjectService::PurgeTombstones() {
  constexpr int kSlice = 10000;
  constexpr int kSlicesPerCall = 10;
  const int64_t before_ms = absl::ToUnixMillis(impl_->clock.Now() - kTombstoneLifetime);
  int64_t purged = 0;
  absl::Status first_error;
  for (auto& [region, cell] : impl_->cells) {
    for (int slice = 0; slice < kSlicesPerCall; ++slice) {
      auto n = cell->PurgeTombstones(before_ms, kSlice);
      if (!n.ok()) {
        first_error.Update(n.status());
        break;
      }
      purged += *n;
      if (*n < kSlice) break;
    }
  }
  if (!first_error.ok()) return first_error;
  return purged;
}

}  // namespace custos::data

// Ledger: the sequencer (group commit, tile buffering, checkpoint signing) and reads from the
// store (tiles, entries, proofs).
#include "ledger/ledger.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <variant>

#include "base/errors.h"
#include "base/strings.h"
#include "base/worker_pool.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "ledger/note.h"
#include "spdlog/spdlog.h"

namespace custos::ledger {
namespace {

using SteadyClock = std::chrono::steady_clock;
using TileKey = std::pair<int, uint64_t>;  // (level, index); level -1 = entry bundle
// Longest one batch commit may take: the stores' lock wait (5 s) plus writing and syncing. The
// PostgreSQL control store times out each statement after 10 s (a batch is a few statements).
constexpr absl::Duration kCommitBound = absl::Seconds(15);

std::string SerializeFrontier(const Frontier& f) {
  std::string out;
  for (const auto& h : f.hashes) out += h;
  return out;
}

absl::StatusOr<Frontier> ParseFrontier(uint64_t size, std::string_view bytes) {
  Frontier f;
  f.size = size;
  if (bytes.size() != static_cast<size_t>(std::popcount(size)) * kHashSize) {
    return absl::DataLossError("stored ledger frontier does not match the stored size");
  }
  for (size_t i = 0; i < bytes.size(); i += kHashSize)
    f.hashes.emplace_back(bytes.substr(i, kHashSize));
  return f;
}

void AppendBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

// Many instances, one log. Each `custos serve` process runs this sequencer over the shared
// control store; what makes them one log is that every batch is written by
// ControlStore::SequenceLedgerBatch, which locks the stored ledger state (a row lock on
// PostgreSQL, the file's write lock on SQLite) and hands this sequencer the committed size and
// frontier to build on. So the sequencer role is held by one instance at a time, per batch:
// whichever instance holds the row lock appends, the others wait on it with their own waiters
// queued, and take it next with everything that queued meanwhile as one batch. Group commit
// therefore still holds (a batch per lock acquisition per instance, growing under load), and an
// append counts as recorded only once the transaction holding it committed. We chose a per-batch
// row lock over a leader holding a session-level advisory lock and forwarding: nothing to elect,
// no forwarding hop, and takeover after a crash is the database rolling back the dead holder's
// transaction (immediate when its connection closes) instead of lease timeouts; the cost is one
// lock hand-off per batch, amortised over the batch. Nothing of the tree is cached between
// batches (the frontier is read under the lock, tiles are appended to, not rewritten), so a
// batch built by another instance never has to be "caught up with". Checkpoints are signed for
// the committed state read from the store and stored only if not beyond it and not below the
// latest stored one (store.h PutCheckpoint), so they stay append-only across instances.
struct Ledger::Impl {
  store::ControlStore& store;
  crypto::Ed25519PrivateKey key;
  std::string origin;
  std::string vkey;
  VerifierKey verifier;  // the log's own key: stored checkpoints are opened with it
  const Clock& clock;
  LedgerOptions options;

  using Outcome = absl::StatusOr<uint64_t>;
  using Answer = std::variant<std::promise<Outcome>, AppendCallback>;
  struct Waiter {
    PendingAppend append;
    std::string leaf_hash;  // computed by the caller's thread, off the sequencer's path
    // A caller blocked in Append, answered by the sequencer itself, or an AppendAsync callback,
    // run on an answer thread: it may read a store or append again, which must not hold up
    // (or, appending, deadlock) the sequencer.
    Answer answer;
    // The sequencer never commits an entry past its deadline, so a caller answered "not
    // recorded" never has its entry appear later (the log would claim an access not performed).
    SteadyClock::time_point deadline;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Waiter> pending;                             // guarded by mu
  bool stopping = false;                                  // guarded by mu
  std::vector<std::promise<absl::Status>> sign_requests;  // guarded by mu
  // Lower bounds of the stored committed size and latest checkpoint size (they only grow; other
  // instances may have moved them further).
  std::atomic<uint64_t> committed_size{0};
  std::atomic<uint64_t> signed_size{0};
  bool have_checkpoint = false;  // sequencer thread
  // The latest stored checkpoint as last opened by LatestSigned (its note, and what it signs).
  struct OpenedCheckpoint {
    std::string note;
    Checkpoint checkpoint;
  };
  std::mutex opened_mu;
  std::optional<OpenedCheckpoint> opened_latest;  // guarded by opened_mu

  // Batches whose commit failed with an outcome unknown (store::MayHaveApplied after the batch
  // was built at `first`): their callers were told "not recorded", but the log may hold them.
  struct UncertainBatch {
    uint64_t first = 0;
    std::vector<std::string> leaves;
    std::vector<std::string> tenants;
  };
  std::vector<UncertainBatch> uncertain;  // sequencer thread
  // Those that turned out to be in the log, until TakeRecordedAfterRefusal.
  std::mutex found_mu;
  std::vector<RecordedAfterRefusal> found;  // guarded by found_mu
  std::atomic<bool> any_found{false};

  SteadyClock::time_point last_checkpoint{};
  // Stopped after the sequencer (whose last answers, for what was pending at shutdown, still
  // find them running) and before anything else of the ledger goes.
  std::optional<WorkerPool> answer_threads;
  std::thread sequencer;

  Impl(store::ControlStore& s, crypto::Ed25519PrivateKey k, std::string o, const Clock& c,
       LedgerOptions opt)
      : store(s), key(std::move(k)), origin(std::move(o)), clock(c), options(opt) {
    answer_threads.emplace(
        opt.answer_threads > 0
            ? opt.answer_threads
            : std::max(2, static_cast<int>(std::thread::hardware_concurrency())));
  }

  // Queues `append` with its answer (moved from only if queued).
  absl::Status Enqueue(PendingAppend append, Answer& answer) {
    if (append.entry.size() > kMaxEntryBytes) {
      return absl::InvalidArgumentError("ledger entry too large");
    }
    std::string leaf = LeafHash(append.entry);
    {
      std::lock_guard lock(mu);
      if (stopping) return absl::UnavailableError("the ledger is shutting down");
      pending.push_back({std::move(append), std::move(leaf), std::move(answer),
                         SteadyClock::now() + absl::ToChronoNanoseconds(options.append_deadline)});
    }
    cv.notify_one();
    return absl::OkStatus();
  }

  // Answers `w`: a blocked caller at once; a callback by queueing it on `callbacks`, which the
  // sequencer hands to the answer threads together once it has answered the whole batch.
  static void Settle(Waiter& w, Outcome outcome, std::vector<WorkerPool::Job>& callbacks) {
    if (auto* caller = std::get_if<std::promise<Outcome>>(&w.answer)) {
      caller->set_value(std::move(outcome));
      return;
    }
    callbacks.emplace_back(
        [done = std::get<AppendCallback>(std::move(w.answer)),
         outcome = std::move(outcome)]() mutable { std::move(done)(std::move(outcome)); });
  }

  static void Raise(std::atomic<uint64_t>& v, uint64_t to) {
    uint64_t cur = v.load();
    while (cur < to && !v.compare_exchange_weak(cur, to)) {
    }
  }

  absl::Status Load() {
    auto state = store.LoadLedgerState();
    if (!state.ok()) return state.status();
    if (auto f = ParseFrontier(state->size, state->frontier); !f.ok()) return f.status();
    Raise(committed_size, state->size);
    auto cp = LatestSigned();
    if (absl::IsDataLoss(cp.status())) {
      // Serve what can be served (reads, tiles, verify); SignCheckpoint refuses to sign on top.
      spdlog::error("ledger: {}", cp.status().message());
      return absl::OkStatus();
    }
    if (!cp.ok()) return cp.status();
    if (cp->has_value()) {
      Raise(signed_size, (*cp)->size);
      have_checkpoint = true;
    }
    return absl::OkStatus();
  }

  // The latest stored checkpoint, opened with this log's key: its size and root are the signed
  // note's, never only the store's columns. kDataLoss if the note does not open or claims
  // another size than its row (a row written behind the server's back); none if there is none.
  absl::StatusOr<std::optional<Checkpoint>> LatestSigned() {
    auto cp = store.LatestCheckpoint();
    if (absl::IsNotFound(cp.status())) return std::optional<Checkpoint>();
    if (!cp.ok()) return cp.status();
    {
      // Proofs read it on every request: a note already opened is not verified again.
      std::lock_guard lock(opened_mu);
      if (opened_latest && opened_latest->note == cp->note &&
          opened_latest->checkpoint.size == cp->size) {
        return std::optional<Checkpoint>(opened_latest->checkpoint);
      }
    }
    auto opened = OpenCheckpoint(cp->note, verifier, origin);
    if (!opened.ok()) {
      return absl::DataLossError(
          StrCat("the latest stored checkpoint (size ", cp->size,
                 ") is not signed by this log's key: ", opened.status().message()));
    }
    if (opened->size != cp->size) {
      return absl::DataLossError(StrCat("the latest stored checkpoint is stored as size ", cp->size,
                                        " but signs size ", opened->size));
    }
    std::lock_guard lock(opened_mu);
    opened_latest = OpenedCheckpoint{cp->note, *opened};
    return std::optional<Checkpoint>(*std::move(opened));
  }

  // The stored committed size, at least `at_least` (refreshed from the store only when the size
  // this instance knows of is below it).
  absl::StatusOr<uint64_t> CommittedSizeAtLeast(uint64_t at_least) {
    if (committed_size.load() >= at_least) return committed_size.load();
    auto state = store.LoadLedgerState();
    if (!state.ok()) return state.status();
    Raise(committed_size, state->size);
    return committed_size.load();
  }

  // Builds the batch extending the locked stored `state` with `batch`'s entries.
  static absl::StatusOr<store::LedgerBatch> BuildBatch(const store::LedgerState& state,
                                                       const std::vector<Waiter>& batch,
                                                       const std::vector<std::string>& leaves) {
    auto frontier = ParseFrontier(state.size, state.frontier);
    if (!frontier.ok()) return frontier.status();
    auto appended = AppendLeaves(*frontier, leaves);
    if (!appended.ok()) return appended.status();

    const uint64_t first = state.size;
    // Only what this batch adds to each tile: (position of its first element, count, bytes).
    struct Added {
      uint32_t start = 0;
      uint32_t count = 0;
      std::string data;
    };
    std::map<TileKey, Added> added;
    auto add = [&](TileKey k, uint64_t position) -> Added& {
      auto [it, inserted] = added.try_emplace(k);
      if (inserted) it->second.start = static_cast<uint32_t>(position % kTileWidth);
      ++it->second.count;
      return it->second;
    };
    for (size_t i = 0; i < batch.size(); ++i) {
      const std::string& e = batch[i].append.entry;
      Added& bundle = add({-1, (first + i) / kTileWidth}, first + i);
      AppendBigEndian(bundle.data, e.size(), 2);
      bundle.data += e;
    }
    for (const CompletedNode& n : appended->new_nodes) {
      if (n.id.level % kTileHeight != 0) continue;
      add({n.id.level / kTileHeight, n.id.index / kTileWidth}, n.id.index).data += n.hash;
    }

    store::LedgerBatch b;
    b.old_size = first;
    b.new_size = appended->frontier.size;
    b.frontier = SerializeFrontier(appended->frontier);
    b.tiles.reserve(added.size());
    for (auto& [k, a] : added) {
      b.tiles.push_back(
          {k.first, k.second, std::move(a.data), a.start, a.start + a.count == kTileWidth});
    }
    std::map<std::string, size_t> group_of;  // tenant -> index in b.records
    for (size_t i = 0; i < batch.size(); ++i) {
      const PendingAppend& a = batch[i].append;
      if (a.tenant_id.empty()) continue;
      auto [it, inserted] = group_of.emplace(a.tenant_id, b.records.size());
      if (inserted) b.records.push_back({a.tenant_id, first + i, first + i, {}});
      store::LedgerRecordGroup& g = b.records[it->second];
      g.last_index = first + i;
      AppendBigEndian(g.data, first + i, 8);
      AppendBigEndian(g.data, a.sealed_record.size(), 4);
      g.data += a.sealed_record;
    }
    return b;
  }

  // Writes one batch at the end of the stored log; returns the first index. A batch that may
  // have been written although this failed is remembered in `uncertain`.
  absl::StatusOr<uint64_t> CommitBatch(std::vector<Waiter>& batch) {
    // The leaves were hashed by the callers: only the frontier depends on the stored state.
    std::vector<std::string> leaves;
    leaves.reserve(batch.size());
    for (Waiter& w : batch) leaves.push_back(std::move(w.leaf_hash));
    std::optional<uint64_t> first;
    absl::Status s = store.SequenceLedgerBatch(
        [&](const store::LedgerState& state) -> absl::StatusOr<store::LedgerBatch> {
          first.reset();
          auto built = BuildBatch(state, batch, leaves);
          if (built.ok()) first = state.size;  // only a built batch can have been written
          return built;
        });
    if (!s.ok()) {
      if (first && store::MayHaveApplied(s)) RememberUncertain(*first, batch, std::move(leaves));
      return s;
    }
    Raise(committed_size, *first + batch.size());
    if (!uncertain.empty()) SettleUncertain(*first, /*final=*/true);
    return *first;
  }

  static void LogUnsettled(const UncertainBatch& u, std::string_view why) {
    spdlog::error(
        "ledger: {}: entries {}..{} stay unsettled: they may be in the log although their "
        "callers were told they were not recorded",
        why, u.first, u.first + u.leaves.size() - 1);
  }

  // Remembers a batch that may have been written although its commit failed. Bounded: in a long
  // outage every failed batch would be remembered, so past kMaxUncertainBatches the oldest is
  // dropped, logged as unsettled.
  static constexpr size_t kMaxUncertainBatches = 256;
  void RememberUncertain(uint64_t first, const std::vector<Waiter>& batch,
                         std::vector<std::string> leaves) {
    if (uncertain.size() >= kMaxUncertainBatches) {
      LogUnsettled(uncertain.front(), "too many uncertain batches");
      uncertain.erase(uncertain.begin());
    }
    UncertainBatch u{first, std::move(leaves), {}};
    for (const Waiter& w : batch) u.tenants.push_back(w.append.tenant_id);
    uncertain.push_back(std::move(u));
  }

  // Settles the uncertain batches against a stored log of `size` entries. A batch is in the log
  // iff the log reaches past it and holds its leaves at its place. A log that does not reach
  // past it settles it only when `final`: when this instance has since committed a batch built
  // on that size. (A batch is written only on the size it was built on — store.h — and the
  // store's lock makes the next batch wait for a commit still under way, so none can land
  // after.) Otherwise the batch stays uncertain for a later state.
  void SettleUncertain(uint64_t size, bool final) {
    std::erase_if(uncertain, [&](const UncertainBatch& u) {
      const uint64_t end = u.first + u.leaves.size();
      if (size < end) return final;
      std::vector<NodeId> nodes;
      for (uint64_t i = u.first; i < end; ++i) nodes.push_back({0, i});
      StoreHashReader reader(store, size);
      auto stored = reader.ReadHashes(nodes);
      if (!stored.ok()) {
        spdlog::error("ledger: cannot settle an uncertain batch yet: {}",
                      stored.status().message());
        return false;
      }
      if (*stored != u.leaves) return true;  // others' entries took its place
      spdlog::warn(
          "ledger: entries {}..{} were committed after their callers were told they "
          "were not recorded; outcome events follow",
          u.first, end - 1);
      std::lock_guard lock(found_mu);
      for (size_t i = 0; i < u.tenants.size(); ++i) found.push_back({u.first + i, u.tenants[i]});
      any_found.store(true);
      return true;
    });
  }

  // Signs a checkpoint for the stored committed state unless the latest stored checkpoint
  // already covers it.
  absl::Status SignCheckpoint() {
    auto state = store.LoadLedgerState();
    if (!state.ok()) return state.status();
    Raise(committed_size, state->size);
    if (have_checkpoint && signed_size.load() >= state->size) return absl::OkStatus();
    auto frontier = ParseFrontier(state->size, state->frontier);
    if (!frontier.ok()) return frontier.status();
    Checkpoint cp{origin, state->size, FrontierRoot(*frontier), {}};
    if (auto s = CheckExtendsLatest(state->size, cp.root_hash); !s.ok()) return s;
    auto note = ledger::SignCheckpoint(cp, origin, key);
    if (!note.ok()) return note.status();
    absl::Status s = store.PutCheckpoint({state->size, *note, absl::ToUnixMillis(clock.Now())});
    // kAlreadyExists: another instance signed this size; kAborted: a larger one is stored. Both
    // leave a checkpoint at least this large in the store.
    if (!s.ok() && !absl::IsAlreadyExists(s) && !absl::IsAborted(s)) return s;
    Raise(signed_size, state->size);
    have_checkpoint = true;
    last_checkpoint = SteadyClock::now();
    return absl::OkStatus();
  }

  // OK iff the stored log of `size` entries with root `root` (its frontier's) is what this log
  // may sign next: the stored tiles give the same root, and the tree extends the latest
  // checkpoint this log signed (a consistency proof from the tiles verifies against both
  // roots). A log rewritten in the database — entries with their hashes recomputed, or a
  // frontier changed alone — is refused (kDataLoss), never signed: the key signs no fork.
  absl::Status CheckExtendsLatest(uint64_t size, const std::string& root) {
    auto latest = LatestSigned();
    if (!latest.ok()) return latest.status();
    StoreHashReader reader(store, size);
    auto tiles_root = TreeRoot(size, reader);
    if (!tiles_root.ok()) return tiles_root.status();
    if (*tiles_root != root) {
      return absl::DataLossError(
          StrCat("the stored frontier does not match the stored tiles at size ", size));
    }
    if (!latest->has_value()) return absl::OkStatus();
    const Checkpoint& old = **latest;
    if (old.size > size) {
      // Another instance committed and signed past the state read here (sizes only grow, and
      // a checkpoint is stored after its entries): nothing to check at this stale size, and
      // storing it will be refused. Unless the stored log is now shorter than what was signed.
      auto now = store.LoadLedgerState();
      if (!now.ok()) return now.status();
      if (now->size < old.size) {
        return absl::DataLossError(StrCat("the latest checkpoint signs ", old.size,
                                          " entries but the stored log holds ", now->size));
      }
      return absl::OkStatus();
    }
    auto proof = ledger::ConsistencyProof(old.size, size, reader);
    if (!proof.ok()) return proof.status();
    if (!VerifyConsistency(old.size, size, *proof, old.root_hash, root)) {
      return absl::DataLossError(StrCat("the stored log of ", size,
                                        " entries does not extend the latest checkpoint (",
                                        old.size, " entries): not signing it"));
    }
    return absl::OkStatus();
  }

  void Run() {
    std::vector<Waiter> batch;
    std::vector<WorkerPool::Job> callbacks;
    std::vector<std::promise<absl::Status>> requests;
    while (true) {
      {
        std::unique_lock lock(mu);
        auto due = last_checkpoint + absl::ToChronoNanoseconds(options.checkpoint_interval);
        bool unsigned_entries = signed_size.load() < committed_size.load();
        auto ready = [&] { return stopping || !pending.empty() || !sign_requests.empty(); };
        if (unsigned_entries || !uncertain.empty()) {
          cv.wait_until(lock, due, ready);
        } else {
          cv.wait(lock, ready);
        }
        if (pending.empty() && stopping && sign_requests.empty()) break;
        if (!pending.empty() && options.max_batch_delay > absl::ZeroDuration() &&
            pending.size() < options.max_batch) {
          cv.wait_for(lock, absl::ToChronoNanoseconds(options.max_batch_delay),
                      [&] { return stopping || pending.size() >= options.max_batch; });
        }
        const auto now = SteadyClock::now();
        while (!pending.empty() && batch.size() < options.max_batch) {
          if (pending.front().deadline < now) {
            Settle(pending.front(),
                   absl::UnavailableError("the ledger did not record the access in time"),
                   callbacks);
          } else {
            batch.push_back(std::move(pending.front()));
          }
          pending.pop_front();
        }
        requests.swap(sign_requests);
      }
      if (!batch.empty()) {
        absl::StatusOr<uint64_t> first = CommitBatch(batch);
        if (!first.ok()) {
          spdlog::error("ledger batch of {} not committed: {}", batch.size(),
                        first.status().ToString());
          absl::Status refused = absl::UnavailableError(
              StrCat("the ledger could not record the access: ", first.status().message()));
          for (Waiter& w : batch) Settle(w, refused, callbacks);
        } else {
          for (size_t i = 0; i < batch.size(); ++i) Settle(batch[i], *first + i, callbacks);
        }
        batch.clear();
      }
      if (!callbacks.empty()) {
        answer_threads->SubmitAll(std::move(callbacks));
        callbacks.clear();
      }
      if (!requests.empty()) {
        absl::Status s = SignCheckpoint();
        for (auto& r : requests) r.set_value(s);
        requests.clear();
      }
      if ((signed_size.load() < committed_size.load() || !uncertain.empty()) &&
          SteadyClock::now() >=
              last_checkpoint + absl::ToChronoNanoseconds(options.checkpoint_interval)) {
        if (!uncertain.empty()) {
          // An idle log: whether the uncertain batch landed shows once the log reaches past it.
          if (auto state = store.LoadLedgerState(); state.ok()) {
            Raise(committed_size, state->size);
            SettleUncertain(state->size, /*final=*/false);
          }
        }
        if (auto s = SignCheckpoint(); !s.ok()) {
          spdlog::error("ledger checkpoint not written: {}", s.ToString());
        }
        last_checkpoint = SteadyClock::now();  // also: retry after an interval, not in a loop
      }
    }
    if (auto s = SignCheckpoint(); !s.ok()) spdlog::error("final checkpoint: {}", s.ToString());
    if (auto state = store.LoadLedgerState(); state.ok() && !uncertain.empty()) {
      SettleUncertain(state->size, /*final=*/false);
    }
    for (const UncertainBatch& u : uncertain) LogUnsettled(u, "stopping");
    std::lock_guard lock(found_mu);
    for (const RecordedAfterRefusal& r : found) {
      spdlog::error(
          "ledger: stopping before the outcome of entry {} (committed after its caller "
          "was told it was not recorded) was recorded",
          r.index);
    }
  }

  // Tiles read for one proof, each fetched once.
  class StoreHashReader final : public HashReader {
   public:
    StoreHashReader(store::ControlStore& store, uint64_t size) : store_(store), size_(size) {}
    absl::StatusOr<std::vector<std::string>> ReadHashes(std::span<const NodeId> nodes) override {
      std::vector<std::string> out;
      for (const NodeId& n : nodes) {
        auto loc = LocateNode(n, size_);
        if (!loc.ok()) return loc.status();
        TileKey k{loc->tile.level, loc->tile.index};
        auto it = cache_.find(k);
        if (it == cache_.end()) {
          auto data = store_.ReadLedgerTile(k.first, k.second);
          if (!data.ok()) return absl::DataLossError("a ledger tile needed for a proof is missing");
          it = cache_.emplace(k, std::move(*data)).first;
        }
        auto h = NodeHashFromTile(it->second, loc->first, loc->count);
        if (!h.ok()) return absl::DataLossError("a stored ledger tile is too short");
        out.push_back(std::move(*h));
      }
      return out;
    }

   private:
    store::ControlStore& store_;
    uint64_t size_;
    std::map<TileKey, std::string> cache_;
  };

  absl::StatusOr<uint64_t> CheckpointedSize() {
    auto cp = LatestSigned();
    if (!cp.ok()) return cp.status();
    return cp->has_value() ? (*cp)->size : 0;
  }
};

Ledger::Ledger(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(store::ControlStore& store,
                                                     crypto::Ed25519PrivateKey key,
                                                     std::string origin, const Clock& clock,
                                                     LedgerOptions options) {
  auto vkey = FormatVerifierKey(origin, key.PublicKey());
  if (!vkey.ok()) return vkey.status();
  VerifierKey verifier{origin, KeyId(origin, key.PublicKey()), key.PublicKey()};
  auto impl = std::make_unique<Impl>(store, std::move(key), std::move(origin), clock, options);
  impl->vkey = *vkey;
  impl->verifier = std::move(verifier);
  if (auto s = impl->Load(); !s.ok()) return s;
  Impl* raw = impl.get();
  raw->sequencer = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<Ledger>(new Ledger(std::move(impl)));
}

Ledger::~Ledger() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->sequencer.join();
  impl_->answer_threads.reset();  // runs the last callbacks
}

void Ledger::PutBackRecordedAfterRefusal(const RecordedAfterRefusal& entry) {
  std::lock_guard lock(impl_->found_mu);
  impl_->found.push_back(entry);
  impl_->any_found.store(true);
}

std::vector<RecordedAfterRefusal> Ledger::TakeRecordedAfterRefusal() {
  if (!impl_->any_found.load()) return {};
  std::lock_guard lock(impl_->found_mu);
  impl_->any_found.store(false);
  return std::exchange(impl_->found, {});
}

bool Ledger::HasRecordedAfterRefusal() const { return impl_->any_found.load(); }

void Ledger::AppendAsync(PendingAppend append, AppendCallback done) {
  Impl::Answer answer(std::move(done));
  if (absl::Status s = impl_->Enqueue(std::move(append), answer); !s.ok()) {
    std::move(std::get<AppendCallback>(answer))(s);  // not queued: still ours to call
  }
}

absl::StatusOr<uint64_t> Ledger::Append(PendingAppend append) {
  Impl::Answer answer;
  std::future<absl::StatusOr<uint64_t>> done = std::get<0>(answer).get_future();
  if (absl::Status s = impl_->Enqueue(std::move(append), answer); !s.ok()) return s;
  // The sequencer answers by the deadline plus one commit attempt (bounded by the store's busy
  // timeout); waiting longer only guards against a hung store, and then the outcome is unknown.
  if (done.wait_for(absl::ToChronoNanoseconds(impl_->options.append_deadline + kCommitBound)) !=
      std::future_status::ready) {
    spdlog::error("ledger append outcome unknown: the store did not answer");
    return absl::UnavailableError("the ledger did not record the access in time");
  }
  return done.get();
}

absl::StatusOr<store::LedgerCheckpoint> Ledger::SignCheckpointNow() {
  std::future<absl::Status> done;
  {
    std::lock_guard lock(impl_->mu);
    impl_->sign_requests.emplace_back();
    done = impl_->sign_requests.back().get_future();
  }
  impl_->cv.notify_one();
  if (done.wait_for(absl::ToChronoNanoseconds(impl_->options.append_deadline)) !=
      std::future_status::ready) {
    return absl::UnavailableError("the ledger did not sign a checkpoint in time");
  }
  if (absl::Status s = done.get(); !s.ok()) return s;
  return LatestCheckpoint();
}

absl::StatusOr<store::LedgerCheckpoint> Ledger::LatestCheckpoint() {
  return impl_->store.LatestCheckpoint();
}

absl::StatusOr<std::string> Ledger::ReadTile(const Tile& tile) {
  // Refresh from the store only if the size this instance has seen does not cover the tile
  // (another instance may have appended).
  uint64_t size = impl_->committed_size.load();
  if (!TileCoveredBy(tile, size)) {
    auto stored = impl_->CommittedSizeAtLeast(UINT64_MAX);
    if (!stored.ok()) return stored.status();
    size = *stored;
  }
  if (!TileCoveredBy(tile, size)) return absl::NotFoundError("the log has not reached this tile");
  int level = tile.entries ? -1 : tile.level;
  auto data = impl_->store.ReadLedgerTile(level, tile.index);
  if (!data.ok()) return data.status();
  if (!tile.entries) {
    size_t bytes = static_cast<size_t>(tile.width) * kHashSize;
    if (data->size() < bytes) return absl::DataLossError("stored tile is shorter than its width");
    data->resize(bytes);
    return data;
  }
  auto entries = DecodeEntryBundle(*data);
  if (!entries.ok() || entries->size() < static_cast<size_t>(tile.width)) {
    return absl::DataLossError("stored entry bundle is malformed");
  }
  entries->resize(tile.width);
  return EncodeEntryBundle(*entries);
}

absl::StatusOr<std::string> Ledger::ReadEntry(uint64_t index) {
  auto size = impl_->CommittedSizeAtLeast(index + 1);
  if (!size.ok()) return size.status();
  if (index >= *size) return absl::NotFoundError("no such entry");
  auto data = impl_->store.ReadLedgerTile(-1, index / kTileWidth);
  if (!data.ok()) return data.status();
  auto entries = DecodeEntryBundle(*data);
  if (!entries.ok() || entries->size() <= index % kTileWidth) {
    return absl::DataLossError("stored entry bundle is malformed");
  }
  return (*entries)[index % kTileWidth];
}

absl::StatusOr<std::vector<std::string>> Ledger::InclusionProof(uint64_t index, uint64_t size) {
  auto checkpointed = impl_->CheckpointedSize();
  if (!checkpointed.ok()) return checkpointed.status();
  if (size > *checkpointed) {
    return absl::InvalidArgumentError(
        StrCat("size ", size, " is beyond the latest checkpoint (", *checkpointed, ")"));
  }
  if (index >= size) return absl::InvalidArgumentError("index must be below size");
  Impl::StoreHashReader reader(impl_->store, size);
  return ledger::InclusionProof(index, size, reader);
}

absl::StatusOr<std::vector<std::string>> Ledger::ConsistencyProof(uint64_t old_size,
                                                                  uint64_t new_size) {
  auto checkpointed = impl_->CheckpointedSize();
  if (!checkpointed.ok()) return checkpointed.status();
  if (new_size > *checkpointed) {
    return absl::InvalidArgumentError(
        StrCat("size ", new_size, " is beyond the latest checkpoint (", *checkpointed, ")"));
  }
  if (old_size > new_size) return absl::InvalidArgumentError("old must not exceed new");
  Impl::StoreHashReader reader(impl_->store, new_size);
  return ledger::ConsistencyProof(old_size, new_size, reader);
}

absl::StatusOr<std::string> Ledger::RootAt(uint64_t size) {
  auto checkpointed = impl_->CheckpointedSize();
  if (!checkpointed.ok()) return checkpointed.status();
  if (size > *checkpointed) {
    return absl::InvalidArgumentError(
        StrCat("size ", size, " is beyond the latest checkpoint (", *checkpointed, ")"));
  }
  Impl::StoreHashReader reader(impl_->store, size);
  return ledger::TreeRoot(size, reader);
}

const std::string& Ledger::origin() const { return impl_->origin; }
const std::string& Ledger::verifier_key() const { return impl_->vkey; }

}  // namespace custos::ledger

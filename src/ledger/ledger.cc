// Ledger: the sequencer (group commit, tile buffering, checkpoint signing) and reads from the
// store (tiles, entries, proofs).
#include "ledger/ledger.h"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "base/errors.h"
#include "base/strings.h"
#include "ledger/checkpoint.h"
#include "ledger/merkle.h"
#include "ledger/note.h"
#include "spdlog/spdlog.h"

namespace custos::ledger {
namespace {

using SteadyClock = std::chrono::steady_clock;
using TileKey = std::pair<int, uint64_t>;  // (level, index); level -1 = entry bundle
constexpr size_t kFullHashTileBytes = kTileWidth * kHashSize;
// Longest one batch commit may take: the stores' lock wait (5 s) plus writing and syncing.
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
  for (size_t i = 0; i < bytes.size(); i += kHashSize) f.hashes.emplace_back(bytes.substr(i, kHashSize));
  return f;
}

void AppendBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

struct Ledger::Impl {
  store::ControlStore& store;
  crypto::Ed25519PrivateKey key;
  std::string origin;
  std::string vkey;
  const Clock& clock;
  LedgerOptions options;

  struct Waiter {
    PendingAppend append;
    std::promise<absl::StatusOr<uint64_t>> done;
    // The sequencer never commits an entry past its deadline, so a caller answered "not
    // recorded" never has its entry appear later (the log would claim an access not performed).
    SteadyClock::time_point deadline;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Waiter> pending;  // guarded by mu
  bool stopping = false;       // guarded by mu
  std::vector<std::promise<absl::Status>> sign_requests;  // guarded by mu
  std::atomic<uint64_t> committed_size{0};
  std::atomic<uint64_t> signed_size{0};

  // Sequencer-thread state.
  Frontier frontier;
  std::map<TileKey, std::string> open_tiles;  // right-edge tiles not yet full
  SteadyClock::time_point last_checkpoint{};
  std::thread sequencer;

  Impl(store::ControlStore& s, crypto::Ed25519PrivateKey k, std::string o, const Clock& c,
       LedgerOptions opt)
      : store(s), key(std::move(k)), origin(std::move(o)), clock(c), options(opt) {}

  absl::Status Load() {
    auto state = store.LoadLedgerState();
    if (!state.ok()) return state.status();
    auto f = ParseFrontier(state->size, state->frontier);
    if (!f.ok()) return f.status();
    frontier = std::move(*f);
    committed_size = state->size;
    open_tiles.clear();
    // The right-edge partial tiles at each level, to extend in memory.
    if (state->size % kTileWidth != 0) {
      auto t = store.ReadLedgerTile(-1, state->size / kTileWidth);
      if (!t.ok()) return t.status();
      open_tiles[{-1, state->size / kTileWidth}] = std::move(*t);
    }
    for (int level = 0; (state->size >> (kTileHeight * level)) > 0; ++level) {
      uint64_t nodes = state->size >> (kTileHeight * level);
      if (nodes % kTileWidth == 0) continue;
      auto t = store.ReadLedgerTile(level, nodes / kTileWidth);
      if (!t.ok()) return t.status();
      open_tiles[{level, nodes / kTileWidth}] = std::move(*t);
    }
    auto cp = store.LatestCheckpoint();
    if (cp.ok()) {
      signed_size = cp->size;
    } else if (!absl::IsNotFound(cp.status())) {
      return cp.status();
    }
    return absl::OkStatus();
  }

  // Writes one batch; on success adopts the new state and returns the first index.
  absl::StatusOr<uint64_t> CommitBatch(std::vector<Waiter>& batch) {
    std::vector<std::string> leaf_hashes;
    leaf_hashes.reserve(batch.size());
    for (const Waiter& w : batch) leaf_hashes.push_back(LeafHash(w.append.entry));
    auto appended = AppendLeaves(frontier, leaf_hashes);
    if (!appended.ok()) return appended.status();

    const uint64_t first = frontier.size;
    std::map<TileKey, std::string> changed;
    auto tile = [&](TileKey k) -> std::string& {
      if (auto it = changed.find(k); it != changed.end()) return it->second;
      auto open = open_tiles.find(k);
      return changed[k] = open == open_tiles.end() ? std::string() : open->second;
    };
    for (size_t i = 0; i < batch.size(); ++i) {
      const std::string& e = batch[i].append.entry;
      std::string& bundle = tile({-1, (first + i) / kTileWidth});
      AppendBigEndian(bundle, e.size(), 2);
      bundle += e;
    }
    for (const CompletedNode& n : appended->new_nodes) {
      if (n.id.level % kTileHeight != 0) continue;
      std::string& t = tile({n.id.level / kTileHeight, n.id.index / kTileWidth});
      assert(t.size() == (n.id.index % kTileWidth) * kHashSize);
      t += n.hash;
    }

    store::LedgerBatch b;
    b.old_size = first;
    b.new_size = appended->frontier.size;
    b.frontier = SerializeFrontier(appended->frontier);
    for (const auto& [k, data] : changed) b.tiles.push_back({k.first, k.second, data});
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
    if (auto s = store.CommitLedgerBatch(b); !s.ok()) return s;

    frontier = std::move(appended->frontier);
    for (auto& [k, data] : changed) {
      bool full = k.first < 0 ? (k.second + 1) * kTileWidth <= frontier.size
                              : data.size() == kFullHashTileBytes;
      if (full) {
        open_tiles.erase(k);
      } else {
        open_tiles[k] = std::move(data);
      }
    }
    committed_size = frontier.size;
    return first;
  }

  absl::Status SignCheckpoint() {
    if (signed_size.load() == frontier.size && frontier.size > 0) return absl::OkStatus();
    Checkpoint cp{origin, frontier.size, FrontierRoot(frontier), {}};
    auto note = ledger::SignCheckpoint(cp, origin, key);
    if (!note.ok()) return note.status();
    absl::Status s = store.PutCheckpoint(
        {frontier.size, *note, absl::ToUnixMillis(clock.Now())});
    if (!s.ok() && !absl::IsAlreadyExists(s)) return s;
    signed_size = frontier.size;
    last_checkpoint = SteadyClock::now();
    return absl::OkStatus();
  }

  void Run() {
    std::vector<Waiter> batch;
    std::vector<std::promise<absl::Status>> requests;
    while (true) {
      {
        std::unique_lock lock(mu);
        auto due = last_checkpoint + absl::ToChronoNanoseconds(options.checkpoint_interval);
        bool unsigned_entries = signed_size.load() < committed_size.load();
        auto ready = [&] { return stopping || !pending.empty() || !sign_requests.empty(); };
        if (unsigned_entries) {
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
            pending.front().done.set_value(
                absl::UnavailableError("the ledger did not record the access in time"));
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
          for (Waiter& w : batch) w.done.set_value(refused);
          if (absl::IsAborted(first.status())) (void)Load();  // another sequencer moved on
        } else {
          for (size_t i = 0; i < batch.size(); ++i) batch[i].done.set_value(*first + i);
        }
        batch.clear();
      }
      if (!requests.empty()) {
        absl::Status s = SignCheckpoint();
        for (auto& r : requests) r.set_value(s);
        requests.clear();
      }
      if (signed_size.load() < committed_size.load() &&
          SteadyClock::now() >= last_checkpoint + absl::ToChronoNanoseconds(
                                                      options.checkpoint_interval)) {
        if (auto s = SignCheckpoint(); !s.ok()) {
          spdlog::error("ledger checkpoint not written: {}", s.ToString());
        }
      }
    }
    if (auto s = SignCheckpoint(); !s.ok()) spdlog::error("final checkpoint: {}", s.ToString());
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
    auto cp = store.LatestCheckpoint();
    if (absl::IsNotFound(cp.status())) return 0;
    if (!cp.ok()) return cp.status();
    return cp->size;
  }
};

Ledger::Ledger(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(store::ControlStore& store,
                                                     crypto::Ed25519PrivateKey key,
                                                     std::string origin, const Clock& clock,
                                                     LedgerOptions options) {
  auto vkey = FormatVerifierKey(origin, key.PublicKey());
  if (!vkey.ok()) return vkey.status();
  auto impl = std::make_unique<Impl>(store, std::move(key), std::move(origin), clock, options);
  impl->vkey = *vkey;
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
}

absl::StatusOr<uint64_t> Ledger::Append(PendingAppend append) {
  if (append.entry.size() > kMaxEntryBytes) {
    return absl::InvalidArgumentError("ledger entry too large");
  }
  std::future<absl::StatusOr<uint64_t>> done;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return absl::UnavailableError("the ledger is shutting down");
    impl_->pending.push_back(
        {std::move(append), {},
         SteadyClock::now() + absl::ToChronoNanoseconds(impl_->options.append_deadline)});
    done = impl_->pending.back().done.get_future();
  }
  impl_->cv.notify_one();
  // The sequencer answers by the deadline plus one commit attempt (bounded by the store's busy
  // timeout); waiting longer only guards against a hung store, and then the outcome is unknown.
  if (done.wait_for(absl::ToChronoNanoseconds(impl_->options.append_deadline +
                                              kCommitBound)) != std::future_status::ready) {
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
  uint64_t size = impl_->committed_size.load();
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
  if (index >= impl_->committed_size.load()) return absl::NotFoundError("no such entry");
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

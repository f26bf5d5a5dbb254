// Real cell stores behind wrappers that make them slow or flaky, for tests of how the object
// service copes: writes that wait at a gate, or writes whose answer is lost. Everything else
// passes straight through to the real store.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "store/store.h"

namespace custos::testing {

// Passes every call to `inner`; subclasses override what they change.
class ForwardingCellStore : public store::CellStore {
 public:
  explicit ForwardingCellStore(store::CellStore& inner) : inner_(inner) {}

  const std::string& region() const override { return inner_.region(); }
  absl::StatusOr<std::vector<store::CellWriteResult>> Apply(
      std::span<const store::CellWrite> writes) override {
    return inner_.Apply(writes);
  }
  absl::StatusOr<store::StoredObject> GetObject(std::string_view tenant_id,
                                                std::string_view key) override {
    return inner_.GetObject(tenant_id, key);
  }
  absl::StatusOr<std::vector<store::StoredObject>> ListObjects(std::string_view tenant_id,
                                                               std::string_view prefix,
                                                               std::string_view start_after,
                                                               int limit) override {
    return inner_.ListObjects(tenant_id, prefix, start_after, limit);
  }
  absl::StatusOr<store::CellUsage> Usage(std::string_view tenant_id) override {
    return inner_.Usage(tenant_id);
  }
  absl::StatusOr<int64_t> PurgeTombstones(int64_t before_ms, int limit) override {
    return inner_.PurgeTombstones(before_ms, limit);
  }
  absl::Status PutDataKey(const store::DataKeyRecord& key) override {
    return inner_.PutDataKey(key);
  }
  absl::StatusOr<std::vector<store::DataKeyRecord>> ListDataKeys(
      std::string_view tenant_id) override {
    return inner_.ListDataKeys(tenant_id);
  }

 protected:
  store::CellStore& inner_;
};

// Writes wait at a gate until the test opens it: a cell slow to answer one instance.
class GatedCellStore final : public ForwardingCellStore {
 public:
  using ForwardingCellStore::ForwardingCellStore;
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool WaitForWriter() {  // true once a write waits at the gate
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return waiting_ > 0; });
  }
  absl::StatusOr<std::vector<store::CellWriteResult>> Apply(
      std::span<const store::CellWrite> writes) override {
    {
      std::unique_lock lock(mu_);
      ++waiting_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return open_; });
    }
    return inner_.Apply(writes);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

// Counts the batches of writes the real store answered, for a test to wait on, and keeps the
// stamps of the writes it passed on.
class WatchedCellStore final : public ForwardingCellStore {
 public:
  using ForwardingCellStore::ForwardingCellStore;
  absl::StatusOr<std::vector<store::CellWriteResult>> Apply(
      std::span<const store::CellWrite> writes) override {
    auto r = inner_.Apply(writes);
    std::lock_guard lock(mu_);
    ++applies_;
    for (const store::CellWrite& w : writes) stamps_.push_back(w.stamp);
    cv_.notify_all();
    return r;
  }
  bool WaitForApplies(int n) {  // true once `n` batches were answered
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return applies_ >= n; });
  }
  std::vector<int64_t> Stamps() {
    std::lock_guard lock(mu_);
    return stamps_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int applies_ = 0;
  std::vector<int64_t> stamps_;
};

// The next `failures` writes fail with kUnavailable, as over a connection that dropped: before
// reaching the store (nothing applied), or, with `after_applying`, after it committed them (the
// answer lost).
class FlakyCellStore final : public ForwardingCellStore {
 public:
  FlakyCellStore(store::CellStore& inner, int failures, bool after_applying)
      : ForwardingCellStore(inner), failures_(failures), after_applying_(after_applying) {}
  absl::StatusOr<std::vector<store::CellWriteResult>> Apply(
      std::span<const store::CellWrite> writes) override {
    {
      std::lock_guard lock(mu_);
      if (failures_ == 0) return inner_.Apply(writes);
      --failures_;
    }
    if (after_applying_) (void)inner_.Apply(writes);
    return absl::UnavailableError("connection lost (test)");
  }

 private:
  std::mutex mu_;
  int failures_;
  const bool after_applying_;
};

}  // namespace custos::testing

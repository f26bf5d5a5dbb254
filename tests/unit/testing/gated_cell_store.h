// A real cell store behind a gate, for tests of slow cells: its writes wait until the test opens
// the gate; everything else passes straight through.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "store/store.h"

namespace custos::testing {

class GatedCellStore final : public store::CellStore {
 public:
  explicit GatedCellStore(store::CellStore& inner) : inner_(inner) {}
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool WaitForWriter() {  // true once a write waits at the gate
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return waiting_ > 0; });
  }

  const std::string& region() const override { return inner_.region(); }
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

 private:
  store::CellStore& inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

}  // namespace custos::testing

// A ControlStore that forwards every call to another: tests override the calls they fault
// (e.g. a commit that succeeds but is reported lost), the real store does the rest.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace custos::testing {

class ForwardingControlStore : public store::ControlStore {
 public:
  explicit ForwardingControlStore(store::ControlStore& inner) : inner_(inner) {}

  using LedgerBatchBuilder = store::ControlStore::LedgerBatchBuilder;
  using LedgerState = store::LedgerState;
  using LedgerCheckpoint = store::LedgerCheckpoint;
  using LedgerRecordGroup = store::LedgerRecordGroup;
  using PrincipalRecord = store::PrincipalRecord;
  using TenantRecord = store::TenantRecord;
  using AccessRequestRecord = store::AccessRequestRecord;
  using AccessRequestFilter = store::AccessRequestFilter;
  using MfaRecord = store::MfaRecord;
  using AuditVerdictRecord = store::AuditVerdictRecord;
  using JobLease = store::JobLease;

  absl::Status SequenceLedgerBatch(LedgerBatchBuilder build) override {
    return inner_.SequenceLedgerBatch(build);
  }
  absl::StatusOr<LedgerState> LoadLedgerState() override { return inner_.LoadLedgerState(); }
  absl::StatusOr<std::string> ReadLedgerTile(int level, uint64_t index) override {
    return inner_.ReadLedgerTile(level, index);
  }
  absl::Status PutCheckpoint(const LedgerCheckpoint& checkpoint) override {
    return inner_.PutCheckpoint(checkpoint);
  }
  absl::StatusOr<LedgerCheckpoint> LatestCheckpoint() override { return inner_.LatestCheckpoint(); }
  absl::StatusOr<std::vector<LedgerRecordGroup>> ReadRecordGroups(std::string_view tenant_id,
                                                                  uint64_t from_index,
                                                                  int limit) override {
    return inner_.ReadRecordGroups(tenant_id, from_index, limit);
  }
  absl::Status InsertPrincipal(const PrincipalRecord& p) override {
    return inner_.InsertPrincipal(p);
  }
  absl::StatusOr<PrincipalRecord> GetPrincipal(std::string_view id) override {
    return inner_.GetPrincipal(id);
  }
  absl::StatusOr<PrincipalRecord> FindPrincipalByTokenHash(std::string_view sha256_hex) override {
    return inner_.FindPrincipalByTokenHash(sha256_hex);
  }
  absl::Status SetPrincipalCredential(std::string_view id, std::string_view token_sha256,
                                      bool disabled) override {
    return inner_.SetPrincipalCredential(id, token_sha256, disabled);
  }
  absl::Status InsertTenant(const TenantRecord& t, const PrincipalRecord& first_admin) override {
    return inner_.InsertTenant(t, first_admin);
  }
  absl::StatusOr<TenantRecord> GetTenant(std::string_view id) override {
    return inner_.GetTenant(id);
  }
  absl::StatusOr<std::vector<TenantRecord>> ListTenants() override { return inner_.ListTenants(); }
  absl::Status InsertAccessRequest(const AccessRequestRecord& r) override {
    return inner_.InsertAccessRequest(r);
  }
  absl::Status UpdateAccessRequest(const AccessRequestRecord& r) override {
    return inner_.UpdateAccessRequest(r);
  }
  absl::StatusOr<AccessRequestRecord> GetAccessRequest(std::string_view id) override {
    return inner_.GetAccessRequest(id);
  }
  absl::StatusOr<AccessRequestRecord> FindAccessRequestByGrant(std::string_view grant_id) override {
    return inner_.FindAccessRequestByGrant(grant_id);
  }
  absl::StatusOr<std::vector<AccessRequestRecord>> ListAccessRequests(
      const AccessRequestFilter& filter) override {
    return inner_.ListAccessRequests(filter);
  }
  absl::StatusOr<std::vector<AccessRequestRecord>> ListDueAccessRequests(int64_t now) override {
    return inner_.ListDueAccessRequests(now);
  }
  absl::Status PutMfa(const MfaRecord& r) override { return inner_.PutMfa(r); }
  absl::StatusOr<MfaRecord> GetMfa(std::string_view principal_id) override {
    return inner_.GetMfa(principal_id);
  }
  absl::Status ConsumeTotpStep(std::string_view principal_id, int64_t step) override {
    return inner_.ConsumeTotpStep(principal_id, step);
  }
  absl::Status TakeTotpAttempt(std::string_view principal_id, int64_t now, int64_t window_s,
                               int64_t max) override {
    return inner_.TakeTotpAttempt(principal_id, now, window_s, max);
  }
  absl::Status ReturnTotpAttempt(std::string_view principal_id) override {
    return inner_.ReturnTotpAttempt(principal_id);
  }
  absl::Status SetConsent(std::string_view tenant_id, std::string_view purpose, bool granted,
                          int64_t at) override {
    return inner_.SetConsent(tenant_id, purpose, granted, at);
  }
  absl::StatusOr<bool> HasConsent(std::string_view tenant_id, std::string_view purpose) override {
    return inner_.HasConsent(tenant_id, purpose);
  }
  absl::Status InsertAuditVerdict(const AuditVerdictRecord& v) override {
    return inner_.InsertAuditVerdict(v);
  }
  absl::StatusOr<std::vector<AuditVerdictRecord>> ListAuditVerdicts(
      std::string_view period) override {
    return inner_.ListAuditVerdicts(period);
  }
  absl::StatusOr<std::string> GetSetting(std::string_view name) override {
    return inner_.GetSetting(name);
  }
  absl::Status PutSetting(std::string_view name, std::string_view value) override {
    return inner_.PutSetting(name, value);
  }
  absl::Status CompareAndSwapSetting(std::string_view name,
                                     std::optional<std::string_view> expected,
                                     std::string_view value) override {
    return inner_.CompareAndSwapSetting(name, expected, value);
  }
  absl::StatusOr<JobLease> AcquireJobLease(std::string_view name, std::string_view holder,
                                           int64_t now_ms, int64_t expires_at_ms) override {
    return inner_.AcquireJobLease(name, holder, now_ms, expires_at_ms);
  }
  absl::Status RecordJobRun(std::string_view name, std::string_view holder,
                            int64_t ran_at_ms) override {
    return inner_.RecordJobRun(name, holder, ran_at_ms);
  }
  absl::Status ReleaseJobLease(std::string_view name, std::string_view holder) override {
    return inner_.ReleaseJobLease(name, holder);
  }

 protected:
  store::ControlStore& inner_;
};

}  // namespace custos::testing

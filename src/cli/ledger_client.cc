// `custos ledger verify` and `custos ledger prove`: an independent verifier of a Custos server's
// public log, reading only what anyone (or the tenant's admin) can read over HTTP, and sharing
// with the server nothing but the pure ledger code (hashing, tiles, notes).
#include <algorithm>
#include <iostream>
#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "base/strings.h"
#include "cli/cli.h"
#include "cli/internal/checkpoint_state.h"
#include "cli/internal/http_client.h"
#include "cli/internal/ledger_remote.h"
#include "cli/internal/log_audit.h"
#include "ledger/merkle.h"

namespace custos::cli {
namespace {

namespace json = boost::json;
using internal::AccessRecord;
using internal::AuditOptions;
using internal::AuditResult;
using internal::LedgerEntry;
using internal::LedgerRemote;
using internal::SignedCheckpoint;

constexpr int kAccessLogPage = 1000;
// How far past the checkpoint the access log may run while it is read (appends go on meanwhile).
constexpr uint64_t kMaxRecordsPastCheckpoint = 10'000'000;
constexpr size_t kMaxPrintedFailures = 100;

std::string B64(std::string_view bytes) { return absl::Base64Escape(AbslView(bytes)); }

absl::StatusOr<SignedCheckpoint> FetchCheckpoint(LedgerRemote& remote,
                                                 const ledger::VerifierKey& key) {
  auto note = remote.Checkpoint();
  if (!note.ok()) return note.status();
  return internal::OpenSignedCheckpoint(*std::move(note), key, "checkpoint");
}

// Audits the log of `current` tile by tile and checks that it extends `saved`.
absl::StatusOr<AuditResult> VerifyLog(LedgerRemote& remote, const SignedCheckpoint& current,
                                      const std::optional<SignedCheckpoint>& saved,
                                      AuditOptions options) {
  if (saved) {
    auto s = internal::CheckNotRolledBack(saved->checkpoint, current.checkpoint);
    if (!s.ok()) return s;
    options.roots_at.push_back(saved->checkpoint.size);
  }
  auto audit = internal::AuditCheckpoint(current.checkpoint, remote, options);
  if (!audit.ok() || !saved) return audit;
  const uint64_t old_size = saved->checkpoint.size;
  auto proof = remote.ConsistencyProof(old_size, current.checkpoint.size);
  if (!proof.ok()) {
    return absl::Status(proof.status().code(),
                        StrCat("cannot fetch the consistency proof: ", proof.status().message()));
  }
  auto s = internal::CheckConsistent(saved->checkpoint, current.checkpoint,
                                     audit->roots_at.at(old_size), *proof);
  if (!s.ok()) return s;
  return audit;
}

// The tail of the success line: what the log was compared with, and where it was saved.
absl::StatusOr<std::string> SaveAndDescribe(const std::string& state_file,
                                            const SignedCheckpoint& current,
                                            const std::optional<SignedCheckpoint>& saved) {
  std::string out;
  if (saved) {
    out = StrCat(", consistent with the saved checkpoint of size ", saved->checkpoint.size);
  } else if (!state_file.empty()) {
    out = ", no saved checkpoint to compare with yet";
  } else {
    out = " (no --state: not compared with an earlier checkpoint)";
  }
  if (!state_file.empty()) {
    if (auto s = internal::SaveCheckpoint(state_file, current.note); !s.ok()) return s;
    out += StrCat("; saved to ", state_file);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<internal::HttpClient>> HttpClientFor(const std::string& url,
                                                                    int timeout_ms) {
  internal::HttpClientOptions options;
  options.timeout = absl::Milliseconds(timeout_ms);
  auto http = internal::HttpClient::Create(url, options);
  if (!http.ok()) return absl::InvalidArgumentError(StrCat("--url: ", http.status().message()));
  return http;
}

absl::StatusOr<std::string> Verify(const LedgerVerifyOptions& o) {
  auto key = internal::LoadVerifierKey(o.vkey);
  if (!key.ok()) return key.status();
  auto saved = internal::LoadSavedCheckpoint(o.state_file, *key);
  if (!saved.ok()) return saved.status();
  auto http = HttpClientFor(o.url, o.timeout_ms);
  if (!http.ok()) return http.status();
  LedgerRemote remote(**http);
  auto current = FetchCheckpoint(remote, *key);
  if (!current.ok()) return current.status();
  auto audit = VerifyLog(remote, *current, *saved, {});
  if (!audit.ok()) return audit.status();
  auto tail = SaveAndDescribe(o.state_file, *current, *saved);
  if (!tail.ok()) return tail.status();
  return StrCat("ledger verified: ", current->checkpoint.size, " entries, root ",
                B64(current->checkpoint.root_hash), *tail);
}

// --- prove ------------------------------------------------------------------------------------

bool IsUrlSafeId(std::string_view id) {
  return !id.empty() && id.size() <= 128 &&
         id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
             std::string_view::npos;
}

absl::StatusOr<std::string> FetchPseudonym(LedgerRemote& remote, std::string_view tenant_id,
                                           std::string_view token) {
  auto tenant = remote.GetJsonObject(StrCat("/v1/tenants/", tenant_id), token);
  if (!tenant.ok()) return tenant.status();
  const json::value* p = tenant->if_contains("ledger_pseudonym");
  if (p == nullptr || !p->is_string() || p->get_string().size() != 64) {
    return absl::DataLossError("the tenant's answer has no valid ledger_pseudonym");
  }
  return std::string(p->get_string());
}

// One page of the access log into `out`; returns the next cursor, if any.
absl::StatusOr<std::optional<uint64_t>> ReadAccessLogPage(LedgerRemote& remote,
                                                          std::string_view target,
                                                          std::string_view token,
                                                          std::vector<AccessRecord>& out) {
  auto page = remote.GetJsonObject(target, token);
  if (!page.ok()) return page.status();
  auto bad = [&](std::string_view why) {
    return absl::DataLossError(StrCat("GET ", target, ": malformed access log: ", why));
  };
  const json::value* events = page->if_contains("events");
  if (events == nullptr || !events->is_array()) return bad("no events array");
  for (const json::value& e : events->get_array()) {
    const json::object* o = e.if_object();
    const json::value* index = o ? o->if_contains("ledger_index") : nullptr;
    const json::value* record = o ? o->if_contains("record") : nullptr;
    const bool index_ok =
        index != nullptr && (index->is_uint64() || (index->is_int64() && index->get_int64() >= 0));
    if (!index_ok || record == nullptr || !record->is_string()) {
      return bad("an event is not {ledger_index, record}");
    }
    const uint64_t i =
        index->is_uint64() ? index->get_uint64() : static_cast<uint64_t>(index->get_int64());
    if (!out.empty() && i <= out.back().ledger_index) return bad("ledger indexes out of order");
    out.push_back({i, std::string(record->get_string())});
  }
  const json::value* next = page->if_contains("next_cursor");
  if (next == nullptr || next->is_null()) return std::nullopt;
  uint64_t cursor = 0;
  if (!next->is_string() ||
      !absl::SimpleAtoi(AbslView(std::string_view(next->get_string())), &cursor)) {
    return bad("next_cursor is not a decimal index");
  }
  return cursor;
}

// The tenant's whole access log. `checkpoint_size` bounds how far past the checkpoint (read
// first) records may go: the log grows while it is read, but not without end, and a server must
// not keep a verifier paging forever.
absl::StatusOr<std::vector<AccessRecord>> ReadAccessLog(LedgerRemote& remote,
                                                        std::string_view tenant_id,
                                                        std::string_view token,
                                                        uint64_t checkpoint_size) {
  std::vector<AccessRecord> records;
  std::optional<uint64_t> cursor;
  while (true) {
    std::string target = StrCat("/v1/tenants/", tenant_id, "/access-log?limit=", kAccessLogPage);
    if (cursor) target += StrCat("&cursor=", *cursor);
    const size_t before = records.size();
    auto next = ReadAccessLogPage(remote, target, token, records);
    if (!next.ok()) return next.status();
    if (!*next) return records;
    if (records.size() == before) {
      return absl::DataLossError("the access log names a next page after an empty one");
    }
    if (cursor && **next <= *cursor) {
      return absl::DataLossError("the access log's cursor does not advance");
    }
    if (**next > checkpoint_size + kMaxRecordsPastCheckpoint) {
      return absl::DataLossError(StrCat("the access log runs on past ledger index ", **next,
                                        ", far beyond the checkpoint of size ", checkpoint_size));
    }
    cursor = *next;
  }
}

struct KeptEntry {
  LedgerEntry entry;
  std::string raw;
};

struct ProveContext {
  std::string tenant_id;
  std::string pseudonym;
  SignedCheckpoint current;
  std::vector<AccessRecord> records;
  std::map<uint64_t, KeptEntry> entries;  // the records' entries and all under the pseudonym
};

// The pseudonym comes from the server; what ties it to the tenant is the tenant's first record,
// its creation, which names the tenant id and whose entry (checked in CheckRecords) carries the
// pseudonym -- so the checkpoint must cover it. Without this a server could name a pseudonym
// with no entries, answer an empty access log (or one whose creation record it placed past the
// checkpoint), and have it proved.
absl::Status CheckBeginsWithCreation(const ProveContext& c) {
  if (c.records.empty()) {
    return absl::DataLossError(StrCat("the access log of tenant ", c.tenant_id,
                                      " is empty: it has no tenant.create record to tie the "
                                      "pseudonym ",
                                      c.pseudonym, " to the tenant"));
  }
  auto head = internal::CheckRecordShape(c.records.front(), c.tenant_id);
  if (!head.ok()) return head.status();
  if (head->kind != "tenant.create") {
    return absl::DataLossError(StrCat("the access log of tenant ", c.tenant_id,
                                      " does not begin with its tenant.create record (ledger "
                                      "index ",
                                      c.records.front().ledger_index, " is ", head->kind, ")"));
  }
  if (c.records.front().ledger_index >= c.current.checkpoint.size) {
    return absl::UnavailableError(
        StrCat("the tenant.create record of tenant ", c.tenant_id, " (ledger index ",
               c.records.front().ledger_index, ") is not covered by the checkpoint of size ",
               c.current.checkpoint.size, " yet: run again after the next checkpoint"));
  }
  return absl::OkStatus();
}

// Every record against its entry and the checkpoint; every entry under the pseudonym against
// the records. Returns the failures; a network error ends the run.
absl::StatusOr<std::vector<std::string>> CheckRecords(LedgerRemote& remote, const ProveContext& c) {
  const ledger::Checkpoint& cp = c.current.checkpoint;
  std::vector<std::string> failures;
  std::set<uint64_t> recorded;
  for (const AccessRecord& r : c.records) {
    if (r.ledger_index >= cp.size) {
      // Newer than the checkpoint: no entry to check it against yet, but it must at least be a
      // record of this tenant (a server cannot pad the log with anything past the checkpoint).
      if (auto head = internal::CheckRecordShape(r, c.tenant_id); !head.ok()) {
        failures.emplace_back(StdView(head.status().message()));
      }
      continue;
    }
    recorded.insert(r.ledger_index);
    auto kept = c.entries.find(r.ledger_index);
    if (kept == c.entries.end()) {  // cannot happen: the audit visited every index below size
      failures.push_back(StrCat("entry ", r.ledger_index, " was not seen in the log"));
      continue;
    }
    const KeptEntry& e = kept->second;
    auto s = internal::CheckRecordAgainstEntry(r, e.entry, c.tenant_id, c.pseudonym);
    if (!s.ok()) {
      failures.emplace_back(StdView(s.message()));
      continue;
    }
    auto proof = remote.InclusionProof(r.ledger_index, cp.size);
    if (!proof.ok()) return proof.status();
    if (!ledger::VerifyInclusion(ledger::LeafHash(e.raw), r.ledger_index, cp.size, *proof,
                                 cp.root_hash)) {
      failures.push_back(StrCat("entry ", r.ledger_index, " is not included in the checkpoint",
                                " of size ", cp.size, ": its inclusion proof does not verify"));
    }
  }
  for (const auto& [index, e] : c.entries) {
    if (e.entry.tenant == c.pseudonym && !recorded.contains(index)) {
      failures.push_back(StrCat("entry ", index, " (", e.entry.kind,
                                ") names this tenant's pseudonym but is missing from its "
                                "access log"));
    }
  }
  return failures;
}

absl::Status ReportFailures(const std::vector<std::string>& failures, const ProveContext& c) {
  for (size_t i = 0; i < failures.size() && i < kMaxPrintedFailures; ++i) {
    std::cerr << "ledger prove: " << failures[i] << "\n";
  }
  if (failures.size() > kMaxPrintedFailures) {
    std::cerr << "ledger prove: ... and " << failures.size() - kMaxPrintedFailures << " more\n";
  }
  return absl::DataLossError(StrCat(failures.size(), " problem(s) with the access log of tenant ",
                                    c.tenant_id, " against the checkpoint of size ",
                                    c.current.checkpoint.size));
}

absl::StatusOr<std::string> Prove(const LedgerProveOptions& o) {
  if (!IsUrlSafeId(o.tenant_id)) return absl::InvalidArgumentError("--tenant is not a tenant id");
  auto key = internal::LoadVerifierKey(o.vkey);
  if (!key.ok()) return key.status();
  auto token = internal::ValueOrFile(o.token, "--token");
  if (!token.ok()) return token.status();
  auto saved = internal::LoadSavedCheckpoint(o.state_file, *key);
  if (!saved.ok()) return saved.status();
  auto http = HttpClientFor(o.url, o.timeout_ms);
  if (!http.ok()) return http.status();
  LedgerRemote remote(**http);

  ProveContext c;
  c.tenant_id = o.tenant_id;
  auto pseudonym = FetchPseudonym(remote, o.tenant_id, *token);
  if (!pseudonym.ok()) return pseudonym.status();
  c.pseudonym = *std::move(pseudonym);
  const std::string pins_file = o.state_file.empty() ? "" : o.state_file + ".pseudonyms";
  auto pins = internal::LoadPseudonymPins(pins_file);
  if (!pins.ok()) return pins.status();
  if (auto pinned = pins->find(c.tenant_id);
      pinned != pins->end() && pinned->second != c.pseudonym) {
    return absl::DataLossError(StrCat("the server names ledger pseudonym ", c.pseudonym,
                                      " for tenant ", c.tenant_id, ", but it was proved under ",
                                      pinned->second, " before (", pins_file, ")"));
  }
  // The checkpoint first: every entry it covers was committed, with its record, before the
  // access log is read, so the log must hold a record for each of the tenant's entries.
  auto current = FetchCheckpoint(remote, *key);
  if (!current.ok()) return current.status();
  c.current = *std::move(current);
  auto records = ReadAccessLog(remote, o.tenant_id, *token, c.current.checkpoint.size);
  if (!records.ok()) return records.status();
  c.records = *std::move(records);
  if (auto s = CheckBeginsWithCreation(c); !s.ok()) return s;

  std::set<uint64_t> wanted;
  for (const AccessRecord& r : c.records) wanted.insert(r.ledger_index);
  AuditOptions options;
  options.on_entry = [&](uint64_t index, const LedgerEntry& entry, std::string_view raw) {
    if (entry.tenant == c.pseudonym || wanted.contains(index)) {
      c.entries.emplace(index, KeptEntry{entry, std::string(raw)});
    }
  };
  auto audit = VerifyLog(remote, c.current, *saved, options);
  if (!audit.ok()) return audit.status();
  auto failures = CheckRecords(remote, c);
  if (!failures.ok()) return failures.status();
  if (!failures->empty()) return ReportFailures(*failures, c);

  auto tail = SaveAndDescribe(o.state_file, c.current, *saved);
  if (!tail.ok()) return tail.status();
  if (!pins_file.empty() && !pins->contains(c.tenant_id)) {
    (*pins)[c.tenant_id] = c.pseudonym;
    if (auto s = internal::SavePseudonymPins(pins_file, *pins); !s.ok()) return s;
  }
  const uint64_t size = c.current.checkpoint.size;
  const size_t newer = std::count_if(c.records.begin(), c.records.end(),
                                     [&](const AccessRecord& r) { return r.ledger_index >= size; });
  std::string out = StrCat(c.records.size() - newer, " records of tenant ", o.tenant_id,
                           " verified against checkpoint of size ", size, *tail);
  if (newer > 0) out += StrCat("; ", newer, " newer records are not covered by it yet");
  return out;
}

int Finish(std::string_view command, const absl::StatusOr<std::string>& result) {
  if (!result.ok()) {
    std::cerr << command << ": " << result.status().message() << "\n";
    return 1;
  }
  std::cout << *result << "\n";
  return 0;
}

}  // namespace

int RunLedgerVerify(const LedgerVerifyOptions& options) {
  return Finish("ledger verify", Verify(options));
}

int RunLedgerProve(const LedgerProveOptions& options) {
  return Finish("ledger prove", Prove(options));
}

}  // namespace custos::cli

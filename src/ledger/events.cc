// EventLog: private records, public entries, pseudonyms; and canonical JSON.
#include <openssl/crypto.h>

#include <algorithm>
#include <mutex>

#include "absl/cleanup/cleanup.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "base/blocking.h"
#include "base/errors.h"
#include "base/strings.h"
#include "base/utf8.h"
#include "ledger/ledger.h"
#include "spdlog/spdlog.h"

namespace custos::ledger {
namespace {

namespace json = boost::json;

// Appends `text` as a JSON string. Boost's escapes are RFC 8785's; the serializer writes through
// a stack buffer, so a record's many short strings cost no allocation of their own.
void AppendJsonString(std::string_view text, std::string& out) {
  json::serializer sr;
  sr.reset(json::string_view(text.data(), text.size()));
  char buffer[256];
  while (!sr.done()) {
    const json::string_view part = sr.read(buffer, sizeof buffer);
    out.append(part.data(), part.size());
  }
}

absl::Status AppendCanonical(const json::value& v, std::string& out) {
  switch (v.kind()) {
    case json::kind::null: out += "null"; return absl::OkStatus();
    case json::kind::bool_: out += v.get_bool() ? "true" : "false"; return absl::OkStatus();
    case json::kind::int64: StrAppend(out, v.get_int64()); return absl::OkStatus();
    case json::kind::uint64: StrAppend(out, v.get_uint64()); return absl::OkStatus();
    case json::kind::string: {
      // Boost copies bytes that are not UTF-8 as they are, and a record that is not JSON could
      // never be read back: a refused request's bytes (a header, a listing prefix) are recorded
      // with U+FFFD in their place.
      const json::string& str = v.get_string();
      const std::string_view text(str.data(), str.size());
      if (IsValidUtf8(text)) {
        AppendJsonString(text, out);
      } else {
        AppendJsonString(Utf8OrReplaced(text), out);
      }
      return absl::OkStatus();
    }
    case json::kind::double_:
      return absl::InvalidArgumentError("canonical JSON here carries no floating-point numbers");
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& x : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        if (auto s = AppendCanonical(x, out); !s.ok()) return s;
      }
      out.push_back(']');
      return absl::OkStatus();
    }
    case json::kind::object: {
      absl::InlinedVector<const json::key_value_pair*, 16> members;
      for (const auto& kv : v.get_object()) {
        const std::string_view k = kv.key();
        // RFC 8785 sorts by UTF-16 code units; for ASCII keys that is byte order.
        if (std::any_of(k.begin(), k.end(), [](char c) { return (c & 0x80) != 0; })) {
          return absl::InvalidArgumentError("canonical JSON keys must be ASCII");
        }
        members.push_back(&kv);
      }
      std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) {
        return std::string_view(a->key()) < std::string_view(b->key());
      });
      out.push_back('{');
      for (size_t i = 0; i < members.size(); ++i) {
        if (i > 0) out.push_back(',');
        AppendJsonString(members[i]->key(), out);
        out.push_back(':');
        if (auto s = AppendCanonical(members[i]->value(), out); !s.ok()) return s;
      }
      out.push_back('}');
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown JSON kind");
}

std::string RecordAad(std::string_view tenant_id) {
  return StrCat("custos event-record v1", std::string_view("\0", 1), tenant_id);
}

std::string RecordKeyAad(std::string_view tenant_id) {
  return StrCat("custos record-key v1", std::string_view("\0", 1), tenant_id);
}

std::string RecordKeySetting(std::string_view tenant_id) {
  return StrCat("record-key/", tenant_id);
}

// Marks a record sealed under the record key (XAES-256-GCM); records without it were sealed
// under the KEK by KeyProvider::Wrap.
constexpr std::string_view kRecordMagic = "cxr1";

uint64_t ReadBigEndian(std::string_view s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

}  // namespace

absl::StatusOr<std::string> CanonicalJson(const json::value& value) {
  std::string out;
  if (auto s = AppendCanonical(value, out); !s.ok()) return s;
  return out;
}

EventLog::EventLog(EntryAppender& ledger, store::ControlStore& store, crypto::KeyProvider& keys,
                   std::string pseudonym_key, Random& random, const Clock& clock)
    : ledger_(ledger),
      store_(store),
      keys_(keys),
      pseudonym_key_(std::move(pseudonym_key)),
      random_(random),
      clock_(clock) {}

EventLog::~EventLog() {
  std::lock_guard lock(record_keys_mu_);
  for (auto& [tenant, secrets] : record_keys_) {
    OPENSSL_cleanse(secrets.record_key.data(), secrets.record_key.size());
  }
}

absl::StatusOr<const EventLog::TenantSecrets*> EventLog::SecretsOf(std::string_view tenant_id) {
  {
    std::shared_lock lock(record_keys_mu_);
    if (auto it = record_keys_.find(tenant_id); it != record_keys_.end()) return &it->second;
  }
  if (!MayBlock()) return WouldBlockError();  // the store, and the key provider's unwrap
  const std::string kek = crypto::TenantKeyId(tenant_id);
  const std::string setting = RecordKeySetting(tenant_id);
  auto stored = store_.GetSetting(setting);
  if (absl::IsNotFound(stored.status())) {
    std::string key = random_.Bytes(crypto::kAeadKeySize);
    auto wrapped = keys_.Wrap(kek, key, RecordKeyAad(tenant_id));
    OPENSSL_cleanse(key.data(), key.size());
    if (!wrapped.ok()) return wrapped.status();
    // Of instances racing to create it, one wins; the others adopt what it stored.
    absl::Status s = store_.CompareAndSwapSetting(setting, std::nullopt, *wrapped);
    if (!s.ok() && !absl::IsAborted(s)) return s;
    stored = store_.GetSetting(setting);
  }
  if (!stored.ok()) return stored.status();
  auto key = keys_.Unwrap(kek, *stored, RecordKeyAad(tenant_id));
  if (!key.ok()) return key.status();
  std::lock_guard lock(record_keys_mu_);
  auto [it, inserted] = record_keys_.try_emplace(
      std::string(tenant_id), TenantSecrets{std::move(*key), Pseudonym(tenant_id)});
  return &it->second;
}

absl::StatusOr<std::string> EventLog::OpenRecord(std::string_view tenant_id,
                                                 std::string_view sealed) {
  if (sealed.starts_with(kRecordMagic)) {
    auto secrets = SecretsOf(tenant_id);
    if (!secrets.ok()) return secrets.status();
    auto record = crypto::XaesOpen((*secrets)->record_key, sealed.substr(kRecordMagic.size()),
                                   RecordAad(tenant_id));
    // A KEK-sealed record whose random nonce happens to start with the magic (2^-32) opens below.
    if (record.ok() || !absl::IsDataLoss(record.status())) return record;
  }
  return keys_.Unwrap(crypto::TenantKeyId(tenant_id), sealed, RecordAad(tenant_id));
}

std::string EventLog::Pseudonym(std::string_view tenant_id) const {
  return absl::BytesToHexString(AbslView(crypto::HmacSha256(pseudonym_key_, tenant_id)));
}

std::string EventLog::EntryFor(std::string_view record, std::string_view kind,
                               std::string_view pseudonym, int64_t ts_ms) {
  // Written out rather than built as an object and canonicalized (one per access): keys in
  // RFC 8785 order, digest, kind, tenant, ts, v. The kind is an ASCII event name and the
  // pseudonym hex, both valid UTF-8, so their strings are what AppendCanonical writes.
  std::string entry = StrCat(R"({"digest":")", crypto::Sha256Hex(record), R"(","kind":)");
  AppendJsonString(kind, entry);
  entry += R"(,"tenant":)";
  AppendJsonString(pseudonym, entry);
  StrAppend(entry, R"(,"ts":)", ts_ms, R"(,"v":1})");
  return entry;
}

absl::StatusOr<std::pair<PendingAppend, std::string>> EventLog::Prepare(const Event& event) {
  const int64_t ts = absl::ToUnixMillis(clock_.Now());
  json::object record = event.fields;
  record["v"] = 1;
  record["ts"] = ts;
  record["kind"] = event.kind;
  record["tenant"] = event.tenant_id;
  // 128 random bits so that nobody can confirm a guessed record against its public digest.
  record["salt"] = absl::BytesToHexString(AbslView(random_.Bytes(16)));
  auto canonical = CanonicalJson(record);
  if (!canonical.ok()) return canonical.status();
  auto secrets = SecretsOf(event.tenant_id);
  if (IsWouldBlock(secrets.status())) return secrets.status();
  if (!secrets.ok()) {
    return absl::UnavailableError(StrCat("no record key: ", secrets.status().message()));
  }
  PendingAppend append;
  append.entry = EntryFor(*canonical, event.kind, (*secrets)->pseudonym, ts);
  append.tenant_id = event.tenant_id;
  auto sealed =
      crypto::XaesSeal((*secrets)->record_key, *canonical, RecordAad(event.tenant_id), random_);
  if (!sealed.ok()) {
    return absl::UnavailableError(
        StrCat("cannot seal the event record: ", sealed.status().message()));
  }
  append.sealed_record = StrCat(kRecordMagic, *sealed);
  return std::make_pair(std::move(append), *std::move(canonical));
}

void EventLog::RecordOutcomesOfRefusedEntries() {
  // Recording an outcome records an event, which would come back here: once per call chain.
  thread_local bool recording = false;
  if (recording || !MayBlock()) return;  // !MayBlock(): RecordAsync leaves them to another thread
  recording = true;
  absl::Cleanup done = [] { recording = false; };
  for (RecordedAfterRefusal& r : ledger_.TakeRecordedAfterRefusal()) {
    constexpr int kMaxAttempts = 3;
    if (++r.attempts > kMaxAttempts) {
      spdlog::error("outcome of refused entry {} not recorded after {} attempts; giving up",
                    r.index, kMaxAttempts);
      continue;
    }
    json::object fields{{"actor", "system"},
                        {"role", "system"},
                        {"of", r.index},
                        {"outcome", ErrorCodeOf(absl::UnavailableError(""))}};
    const std::string tenant = r.tenant_id;
    // Not recorded (the store failing again): given back, for the next event to try. The
    // callback holds the appender, not this EventLog: the appender's own threads run it.
    RecordAsync({"outcome", tenant, std::move(fields)},
                [&appender = ledger_, r = std::move(r)](const absl::StatusOr<LoggedEvent>& logged) {
                  if (logged.ok()) return;
                  spdlog::error("outcome of refused entry {} not recorded yet: {}", r.index,
                                logged.status().ToString());
                  appender.PutBackRecordedAfterRefusal(r);
                });
  }
}

absl::StatusOr<LoggedEvent> EventLog::Record(const Event& event) {
  RecordOutcomesOfRefusedEntries();
  auto prepared = Prepare(event);
  if (!prepared.ok()) return prepared.status();
  auto index = ledger_.Append(std::move(prepared->first));
  if (!index.ok()) return index.status();
  return LoggedEvent{*index, std::move(prepared->second)};
}

void EventLog::RecordAsync(const Event& event, RecordCallback done) {
  if (!MayBlock() && ledger_.HasRecordedAfterRefusal()) return std::move(done)(WouldBlockError());
  RecordOutcomesOfRefusedEntries();
  auto prepared = Prepare(event);
  if (!prepared.ok()) return std::move(done)(prepared.status());
  ledger_.AppendAsync(std::move(prepared->first),
                      [record = std::move(prepared->second),
                       done = std::move(done)](absl::StatusOr<uint64_t> index) mutable {
                        if (!index.ok()) return std::move(done)(index.status());
                        std::move(done)(LoggedEvent{*index, std::move(record)});
                      });
}

absl::StatusOr<AccessLogPage> EventLog::ReadTenantLog(std::string_view tenant_id,
                                                      const AccessLogFilter& f) {
  AccessLogPage page;
  uint64_t from = f.start_index;
  int scanned = 0;
  constexpr int kGroupsPerRead = 64;
  while (true) {
    auto groups = store_.ReadRecordGroups(tenant_id, from, kGroupsPerRead);
    if (!groups.ok()) return groups.status();
    for (const auto& g : *groups) {
      const std::string& d = g.data;
      for (size_t at = 0; at < d.size();) {
        if (d.size() - at < 12) return absl::DataLossError("truncated record group");
        uint64_t index = ReadBigEndian(d, at, 8);
        uint64_t len = ReadBigEndian(d, at + 8, 4);
        at += 12;
        if (d.size() - at < len) return absl::DataLossError("truncated record group");
        std::string_view sealed(d.data() + at, len);
        at += len;
        if (index < f.start_index) continue;
        if (scanned++ == f.max_scanned) {
          page.next_index = index;
          return page;
        }
        auto record = OpenRecord(tenant_id, sealed);
        if (!record.ok()) return record.status();
        boost::system::error_code ec;
        // Records written before their strings were made UTF-8 may hold other bytes.
        json::parse_options lenient;
        lenient.allow_invalid_utf8 = true;
        json::value v = json::parse(*record, ec, {}, lenient);
        if (ec || !v.is_object()) return absl::DataLossError("stored event record is not JSON");
        const auto& o = v.get_object();
        auto str = [&](const char* k) -> std::string {
          auto* x = o.if_contains(k);
          return x && x->is_string() ? std::string(x->get_string()) : std::string();
        };
        int64_t ts = o.contains("ts") && o.at("ts").is_int64() ? o.at("ts").get_int64() : 0;
        if (f.from_ms && ts < *f.from_ms) continue;
        if (f.to_ms && ts > *f.to_ms) continue;
        if (f.role && str("role") != *f.role) continue;
        if (f.kind && str("kind") != *f.kind) continue;
        if (static_cast<int>(page.events.size()) == f.limit) {
          page.next_index = index;
          return page;
        }
        page.events.push_back({index, std::move(*record)});
      }
      from = g.last_index + 1;
    }
    if (static_cast<int>(groups->size()) < kGroupsPerRead) return page;
  }
}

}  // namespace custos::ledger

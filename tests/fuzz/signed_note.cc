// Signed notes and checkpoints (the C2SP signed-note and tlog-checkpoint formats) as a verifier
// reads them from a server: ledger::VerifyNote under a fixed key, OpenCheckpoint, and the
// checkpoint text alone (ParseCheckpoint must round-trip through FormatCheckpoint), and the
// verifier key text (ParseVerifierKey). tests/fuzz/make_seeds.py signs its seed notes with
// the same fixed key (Ed25519 seed bytes 0..31, name kName).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/crypto.h"
#include "ledger/checkpoint.h"
#include "ledger/note.h"

namespace {

constexpr std::string_view kName = "custos.fuzz/log";

const custos::ledger::VerifierKey& Key() {
  static const custos::ledger::VerifierKey* key = [] {
    std::string seed;
    for (int i = 0; i < 32; ++i) seed.push_back(static_cast<char>(i));
    auto priv = custos::crypto::Ed25519PrivateKey::FromSeed(seed);
    if (!priv.ok()) __builtin_trap();
    auto vkey = custos::ledger::FormatVerifierKey(kName, priv->PublicKey());
    if (!vkey.ok()) __builtin_trap();
    auto parsed = custos::ledger::ParseVerifierKey(*vkey);
    if (!parsed.ok()) __builtin_trap();
    return new custos::ledger::VerifierKey(*std::move(parsed));
  }();
  return *key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto text = custos::ledger::VerifyNote(in, Key());
  if (text.ok() && !in.starts_with(*text)) __builtin_trap();
  (void)custos::ledger::OpenCheckpoint(in, Key(), kName);
  auto cp = custos::ledger::ParseCheckpoint(in);
  if (cp.ok()) {
    auto again = custos::ledger::FormatCheckpoint(*cp);
    if (again.ok() && *again != in) __builtin_trap();
  }
  (void)custos::ledger::ParseVerifierKey(in);
  return 0;
}

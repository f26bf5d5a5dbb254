// The verifiers' saved checkpoint: kept exactly as signed, replaced atomically, and refused when
// it belongs to another log.
#include "cli/internal/checkpoint_state.h"

#include <filesystem>
#include <fstream>

#include "base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ledger/merkle.h"
#include "testing/temp_dir.h"

namespace custos::cli::internal {
namespace {

using ::testing::HasSubstr;

struct Log {
  std::string origin;
  crypto::Ed25519PrivateKey key;
  ledger::VerifierKey vkey;
  std::string vkey_text;

  Log(std::string o, char seed)
      : origin(std::move(o)),
        key(*crypto::Ed25519PrivateKey::FromSeed(std::string(crypto::kEd25519SeedSize, seed))),
        vkey_text(*ledger::FormatVerifierKey(origin, key.PublicKey())) {
    vkey = *ledger::ParseVerifierKey(vkey_text);
  }
  std::string Sign(uint64_t size) const {
    return *ledger::SignCheckpoint({origin, size, ledger::EmptyRoot(), {}}, origin, key);
  }
};

std::string Message(const absl::Status& s) { return std::string(StdView(s.message())); }

void Write(const std::string& path, std::string_view data) {
  std::ofstream(path, std::ios::binary) << data;
}

TEST(CheckpointState, VerifierKeyIsAValueOrAFile) {
  testing::TempDir dir;
  Log log("custos.example/1", '\x01');
  EXPECT_EQ(LoadVerifierKey(log.vkey_text)->key_id, log.vkey.key_id);
  Write(dir.File("vkey"), log.vkey_text + "\n");
  EXPECT_EQ(LoadVerifierKey(dir.File("vkey"))->key_id, log.vkey.key_id);
  EXPECT_THAT(Message(LoadVerifierKey(dir.File("nothing")).status()),
              HasSubstr("--vkey is neither a verifier key nor a file holding one"));
  EXPECT_TRUE(absl::IsInvalidArgument(LoadVerifierKey("").status()));
}

TEST(CheckpointState, SavesAndLoadsTheSignedNote) {
  testing::TempDir dir;
  Log log("custos.example/1", '\x01');
  const std::string path = dir.File("state");
  auto none = LoadSavedCheckpoint(path, log.vkey);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(LoadSavedCheckpoint("", log.vkey)->has_value());

  ASSERT_TRUE(SaveCheckpoint(path, log.Sign(3)).ok());
  ASSERT_TRUE(SaveCheckpoint(path, log.Sign(5)).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto saved = LoadSavedCheckpoint(path, log.vkey);
  ASSERT_TRUE(saved.ok() && saved->has_value()) << saved.status();
  EXPECT_EQ((*saved)->checkpoint.size, 5u);
  EXPECT_EQ((*saved)->note, log.Sign(5));
}

TEST(CheckpointState, CheckpointOfAnotherLogIsRefused) {
  testing::TempDir dir;
  Log log("custos.example/1", '\x01'), other("custos.example/2", '\x02');
  const std::string path = dir.File("state");
  ASSERT_TRUE(SaveCheckpoint(path, other.Sign(3)).ok());
  auto saved = LoadSavedCheckpoint(path, log.vkey);
  EXPECT_TRUE(absl::IsUnauthenticated(saved.status()));
  EXPECT_EQ(Message(saved.status()),
            StrCat("the saved checkpoint in ", path,
                   " does not verify with the given key (custos.example/1): it is a "
                   "checkpoint of another log, or was altered"));

  Write(path, "garbage\n");
  EXPECT_TRUE(absl::IsInvalidArgument(LoadSavedCheckpoint(path, log.vkey).status()));
}

TEST(CheckpointState, ServerCheckpointSignedByAnotherKeyIsNamed) {
  Log log("custos.example/1", '\x01'), impostor("custos.example/1", '\x03');
  auto cp = OpenSignedCheckpoint(impostor.Sign(1), log.vkey, "checkpoint");
  EXPECT_EQ(Message(cp.status()),
            "checkpoint signature does not verify with the given key (custos.example/1)");
  EXPECT_TRUE(OpenSignedCheckpoint(log.Sign(1), log.vkey, "checkpoint").ok());
}

TEST(CheckpointState, PseudonymPinsRoundTripAndRefuseMalformedFiles) {
  custos::testing::TempDir dir;
  const std::string path = dir.File("state.pseudonyms");
  EXPECT_TRUE(LoadPseudonymPins(path)->empty());  // no file yet
  EXPECT_TRUE(LoadPseudonymPins("")->empty());    // no --state
  PseudonymPins pins{{"tenantA", std::string(64, 'a')}, {"tenantB", std::string(64, 'b')}};
  ASSERT_TRUE(SavePseudonymPins(path, pins).ok());
  EXPECT_EQ(*LoadPseudonymPins(path), pins);
  for (const char* bad : {"tenantA\n", "tenantA a b\n", " a\n", "t x\nt y\n"}) {
    Write(path, bad);
    EXPECT_TRUE(absl::IsInvalidArgument(LoadPseudonymPins(path).status())) << bad;
  }
}

}  // namespace
}  // namespace custos::cli::internal

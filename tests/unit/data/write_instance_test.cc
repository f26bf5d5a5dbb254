// ClaimWriteInstance (data.h): the numbers that instances' write stamps end in.
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "data/data.h"
#include "gtest/gtest.h"
#include "testing/temp_dir.h"

namespace custos::data {
namespace {

using custos::testing::TempDir;

TEST(ClaimWriteInstance, HandsOutEveryNumberOnceBeforeWrapping) {
  TempDir dir;
  auto control = *store::OpenSqliteControlStore(dir.File("control.db"), true);
  std::set<uint32_t> seen;
  uint32_t first = 0;
  for (int i = 0; i < 1024; ++i) {
    auto n = ClaimWriteInstance(*control);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_LT(*n, 1024u);
    if (i == 0) first = *n;
    seen.insert(*n);
  }
  EXPECT_EQ(seen.size(), 1024u);
  EXPECT_EQ(*ClaimWriteInstance(*control), first);
}

// Instances starting at once, each with its own handle on the control store (as separate
// processes have), still get different numbers.
TEST(ClaimWriteInstance, InstancesStartingAtOnceGetDifferentNumbers) {
  TempDir dir;
  std::vector<std::unique_ptr<store::ControlStore>> stores;
  stores.push_back(*store::OpenSqliteControlStore(dir.File("control.db"), true));
  for (int i = 0; i < 3; ++i) {
    stores.push_back(*store::OpenSqliteControlStore(dir.File("control.db"), false));
  }
  std::mutex mu;
  std::vector<uint32_t> claimed;
  std::vector<std::thread> threads;
  for (auto& s : stores) {
    threads.emplace_back([&, store = s.get()] {
      for (int i = 0; i < 40; ++i) {
        auto n = ClaimWriteInstance(*store);
        ASSERT_TRUE(n.ok()) << n.status();
        std::lock_guard lock(mu);
        claimed.push_back(*n);
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(claimed.size(), 160u);
  EXPECT_EQ(std::set<uint32_t>(claimed.begin(), claimed.end()).size(), 160u);
}

TEST(ClaimWriteInstance, ACorruptCounterIsAnErrorNotANumber) {
  TempDir dir;
  auto control = *store::OpenSqliteControlStore(dir.File("control.db"), true);
  ASSERT_TRUE(control->PutSetting("write_instance_last", "12x").ok());
  EXPECT_EQ(ClaimWriteInstance(*control).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace custos::data

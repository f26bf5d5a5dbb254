#include "data/internal/cell_writer.h"

#include <future>

#include "base/clock.h"
#include "gtest/gtest.h"
#include "testing/cell_store_wrappers.h"
#include "testing/store_records.h"
#include "testing/temp_dir.h"

namespace custos::data::internal {
namespace {

using custos::testing::Obj;
using custos::testing::Put;

// A write that waited in the queue past kMaxQueueWait is answered without being applied, so that
// no write reaches a cell long after it was stamped (a deleted object's tombstone, kept an hour,
// must outlive every older write of it). The write already being applied is not affected.
TEST(CellWriter, AWriteQueuedTooLongIsNotApplied) {
  custos::testing::TempDir dir;
  auto cell = store::OpenSqliteCellStore(dir.File("c.db"), "r", true);
  ASSERT_TRUE(cell.ok()) << cell.status();
  ASSERT_TRUE((*cell)->PutDataKey({"t", 1, "w", 0, 0}).ok());
  custos::testing::GatedCellStore gate(**cell);
  OffsetClock clock;
  std::promise<CellWriter::Result> first, second, third;
  {
    CellWriter writer(gate, 256, clock);
    writer.EnqueueAsync(Put(Obj("t", "applying")), [&](auto r) { first.set_value(std::move(r)); });
    ASSERT_TRUE(gate.WaitForWriter());  // its batch is at the cell, waiting
    writer.EnqueueAsync(Put(Obj("t", "stale")), [&](auto r) { second.set_value(std::move(r)); });
    clock.Advance(absl::ToInt64Seconds(CellWriter::kMaxQueueWait) + 1);
    writer.EnqueueAsync(Put(Obj("t", "fresh")), [&](auto r) { third.set_value(std::move(r)); });
    gate.Open();
  }  // drained
  auto r1 = first.get_future().get();
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_TRUE(r1->applied);
  EXPECT_EQ(second.get_future().get().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(third.get_future().get().ok());
  EXPECT_TRUE((*cell)->GetObject("t", "applying").ok());
  EXPECT_EQ((*cell)->GetObject("t", "stale").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*cell)->GetObject("t", "fresh").ok());
}

}  // namespace
}  // namespace custos::data::internal
